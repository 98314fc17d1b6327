"""The SimPy machine: fetch, three in-order units, their instruction and token queues, and the DRAM port.

Timing follows docs/timing.md. Every queue is a SimPy Store with the configured capacity, so back-pressure
is real. The machine only decides *when* things happen: it records per-instruction timestamps and the
order in which data effects are due (their `end` cycle; see `Machine.effect_order`); stats, traces and
the data effects themselves are derived from those afterwards (data never influences timing).

Events are per instruction, never per clock, and only where something has to wait:

* fetch is not a process: it dispatches in bursts whenever it can, stamping each instruction with its
  true dispatch cycle, and when the next instruction's queue is full it is resumed by the take that
  frees the slot (a plain call, no event);
* queue and token operations that would not block take a fast path without an event;
* a unit that waits for its next instruction is resumed at that instruction's ready cycle directly;
* an instruction without pops waits for its ready cycle and executes in one timeout;
* a LOAD learns its DRAM grant when it asks (see dram.py), so it costs one event; a STORE costs two.

So an instruction costs about one event, plus one per wait that really happens.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import simpy

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.errors import DeadlockError
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import NEIGHBOURS, OPCODE_BY_NAME, Unit

from .activity import activity_of
from .dram import DramPort
from .timing import timing_of

UNITS = (Unit.LOAD, Unit.COMPUTE, Unit.STORE)


class CycleLimitError(RuntimeError):
    """The program did not finish within the allowed number of cycles."""


@dataclass(slots=True)
class Decoded:
    """Everything the event loop needs about one instruction word, computed once before the run."""

    op: str
    unit: int
    pop_prev: bool
    pop_next: bool
    push_prev: bool
    push_next: bool
    latency: int  # execution cycles (non-DMA)
    dram_hold: int  # port hold cycles after the grant (DMA), else 0
    bitops: int
    activity: tuple[int, ...]  # counts in the order of activity.ACTIONS
    fields: dict[str, int]
    execute: Callable[[], None]  # the data effect (bound to its fields and the datapath)


_FIELD_NAMES = {name: tuple(p.name for p in op.layout) for name, op in OPCODE_BY_NAME.items()}
_FIXED_UNIT = {name: op.unit for name, op in OPCODE_BY_NAME.items()}


def _no_effect() -> None:
    pass


def decode_program(program: Sequence[Instruction], hw: HwConfig,
                   planner: Callable[[str, dict[str, int]], Callable[[], None]] | None = None) -> list[Decoded]:
    """Fields, unit, token flags, timing and data effect of every instruction, once per distinct
    instruction word (programs repeat words in loops; Instruction attribute access is far too slow for
    the event loop). `planner(op, fields)` returns the data effect (Datapath.plan); None: no effects.
    Entries of the result may be shared between indices: they are read-only."""
    cache: dict[tuple[str, tuple[int, ...]], Decoded] = {}  # (op, values): hashed and compared in C
    decoded = []
    for insn in program:
        key = (insn.op, insn.values)
        d = cache.get(key)
        if d is None:
            op = insn.op
            f = dict(zip(_FIELD_NAMES[op], insn.values, strict=True))
            unit = _FIXED_UNIT[op]
            t = timing_of(op, f, hw)
            d = cache[key] = Decoded(
                op, int(unit if unit is not None else f["unit"]), bool(f["pop_prev"]), bool(f["pop_next"]),
                bool(f["push_prev"]), bool(f["push_next"]), t.latency, t.dram_hold, t.bitops, activity_of(op, f, hw), f,
                planner(op, f) if planner is not None else _no_effect)
        decoded.append(d)
    return decoded


class Queue(simpy.Store):
    """A bounded FIFO (SimPy Store) with non-blocking fast paths.

    `try_get`/`try_put` do exactly what an immediately successful `get`/`put` does (including waking
    a blocked putter or getter in the same cycle) without scheduling an event: most queue operations
    do not block, and skipping their events is the largest saving in the event loop.
    """

    def try_get(self) -> tuple[bool, object]:
        if not self.items:
            return False, None
        item = self.items.pop(0)
        if self.put_queue:
            self._trigger_put(None)
        return True, item

    def try_put(self, item: object) -> bool:
        if len(self.items) >= self._capacity or self.put_queue:
            return False
        self.items.append(item)
        if self.get_queue:
            self._trigger_get(None)
        return True


class DispatchQueue(simpy.Store):
    """A unit's instruction queue (capacity = queue depth). Fetch puts instructions with `dispatch_at`
    (it checks `has_room` first), stamping each with its dispatch cycle; the unit takes them from
    `items`, or waits with `get()` when the queue is empty."""

    def __init__(self, env: simpy.Environment, capacity: int, dispatch: list[int]) -> None:
        super().__init__(env, capacity)
        self._dispatch = dispatch

    def has_room(self) -> bool:
        return len(self.items) < self._capacity

    def dispatch_at(self, k: int, cycle: int) -> None:
        """Enqueue instruction k stamped with a dispatch cycle >= now (caller checked has_room).

        A unit blocked on an empty queue takes k at once (no slot is occupied) and is resumed at k's
        ready cycle, dispatch + 1: its get event is scheduled for then instead of now, which saves the
        separate wait for the decode cycle."""
        self._dispatch[k] = cycle
        if self.get_queue:
            ev = self.get_queue.pop(0)
            ev._ok = True
            ev._value = k
            self._env.schedule(ev, delay=cycle + 1 - self._env.now)
        else:
            self.items.append(k)


@dataclass
class Timestamps:
    """Per-instruction cycles: dispatch, ready (decoded and unit free), start (tokens popped),
    grant (DMA only, else -1), end (execution done, data effect applied), free (tokens pushed)."""

    dispatch: list[int]
    ready: list[int]
    start: list[int]
    grant: list[int]
    end: list[int]
    free: list[int]

    @classmethod
    def empty(cls, n: int) -> Timestamps:
        return cls(*([-1] * n for _ in range(6)))


# What a unit is doing, for the runtime deadlock report.
_WAIT_TEXT = {
    "insn": "waits for its next instruction",
    "pop_prev": "waits to pop a token from {prev}",
    "pop_next": "waits to pop a token from {next}",
    "push_prev": "waits to push a token to {prev} (token queue full)",
    "push_next": "waits to push a token to {next} (token queue full)",
}


class Machine:
    """Build with a decoded program, call `run(max_cycles)`, then read the timestamps `ts` and
    `effect_order()`."""

    def __init__(self, decoded: list[Decoded], hw: HwConfig) -> None:
        self.decoded = decoded
        self.hw = hw
        self.env = simpy.Environment()
        n = len(decoded)
        self.n = n
        self.ts = Timestamps.empty(n)
        self.queues = [DispatchQueue(self.env, hw.queue_depth, self.ts.dispatch) for _ in UNITS]
        self.tokens = {(a, b): Queue(self.env, hw.token_depth)
                       for a in UNITS for b in NEIGHBOURS[a] if b is not None}
        self.port = DramPort(self.env)
        self.unit_of = [d.unit for d in decoded]
        self.counts = [self.unit_of.count(u) for u in UNITS]
        self.state: list[tuple[str, int | None]] = [("insn", None) for _ in UNITS]
        self.fetch_at = 0  # index of the next instruction fetch dispatches
        self.fetch_next = 0  # the earliest cycle it can be dispatched (one after the previous dispatch)
        self.fetch_wait: int | None = None  # the unit whose full queue fetch waits on
        self.done: list[int] = []  # instructions in the order their `end` was reached
        self.max_cycles: int | None = None
        for u in UNITS:
            self.env.process(self._unit(u))
        self._fetch()

    # --- fetch ----------------------------------------------------------------------------------
    def _fetch(self) -> None:
        """d_k = max(d_{k-1} + 1, first cycle with a free slot in k's queue), in bursts.

        Called at cycle 0 and by every take from the queue fetch waits on (the only thing that makes
        room). If queues have room now for instructions k..k+m-1, they get dispatch cycles
        t..t+m-1 (t = max(d_{k-1} + 1, now)) at once: room only grows until then (units take, only
        fetch fills), so each really had a slot at its cycle; a unit that sees one early still waits
        for its dispatch + 1. A take frees its slot at the cycle it happens, so the instruction that
        waited for it is dispatched at max(d_{k-1} + 1, that cycle), which is the first cycle with room.
        """
        k, n, unit_of, queues = self.fetch_at, self.n, self.unit_of, self.queues
        t = max(self.fetch_next, self.env._now)
        self.fetch_wait = None
        while k < n:
            q = queues[unit_of[k]]
            if len(q.items) >= q._capacity:
                self.fetch_wait = unit_of[k]
                break
            q.dispatch_at(k, t)
            k += 1
            t += 1
        self.fetch_at, self.fetch_next = k, t

    # --- units ----------------------------------------------------------------------------------
    def _unit(self, u: Unit) -> Generator[simpy.Event, object, None]:
        env, ts, decoded, state, port = self.env, self.ts, self.decoded, self.state, self.port
        dispatch, ready_at, start_at, grant_at, end_at, free_at = (
            ts.dispatch, ts.ready, ts.start, ts.grant, ts.end, ts.free)
        done = self.done
        prev, nxt = NEIGHBOURS[u]
        queue = self.queues[u]
        items = queue.items
        in_prev = self.tokens.get((prev, u))
        in_next = self.tokens.get((nxt, u))
        out_prev = self.tokens.get((u, prev))
        out_next = self.tokens.get((u, nxt))
        timeout = env.timeout
        for _ in range(self.counts[u]):
            merged = False
            if items:  # the take: frees the queue slot (and resumes fetch if it waits for one)
                k = items.pop(0)
                if self.fetch_wait == u:
                    self._fetch()
                d = decoded[k]
                ready = dispatch[k] + 1  # decode
                now = env._now
                if now < ready:
                    if d.pop_prev or d.pop_next or d.dram_hold:
                        state[u] = ("insn", k)
                        yield timeout(ready - now)
                    else:  # nothing observable happens at `ready`: wait for it and execute in one step
                        ready_at[k] = start_at[k] = ready
                        state[u] = ("exec", k)
                        merged = True
                        yield timeout(ready - now + d.latency)
            else:
                state[u] = ("insn", None)
                k = yield queue.get()  # resumes at k's ready cycle (see DispatchQueue.dispatch_at)
                d = decoded[k]
            if not merged:
                ready_at[k] = env._now
                if d.pop_prev:
                    if in_prev.items:  # Queue.try_get, inlined
                        in_prev.items.pop(0)
                        if in_prev.put_queue:
                            in_prev._trigger_put(None)
                    else:
                        state[u] = ("pop_prev", k)
                        yield in_prev.get()
                if d.pop_next:
                    if in_next.items:
                        in_next.items.pop(0)
                        if in_next.put_queue:
                            in_next._trigger_put(None)
                    else:
                        state[u] = ("pop_next", k)
                        yield in_next.get()
                start_at[k] = env._now
                state[u] = ("exec", k)
                if d.dram_hold:
                    req = port.request(u, d.dram_hold, k)
                    yield req
                    grant_at[k] = req.grant
                else:
                    yield timeout(d.latency)
            end_at[k] = env._now
            done.append(k)
            if d.push_prev and not out_prev.try_put(k):
                state[u] = ("push_prev", k)
                yield out_prev.put(k)
            if d.push_next and not out_next.try_put(k):
                state[u] = ("push_next", k)
                yield out_next.put(k)
            free_at[k] = env._now
        state[u] = ("done", None)

    # --- running --------------------------------------------------------------------------------
    def finished(self) -> bool:
        return all(s[0] == "done" for s in self.state) and self.fetch_at == self.n

    def run(self, max_cycles: int | None = None) -> None:
        """Run to completion; DeadlockError if everyone is blocked, CycleLimitError past max_cycles."""
        env = self.env
        self.max_cycles = max_cycles
        if max_cycles is None:
            env.run()
        else:
            step, peek = env.step, env.peek
            while peek() <= max_cycles:  # events of cycle max_cycles still run
                step()
        if self.finished():
            return
        if env.peek() == simpy.core.Infinity:
            raise self._deadlock()
        raise CycleLimitError(
            f"program did not finish within --max-cycles={max_cycles} "
            f"({self._progress()}); raise the limit or check the program"
        )

    def effect_order(self) -> list[int]:
        """Instructions in the order their data effects apply: by `end` cycle, and in program order
        among instructions that end in the same cycle (which only matters for racy programs: see
        docs/timing.md, "Data effects and races")."""
        end = self.ts.end
        return sorted(self.done, key=end.__getitem__)  # stable: `done` is in time order already

    def _progress(self) -> str:
        limit = self.max_cycles if self.max_cycles is not None else self.env.now
        done = sum(1 for e in self.ts.end if 0 <= e <= limit)
        return f"{done} of {len(self.decoded)} instructions executed"

    def _deadlock(self) -> DeadlockError:
        parts = []
        blocked = []
        for u in UNITS:
            kind, k = self.state[u]
            if kind == "done":
                continue
            prev, nxt = NEIGHBOURS[u]
            text = _WAIT_TEXT.get(kind, "is stuck").format(prev=_name(prev), next=_name(nxt))
            where = f" for instruction {k} ({self.decoded[k].op})" if k is not None else ""
            parts.append(f"{_name(u)} unit {text}{where}")
            if k is not None:
                blocked.append(k)
        if self.fetch_at < len(self.decoded):
            k = self.fetch_at
            parts.append(f"fetch waits for a slot in the {_name(Unit(self.decoded[k].unit))} queue "
                         f"to dispatch instruction {k} ({self.decoded[k].op})")
            blocked.append(k)
        first = min(blocked) if blocked else None
        ts = self.ts
        stuck_since = max(max(x) for x in (ts.dispatch, ts.ready, ts.start, ts.end, ts.free))
        message = f"runtime deadlock from cycle {max(stuck_since, 0)}: " + "; ".join(parts)
        return DeadlockError(message, first, self.decoded[first].op if first is not None else None)


def _name(u: Unit | None) -> str:
    return Unit(u).name.lower() if u is not None else "-"

"""The SimPy machine: fetch, three in-order units, their instruction and token queues, and the DRAM port.

Timing follows docs/timing.md. Every queue is a SimPy Store with the configured capacity, so back-pressure
is real; queue operations that would not block take a fast path without an event, so an instruction
costs a few events (fetch cadence, execution, and only the waits that really happen), never one per
clock. The machine records per-instruction timestamps; stats and traces are derived from them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import simpy

from isa.encoding import Instruction
from isa.errors import DeadlockError
from isa.hwconfig import HwConfig
from isa.spec import NEIGHBOURS, OPCODE_BY_NAME, Unit

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
    fields: dict[str, int]
    execute: Callable[[dict[str, int]], None]


_FIELD_NAMES = {name: tuple(p.name for p in op.layout) for name, op in OPCODE_BY_NAME.items()}
_FIXED_UNIT = {name: op.unit for name, op in OPCODE_BY_NAME.items()}


def decode_program(program: Sequence[Instruction], hw: HwConfig,
                   handler: Callable[[str], Callable[[dict[str, int]], None]]) -> list[Decoded]:
    """Fields, unit, token flags and timing of every instruction, once per distinct instruction word
    (programs repeat words in loops; Instruction attribute access is far too slow for the event loop).
    Entries of the result may be shared between indices: they are read-only."""
    cache: dict[Instruction, Decoded] = {}
    decoded = []
    for insn in program:
        d = cache.get(insn)
        if d is None:
            op = insn.op
            f = dict(zip(_FIELD_NAMES[op], insn.values, strict=True))
            unit = _FIXED_UNIT[op]
            t = timing_of(op, f, hw)
            d = cache[insn] = Decoded(
                op, int(unit if unit is not None else f["unit"]), bool(f["pop_prev"]), bool(f["pop_next"]),
                bool(f["push_prev"]), bool(f["push_next"]), t.latency, t.dram_hold, t.bitops, f, handler(op))
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
        self._accept(item)
        if self.get_queue:
            self._trigger_get(None)
        return True

    def _accept(self, item: object) -> None:
        self.items.append(item)

    def _do_put(self, event: simpy.resources.store.StorePut) -> None:
        if len(self.items) < self._capacity:
            self._accept(event.item)
            event.succeed()


class DispatchQueue(Queue):
    """A unit's instruction queue; it stamps each instruction with the cycle it entered (its dispatch)."""

    def __init__(self, env: simpy.Environment, capacity: int, dispatch: list[int]) -> None:
        super().__init__(env, capacity)
        self._dispatch = dispatch

    def has_room(self) -> bool:
        return len(self.items) < self._capacity and not self.put_queue

    def dispatch_at(self, k: int, cycle: int) -> None:
        """Enqueue instruction k stamped with a dispatch cycle >= now (caller checked has_room)."""
        self._dispatch[k] = cycle
        self.items.append(k)
        if self.get_queue:
            self._trigger_get(None)

    def _accept(self, item: object) -> None:
        self._dispatch[item] = self._env.now
        self.items.append(item)


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
    """Build with a decoded program, call `run(max_cycles)`, then read the timestamps `ts`."""

    def __init__(self, decoded: list[Decoded], hw: HwConfig) -> None:
        self.decoded = decoded
        self.hw = hw
        self.env = simpy.Environment()
        n = len(decoded)
        self.ts = Timestamps.empty(n)
        self.queues = [DispatchQueue(self.env, hw.queue_depth, self.ts.dispatch) for _ in UNITS]
        self.tokens = {(a, b): Queue(self.env, hw.token_depth)
                       for a in UNITS for b in NEIGHBOURS[a] if b is not None}
        self.port = DramPort(self.env)
        self.counts = [sum(1 for d in decoded if d.unit == u) for u in UNITS]
        self.state: list[tuple[str, int | None]] = [("insn", None) for _ in UNITS]
        self.fetch_at = 0  # index of the instruction fetch is dispatching
        self.env.process(self._fetch())
        for u in UNITS:
            self.env.process(self._unit(u))

    # --- processes ------------------------------------------------------------------------------
    def _fetch(self) -> Generator[simpy.Event, object, None]:
        """d_k = max(d_{k-1} + 1, first cycle with a free slot), in bursts: if the queues have room now
        for instructions k..k+m-1, they get dispatch cycles now..now+m-1 in one step (room can only grow
        until then, so each really had a slot at its cycle; a unit that sees one early still waits for
        its dispatch + 1). When a queue is full, fetch blocks on it at the true cycle."""
        env, queues, decoded = self.env, self.queues, self.decoded
        n, k = len(decoded), 0
        while k < n:
            now, m = env.now, 0
            while k < n and queues[decoded[k].unit].has_room():
                queues[decoded[k].unit].dispatch_at(k, now + m)
                k, m = k + 1, m + 1
            self.fetch_at = k
            if m:
                yield env.timeout(m)  # the next dispatch is one cycle after the last of the burst
                continue
            yield queues[decoded[k].unit].put(k)  # blocks while the unit's queue is full
            k += 1
            self.fetch_at = k
            yield env.timeout(1)

    def _unit(self, u: Unit) -> Generator[simpy.Event, object, None]:
        env, ts, decoded, state, port = self.env, self.ts, self.decoded, self.state, self.port
        prev, nxt = NEIGHBOURS[u]
        queue = self.queues[u]
        in_prev = self.tokens.get((prev, u))
        in_next = self.tokens.get((nxt, u))
        out_prev = self.tokens.get((u, prev))
        out_next = self.tokens.get((u, nxt))
        for _ in range(self.counts[u]):
            state[u] = ("insn", None)
            ok, k = queue.try_get()  # the take: frees the queue slot
            if not ok:
                k = yield queue.get()
            d = decoded[k]
            ready = ts.dispatch[k] + 1  # decode
            if env.now < ready:
                state[u] = ("insn", k)
                yield env.timeout(ready - env.now)
            ts.ready[k] = env.now
            if d.pop_prev and not in_prev.try_get()[0]:
                state[u] = ("pop_prev", k)
                yield in_prev.get()
            if d.pop_next and not in_next.try_get()[0]:
                state[u] = ("pop_next", k)
                yield in_next.get()
            ts.start[k] = env.now
            state[u] = ("exec", k)
            if d.dram_hold:
                req = port.request(u, d.dram_hold, k)
                yield req
                ts.grant[k] = req.grant
            else:
                yield env.timeout(d.latency)
            ts.end[k] = env.now
            d.execute(d.fields)  # data effect, atomically at the end (see docs/timing.md)
            if d.push_prev and not out_prev.try_put(k):
                state[u] = ("push_prev", k)
                yield out_prev.put(k)
            if d.push_next and not out_next.try_put(k):
                state[u] = ("push_next", k)
                yield out_next.put(k)
            ts.free[k] = env.now
        state[u] = ("done", None)

    # --- running --------------------------------------------------------------------------------
    def finished(self) -> bool:
        return all(s[0] == "done" for s in self.state) and self.fetch_at == len(self.decoded)

    def run(self, max_cycles: int | None = None) -> None:
        """Run to completion; DeadlockError if everyone is blocked, CycleLimitError past max_cycles."""
        env = self.env
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

    def _progress(self) -> str:
        done = sum(1 for e in self.ts.end if e >= 0)
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

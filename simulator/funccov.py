"""Functional coverage of the ISA and the timing contract: which machine states a set of runs reached.

Code coverage says which lines of the RTL ran; it does not say which situations of docs/timing.md were
exercised. The coverpoints here are defined from the ISA tables (isa.spec) and the timing contract, and
observed from what a run returns: the program and its per-instruction timestamps (sections 2-5 of
docs/timing.md are functions of those alone, and the RTL reproduces them cycle for cycle, so a situation seen
in the simulator's timestamps happened in the RTL run that matched them) and, for error runs, the status.

Groups:
* `field`: opcode x field boundary: every enum value, 0/1 of one-bit fields, the legal minimum and maximum of
  narrow fields (<= 8 bits; `slice`: the last slice of the preset's word), the minimum and a value above it
  for address and count fields (whose maximum depends on the buffer sizes of the preset);
* `tokens`: opcode (sync: per unit) x every legal combination of the four token flags;
* `queue`: each unit's instruction queue full (fetch held back), each token queue empty at a pop and full at
  a push, the same-cycle bypasses of section 3 (pushed at t, popped at t; a pop making room for a blocked
  push at t);
* `dram`: the arbitration outcomes of section 5 (lone request or waited for the port, per unit; two requests
  that meet: raised in the same cycle, load first; the earlier store first; the earlier load first);
* `bank`: the bank conflicts of section 4.1 (the ACC stall, OUT write groups of requant and of max pool);
* `status`: each error status of each instruction class, and the empty program.

Every group is kept per preset (the preset's name), as the issue asks for opcode x field x preset.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import NEIGHBOURS, OPCODES, TOKEN_FIELDS, Dest, PoolMode, Unit

TOKEN_NAMES = tuple(f.name for f in TOKEN_FIELDS)
NARROW_BITS = 8
QUEUES = ("load->compute", "compute->load", "compute->store", "store->compute")
DRAM_OUTCOMES = ("load lone request", "store lone request", "load waited for the port",
                 "store waited for the port", "same-cycle requests: load first", "earlier store served first",
                 "earlier load served first")
# The bank conflicts of docs/timing.md section 4.1 (simulator.timing decides when each happens).
BANK_POINTS = ("ACC stall: accumulating one-step BGEMM over >= 3 column tiles",
               "OUT write groups: requant writes a pass in several cycles",
               "OUT write groups: max pool writes a pass in several cycles")
# Which error statuses each instruction class can raise (docs/isa.md): the cross product would name
# impossible points (a sync cannot overrun a buffer).
STATUS_POINTS = {
    "load": ("FIELD", "BUF_RANGE", "DRAM_RANGE", "TOKEN"),
    "store": ("FIELD", "BUF_RANGE", "DRAM_RANGE", "TOKEN"),
    "bgemm": ("FIELD", "BUF_RANGE"),
    "requant": ("FIELD", "BUF_RANGE"),
    "pool": ("FIELD", "BUF_RANGE"),
    "sync": ("FIELD", "TOKEN", "DEADLOCK"),
    "finish": ("ILLEGAL",),
    "program": ("ILLEGAL", "RESERVED", "EMPTY", "NO_FINISH"),
}


def _field_bins(op: str, placed) -> list[str]:
    f = placed.field
    if f.name in TOKEN_NAMES:
        return []
    if f.enum is not None:
        values = f.allowed if f.allowed is not None else tuple(int(m) for m in f.enum)
        return [f"{op}.{f.name}={f.enum(v).name.lower()}" for v in values]
    if f.width == 1:
        return [f"{op}.{f.name}=0", f"{op}.{f.name}=1"]
    if f.width <= NARROW_BITS:
        return [f"{op}.{f.name}=min", f"{op}.{f.name}=max"]
    return [f"{op}.{f.name}=min", f"{op}.{f.name}>min"]


def _token_combos(unit: Unit) -> list[tuple[int, int, int, int]]:
    prev, nxt = NEIGHBOURS[unit]
    out = []
    for bits in range(16):
        flags = tuple((bits >> i) & 1 for i in range(4))  # pop_prev, pop_next, push_prev, push_next
        if (flags[0] or flags[2]) and prev is None or (flags[1] or flags[3]) and nxt is None:
            continue
        out.append(flags)
    return out


def _flags_text(flags: Sequence[int]) -> str:
    on = [name for name, v in zip(TOKEN_NAMES, flags, strict=True) if v]
    return "+".join(on) if on else "none"


def all_points() -> dict[str, list[str]]:
    """Every coverpoint of one preset, by group."""
    fields, tokens = [], []
    for opcode in OPCODES:
        for placed in opcode.layout:
            fields += _field_bins(opcode.name, placed)
        units = [opcode.unit] if opcode.unit is not None else list(Unit)
        for unit in units:
            label = opcode.name if opcode.unit is not None else f"sync[{unit.name.lower()}]"
            tokens += [f"{label}:{_flags_text(c)}" for c in _token_combos(unit)]
    queue = [f"insn queue full: {u.name.lower()}" for u in Unit]
    for q in QUEUES:
        queue += [f"token {q}: pop waited (empty)", f"token {q}: push waited (full)",
                  f"token {q}: popped in the cycle it was pushed", f"token {q}: pop made room for a push in-cycle"]
    status = [f"{cls}:{st}" for cls, sts in STATUS_POINTS.items() for st in sts]
    return {"field": fields, "tokens": tokens, "queue": queue, "dram": list(DRAM_OUTCOMES), "bank": list(BANK_POINTS),
            "status": status}


# Narrow fields whose largest legal value is set by the config, not by the field width.
CONFIG_MAX = {"slice": lambda hw: hw.slices_per_word - 1}


def _field_hits(insn: Instruction, hw: HwConfig) -> Iterator[str]:
    opcode = insn.opcode
    for placed, v in zip(opcode.layout, insn.values, strict=True):
        f = placed.field
        if f.name in TOKEN_NAMES:
            continue
        if f.enum is not None:
            yield f"{insn.op}.{f.name}={f.enum(v).name.lower()}"
        elif f.width == 1:
            yield f"{insn.op}.{f.name}={v}"
        elif v == f.lo:
            yield f"{insn.op}.{f.name}=min"
        elif f.width <= NARROW_BITS and v == (CONFIG_MAX[f.name](hw) if f.name in CONFIG_MAX else f.max_value):
            yield f"{insn.op}.{f.name}=max"
        elif f.width > NARROW_BITS:
            yield f"{insn.op}.{f.name}>min"


def _flags(insn: Instruction) -> tuple[int, int, int, int]:
    d = insn.as_dict()
    return tuple(d[name] for name in TOKEN_NAMES)  # type: ignore[return-value]


def _queue_name(src: Unit, dst: Unit) -> str:
    return f"{src.name.lower()}->{dst.name.lower()}"


@dataclass
class _TokenEvent:
    time: int
    waited: bool


def _token_events(program: Sequence[Instruction], ts) -> tuple[dict[str, list[_TokenEvent]],
                                                                dict[str, list[_TokenEvent]]]:
    """Per queue, the pushes and pops in order with the cycle each happened, where the timestamps fix it: an
    instruction with one pop (push) flag pops (pushes) at its start (free); with two, only the last is timed
    and the first is left out of the time-dependent points."""
    pushes: dict[str, list[_TokenEvent]] = {q: [] for q in QUEUES}
    pops: dict[str, list[_TokenEvent]] = {q: [] for q in QUEUES}
    for k, insn in enumerate(program):
        unit = insn.exec_unit
        prev, nxt = NEIGHBOURS[unit]
        pp, pn, sp, sn = _flags(insn)
        pop_queues = [_queue_name(n, unit) for n, on in ((prev, pp), (nxt, pn)) if on and n is not None]
        push_queues = [_queue_name(unit, n) for n, on in ((prev, sp), (nxt, sn)) if on and n is not None]
        for i, q in enumerate(pop_queues):
            last = i == len(pop_queues) - 1
            pops[q].append(_TokenEvent(ts.start[k] if last else -1, last and ts.start[k] > ts.ready[k]))
        for i, q in enumerate(push_queues):
            last = i == len(push_queues) - 1
            pushes[q].append(_TokenEvent(ts.free[k] if last else -1, last and ts.free[k] > ts.end[k]))
    return pushes, pops


def _queue_hits(program: Sequence[Instruction], ts) -> Iterator[str]:
    last_dispatch = -1
    for k, insn in enumerate(program):
        if k and ts.dispatch[k] > last_dispatch + 1:
            yield f"insn queue full: {insn.exec_unit.name.lower()}"
        last_dispatch = ts.dispatch[k]
    pushes, pops = _token_events(program, ts)
    for q in QUEUES:
        if any(e.waited for e in pops[q]):
            yield f"token {q}: pop waited (empty)"
        if any(e.waited for e in pushes[q]):
            yield f"token {q}: push waited (full)"
        for push, pop in zip(pushes[q], pops[q], strict=False):  # the n-th pop takes the n-th token
            if push.time >= 0 and push.time == pop.time:
                yield f"token {q}: popped in the cycle it was pushed"
        pop_times = {e.time for e in pops[q] if e.time >= 0}
        if any(e.waited and e.time in pop_times for e in pushes[q]):
            yield f"token {q}: pop made room for a push in-cycle"


def _bank_hits(program: Sequence[Instruction], hw: HwConfig) -> Iterator[str]:
    from .timing import acc_stall, out_write_groups

    for insn in program:
        f = insn.as_dict()
        if insn.op == "bgemm" and acc_stall(f, hw):
            yield BANK_POINTS[0]
        elif insn.op == "requant" and f["dest"] == Dest.OUT and out_write_groups(f["ostride"], f["n"], hw) > 1:
            yield BANK_POINTS[1]
        elif (insn.op == "pool" and f["mode"] == PoolMode.MAX
              and out_write_groups(f["ostride"], f["oh"] * f["ow"], hw) > 1):
            yield BANK_POINTS[2]


def _dram_hits(program: Sequence[Instruction], ts) -> Iterator[str]:
    dma = [(k, insn.exec_unit) for k, insn in enumerate(program) if ts.grant[k] >= 0]
    for k, unit in dma:
        name = unit.name.lower()
        yield f"{name} lone request" if ts.grant[k] == ts.start[k] + 1 else f"{name} waited for the port"
    loads = [k for k, u in dma if u is Unit.LOAD]
    stores = [k for k, u in dma if u is Unit.STORE]
    for ld in loads:
        for st in stores:
            # two requests meet when their waits [start, grant] overlap; section 5 then decides by request cycle
            if ts.start[ld] > ts.grant[st] or ts.start[st] > ts.grant[ld]:
                continue
            if ts.start[ld] == ts.start[st]:
                yield "same-cycle requests: load first"
            elif ts.start[st] < ts.start[ld]:
                yield "earlier store served first"
            else:
                yield "earlier load served first"


@dataclass
class FunctionalCoverage:
    """Hit counts per preset and coverpoint. `add_run` for a run that finished, `add_status` for an error run."""

    hits: dict[str, Counter] = field(default_factory=dict)

    def _count(self, preset: str, group: str, points: Iterator[str] | Sequence[str]) -> None:
        c = self.hits.setdefault(preset, Counter())
        c.update(f"{group}/{p}" for p in points)

    def add_run(self, program: Sequence[Instruction], ts, hw: HwConfig) -> None:
        preset = hw.name
        self._count(preset, "field", [h for insn in program for h in _field_hits(insn, hw)])
        tokens = []
        for insn in program:
            label = insn.op if insn.op != "sync" else f"sync[{insn.exec_unit.name.lower()}]"
            tokens.append(f"{label}:{_flags_text(_flags(insn))}")
        self._count(preset, "tokens", tokens)
        self._count(preset, "queue", list(_queue_hits(program, ts)))
        self._count(preset, "dram", list(_dram_hits(program, ts)))
        self._count(preset, "bank", list(_bank_hits(program, hw)))

    def add_status(self, klass: str, status: str, preset: str) -> None:
        """An error run: `klass` is the opcode of the failing instruction, or "program" for whole-program errors."""
        self._count(preset, "status", [f"{klass}:{status}"])

    def merge(self, other: FunctionalCoverage) -> None:
        for preset, c in other.hits.items():
            self.hits.setdefault(preset, Counter()).update(c)

    def table(self) -> dict[str, dict[str, dict]]:
        """{preset: {group: {"hit", "total", "missed": [...]}}}."""
        out = {}
        for preset, c in sorted(self.hits.items()):
            groups = {}
            for group, points in all_points().items():
                missed = [p for p in points if not c.get(f"{group}/{p}")]
                groups[group] = {"hit": len(points) - len(missed), "total": len(points), "missed": missed}
            out[preset] = groups
        return out

    def to_json(self) -> str:
        return json.dumps({p: dict(c) for p, c in self.hits.items()})

    @classmethod
    def from_json(cls, text: str) -> FunctionalCoverage:
        return cls({p: Counter(c) for p, c in json.loads(text).items()})


_ACTIVE: list[FunctionalCoverage] = []


@contextmanager
def collecting() -> Iterator[FunctionalCoverage]:
    """Within the block, every cross-check (rtlharness.compare) and directed error run adds to the yielded
    collector: the suites need no parameter threaded through them."""
    cov = FunctionalCoverage()
    _ACTIVE.append(cov)
    try:
        yield cov
    finally:
        _ACTIVE.remove(cov)


def active() -> FunctionalCoverage | None:
    return _ACTIVE[-1] if _ACTIVE else None

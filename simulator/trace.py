"""Per-instruction trace records and their two file formats (JSON lines, Chrome/Perfetto trace).

A record holds what the RTL bench also reports (unit, start, end, ranges written), so a mismatch
between the two can be located at the first diverging instruction. Write ranges come from
isa.validate.access_ranges: one definition of what an instruction touches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import Unit
from bitbranch.isa.validate import access_ranges

from .machine import Timestamps


@dataclass(frozen=True)
class TraceRecord:
    """One executed instruction. Cycles as in docs/timing.md; `grant` is -1 for non-DMA instructions.
    `writes` lists [buffer, first, last] hulls (inclusive; buffer "dram" is in bytes)."""

    index: int
    op: str
    unit: str
    dispatch: int
    ready: int
    start: int
    grant: int
    end: int
    free: int
    writes: tuple[tuple[str, int, int], ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["writes"] = [list(w) for w in self.writes]
        return d


def build_trace(program: Sequence[Instruction], ts: Timestamps, hw: HwConfig) -> list[TraceRecord]:
    records = []
    for k, insn in enumerate(program):
        writes = tuple((a.buffer, a.first, a.last) for a in access_ranges(insn, hw) if a.kind == "write")
        records.append(TraceRecord(
            k, insn.op, insn.exec_unit.name.lower(), ts.dispatch[k], ts.ready[k], ts.start[k], ts.grant[k],
            ts.end[k], ts.free[k], writes,
        ))
    return records


def write_jsonl(records: Sequence[TraceRecord], path: str | Path) -> None:
    with open(path, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_dict(), separators=(",", ":")) + "\n")


DRAM_TRACK = "dram port"
_TRACKS = tuple(u.name.lower() for u in Unit) + (DRAM_TRACK,)


def chrome_trace(records: Sequence[TraceRecord], hw: HwConfig) -> dict:
    """Trace Event Format: one thread (track) per unit plus the DRAM port; 1 us on screen = 1 cycle."""
    tid = {name: i + 1 for i, name in enumerate(_TRACKS)}
    events: list[dict] = [{"ph": "M", "pid": 1, "tid": 0, "name": "process_name",
                           "args": {"name": f"bitbranch {hw.name}"}}]
    for name, t in tid.items():
        events.append({"ph": "M", "pid": 1, "tid": t, "name": "thread_name", "args": {"name": name}})
        events.append({"ph": "M", "pid": 1, "tid": t, "name": "thread_sort_index", "args": {"sort_index": t}})
    for rec in records:
        args = {"index": rec.index, "dispatch": rec.dispatch, "writes": [list(w) for w in rec.writes]}
        events.append({"ph": "X", "pid": 1, "tid": tid[rec.unit], "name": rec.op, "ts": rec.start,
                       "dur": rec.end - rec.start, "args": args})
        if rec.grant >= 0:
            events.append({"ph": "X", "pid": 1, "tid": tid[DRAM_TRACK], "name": f"{rec.op} #{rec.index}",
                           "ts": rec.grant, "dur": rec.end - rec.grant, "args": {"index": rec.index}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"time_unit": "1 us in the viewer = 1 clock cycle", "clock_mhz": hw.clock_mhz,
                          "hw": hw.name}}


def write_chrome(records: Sequence[TraceRecord], hw: HwConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(chrome_trace(records, hw)))

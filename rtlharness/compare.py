"""Cross-checking one program on the RTL and the simulator: outputs, DRAM image, cycles, per-instruction traces and
activity counts (per instruction and in total)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bitbranch.isa.artifact import Artifact
from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import Buffer, Unit
from bitbranch.simulator import funccov
from bitbranch.simulator.activity import ACTIONS

from .bench_core import RtlResult, TraceLine, run_rtl_batch

TRACE_FIELDS = ("unit", "dispatch", "start", "grant", "end", "free")


@dataclass(frozen=True)
class Divergence:
    """The first instruction whose trace differs: {field: (simulator, rtl)} for every differing field."""

    index: int
    op: str
    fields: dict[str, tuple[int | None, int | None]]

    def describe(self) -> str:
        parts = ", ".join(f"{k}: sim {s} rtl {r}" for k, (s, r) in self.fields.items())
        return f"instruction {self.index} ({self.op}): {parts}"

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.op, "fields": {k: list(v) for k, v in self.fields.items()}}


def sim_trace_rows(result) -> dict[int, dict[str, int]]:
    """The simulator's per-instruction cycles, as the RTL trace reports them."""
    ts = result.timestamps
    return {k: {"unit": int(insn.exec_unit), "dispatch": ts.dispatch[k], "start": ts.start[k], "grant": ts.grant[k],
                "end": ts.end[k], "free": ts.free[k]} for k, insn in enumerate(result.program)}


def divergences(program: Sequence[Instruction], sim_rows: dict[int, dict[str, int]],
                rtl_trace: Sequence[TraceLine]) -> list[Divergence]:
    """Every instruction whose unit or cycles differ (missing on one side counts), in program order."""
    rtl = {t.index: t for t in rtl_trace}
    out = []
    for k, insn in enumerate(program):
        want = sim_rows.get(k)
        got = rtl.get(k)
        diff = {}
        for name in TRACE_FIELDS:
            a = want[name] if want is not None else None
            b = getattr(got, name) if got is not None else None
            if a != b:
                diff[name] = (a, b)
        if diff:
            out.append(Divergence(k, insn.op, diff))
    return out


def first_divergence(divs: Sequence[Divergence]) -> Divergence | None:
    """The divergence that happens first in time (earliest cycle at which the two sides disagree), so that a
    late instruction delayed by an early one is not blamed; ties go to the lower index."""
    if not divs:
        return None

    def when(d: Divergence) -> tuple[int, int]:
        cycles = [v for pair in d.fields.values() for v in pair if v is not None and v >= 0]
        return (min(cycles) if cycles else 1 << 62, d.index)

    return min(divs, key=when)


ACTIVITY_PER_INSN = ACTIONS[:-1]  # the RTL trace's per-instruction counts: every action but `fetches`
assert ACTIONS[-1] == "fetches"


@dataclass(frozen=True)
class ActivityDifference:
    """Activity counts that differ: of one instruction (`index`; the RTL's counts are its unit's activity between
    that unit's previous retirement and this one) or of the whole run (`index` None), {action: (sim, rtl)}."""

    index: int | None
    op: str | None
    fields: dict[str, tuple[int, int | None]]

    def describe(self) -> str:
        parts = ", ".join(f"{k}: sim {s:,} rtl {'-' if r is None else format(r, ',')}"
                          for k, (s, r) in self.fields.items())
        where = "whole run" if self.index is None else f"instruction {self.index} ({self.op})"
        return f"{where}: {parts}"

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.op, "fields": {k: list(v) for k, v in self.fields.items()}}


def activity_differences(program: Sequence[Instruction], sim_activity, rtl_total: dict[str, int] | None,
                         rtl_trace: Sequence[TraceLine]) -> list[ActivityDifference]:
    """Every instruction whose activity differs between the simulator (simulator.activity, `sim_activity`) and
    the RTL's trace, in program order, then the whole-run totals (all ACTIONS, fetches included) if they differ.
    Instructions the RTL did not retire are left to the trace comparison."""
    out = []
    rtl = {t.index: t for t in rtl_trace}
    for k, insn in enumerate(program):
        got = rtl.get(k)
        if got is None:
            continue
        want = sim_activity.counts[k]
        diff = {}
        for i, name in enumerate(ACTIVITY_PER_INSN):
            r = got.activity[i] if i < len(got.activity) else None
            if int(want[i]) != r:
                diff[name] = (int(want[i]), r)
        if diff:
            out.append(ActivityDifference(k, insn.op, diff))
    total = sim_activity.total()
    diff = {name: (total[name], None if rtl_total is None else rtl_total.get(name)) for name in ACTIONS
            if rtl_total is None or total[name] != rtl_total.get(name)}
    if diff:
        out.append(ActivityDifference(None, None, diff))
    return out


@dataclass(frozen=True)
class DataDifference:
    """The first store whose DRAM write differs (by the simulator's end cycle): the DRAM byte, the buffer
    entry and byte it came from, and both values."""

    index: int
    op: str
    dram_addr: int
    buffer: str
    entry: int
    byte: int
    sim: int
    rtl: int
    bytes_differing: int

    def describe(self) -> str:
        return (f"instruction {self.index} ({self.op}) wrote DRAM 0x{self.dram_addr:x} from "
                f"{self.buffer}[{self.entry}] byte {self.byte}: sim 0x{self.sim:02x} rtl 0x{self.rtl:02x} "
                f"({self.bytes_differing} DRAM bytes differ in all)")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _store_source(insn: Instruction, addr: int, hw: HwConfig) -> tuple[int, int] | None:
    """(entry, byte) of the buffer word a store copied to DRAM byte `addr`, or None if it did not write it."""
    f = insn.as_dict()
    e = hw.entry_bytes(Buffer(f["buf"]).name.lower())
    row_bytes = f["len"] * e
    stride = f["dstride"] if f["rows"] > 1 else row_bytes
    off = addr - f["dram"]
    if off < 0 or stride == 0:
        return None
    row, col = divmod(off, stride)
    if row >= f["rows"] or col >= row_bytes:
        return None
    return f["sram"] + row * (f["sstride"] or f["len"]) + col // e, col % e


def first_data_difference(program: Sequence[Instruction], hw: HwConfig, sim_dram: bytes, rtl_dram: bytes,
                          ends: Sequence[int]) -> DataDifference | None:
    """Blame the differing DRAM bytes on the stores that wrote them last, and name the earliest such store.
    Bytes no store wrote (a LOAD cannot change DRAM) are blamed on nothing (None)."""
    a = np.frombuffer(sim_dram, dtype=np.uint8)
    b = np.frombuffer(rtl_dram, dtype=np.uint8)
    if a.shape != b.shape:
        return None
    diff = np.flatnonzero(a != b)
    if diff.size == 0:
        return None
    stores = sorted((k for k, insn in enumerate(program) if insn.op == "store"), key=lambda k: ends[k])
    blamed: dict[int, int] = {}  # store -> first differing address it wrote last
    for addr in diff[:4096].tolist():
        writers = [k for k in stores if _store_source(program[k], addr, hw) is not None]
        if writers:
            blamed.setdefault(writers[-1], addr)
    if not blamed:
        return None
    k = min(blamed, key=lambda j: (ends[j], j))
    addr = blamed[k]
    entry, byte = _store_source(program[k], addr, hw)  # type: ignore[misc]
    buf = Buffer(program[k].as_dict()["buf"]).name.lower()
    return DataDifference(k, program[k].op, addr, buf, entry, byte, int(a[addr]), int(b[addr]), int(diff.size))


def hang_report(program: Sequence[Instruction], rtl_trace: Sequence[TraceLine]) -> list[str]:
    """For a run that hit its cycle limit: each unit's state, from which of its instructions the RTL retired."""
    done = {t.index: t for t in rtl_trace}
    lines = []
    for unit in Unit:
        mine = [k for k, insn in enumerate(program) if insn.exec_unit == unit]
        pending = [k for k in mine if k not in done]
        last = max((done[k].free for k in mine if k in done), default=None)
        after = f" (its last instruction retired at cycle {last})" if last is not None else ""
        if pending:
            k = pending[0]
            lines.append(f"{unit.name.lower()} unit stuck on instruction {k} ({program[k].op}){after}")
        else:
            lines.append(f"{unit.name.lower()} unit retired all its {len(mine)} instructions{after}")
    return lines


@dataclass
class CrossCheck:
    """Result of one RTL-versus-simulator comparison."""

    sim: str
    hw: HwConfig
    instructions: int
    cycles_rtl: int
    cycles_sim: int
    outputs_match: bool
    dram_match: bool
    outputs: dict[str, bool]
    rtl_status: str
    rtl_finished: bool
    divergences: list[Divergence]
    wall_seconds: float
    wall_rtl: float
    cpu_rtl: float
    wall_rtl_total: float
    wall_sim: float
    build_seconds: float
    golden_rtl: dict[str, bool] | None = None
    waves: str | None = None
    data_difference: DataDifference | None = None
    hang: list[str] | None = None
    max_cycles: int | None = None
    activity_sim: dict[str, int] = field(default_factory=dict)
    activity_rtl: dict[str, int] = field(default_factory=dict)
    activity_differences: list[ActivityDifference] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def cycles_match(self) -> bool:
        return self.cycles_rtl == self.cycles_sim

    @property
    def activity_match(self) -> bool:
        """Every activity count equal, per instruction and in total (simulator.activity vs rtl/bb_tb.v)."""
        return not self.activity_differences

    @property
    def ok(self) -> bool:
        return (self.outputs_match and self.dram_match and self.cycles_match and not self.divergences
                and self.activity_match and self.rtl_status == "OK" and self.rtl_finished)

    @property
    def first(self) -> Divergence | None:
        return first_divergence(self.divergences)

    def explain(self) -> str:
        """One line on what went wrong, most telling first: a hang, a wrong status, the first instruction
        whose timing differs, the first store whose data differs."""
        if self.ok:
            return "everything matches"
        parts = []
        if not self.rtl_finished:
            parts.append(f"the RTL hit its cycle limit ({self.cycles_rtl:,} cycles; the simulator finished at "
                         f"{self.cycles_sim:,}): " + "; ".join(self.hang or []))
        elif self.rtl_status != "OK":
            parts.append(f"the RTL stopped with status {self.rtl_status}")
        if self.first is not None:
            parts.append(f"first timing difference: {self.first.describe()}")
        if self.data_difference is not None:
            parts.append(f"first data difference: {self.data_difference.describe()}")
        elif not (self.outputs_match and self.dram_match):
            parts.append("outputs differ " + ", ".join(k for k, v in self.outputs.items() if not v))
        if self.rtl_finished and not self.cycles_match and self.first is None:
            parts.append(f"cycles rtl {self.cycles_rtl:,} sim {self.cycles_sim:,}")
        if self.rtl_finished and self.activity_differences:
            per_insn = [d for d in self.activity_differences if d.index is not None]
            total = [d for d in self.activity_differences if d.index is None]
            if per_insn:
                parts.append(f"first activity difference ({len(per_insn)} instructions differ): "
                             f"{per_insn[0].describe()}")
            if total:
                parts.append(f"activity totals differ: {total[0].describe()}")
        return "; ".join(parts)

    def to_json_dict(self) -> dict:
        first = self.first
        return {
            "ok": self.ok,
            "sim": self.sim,
            "hw": self.hw.name,
            "instructions": self.instructions,
            "outputs_match": self.outputs_match,
            "outputs": self.outputs,
            "dram_match": self.dram_match,
            "cycles_rtl": self.cycles_rtl,
            "cycles_sim": self.cycles_sim,
            "cycles_match": self.cycles_match,
            "trace_mismatches": len(self.divergences),
            "first_divergence": first.to_dict() if first else None,
            "first_data_difference": self.data_difference.to_dict() if self.data_difference else None,
            "activity_match": self.activity_match,
            "activity_sim": self.activity_sim,
            "activity_rtl": self.activity_rtl,
            "activity_mismatches": sum(d.index is not None for d in self.activity_differences),
            "first_activity_difference": next((d.to_dict() for d in self.activity_differences), None),
            "hang": self.hang,
            "explanation": self.explain(),
            "rtl_status": self.rtl_status,
            "rtl_finished": self.rtl_finished,
            "golden_rtl": self.golden_rtl,
            "wall_seconds": self.wall_seconds,
            "wall_seconds_rtl": self.wall_rtl,
            "wall_seconds_rtl_total": self.wall_rtl_total,
            "wall_seconds_sim": self.wall_sim,
            "build_seconds": self.build_seconds,
            "cpu_seconds_rtl": self.cpu_rtl,
            "rtl_cycles_per_second": self.cycles_rtl / self.wall_rtl if self.wall_rtl > 0 else None,
            "rtl_cycles_per_cpu_second": self.cycles_rtl / self.cpu_rtl if self.cpu_rtl > 0 else None,
            "waves": self.waves,
        }


def _unpack(source) -> tuple[Artifact | None, list[Instruction], bytes, HwConfig]:
    if isinstance(source, Artifact):
        return source, list(source.program), bytes(source.dram), source.hw
    return None, list(source[0]), bytes(source[1]), source[2]


def _compare(art: Artifact | None, program: list[Instruction], hw: HwConfig, sim_result, wall_sim: float,
             rtl: RtlResult, sim: str, wall: float) -> CrossCheck:
    if art is not None and art.outputs:
        want = art.outputs_from(sim_result.dram)
        got = art.outputs_from(rtl.dram)
        outputs = {name: bool(np.array_equal(want[name], got[name])) for name in art.outputs}
        golden = art.compare_golden(rtl.dram) if art.golden else None
    else:  # no named outputs: the whole DRAM image is the output
        outputs = {"dram": rtl.dram == sim_result.dram}
        golden = None
    divs = divergences(program, sim_trace_rows(sim_result), rtl.trace)
    data = (first_data_difference(program, hw, sim_result.dram, rtl.dram, sim_result.timestamps.end)
            if rtl.dram != sim_result.dram else None)
    hang = hang_report(program, rtl.trace) if not rtl.finished else None
    act_diffs = activity_differences(program, sim_result.activity, rtl.activity if rtl.finished else None,
                                     rtl.trace)
    cov = funccov.active()
    if cov is not None and rtl.finished and not divs:  # the situations the matched timestamps show
        cov.add_run(program, sim_result.timestamps, hw)
    return CrossCheck(
        sim=sim, hw=hw, instructions=len(program), cycles_rtl=rtl.cycles, cycles_sim=sim_result.cycles,
        outputs_match=all(outputs.values()), dram_match=rtl.dram == sim_result.dram, outputs=outputs,
        rtl_status=rtl.status_name, rtl_finished=rtl.finished, divergences=divs, wall_seconds=wall,
        wall_rtl=rtl.wall_seconds, cpu_rtl=rtl.cpu_seconds, wall_rtl_total=rtl.total_seconds, wall_sim=wall_sim,
        build_seconds=rtl.build.seconds, golden_rtl=golden, waves=str(rtl.waves) if rtl.waves else None,
        data_difference=data, hang=hang, activity_sim=sim_result.activity.total(),
        activity_rtl=dict(rtl.activity) if rtl.finished else {}, activity_differences=act_diffs,
    )


def cross_check_batch(sources: Sequence[Artifact | tuple[Sequence[Instruction], bytes, HwConfig]],
                      sim: str = "verilator", waves: bool = False, workdir=None,
                      max_cycles: int | None = None) -> list[CrossCheck]:
    """Run programs (all for one hardware config) on the simulator and, in one simulation, on the RTL,
    and compare everything.

    The simulator validates each program first (an invalid program raises its isa error). The RTL's cycle
    limit defaults to 4x the simulator's total plus slack, so a hung RTL run ends with a mismatch."""
    from bitbranch.simulator import run as sim_run

    t0 = time.perf_counter()
    unpacked = [_unpack(s) for s in sources]
    hws = {hw.to_dict().__repr__() for _, _, _, hw in unpacked}
    if len(hws) > 1:
        raise ValueError("cross_check_batch: all programs must be for the same hardware config")
    sims, walls = [], []
    for art, program, dram, hw in unpacked:
        t = time.perf_counter()
        sims.append(sim_run(art if art is not None else (program, dram, hw), trace=False))
        walls.append(time.perf_counter() - t)
    limits = [max_cycles if max_cycles is not None else 4 * r.cycles + 10_000 for r in sims]
    rtls = run_rtl_batch([(program, dram) for _, program, dram, _ in unpacked], unpacked[0][3], sim=sim,
                         max_cycles=limits, waves=waves, workdir=workdir)
    wall = (time.perf_counter() - t0) / max(1, len(unpacked))
    return [_compare(art, program, hw, s, w, r, sim, wall)
            for (art, program, _, hw), s, w, r in zip(unpacked, sims, walls, rtls, strict=True)]


def cross_check(source: Artifact | tuple[Sequence[Instruction], bytes, HwConfig], sim: str = "verilator",
                waves: bool = False, workdir=None, max_cycles: int | None = None) -> CrossCheck:
    """Run one program on the simulator and on the RTL and compare everything (see cross_check_batch)."""
    return cross_check_batch([source], sim, waves, workdir, max_cycles)[0]



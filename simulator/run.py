"""`run()`: validate a program, simulate it cycle by cycle (at instruction granularity), report results."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitbranch.isa.artifact import Artifact
from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.numeric import gemm_threads
from bitbranch.isa.validate import validate_program

from .activity import Activity
from .datapath import DATAPATHS, Datapath
from .machine import Machine, Timestamps, decode_program
from .stats import RunStats, UnitStats, compute_stats
from .trace import TraceRecord, build_trace, write_chrome, write_jsonl

Source = Artifact | tuple[Sequence[Instruction], bytes, HwConfig]


@dataclass
class SimResult:
    """Everything a run produces. `buffers` holds the final on-chip buffer contents (see datapath)."""

    hw: HwConfig
    datapath: str
    program: list[Instruction]
    dram: bytes
    outputs: dict[str, np.ndarray]
    outputs_match_golden: dict[str, bool] | None
    stats: RunStats
    buffers: dict[str, np.ndarray]
    wall_seconds: float
    timestamps: Timestamps
    trace: list[TraceRecord] | None = None
    activity: Activity | None = None  # per-instruction action counts (simulator.activity)
    _bitops: list[int] = field(default_factory=list, repr=False)

    # --- headline numbers -----------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        return self.stats.cycles

    @property
    def instructions(self) -> int:
        return self.stats.instructions

    @property
    def utilization(self) -> float:
        return self.stats.utilization

    @property
    def units(self) -> dict[str, UnitStats]:
        return self.stats.units

    @property
    def dram_read(self) -> int:
        return self.stats.dram_bytes_read

    @property
    def dram_written(self) -> int:
        return self.stats.dram_bytes_written

    @property
    def instruction_mix(self) -> dict[str, int]:
        return self.stats.instruction_mix

    @property
    def golden_ok(self) -> bool | None:
        match = self.outputs_match_golden
        return None if match is None else bool(match) and all(match.values())

    def span(self, first: int, end: int) -> tuple[int, float]:
        """Cycles from the first start to the last end of instructions [first, end), and the array
        utilization over that window (layers overlap in a pipelined program, so spans need not add up)."""
        ts = self.timestamps
        if end <= first:
            return 0, 0.0
        cycles = max(ts.end[first:end]) - min(ts.start[first:end])
        bitops = sum(self._bitops[first:end])
        return cycles, bitops / (self.hw.peak_bitops_per_cycle * cycles) if cycles else 0.0

    # --- traces ---------------------------------------------------------------------------------
    def trace_records(self) -> list[TraceRecord]:
        if self.trace is None:
            self.trace = build_trace(self.program, self.timestamps, self.hw)
        return self.trace

    def write_trace_jsonl(self, path: str | Path) -> None:
        write_jsonl(self.trace_records(), path)

    def write_chrome_trace(self, path: str | Path) -> None:
        write_chrome(self.trace_records(), self.hw, path)

    def write_trace(self, path: str | Path) -> None:
        """Chrome trace for *.json, JSON lines otherwise."""
        if str(path).endswith(".json"):
            self.write_chrome_trace(path)
        else:
            self.write_trace_jsonl(path)

    def to_json_dict(self) -> dict:
        return {
            "hw": self.hw.name,
            "datapath": self.datapath,
            "cycles": self.cycles,
            "time_ms": self.cycles / (self.hw.clock_mhz * 1e3),
            "instructions": self.instructions,
            "utilization": self.utilization,
            "bitops": self.stats.bitops,
            "dram_bytes": {"read": self.dram_read, "written": self.dram_written},
            "units": self.stats.to_dict()["units"],
            "fetch_stalled": self.stats.fetch_stalled,
            "dram_busy": self.stats.dram_busy,
            "instruction_mix": self.instruction_mix,
            "activity": self.activity.total() if self.activity is not None else None,
            "outputs_match_golden": self.outputs_match_golden,
            "wall_seconds": self.wall_seconds,
        }


def _unpack(source: Source) -> tuple[Artifact | None, list[Instruction], bytes, HwConfig]:
    if isinstance(source, Artifact):
        return source, list(source.program), bytes(source.dram), source.hw
    program, dram, hw = source
    return None, list(program), bytes(dram), hw


def _run_effects_with_progress(dp: Datapath, decoded: list, order: list[int],
                               progress: Callable[[int, int], None]) -> None:
    """Effects in chunks of ~1% of the program (a batch never spans chunks: splitting one is exact)."""
    n = len(decoded)
    finished = bytearray(n)
    prefix = 0
    step = max(1, n // 100)
    for start in range(0, len(order), step):
        chunk = order[start : start + step]
        dp.run_effects([decoded[k].execute for k in chunk])
        for k in chunk:
            finished[k] = 1
        while prefix < n and finished[prefix]:
            prefix += 1
        progress(prefix, n)
    if prefix < n or not order:
        progress(n, n)


def run(source: Source, datapath: str = "fast", trace: bool = False, max_cycles: int | None = None,
        check_deadlock: bool = True, progress: Callable[[int, int], None] | None = None) -> SimResult:
    """Simulate an artifact, or a (program, DRAM image, hw) triple.

    The program is validated first (isa.validate; DRAM size = image size), so an illegal program raises
    the isa error naming the instruction index. check_deadlock=False skips only the static token check:
    a deadlocking program then raises DeadlockError at run time. Past `max_cycles`: CycleLimitError.
    `progress(done, total)` is called as data effects complete (about every 1% of the program):
    instructions 0..done-1 are finished; the last call has done == total.
    """
    t0 = time.perf_counter()
    if datapath not in DATAPATHS:
        raise ValueError(f"unknown datapath '{datapath}' (expected one of {', '.join(DATAPATHS)})")
    art, program, dram, hw = _unpack(source)
    validate_program(program, hw, dram_size=len(dram), check_deadlock=check_deadlock)
    dp = Datapath(hw, dram, datapath)
    decoded = decode_program(program, hw, dp.plan)
    machine = Machine(decoded, hw)
    machine.run(max_cycles)
    # Data never influences timing, so the effects are applied after the timing run, each atomically
    # and in the order of their `end` cycles (docs/timing.md, "Data effects and races").
    with gemm_threads(1):  # many small GEMMs: one thread each (see isa.numeric.gemm_threads)
        order = machine.effect_order()
        if progress is None:
            dp.run_effects([decoded[k].execute for k in order])
        else:
            _run_effects_with_progress(dp, decoded, order, progress)
    final = dp.dram.tobytes()
    stats = compute_stats(decoded, machine.ts, hw, dp.bytes_read, dp.bytes_written)
    result = SimResult(
        hw=hw,
        datapath=datapath,
        program=program,
        dram=final,
        outputs=art.outputs_from(final) if art is not None else {},
        outputs_match_golden=art.compare_golden(final) if art is not None and art.golden else None,
        stats=stats,
        buffers=dp.buffers(),
        wall_seconds=0.0,
        timestamps=machine.ts,
        _bitops=[d.bitops for d in decoded],
        activity=Activity.from_vectors([d.activity for d in decoded]),
    )
    if trace:
        result.trace_records()
    result.wall_seconds = time.perf_counter() - t0
    return result

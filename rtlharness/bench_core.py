"""The whole-core cocotb bench: the cocotb test (runs inside the simulator) and its runner (`run_rtl`), in one file.

`run_rtl(program, dram, hw, sim)` builds the core for `hw` (cached), writes the instruction memory and DRAM
image as hex files, and runs the `run_program` test below, which releases reset, waits in one await for the
bench's `finished` edge (the clock is generated in Verilog, so no Python runs per cycle), and records the
cycle count and status. The bench top (rtl/bb_tb.v) dumps DRAM with $writememh and writes one trace line
per retired instruction; `run_rtl` parses both into an `RtlResult`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitbranch.isa.encoding import INSN_BYTES, Instruction, encode
from bitbranch.isa.hwconfig import HwConfig, load_presets
from bitbranch.simulator.activity import ACTIONS

from .build import CORE_MODULES, Build, SimulatorError, build, run
from .params import IMEM_AW, build_parameters, check_supported, dram_aw
from .status import status_name

ENV_CONFIG = "BITBRANCH_RTL_RUN"  # JSON settings for the in-simulator test
CLOCK_NS = 10  # bb_tb's clock period


# ---- inside the simulator ----------------------------------------------------------------------------
try:  # cocotb imports only resolve fully inside a simulator; the runner side must import without them
    import cocotb
    from cocotb.triggers import First, RisingEdge, Timer
except ImportError:  # pragma: no cover
    cocotb = None

if cocotb is not None:

    @cocotb.test()
    async def run_program(dut):
        """Run each job (program + DRAM image) to completion, or to its cycle limit, and record the results.

        Per job: copy its hex files to the paths the bench reads, pulse `reload` in reset (the bench
        re-reads them and zeroes the buffers), release reset, wait for `finished` in one await, then move
        the DRAM dump and the trace into the job's directory."""
        cfg = json.loads(os.environ[ENV_CONFIG])
        files = cfg["files"]
        results = []
        dut.run.value = 0
        dut.reload.value = 0
        for job in cfg["jobs"]:
            jd = Path(job["dir"])
            for name in ("program.hex", "dram.hex"):
                shutil.copyfile(jd / name, files[name])
            dut.insn_count.value = job["insn_count"]
            dut.dram_size.value = job["dram_size"]
            await Timer(2 * CLOCK_NS, "ns")  # in reset (the bench registers `run` on its clock)
            dut.reload.value = 1
            await Timer(CLOCK_NS, "ns")  # exactly one clock edge with reload
            dut.reload.value = 0
            await Timer(3 * CLOCK_NS, "ns")  # the decode stage loads instruction 0 of the new program
            t0, c0 = time.perf_counter(), time.process_time()
            dut.run.value = 1
            await First(RisingEdge(dut.finished), Timer((job["max_cycles"] + 16) * CLOCK_NS, "ns"))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            finished = int(dut.finished.value) == 1
            results.append({"finished": finished, "cycles": int(dut.cycles.value), "status": int(dut.status.value),
                            "err_index": int(dut.err_index.value), "activity": str(int(dut.activity.value)),
                            "wall_seconds": wall, "cpu_seconds": cpu})
            dut.run.value = 0
            await Timer(2 * CLOCK_NS, "ns")
            for name in ("dram_out.hex", "trace.txt"):  # a stopped run's trace: what retired (hang reports)
                if (finished or name == "trace.txt") and Path(files[name]).is_file():
                    shutil.move(files[name], jd / name)
        Path(cfg["result"]).write_text(json.dumps(results))


# ---- runner side --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceLine:
    """One retired instruction as the RTL saw it (cycles as in docs/timing.md; grant -1 for non-DMA), and the
    activity its unit spent on it (counts of simulator.activity.ACTIONS less `fetches`, rtl/bb_tb.v)."""

    index: int
    unit: int
    dispatch: int
    start: int
    grant: int
    end: int
    free: int
    activity: tuple[int, ...] = ()


def unpack_activity(value: int) -> dict[str, int]:
    """bb_tb's `activity` port (one 64-bit count per action, action 0 lowest) by action name."""
    return {name: (value >> (64 * i)) & ((1 << 64) - 1) for i, name in enumerate(ACTIONS)}


@dataclass
class RtlResult:
    sim: str
    hw: HwConfig
    finished: bool
    cycles: int
    status: int
    err_index: int
    dram: bytes
    trace: list[TraceLine]
    activity: dict[str, int]  # the run's action counts at the bank ports, DRAM port and datapaths (rtl/bb_tb.v)
    wall_seconds: float  # simulated run only (reset release to finish)
    cpu_seconds: float  # CPU time of the simulator process during that run (robust against a busy machine)
    total_seconds: float  # including file writing, simulator start-up and parsing
    build: Build
    waves: Path | None = None
    workdir: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def ok(self) -> bool:
        return self.finished and self.status == 0


def build_name(hw: HwConfig, aw: int, sim: str) -> str:
    """Build directory name: the preset's name when hw is exactly that preset, else name + digest."""
    presets = load_presets()
    plain = hw.name in presets and presets[hw.name].to_dict() | {"description": ""} == hw.to_dict() | {
        "description": ""}
    digest = hashlib.sha256(json.dumps(hw.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    name = hw.name if plain else f"{hw.name}-{digest}"
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)  # `random:7`: make (Verilator's build) cannot take a ':' path
    return name if aw == dram_aw(0, sim) else f"{name}_dram{aw}"


def build_core(hw: HwConfig, sim: str = "verilator", dram_bytes: int = 0, waves: bool = False) -> Build:
    check_supported(hw)
    params = build_parameters(hw, dram_bytes, sim)
    return build(sim, "bb_tb", CORE_MODULES, params, build_name(hw, params["DRAM_AW"], sim), waves=waves)


def write_program_hex(words: Sequence[int], path: Path) -> None:
    path.write_text("".join(f"{w:0{2 * INSN_BYTES}x}\n" for w in words))


def write_dram_hex(dram: bytes, path: Path) -> None:
    """The DRAM image as bb_dram's $readmemh file: one 64-bit little-endian word per line."""
    padded = bytes(dram) + bytes(-len(dram) % 8)
    words = np.frombuffer(padded, dtype="<u8")
    path.write_text("".join(f"{w:016x}\n" for w in words.tolist()))


def read_mem_hex(path: Path, size: int) -> bytes:
    """Bytes 0..size-1 of bb_dram's $writememh dump (64-bit words, one per line; `//` comments and `@addr`
    lines, which some simulators write, are honoured)."""
    out = bytearray(size + 8)
    addr = 0
    for line in path.read_text().splitlines():
        line = line.split("//", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@"):
            addr = int(line[1:], 16)
            continue
        for tok in line.split():
            if addr * 8 < size:
                value = int(tok, 16) if set(tok.lower()) <= set("0123456789abcdef") else 0
                out[addr * 8 : addr * 8 + 8] = value.to_bytes(8, "little")
            addr += 1
    return bytes(out[:size])


def read_trace(path: Path) -> list[TraceLine]:
    if not path.is_file():
        return []
    lines = []
    for ln in path.read_text().splitlines():
        v = [int(x) for x in ln.split()]
        if v:
            lines.append(TraceLine(*v[:7], activity=tuple(v[7:])))
    return sorted(lines, key=lambda t: t.index)


def sim_cycles(max_cycles: int) -> int:
    """The most clocks a job of run_program runs with the core out of reset: the bench stops it (or it
    finishes) max_cycles + 16 clocks after `run` rises, and bb_tb's reset follows `run` one clock late, so
    the core's cycle counter `now` (and every timestamp taken from it) stays below this. The bound of the
    coverage waivers' `sim-time` category (rtlharness/coverage_waivers.toml)."""
    return max_cycles + 16 + 2


def run_rtl_batch(jobs: Sequence[tuple[Sequence[Instruction] | Sequence[int], bytes]], hw: HwConfig,
                  sim: str = "verilator", max_cycles: int | Sequence[int] = 10_000_000, waves: bool = False,
                  trace: bool = True, workdir: str | Path | None = None) -> list[RtlResult]:
    """Run several programs (each with its DRAM image) on the RTL core in one simulation, in order.

    Programs are instructions or raw INSN_BITS words (to test bad encodings). Each starts from a reset
    core, zeroed buffers and its own DRAM image, exactly as if it ran alone."""
    t0 = time.perf_counter()
    if not jobs:
        return []
    for n, (program, _) in enumerate(jobs):
        if len(program) > 1 << IMEM_AW:  # it would wrap around bb_fetch's instruction memory
            raise ValueError(f"program {n} has {len(program)} instructions; the RTL's instruction memory holds "
                             f"{1 << IMEM_AW}")
    limits = [int(max_cycles)] * len(jobs) if isinstance(max_cycles, int) else [int(m) for m in max_cycles]
    b = build_core(hw, sim, max(len(d) for _, d in jobs), waves)
    tmp = None
    if workdir is None and waves:  # the wave file outlives this call
        work = Path(tempfile.mkdtemp(prefix="bitbranch-rtl-"))
    elif workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bitbranch-rtl-")
        work = Path(tmp.name)
    else:
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
    try:
        files = {name: str(work / name) for name in ("program.hex", "dram.hex", "dram_out.hex", "trace.txt")}
        cfg_jobs = []
        for n, ((program, dram), limit) in enumerate(zip(jobs, limits, strict=True)):
            jd = work / f"job{n}"
            jd.mkdir(exist_ok=True)
            for stale in ("dram_out.hex", "trace.txt"):
                (jd / stale).unlink(missing_ok=True)
            words = [w if isinstance(w, int) else encode(w) for w in program]
            write_program_hex(words, jd / "program.hex")
            write_dram_hex(dram, jd / "dram.hex")
            cfg_jobs.append({"dir": str(jd), "insn_count": len(words), "dram_size": len(dram), "max_cycles": limit})
        for name in ("program.hex", "dram.hex"):  # read at time 0 too
            shutil.copyfile(work / "job0" / name, files[name])
        plusargs = [f"+program={files['program.hex']}", f"+dram={files['dram.hex']}",
                    f"+dram_out={files['dram_out.hex']}"]
        if trace:
            plusargs.append(f"+trace={files['trace.txt']}")
        if waves:  # a visible clock in the waves (rtl/bb_tb.v; same results, twice the time steps)
            plusargs.append("+square_clock")
        cfg = {"jobs": cfg_jobs, "files": files, "result": str(work / "result.json")}
        run(b, "bitbranch.rtlharness.bench_core", work, env={ENV_CONFIG: json.dumps(cfg)}, plusargs=plusargs,
            waves=waves, testcase="run_program", run_names={"SIM_CYCLES": sim_cycles(max(limits))})
        raw = json.loads((work / "result.json").read_text())
        wave_file = None
        if waves:
            name = "dump.vcd" if sim == "verilator" else "bb_tb.fst"
            wave_file = next((p for p in (work / name, b.directory / name) if p.is_file()), None)
        total = time.perf_counter() - t0
        out = []
        for (_, dram), job, res in zip(jobs, cfg_jobs, raw, strict=True):
            jd = Path(job["dir"])
            dump = jd / "dram_out.hex"
            final = read_mem_hex(dump, len(dram)) if res["finished"] and dump.is_file() else bytes(dram)
            out.append(RtlResult(
                sim=sim, hw=hw, finished=res["finished"], cycles=res["cycles"], status=res["status"],
                err_index=res["err_index"], dram=final, trace=read_trace(jd / "trace.txt"),
                activity=unpack_activity(int(res["activity"])),
                wall_seconds=res["wall_seconds"], cpu_seconds=res["cpu_seconds"], total_seconds=total / len(jobs),
                build=b, waves=wave_file,
                workdir=None if tmp is not None else jd,
            ))
        return out
    except FileNotFoundError as exc:
        raise SimulatorError(f"RTL run produced no result ({exc}); see {work / 'sim.log'}") from None
    finally:
        if tmp is not None:
            tmp.cleanup()


def run_rtl(program: Sequence[Instruction] | Sequence[int], dram: bytes, hw: HwConfig, sim: str = "verilator",
            max_cycles: int = 10_000_000, waves: bool = False, trace: bool = True,
            workdir: str | Path | None = None) -> RtlResult:
    """Run one program on the RTL core (see run_rtl_batch)."""
    return run_rtl_batch([(program, dram)], hw, sim, max_cycles, waves, trace, workdir)[0]

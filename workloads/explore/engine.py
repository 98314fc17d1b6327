"""Design-space exploration: models × precisions × hardware points, each point lowered and simulated.

Work is done once where it can be: a model is built, quantized, calibrated, integerized and run by the
golden model once per precision (`prepare`, on a worker; Dask keeps the result there and ships it to
each other worker at most once), and only lowering + simulation run per hardware point
(`evaluate_point`). The integer IR does not depend on the hardware: `to_ir` only uses a config to check
the requant overflow budget, which lowering checks again per point (compiler.conv.hardware_constants).

Results are stored per point under `OUT/points/` by content hash (store.py): a re-run or an enlarged
space computes only the points it has not seen. Points excluded by a constraint, or whose config is
invalid, are rows with the reason and are never computed; a point that does not compile is a row with
the error (stored too: it is a property of the point).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitbranch import __version__
from bitbranch.isa.energy import EnergyTable, load_energy_table
from bitbranch.isa.hwconfig import HwConfig

from .executors import Executor, SerialExecutor, run_staged
from .pareto import COST_AXES, INFO_AXES, mark_fronts
from .space import Candidate, Space, hw_fields
from .store import ResultStore, digest_arrays, model_digest, point_key

METRICS = ("cycles", "latency_ms", "fps", "util", "array_util", "dram_mb", "instructions", "golden_ok")
TIMINGS = ("lower_s", "simulate_s", "cpu_s")  # wall times: differ from run to run, not part of a result's identity
STATUS = ("ok", "rejected", "failed")


# --- the work on workers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrepJob:
    """What `prepare` needs: a model, a precision ('' = the workload's, a WmAk token, or a file), the
    seed of its random weights and the input image (H, W, C uint8)."""

    model: str
    precision: str
    seed: int
    image: np.ndarray = field(compare=False, repr=False)


@dataclass
class Prepared:
    """A model at one precision, ready to lower for any config: the integer IR, its input, the golden
    values of its outputs, and the artifact metadata."""

    model: str
    precision: str  # label, e.g. W2A2+2
    graph: object  # compiler.ir.Graph
    inputs: dict[str, np.ndarray]
    golden: dict[str, np.ndarray]
    meta: dict
    seconds: float
    planes: dict = field(default_factory=dict, repr=False)  # compiler.conv.reuse_weight_planes cache (per worker)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "planes": {}}  # shipped without the cache: it is rebuilt where the points run


_MALLOC_TUNED = [False]


def big_array_malloc() -> None:
    """Undo a small fixed glibc trim threshold in this process (once).

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ, against
    memory fragmentation). Any fixed threshold also turns off glibc's dynamic mmap threshold, so every array
    over 128 KiB is mmap'd and unmapped again: lowering + simulating a point then cost ~1.5x the CPU
    (bench/explore.py: 0.38 s instead of 0.25 s for ResNet-18). Thresholds of 32 MiB (mmap) and 64 MiB (trim)
    are where glibc's dynamic thresholds settle for these arrays; memory is still returned above them."""
    if _MALLOC_TUNED[0] or "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED[0] = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def build_model(spec, seed: int):
    """The workload's model with weights drawn from `seed` (the global torch RNG is left untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build()


def resolve_precision(spec, precision: str):
    from ..precision import parse_bits

    return parse_bits(precision, spec.precision) if precision else spec.precision


def prepare(job: PrepJob) -> Prepared:
    """Quantize, calibrate (on the input image), integerize and run the golden model: once per precision."""
    import torch

    from bitbranch.compiler import ir
    from bitbranch.compiler.compile import image_tensor, input_levels
    from bitbranch.compiler.integerize import to_ir
    from bitbranch.compiler.lower import split_host_tail
    from bitbranch.compiler.quantize import calibrate, quantize_model
    from bitbranch.compiler.threads import torch_threads

    from ..precision import label
    from ..registry import get

    big_array_malloc()
    t0 = time.perf_counter()
    spec = get(job.model)
    prec = resolve_precision(spec, job.precision)
    with torch_threads(1), torch.no_grad():
        model = build_model(spec, job.seed)
        x = image_tensor(job.image)
        qmodel = quantize_model(model, prec, input_shape=tuple(x.shape))
        calibrate(qmodel, [x])
        graph = to_ir(qmodel.eval(), tuple(x.shape), None)
    inputs = input_levels(graph, job.image)
    values = ir.run_graph(graph, inputs)
    _, host = split_host_tail(graph)
    keep = set(graph.outputs) | {i for h in host for i in h.inputs}  # what lower_graph reads of the golden values
    meta = {k: v for k, v in graph.meta.items() if k != "fx_nodes"}
    return Prepared(spec.name, label(prec), graph, inputs, {k: v for k, v in values.items() if k in keep}, meta,
                    time.perf_counter() - t0)


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")


def evaluate_point(prep: Prepared, hw: HwConfig, energy_table: EnergyTable | None = None) -> dict:
    """Lower the prepared model for `hw` and simulate it: the point's metrics, or status 'failed' with the
    error. Deterministic (apart from TIMINGS), so the row is stored under the point's key."""
    from bitbranch.compiler.conv import reuse_weight_planes
    from bitbranch.compiler.lower import lower_graph
    from bitbranch.compiler.threads import torch_threads
    from bitbranch.simulator import run

    from ..report.summary import build_report

    big_array_malloc()
    try:
        c0 = time.thread_time()
        with torch_threads(1), reuse_weight_planes(prep.planes):
            t0 = time.perf_counter()
            art = lower_graph(prep.graph, hw, prep.inputs, meta=dict(prep.meta), golden=prep.golden,
                              store_graph=False)  # a point's artifact is never saved
            t1 = time.perf_counter()
            result = run(art, datapath="fast")
            t2 = time.perf_counter()
        report = build_report(art, result, hw.clock_mhz, model=prep.model, precision=prep.precision,
                              energy_table=energy_table)
    except Exception as exc:  # noqa: BLE001 - a point that does not compile is a row, not a crash
        return {"status": "failed", "reason": _error(exc)}
    return {"status": "ok", "reason": "", "cycles": report.cycles, "latency_ms": report.latency_ms, "fps": report.fps,
            "util": report.util, "array_util": result.utilization,
            "dram_mb": (result.dram_read + result.dram_written) / 1e6, "instructions": result.instructions,
            "golden_ok": result.golden_ok, "energy_uj": report.energy.energy_uj if report.energy else None,
            "lower_s": t1 - t0, "simulate_s": t2 - t1,
            "cpu_s": time.thread_time() - c0}


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class ExploreResult:
    rows: list[dict]  # grid order: models, precisions, hardware points
    space: Space
    models: list[str]
    computed: int = 0  # points lowered + simulated in this run
    cached: int = 0  # points read from the store
    prepared: int = 0  # (model, precision) pairs quantized in this run
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    def by_status(self, status: str) -> list[dict]:
        return [r for r in self.rows if r["status"] == status]

    @property
    def front(self) -> list[dict]:
        return [r for r in self.rows if r.get("pareto")]

    def to_json(self) -> dict:
        return {"points": self.by_status("ok"), "failed": [r for r in self.rows if r["status"] != "ok"],
                "pareto": self.front, "seconds": self.seconds}


def describe(values: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items()) or "base"


def _identity(model: str, precision: str, cand: Candidate, space: Space, key: str) -> dict:
    base = dataclasses.asdict(space.base)
    fields = {f: (getattr(cand.hw, f) if cand.hw is not None else cand.values.get(f, base[f])) for f in hw_fields()}
    return {"key": key, "model": model, "precision": precision, "point": describe(cand.values), **fields}


def _costs(hw: HwConfig | None, row: dict) -> dict:
    return {a.column: (a.fn(hw, row) if hw is not None else None) for a in (*INFO_AXES, *COST_AXES)}


def cost_model_identity(energy_table: EnergyTable) -> dict:
    """What the stored energy of a point depends on besides the point itself (a changed table, area constant,
    SRAM bank geometry rule or activity counting rule recomputes)."""
    import dataclasses as dc

    from bitbranch.isa.area import DEFAULT
    from bitbranch.isa.banks import BANK_RULES
    from bitbranch.simulator.activity import COUNTING_RULES

    table = energy_table.to_dict()
    table.pop("source", None)
    return {"energy": table, "area": dc.asdict(DEFAULT), "activity_rules": COUNTING_RULES,
            "bank_rules": BANK_RULES}


def explore(models: Sequence[str], space: Space, out: str | Path, executor: Executor | None = None,
            progress: Callable[[int, int, str], None] | None = None,
            energy_table: EnergyTable | None = None) -> ExploreResult:
    """Evaluate every (model, precision, hardware point) of `space`, computing only what `out`'s store lacks.
    Rows come back in grid order; `pareto*` columns mark the fronts (pareto.py). `energy_table`: the
    energy per action (default isa/energy.toml); it is part of every point's key."""
    from ..images import default_image
    from ..precision import label, to_mapping
    from ..registry import get

    t_start = time.perf_counter()
    store = ResultStore(out)
    executor = executor or SerialExecutor()
    candidates = list(space.hw_points())
    rows: list[dict] = []
    configs: list[HwConfig | None] = []  # each row's config (None: invalid)
    prep_jobs: list[PrepJob] = []
    pending: list[tuple[int, HwConfig]] = []  # (prep job index, config)
    pending_rows: list[int] = []  # row index of each pending point
    cached = 0
    energy_table = energy_table if energy_table is not None else load_energy_table()
    cost_identity = cost_model_identity(energy_table)
    for model in models:
        spec = get(model)
        image = default_image(spec.input_shape)
        weights = model_digest(build_model(spec, space.seed))
        image_digest = digest_arrays({"image": image})
        for precision in space.precisions or [""]:
            prec = resolve_precision(spec, precision)
            base_key = {"model": spec.name, "weights": weights, "input": image_digest, "precision": to_mapping(prec),
                        "version": __version__, "cost_model": cost_identity}
            job_index = None
            for cand in candidates:
                key = point_key(base_key, cand.hw) if cand.hw is not None else ""
                row = _identity(spec.name, label(prec), cand, space, key)
                configs.append(cand.hw)
                if cand.hw is None or cand.reason:
                    row.update(status="rejected", reason=cand.reason)
                elif (stored := store.get(key)) is not None:
                    row.update(stored)
                    cached += 1
                else:
                    if job_index is None:
                        prep_jobs.append(PrepJob(model, precision, space.seed, image))
                        job_index = len(prep_jobs) - 1
                    pending.append((job_index, cand.hw))
                    pending_rows.append(len(rows))
                    row.update(status="pending", reason="")
                rows.append(row)

    total = len(rows)
    done = total - len(pending)
    best: dict | None = None

    def consider(row: dict) -> None:
        nonlocal best
        if row.get("status") != "ok" or space.constraints.after(row):
            return
        if best is None or row["fps"] > best["fps"]:
            best = row

    def status_text() -> str:
        if best is None:
            return "no point yet"
        return f"best {best['fps']:,.1f} fps: {best['model']} {best['precision']} {best['point']}"

    for r in rows:
        consider(r)
    if progress:
        progress(done, total, status_text())
    computed = 0
    evaluate = functools.partial(evaluate_point, energy_table=energy_table)
    for k, result in run_staged(executor, prepare, prep_jobs, evaluate, pending):
        row = rows[pending_rows[k]]
        if isinstance(result, BaseException):  # preparation failed, or the point could not run: not stored
            row.update(status="failed", reason=_error(result))
        else:
            store.put(row["key"], result)
            row.update(result)
            computed += 1
        done += 1
        consider(row)
        if progress:
            progress(done, total, status_text())

    for row, hw in zip(rows, configs, strict=True):
        for m in (*METRICS, *TIMINGS):
            row.setdefault(m, None)
        row.update(_costs(hw, row))  # after the metrics: a cost axis may use them (energy per frame, say)
        if row["status"] == "ok" and (why := space.constraints.after(row)):
            row.update(status="rejected", reason=why)
    mark_fronts(rows)
    return ExploreResult(rows, space, list(models), computed, cached, len(prep_jobs),
                         time.perf_counter() - t_start)

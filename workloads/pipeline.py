"""One workload end to end: compile, simulate, run the host work, build the report.

This is what `bitbranch run` and every sweep point do. The compile step is a parameter (`CompileFn`)
so the machinery runs — and is tested — on any artifact producer; by default it is the compiler's
`compiler.compile.compile_model(model, precision, hw, image_u8_hwc)`.
"""

from __future__ import annotations

import bisect
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from bitbranch.isa.artifact import Artifact, pack_plane_tensor
from bitbranch.isa.energy import EnergyTable
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.simulator import SimResult, run

from .precision import PrecisionSpec, label, to_mapping
from .registry import WorkloadSpec
from .report.summary import HostTiming, Report, build_report

Callback = Callable[[int, int, str], None]  # (done, total, text)


class CompileFn(Protocol):
    def __call__(self, model: nn.Module, precision: PrecisionSpec, hw: HwConfig, image: np.ndarray,
                 progress: Callback | None = None) -> Artifact: ...


def compile_with_compiler(model: nn.Module, precision: PrecisionSpec, hw: HwConfig, image: np.ndarray,
                          progress: Callback | None = None, calib_images: list[np.ndarray] | None = None) -> Artifact:
    """The default CompileFn: `compiler.compile.compile_model(model, precision, hw, image_u8_hwc)` (imported here:
    torch-free callers of this module, and tests that record what the compiler is given, need it late)."""
    from bitbranch.compiler.compile import compile_model

    kwargs = {"progress": progress} if progress and "progress" in inspect.signature(compile_model).parameters else {}
    if calib_images:
        kwargs["calib_images"] = calib_images
    return compile_model(model, precision, hw, image, **kwargs)


# --- host work --------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[Any, float]:
    """fn's result and its best wall time over `repeat` calls (host steps are short and noisy)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def input_steps(art: Artifact, image: np.ndarray) -> list[HostTiming]:
    """Per-frame host work before the accelerator: the compiler's input rewrites and plane packing."""
    from bitbranch.compiler.rewrite import patches

    steps = []
    levels = image if np.ndim(image) == 3 else np.reshape(image, (1, 1, -1))  # a vector input: one pixel of N channels
    for name, t in art.meta.get("input_transforms", {}).items():
        if t.get("transform") == "im2col":
            kh, kw = t["kernel"]
            levels, s = timed(lambda: patches(image, kh, kw, t["stride"], t["pad"], t["dil"]))  # noqa: B023
            steps.append(HostTiming("input im2col", s, f"{name}: {kh}x{kw}/{t['stride']} patches"))
    _, s = timed(lambda: pack_plane_tensor(levels, 8, art.hw.word_bits))
    steps.append(HostTiming("pack input planes", s, f"{levels.shape} -> 8 bit-planes"))
    return steps


class HostOpsUnavailable(RuntimeError):
    """The artifact's outputs pass through host ops before they are the model's outputs; post-processing the
    accelerator's raw outputs would give a wrong answer, so it is skipped with this reason."""


def model_outputs(art: Artifact, outputs: dict[str, np.ndarray]) -> list[torch.Tensor]:
    """The network's outputs in `forward` order as float (N=1, C, H, W) tensors (what `postprocess` takes).

    Reads `meta["model_outputs"]` ([{"tensor", "scale", "zero"}] in forward order), falling back to the
    artifact's outputs in order with the scales of `meta["logits_scale"]` (the IR's {int32 output: scale}) or 1
    (fine for argmax/top-k and NMS ranking, not for box sizes).
    """
    if art.host_ops:
        raise HostOpsUnavailable(f"host ops {[h.get('name') for h in art.host_ops]} run after the accelerator")
    scales = art.meta.get("logits_scale") or {}
    frames = int((art.meta.get("batch") or {}).get("frames", 1))
    first = art.outputs[: len(art.outputs) // frames]  # a batch lists frame 0's outputs first (NAME, then NAME@f)
    specs = art.meta.get("model_outputs") or [{"tensor": n, "scale": scales.get(n, 1.0)} for n in first]
    result = []
    for s in specs:
        v = np.asarray(outputs[s["tensor"]], dtype=np.float64)
        t = torch.from_numpy((v - float(s.get("zero", 0.0))) * float(s.get("scale", 1.0)))
        result.append(t.permute(2, 0, 1)[None] if t.ndim == 3 else t[None])
    return result


def host_steps(spec: WorkloadSpec, art: Artifact, result: SimResult) -> tuple[list[HostTiming], Any, str]:
    """Per-frame host work after the accelerator: read outputs back, then the workload's post-processing."""
    outs, s = timed(lambda: model_outputs(art, result.outputs))
    steps = [HostTiming("read outputs", s, f"{len(outs)} tensor(s), dequantized")]
    if spec.postprocess is None:
        return steps, None, ""
    post, s = timed(lambda: spec.postprocess(outs))
    steps.append(HostTiming("post-process", s, " + ".join(spec.host_ops)))
    return steps, post, post.summary() if hasattr(post, "summary") else str(post)


# --- the whole run -----------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    artifact: Artifact
    result: SimResult
    report: Report
    host_result: Any


def _layer_progress(art: Artifact, progress: Callback) -> Callable[[int, int], None]:
    """Maps the simulator's (instructions done, total) to (layers done, layers, layer name)."""
    ends = [r.instructions[1] for r in art.layers]
    names = [r.name for r in art.layers]

    def cb(done: int, total: int) -> None:
        k = bisect.bisect_right(ends, done)
        progress(k, len(ends), names[min(k, len(names) - 1)] if names else "")

    return cb


def simulate(art: Artifact, datapath: str = "fast", progress: Callback | None = None) -> SimResult:
    """simulator.run, with per-layer progress when the simulator offers a progress hook."""
    if progress and "progress" in inspect.signature(run).parameters:
        return run(art, datapath=datapath, progress=_layer_progress(art, progress))
    return run(art, datapath=datapath)


def run_workload(spec: WorkloadSpec, precision: PrecisionSpec, hw: HwConfig, image: np.ndarray,
                 compile_fn: CompileFn = compile_with_compiler, clock_mhz: float | None = None,
                 compile_progress: Callback | None = None, sim_progress: Callback | None = None,
                 datapath: str = "fast", energy_table: EnergyTable | None = None,
                 calib_images: list[np.ndarray] | None = None) -> RunOutcome:
    """Compile `spec`'s model at `precision` for `hw` on `image` (activation ranges calibrated on `calib_images`,
    default the image itself), simulate, run host work, report."""
    model = spec.build()
    t0 = time.perf_counter()
    extra = {"calib_images": calib_images} if calib_images else {}
    with torch.no_grad():
        art = compile_fn(model, precision, hw, image, progress=compile_progress, **extra)
    compile_s = time.perf_counter() - t0
    result = simulate(art, datapath, sim_progress)
    host = input_steps(art, image[0] if np.ndim(image) in (2, 4) else image)  # per frame (of a batch)
    try:
        after, post, summary = host_steps(spec, art, result)
        host += after
    except HostOpsUnavailable as exc:
        post, summary = None, f"host post-processing skipped: {exc}"
    wall = {"compile_s": compile_s, "simulate_s": result.wall_seconds}
    report = build_report(art, result, clock_mhz, host, summary, wall, model=spec.name, precision=label(precision),
                          energy_table=energy_table)
    report.precision_spec = to_mapping(precision)
    return RunOutcome(art, result, report, post)

"""compile_model: a float torch model and an image -> a program artifact (the whole compiler in one call).

    quantize_model (QAT model) -> calibrate on the image(s) -> to_ir (integer IR) -> ir.run_graph (golden)
    -> lower_graph

Post-training: activation ranges are calibrated on the images given (by default the input image
itself; `bitbranch run/compile --calib` passes several), ReLU6 / Hardtanh ranges included (compiler.qat);
a trained QAT model can be passed with `qat=True` to skip quantization and calibration. A model whose
BatchNorm statistics were never tracked (every BatchNorm at mean 0 / variance 1, `num_batches_tracked` 0:
built, never trained) gets them estimated on the calibration images first (compiler.bnstats), with a
note in `meta["notes"]`. The golden
values' level usage per layer goes into the manifest (`meta["liveness"]`, compiler.liveness), with
warnings when layers collapse onto one level or the outputs are constant.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from bitbranch.isa.artifact import Artifact
from bitbranch.isa.hwconfig import HwConfig

from . import bnstats, ir, liveness
from .integerize import to_ir
from .ir import Progress
from .lower import lower_graph
from .quantize import calibrate, quantize_model
from .threads import torch_threads

# The compiler runs torch on one thread. Its work is a long series of modest elementwise ops (weight-scale
# search in cache-sized blocks, fake-quantized forward passes); with the cores shared (parallel sweeps,
# test runners, other users) a multi-threaded op waits for its helper thread: measured on the 2-core
# machine under load, ResNet-18 compiled in 173 s with 2 threads and 11 s with 1 (see docs/compiler.md).
COMPILE_THREADS = 1


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (1, C, H, W) float in [0, 1], the model input convention; a vector (N,) uint8 (the input of
    an MLP whose first layer is a Linear) -> (1, N). Either way the accelerator reads 8-bit levels."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (1, 3):
        raise ValueError(f"input must be an (H, W, C) image or an (N,) vector of uint8, got {image.dtype} "
                         f"{image.shape}")
    x = torch.from_numpy(image.astype(np.float32) / 255.0)
    return x[None] if image.ndim == 1 else x.permute(2, 0, 1)[None]


def input_levels(graph: ir.Graph, image: np.ndarray) -> dict[str, np.ndarray]:
    """The graph input of one frame. The input quantizer is u = round(255·x) with x = image / 255, so the levels are
    the 8-bit image itself, laid out as the IR's (H, W, C) tensor (a vector input is one pixel of N channels).
    Shared by compile_model and compiler.regolden (a new input for an existing artifact)."""
    name = graph.inputs[0]
    shape = graph.tensors[name].shape
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.size != np.prod(shape):
        raise ValueError(f"input of shape {image.shape} ({image.dtype}) does not fit the graph input '{name}' "
                         f"{shape} (H, W, C) of uint8 levels")
    return {name: image.reshape(shape)}


class _Phases:
    """Per-layer progress through the compile phases: progress(done, total, "<phase> <layer>") within a
    phase, then progress(total, total, "<phase> done in 1.2 s"); `seconds` keeps each phase's wall time."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[Progress | None]:
        t0, total = time.perf_counter(), [1]

        def report(done: int, n: int, text: str) -> None:
            total[0] = n
            if done < n:  # the phase's end is reported below, with its time
                self.progress(done, n, f"{name} {text}".rstrip())

        yield report if self.progress else None
        self.seconds[name] = time.perf_counter() - t0
        if self.progress:
            self.progress(total[0], total[0], f"{name} done in {self.seconds[name]:.1f} s")


def compile_model(model: torch.nn.Module, precision: str | Path | dict | object, hw: HwConfig, image: np.ndarray,
                  calib_images: Sequence[np.ndarray] | None = None, qat: bool = False, meta: dict | None = None,
                  progress: Progress | None = None) -> Artifact:
    """Quantize (unless `qat`), calibrate, integerize and lower `model` for input `image` (H, W, C uint8; or an
    (N,) uint8 vector for a model whose input is (1, N), an MLP). A batch is a stack: (B, H, W, C) images or
    (B, N) vectors — one program runs all B frames, layer by layer, each layer's weights loaded once for the
    batch (compiler.lower.lower_graph); without `calib_images` all frames calibrate.

    `precision` is anything compiler.quantize.quantize_model accepts ("W2A2", a mapping file, a PrecisionSpec).
    `progress(done, total, text)` follows the phases quantize, calibrate, integerize, golden and lower layer
    by layer (text: "<phase> <layer>"; see _Phases).
    """
    with torch_threads(COMPILE_THREADS):
        return _compile(model, precision, hw, image, calib_images, qat, meta, _Phases(progress))


def split_batch(image: np.ndarray) -> list[np.ndarray]:
    """The frames of a compile input: one (H, W, C) image / (N,) vector, or a (B, H, W, C) / (B, N) stack."""
    image = np.asarray(image)
    if image.ndim in (2, 4):
        if image.shape[0] < 1:
            raise ValueError(f"input batch of shape {image.shape} has no frame")
        return list(image)
    return [image]


def _compile(model: torch.nn.Module, precision: str | Path | dict | object, hw: HwConfig, image: np.ndarray,
             calib_images: Sequence[np.ndarray] | None, qat: bool, meta: dict | None, phases: _Phases) -> Artifact:
    batch = split_batch(image)
    image = batch[0]
    x = image_tensor(image)
    qmodel = model
    notes: list[str] = []
    if not qat:
        images = [image_tensor(im) for im in (calib_images or batch)]
        model, note = bnstats.estimate_untracked(model, images)  # an untrained model's BatchNorm: see compiler.bnstats
        notes += [note] if note else []
        with phases.phase("quantize") as cb:
            qmodel = quantize_model(model, precision, input_shape=tuple(x.shape), progress=cb)
        with phases.phase("calibrate") as cb:
            calibrate(qmodel, ir.steps(images, cb, lambda _: f"{len(images)} image(s)"))
    with phases.phase("integerize") as cb:
        graph = to_ir(qmodel.eval(), tuple(x.shape), hw, progress=cb)
    frames = [input_levels(graph, im) for im in batch]
    info = {**graph.meta, **(meta or {})}
    info.pop("fx_nodes", None)
    if notes:
        info["notes"] = [*info.get("notes", []), *notes]
    inputs = frames[0]
    with phases.phase("golden") as cb:
        golden = ir.run_graph(graph, inputs, cb)
        more = [ir.run_graph(graph, f) for f in frames[1:]]
    info["liveness"] = liveness.report(graph, golden, list(graph.outputs))
    with phases.phase("lower") as cb:
        return lower_graph(graph, hw, inputs, meta=info, golden=golden, progress=cb, more_frames=frames[1:],
                           more_golden=more)

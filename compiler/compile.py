"""compile_model: a float torch model and an image -> a program artifact (the whole compiler in one call).

    quantize_model (QAT model) -> calibrate on the image(s) -> to_ir (integer IR = golden) -> lower_graph

Post-training: activation ranges are calibrated on the images given (by default the input image
itself); a trained QAT model can be passed with `qat=True` to skip quantization and calibration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from isa.artifact import Artifact
from isa.hwconfig import HwConfig

from .integerize import to_ir
from .lower import lower_graph
from .qat import calibrate, quantize_model


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (1, C, H, W) float in [0, 1], the model input convention."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"input image must be (H, W, C) uint8, got {image.dtype} {image.shape}")
    return torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


Progress = Callable[[int, int, str], None]  # (step done, steps, message)
STEPS = 3


def compile_model(model: torch.nn.Module, precision: str | Path | dict | object, hw: HwConfig, image: np.ndarray,
                  calib_images: Sequence[np.ndarray] | None = None, qat: bool = False, meta: dict | None = None,
                  progress: Progress | None = None) -> Artifact:
    """Quantize (unless `qat`), calibrate, integerize and lower `model` for input `image` (H, W, C uint8).

    `precision` is anything compiler.qat.quantize_model accepts ("W2A2", a mapping file, a PrecisionSpec).
    """
    step = [0]

    def log(msg: str) -> None:
        step[0] += 1
        if progress:
            progress(step[0], STEPS, msg)

    x = image_tensor(image)
    t0 = time.perf_counter()
    if qat:
        qmodel = model
    else:
        qmodel = quantize_model(model, precision, input_shape=tuple(x.shape))
        calibrate(qmodel, [image_tensor(im) for im in (calib_images or [image])])
    log(f"quantized and calibrated in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    graph = to_ir(qmodel.eval(), tuple(x.shape), hw)
    log(f"integer IR: {len(graph.ops)} ops in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    levels = np.asarray(image, dtype=np.uint8)  # the input quantizer: u = round(255·x) = the 8-bit image
    info = {**graph.meta, **(meta or {})}
    info.pop("fx_nodes", None)
    art = lower_graph(graph, hw, {graph.inputs[0]: levels}, meta=info)
    log(f"lowered to {len(art.program)} instructions, {len(art.dram) / 1e6:.1f} MB DRAM in "
        f"{time.perf_counter() - t0:.1f} s")
    return art

"""Whole-model quantization: a float model becomes its quantization-aware twin (`quantize_model`), and the
twin's activation ranges are set from data (`calibrate`).

The layers themselves are in `compiler.qat`; where quantizers go is decided by `compiler.placement`.
This module sits above both, so neither imports the other's caller.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable

import torch
from torch import fx, nn

from .frontend import capture
from .ir import Progress
from .placement import apply_placement, plan_placement
from .precision import PrecisionSpec, parse_precision
from .qat import ActQuant

REFINE_PASSES = 2  # calibration passes with the quantizers active, after the float one (see calibrate)


def default_input_shape(model: nn.Module) -> tuple[int, int, int, int]:
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return (1, first.in_channels if first is not None else 3, 32, 32)


def quantize_model(model: nn.Module, precision: str | PrecisionSpec | dict = "W2A2",
                   input_shape: tuple[int, ...] | None = None,
                   progress: Progress | None = None) -> fx.GraphModule:
    """The quantization-aware version of a float model (which is not modified), ready to train or calibrate.

    `input_shape` (1, C, H, W) is used to trace shapes (flatten, upsample factors); it defaults to
    (1, C_first_conv, 32, 32) and is remembered in qat.meta['bitbranch'] for to_ir. Module paths are
    kept: qat.get_submodule('layer1.0.conv1') is a QuantConv2d; activation quantizers live at
    '<layer path>.aq' (or '<path of a function>_aq') and 'input_aq'. Where they go: compiler.placement.
    `progress(done, total, layer)` is called as each conv / linear layer gets its quantized weights.
    """
    spec = parse_precision(precision)
    model = copy.deepcopy(model)
    shape = tuple(input_shape) if input_shape is not None else default_input_shape(model)
    cap = capture(model, shape)
    placement = plan_placement(cap, spec)
    spec.check_paths(placement.layer_paths)
    gm = apply_placement(cap, placement, spec, progress)
    gm.meta["bitbranch"] = {"precision": spec.describe(), "input_shape": shape}  # GraphModule.meta survives deepcopy
    return gm


def act_quantizers(model: nn.Module) -> list[ActQuant]:
    return [m for m in model.modules() if isinstance(m, ActQuant)]


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable, max_batches: int | None = None,
              refine_passes: int = REFINE_PASSES) -> None:
    """Set the trainable activation ranges from data (MSE-optimal clip per quantizer).

    `batches` yields image tensors (N, C, H, W) in [0, 1], or (images, labels) pairs. Fixed ranges are not
    changed, except that ReLU6 / Hardtanh ranges narrow to the data (`ActQuant.calibrate_range`, compiler.qat).

    Why several passes: in the first, activations flow through unquantized while observed, so each quantizer
    sees float data. Downstream of a 2-bit quantizer the data is not that: a global average of 2-bit levels
    differs from the average of the floats, and a clip fitted to the floats can put every pooled value on
    the top level (MobileNetV2's classifier then outputs a constant). The `refine_passes` that follow run
    with every quantizer active and refit each one on the data it really receives.
    """
    quants = [q for q in act_quantizers(model) if q.kind != "fixed" or q.calibrate_range]
    data = [b[0] if isinstance(b, (tuple, list)) else b
            for b in itertools.islice(batches, max_batches)]
    was_training = model.training
    model.eval()
    try:
        for k in range(1 + max(refine_passes, 0)):
            for q in quants:
                q.start_observing(quantize=k > 0)
            try:
                for x in data:
                    model(x)
            finally:
                for q in quants:
                    q.finish_observing()
    finally:
        model.train(was_training)

"""Quick post-training quantization of single float conv layers (used by `bitbranch demo`).

Whole models go through compiler.qat.quantize_model -> calibrate -> compiler.integerize.to_ir, which
adds BN folding, residuals, pooling, per-channel weight scales and exact QAT/golden agreement. This
module keeps the demo's per-layer path and shares the weight ladder with it (compiler.qat.ladder).

Weights use the paper's hard ladder on weights scaled into [-1, 1]: an M-bit odd code
w = 2·round((2^M−1)(x+1)/2) − (2^M−1), real value α·w/(2^M−1) with α = max|weight| of the layer.
Activations are unsigned levels u with real value s·u (z = 0, the post-ReLU case). The float
affine out = conv(x) + bias is turned into a fixed-point multiplier and bias with `shift`
fractional bits; the integer result is the golden semantics the hardware reproduces.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import ir
from .qat import ladder

MUL_BITS = 15  # requant multipliers are chosen in [2^(MUL_BITS-1), 2^MUL_BITS)


def ladder_codes(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Odd M-bit codes of weights (scale α = max|w| per layer) and the real value of code 1."""
    alpha = float(np.abs(w).max()) or 1.0
    x = torch.from_numpy(np.clip(np.asarray(w, dtype=np.float64) / alpha, -1.0, 1.0))
    return ladder(x, bits).numpy().astype(np.int64), alpha / ((1 << bits) - 1)


def fixed_point(scale: float) -> tuple[int, int]:
    """(mul, shift) with mul / 2^shift ≈ scale and mul in [2^(MUL_BITS-1), 2^MUL_BITS) when possible."""
    if scale <= 0:
        raise ValueError(f"requant scale {scale} must be positive")
    shift = max(0, MUL_BITS - 1 - math.floor(math.log2(scale)))
    return int(round(scale * 2**shift)), shift


def conv_from_torch(conv: torch.nn.Conv2d, name: str, x: ir.Tensor, mbits: int, kout: int,
                    out_scale: float) -> tuple[ir.Conv, ir.Tensor]:
    """IR op and output tensor for `relu(conv(x))` quantized to `kout`-bit levels of size `out_scale`."""
    if conv.groups != 1:
        raise ValueError(f"layer '{name}': grouped convolution is not supported by this path")
    w = conv.weight.detach().double().numpy()
    codes, w_scale = ladder_codes(w, mbits)
    mul, shift = fixed_point(x.scale * w_scale / out_scale)
    bias_real = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    bias = np.round(bias_real / out_scale * 2**shift).astype(np.int64)
    requant = ir.Requant(np.full(w.shape[0], mul, dtype=np.int64), bias, shift, 0, (1 << kout) - 1)
    op = ir.Conv(name, [x.name], name, codes, mbits, False, conv.stride[0], conv.padding[0], conv.dilation[0],
                 requant)
    h, w_in, _ = x.shape
    kh, kw = codes.shape[2:]
    ho = (h + 2 * op.pad - (kh - 1) * op.dil - 1) // op.stride + 1
    wo = (w_in + 2 * op.pad - (kw - 1) * op.dil - 1) // op.stride + 1
    return op, ir.Tensor(name, (ho, wo, codes.shape[0]), kout, out_scale)

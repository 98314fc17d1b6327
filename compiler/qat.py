"""Quantization-aware layers (torch nn.Modules) and `quantize_model` / `calibrate`.

The QAT model computes exactly what the integer IR computes, up to rounding: every tensor an
accelerator op reads is a level tensor s·(u − z) produced by an `ActQuant`, weights are fake-quantized
codes, and convolutions pad in level space (see `QuantConv2d`). `compiler.integerize.to_ir` turns it
into the integer graph.

Weights (`WeightQuant`, per output channel scale α, trainable):
  - 'mbit' M = 1..8: the paper's hard ladder on x = clip(w/α, -1, 1):
    code = 2·round_half_up((2^M−1)(x+1)/2) − (2^M−1), an odd integer; real = α·code/(2^M−1).
    M = 1 is binary sign(x)·α (x = 0 -> +1).
  - 'ternary': t = sign(x)·[|x| > Δ] in {-1, 0, +1}, real = α·t; Δ = 0.5 by default (nearest
    rounding). Smart Quantization (issue 8) drives Δ and may switch a layer with `set_mode`.
  α is initialised per channel by minimising the weight quantization MSE over a grid of fractions
  of max|w| (for M = 1 this lands near mean|w|, the XNOR-Net optimum; for wider codes near the
  max), which trains better than max|w| at 1-3 bits and equals it at 8.
  Gradients: straight-through estimator on the rounding, zero outside the clip range; α gets the
  LSQ-style gradient (q − x inside, ±1 outside) from autograd.

Activations (`ActQuant`, K bits, real = s·(u − z), u = round_half_up((clip(x, lo, hi) − lo)/s),
s = (hi − lo)/(2^K − 1), z = −lo/s):
  - 'unsigned' [0, c], c trainable (PACT-style) or calibrated: after ReLU; z = 0.
  - 'fixed' [lo, hi]: bounded activations start from their own range — HReLU [0, 1], ReLU6 [0, 6],
    HTanh [-1, 1] (symmetric: z = (2^K−1)/2). Calibration narrows [0, hi] to [0, c] and [-hi, hi] to
    [-c, c], c <= hi the MSE-optimal clip on the data: ReLU6 quantized over 0..6 at 2 bits puts every
    value under 1 on level 0, and in MobileNetV2 that is almost all of them (issue 16). Training keeps
    the calibrated range (it is a buffer, not a parameter); uncalibrated (QAT) models keep [lo, hi].
  - 'symmetric' [-c, c], c trainable/calibrated: tensors with no activation (8 bits by default).
  - the network input: 'fixed' [0, 1] at 8 bits, u = round(255·x), s = 1/255, z = 0. Images must be
    in [0, 1]: fold mean/std normalisation into the first conv (`fold_input_normalization`) or do it
    on the host. (Folded, the border pads with black instead of the mean, a small difference.)
Rounding is round-half-up everywhere, the rule of `isa.rounding`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bitbranch.isa.rounding import round_half_up

from .frontend import conv_padding
from .precision import WeightPrecision

INPUT_BITS = 8
_GRID = 16  # clip ranges are searched on 16 fractions of the maximum, then 16 around the best (1/128 resolution)
_SAMPLES = 1 << 15  # activation values used per quantizer for calibration
CLIP_FLOOR = 1e-30  # smallest calibrated clip: a scale of zero would divide by zero in every requantization
_BLOCK = 1 << 16  # weights per block of channels in WeightQuant.init_scale (a cache-sized working set)


def round_half_up_(x: torch.Tensor) -> torch.Tensor:
    """`isa.rounding.round_half_up` in place (x must be a fresh tensor): the same values, no temporaries."""
    return x.add_(0.5).floor_()


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward q, backward identity (straight-through estimator)."""
    return x + (q - x).detach()


def grid_search(err: Callable[[torch.Tensor], torch.Tensor], top: torch.Tensor) -> torch.Tensor:
    """Per-entry clip c in (0, top] minimising err(c) (err maps clips to errors of the same shape).

    16 fractions of top, then 16 points within ±top/16 of the best: 1/120 resolution in 32 evaluations.
    """
    best, best_err = top.clone(), torch.full_like(top, math.inf)

    def scan(candidates: Iterable[torch.Tensor]) -> None:
        nonlocal best, best_err
        for c in candidates:
            e = err(c)
            better = e < best_err
            best_err = torch.where(better, e, best_err)
            best = torch.where(better, c, best)

    scan(top * t for t in torch.linspace(1.0 / _GRID, 1.0, _GRID, dtype=top.dtype))
    center = best.clone()
    scan((center + top * t).clamp(min=top / (4 * _GRID), max=top)
         for t in torch.linspace(-1.0, 1.0, _GRID, dtype=top.dtype) / _GRID)
    return best


# --- weights -------------------------------------------------------------------------------------------


def ladder(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Odd M-bit codes of x in [-1, 1] (the paper's hard ladder q_M, times 2^M − 1)."""
    top = (1 << bits) - 1
    return round_half_up_((x + 1).mul_(top).div_(2)).mul_(2).sub_(top)  # 2·rhu(top·(x+1)/2) − top, one temporary


def ternarize(x: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.sign(x) * (x.abs() > delta).to(x.dtype)


class WeightQuant(nn.Module):
    """Per-output-channel weight quantizer: 'mbit' (M = 1..8, 1 = binary) or 'ternary'."""

    def __init__(self, channels: int, precision: WeightPrecision, delta: float = 0.5):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        self.mode, self.bits, self.delta = precision.mode, precision.bits, delta

    def set_mode(self, mode: str, bits: int | None = None, delta: float | None = None) -> None:
        """Switch between 'mbit' and 'ternary' (Smart Quantization's per-layer choice)."""
        if mode not in ("mbit", "ternary"):
            raise ValueError(f"weight quantizer mode {mode!r} (expected 'mbit' or 'ternary')")
        self.mode = mode
        self.bits = 2 if mode == "ternary" else (bits if bits is not None else self.bits)
        if delta is not None:
            self.delta = delta

    @property
    def ternary(self) -> bool:
        return self.mode == "ternary"

    def _alpha(self, w: torch.Tensor) -> torch.Tensor:
        return self.alpha.abs().clamp_min(1e-12).view(-1, *([1] * (w.dim() - 1)))

    def normalized(self, w: torch.Tensor) -> torch.Tensor:
        """w/α clipped to [-1, 1]: what the ladder / ternary thresholds (and SQ's regularizer) see."""
        return torch.clamp(w / self._alpha(w), -1.0, 1.0)

    def _levels(self, x: torch.Tensor) -> torch.Tensor:
        """Quantized x in [-1, 1] units (no gradient path)."""
        if self.ternary:
            return ternarize(x, self.delta)
        return ladder(x, self.bits) / ((1 << self.bits) - 1)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        x = self.normalized(w)
        return self._alpha(w) * ste(x, self._levels(x))

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """Integer weights: odd M-bit codes, or {-1, 0, +1} when ternary."""
        x = self.normalized(w.detach())
        return (ternarize(x, self.delta) if self.ternary else ladder(x, self.bits)).to(torch.int64)

    def code_scale(self) -> torch.Tensor:
        """Real value of code 1 per output channel."""
        a = self.alpha.detach().abs().clamp_min(1e-12)
        return a if self.ternary else a / ((1 << self.bits) - 1)

    @torch.no_grad()
    def init_scale(self, w: torch.Tensor) -> None:
        """α per channel = the clip (fraction of max|w|) with the least weight quantization error.

        The search is per channel, so it runs on blocks of about _BLOCK weights: all 32 candidate clips
        are tried while a block is in cache (a 4096x25088 VGG classifier is 400 MB, once, not 32 times).
        """
        flat = w.detach().reshape(w.shape[0], -1)
        top = flat.abs().amax(dim=1).clamp_min(1e-12)
        rows = max(1, _BLOCK // max(flat.shape[1], 1))
        alpha = [grid_search(lambda a, f=f: self._clip_error(f, a), t)
                 for f, t in zip(flat.split(rows), top.split(rows), strict=True)]
        self.alpha.copy_(torch.cat(alpha).to(self.alpha.dtype))

    def _clip_error(self, flat: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Σ (α·levels(clamp(w/α, −1, 1)) − w)² per row for clips α = a, with in-place steps."""
        a = a[:, None]
        return self._levels(torch.div(flat, a).clamp_(-1, 1)).mul_(a).sub_(flat).pow_(2).sum(dim=1)

    def extra_repr(self) -> str:
        return "ternary" if self.ternary else f"{self.bits}-bit"


# --- activations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantParams:
    """A level grid: real = scale·(u − zero), u in [0, 2^bits − 1], lo/hi = real values of the ends."""

    bits: int
    scale: float
    zero: float
    lo: float
    hi: float

    @property
    def top(self) -> int:
        return (1 << self.bits) - 1

    def level(self, real: float) -> int:
        """The level real quantizes to (round half up, clamped)."""
        if real == -math.inf:
            return 0
        if real == math.inf:
            return self.top
        return int(min(max(round_half_up((real - self.lo) / self.scale), 0), self.top))


class ActQuant(nn.Module):
    """K-bit activation quantizer (see module docstring); kind 'fixed', 'unsigned' or 'symmetric'."""

    bitbranch_leaf = True
    bitbranch_kind = "quant"

    def __init__(self, bits: int, kind: str, lo: float = 0.0, hi: float = 1.0, calibrate_range: bool = False):
        super().__init__()
        if kind not in ("fixed", "unsigned", "symmetric"):
            raise ValueError(f"activation quantizer kind {kind!r}")
        self.bits, self.kind = bits, kind
        # 'fixed' ranges of ReLU6 / Hardtanh are where the function clips, not where the data is: calibration may
        # narrow [0, hi] / [-hi, hi] to the data (see finish_observing). The network input's [0, 1] stays fixed.
        self.calibrate_range = bool(calibrate_range) and kind == "fixed" and (lo == 0 or lo == -hi) and hi > 0
        if kind == "fixed":
            self.register_buffer("lo", torch.tensor(float(lo)))
            self.register_buffer("hi", torch.tensor(float(hi)))
        else:
            self.clip = nn.Parameter(torch.tensor(float(hi)))
        self._observed: list[torch.Tensor] | None = None
        self._observe_quantized = False
        self.function_hi = float(hi)  # where the activation function clips: calibration never goes past it

    @property
    def top(self) -> int:
        return (1 << self.bits) - 1

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "fixed":
            return self.lo, self.hi
        c = self.clip.abs().clamp_min(CLIP_FLOOR)
        return (-c if self.kind == "symmetric" else torch.zeros_like(c)), c

    def level0(self) -> torch.Tensor:
        """Real value of level 0 (what level-space padding inserts)."""
        return self.bounds()[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._observed is not None:
            flat = x.detach().flatten()
            if flat.numel() > _SAMPLES:
                flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:_SAMPLES]]
            self._observed.append(flat.double())
            if not self._observe_quantized:
                return x
        lo, hi = self.bounds()
        s = (hi - lo) / self.top
        t = (torch.minimum(torch.maximum(x, lo), hi) - lo) / s
        return ste(t, round_half_up(t)) * s + lo

    def levels(self, y: torch.Tensor) -> torch.Tensor:
        """Level indices of a tensor this quantizer produced (or would produce)."""
        lo, hi = self.bounds()
        s = (hi - lo) / self.top
        return round_half_up((torch.minimum(torch.maximum(y.detach(), lo), hi) - lo) / s).to(torch.int64)

    def params(self) -> QuantParams:
        lo, hi = (float(v.detach()) for v in self.bounds())
        scale = (hi - lo) / self.top
        zero = {"unsigned": 0.0, "symmetric": self.top / 2}.get(self.kind, -lo * self.top / (hi - lo)) + 0.0
        return QuantParams(self.bits, scale, zero, lo, hi)

    def start_observing(self, quantize: bool = False) -> None:
        """Record inputs until finish_observing; `quantize`: keep quantizing meanwhile (refinement passes)."""
        self._observed, self._observe_quantized = [], quantize

    @torch.no_grad()
    def finish_observing(self) -> None:
        """Set the clip to the range (fraction of the largest value seen) with the least MSE."""
        seen, self._observed = self._observed, None
        if (self.kind == "fixed" and not self.calibrate_range) or not seen:
            return
        v = torch.cat(seen)
        if v.numel() > _SAMPLES:
            v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[:_SAMPLES]]
        symmetric = self.kind == "symmetric" or (self.kind == "fixed" and float(self.lo) < 0)
        v = torch.cat([v, -v]) if symmetric else v.clamp_min(0)  # symmetric: fit ±|v|
        vmax = v.max()
        if self.kind == "fixed":  # never wider than where the function clips
            vmax = torch.clamp(vmax, max=self.function_hi)
        if not vmax > CLIP_FLOOR:  # all-zero (or NaN-free but empty) data: keep the range, never divide by zero
            return

        def err(c: torch.Tensor) -> torch.Tensor:
            lo = -c if symmetric else torch.zeros_like(c)
            s = (c - lo) / self.top
            return ((round_half_up((torch.minimum(torch.maximum(v, lo), c) - lo) / s) * s + lo - v) ** 2).mean()

        c = max(float(grid_search(err, vmax)), CLIP_FLOOR)
        if self.kind == "fixed":  # ReLU6 / Hardtanh: the calibrated clip c <= hi replaces [0, hi] / [-hi, hi]
            self.hi.fill_(c)
            self.lo.fill_(-c if symmetric else 0.0)
        else:
            self.clip.fill_(c)

    def extra_repr(self) -> str:
        p = self.params()
        return f"{self.kind}, bits={self.bits}, range=[{p.lo:.4g}, {p.hi:.4g}]"


# --- layers --------------------------------------------------------------------------------------------


class QuantConv2d(nn.Conv2d):
    """Conv2d with fake-quantized weights; pads in level space when its input's level 0 is not real 0.

    The integer IR pads every convolution with level 0 (DESIGN.md). For z = 0 inputs that is real
    zero, torch's padding; for symmetric / fixed-range inputs level 0 is `lo`, so this layer pads
    with `input_quant.level0()` and QAT and golden agree at the borders too.
    """

    bitbranch_leaf = True

    def __init__(self, conv: nn.Conv2d, precision: WeightPrecision):
        pad = conv_padding(conv)
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, pad, conv.dilation,
                         conv.groups, conv.bias is not None, conv.padding_mode, device=conv.weight.device,
                         dtype=conv.weight.dtype)
        self.weight, self.bias = conv.weight, conv.bias
        self.wq = WeightQuant(conv.out_channels, precision)
        self.wq.init_scale(self.weight)
        self.input_quant: ActQuant | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.wq(self.weight)
        ph, pw = self.padding  # type: ignore[misc]
        if self.input_quant is not None and (ph or pw):
            lo = self.input_quant.level0()
            x = F.pad(x - lo, (pw, pw, ph, ph)) + lo
            return F.conv2d(x, w, self.bias, self.stride, 0, self.dilation, self.groups)
        return self._conv_forward(x, w, self.bias)


class QuantLinear(nn.Linear):
    """Linear with fake-quantized weights (runs as a convolution whose kernel covers its input)."""

    bitbranch_leaf = True

    def __init__(self, linear: nn.Linear, precision: WeightPrecision):
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        self.weight, self.bias = linear.weight, linear.bias
        self.wq = WeightQuant(linear.out_features, precision)
        self.wq.init_scale(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.wq(self.weight), self.bias)


def fold_input_normalization(conv: nn.Conv2d, mean: Iterable[float], std: Iterable[float]) -> None:
    """Make conv(x) on [0, 1] images equal conv((x − mean)/std) (except at zero-padded borders)."""
    m = torch.tensor(list(mean), dtype=conv.weight.dtype).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=conv.weight.dtype).view(1, -1, 1, 1)
    with torch.no_grad():
        w = conv.weight / s
        shift = (w * m).sum(dim=(1, 2, 3))
        conv.weight.copy_(w)
        if conv.bias is None:
            conv.bias = nn.Parameter(-shift)
        else:
            conv.bias.sub_(shift)

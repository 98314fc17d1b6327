"""QAT model -> integer IR graph (the golden model): BN folding, fixed-point requantization, fusions.

The QAT graph is walked in order; every node's value is either an IR level tensor (`Level`) or a
`Pending` real value not yet requantized:
    y_c = A_c·S + B_c (+ s_r·(u_r − z_r)), clamped to [lo, hi],
where S is the integer sum of the op that produced it (Σ u·w of a conv / linear, Σ u of an average
window, u_a of an add). BatchNorm (eval statistics) updates A, B; an add with a level tensor becomes
the residual term; an activation narrows [lo, hi]; the next `ActQuant` emits one IR op whose
requant maps y to its levels:
    t = y/s + z  ->  mul = A/s, rmul = s_r/s, bias = (B − s_r·z_r)/s + z, all times 2^shift,
    lo/hi = the levels the activation bounds quantize to (quantization is monotone, so clamping
    before or after it is the same).
A value that reaches an output or a host op without a quantizer becomes int32 (`out_int32`) with
real value `scale·r`: scale = max(min_c |A_c| / 16, bound / 2^30), i.e. 1/16 of the finest step of
any channel unless the largest possible |y| would then not fit 2^30. graph.meta['logits_scale']
records it per tensor.

Fixed point: one shift per op, the largest for which max(|mul|, 4·|rmul|) < 2^31 (int32 constants,
the hardware doubles rmul, twice for ternary)
and the hardware's form of the requant (±1-plane accumulator with channels padded to 64-bit words,
bias_hw ≈ R·mul + 4·bias) stays below 2^61 — as much precision as int32 / int64 allow.
graph.meta['layers'][op]['requant_error'] bounds the resulting pre-rounding error in output units.
Biases that could only ever saturate are clipped to a value that still saturates.
Padding is level 0 everywhere (the QAT layers pad the same way, see `QuantConv2d`).

Overflow: for each conv / linear, the contract bound max_c Σ|w_c|·(2^K−1) on |S| and the ±1-plane
bound kh·kw·(Cin/groups)·(2^K−1)·Σcoef on any partial accumulator must stay below 2^31, else the layer
is refused by name. With `hw`, compiler.conv.hardware_constants adds the channel-word padding of that
hardware (and the other groups' words and second pass of grouped layers) and checks the requant
constants it derives.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import fx, nn

from bitbranch.isa.numeric import WORD_BITS
from bitbranch.isa.rounding import round_half_up

from . import ir
from .bigpool import split_large_pools
from .conv import group_layout, hardware_constants  # the hardware-specific half of the overflow check
from .frontend import Capture, FNode, capture
from .qat import INPUT_BITS, ActQuant, QuantConv2d, QuantLinear, QuantParams

MUL_LIMIT_BITS = 31  # |mul|, |rmul| < 2^31: int32 CONST lanes
HW_BUDGET_BITS = 61  # the hardware's requant (R_hw·mul + bias_hw, bias_hw ≈ R·mul + 4·bias) stays < 2^62
MAX_SHIFT = 56  # leaves room for the hardware's +1 / +2 shift (isa.rounding.MAX_SHIFT = 62)
LOGIT_RESOLUTION = 16  # int32 outputs resolve 1/16 of the finest channel step
ACC_LIMIT = 1 << 31


class IntegerizeError(ValueError):
    """The QAT model cannot become an integer graph; the message names the layer."""


@dataclass
class Level:
    tensor: ir.Tensor


@dataclass
class Pending:
    kind: str  # 'conv' (also linear), 'pool' or 'add': which op S comes from
    node: fx.Node  # fx node holding the value now (single-use checks)
    name: str  # the op's name (module path)
    make: Callable[[ir.Requant, str, list[str]], ir.Op]
    inputs: list[str]
    A: np.ndarray  # (C,) real value of one unit of S
    B: np.ndarray  # (C,)
    s_bound: np.ndarray  # (C,) bound on |S|
    hw_acc: float  # bound on the hardware accumulator (±1-plane form, channels padded to words)
    shape: tuple[int, int, int]
    residual: ir.Tensor | None = None
    lo: float = -math.inf
    hi: float = math.inf
    info: dict = field(default_factory=dict)

    def fresh_conv(self) -> bool:
        """A conv / linear result with no residual or activation yet (BN and a residual add can still fold)."""
        return self.kind == "conv" and self.residual is None and self.lo == -math.inf and self.hi == math.inf


class _RawInput:
    """The float image before the input quantizer."""


@dataclass
class _Host:
    fn: FNode


# --- fixed point ------------------------------------------------------------------------------------------


def _rhu(x: np.ndarray) -> np.ndarray:
    return round_half_up(np.asarray(x, dtype=np.float64)).astype(np.int64)


def choose_shift(name: str, peak: float, demand: float) -> int:
    """Largest shift with peak·2^shift < 2^31 and demand·2^shift < 2^61 (capped at MAX_SHIFT).

    peak = max(|mul|, 4·|rmul|) and demand = the worst |hardware requant value| per unit of 2^shift,
    both in real (unshifted) units.
    """
    if not (math.isfinite(peak) and math.isfinite(demand)):
        raise IntegerizeError(f"layer '{name}': non-finite requantization constants (NaN/inf weights or ranges?)")
    shift = MAX_SHIFT
    if peak > 0:
        shift = min(shift, MUL_LIMIT_BITS - 1 - math.floor(math.log2(peak)))
    if demand > 0:
        shift = min(shift, math.floor(HW_BUDGET_BITS - math.log2(demand)))
    if shift < 0:
        raise IntegerizeError(f"layer '{name}': requantization constants do not fit (multiplier {peak:.4g}, int64 "
                              f"demand {demand:.4g}): output scale far smaller than the input's")
    return shift


@dataclass
class _Affine:
    """Real-valued requant target t = mul·S + rmul·u_r + bias (output levels or int32 units)."""

    mul: np.ndarray
    bias: np.ndarray
    rmul: float | None
    r_bound: int


def _fixed_point(name: str, aff: _Affine, s_bound: np.ndarray, hw_acc: float, lo: int, hi: int, out_int32: bool
                 ) -> tuple[ir.Requant, float]:
    """Integer requant constants for aff; returns them and the worst pre-rounding error in output units.

    s_bound bounds |S| per channel (golden); hw_acc bounds the hardware accumulator (±1-plane form with
    channel padding). Biases beyond what can ever be reached only saturate, so they are clipped first.
    """
    rmul_abs = abs(aff.rmul or 0.0)
    reach = s_bound * np.abs(aff.mul) + aff.r_bound * rmul_abs
    sat = (ACC_LIMIT if out_int32 else hi) + 2.0
    bias_real = np.clip(aff.bias, -(reach + sat), reach + sat)
    peak = max(float(np.abs(aff.mul).max(initial=0.0)), 4 * rmul_abs)  # the hardware scales rmul by 2g <= 4
    demand = 2 * hw_acc * peak + 4 * 255 * rmul_abs + 4 * float(np.abs(bias_real).max(initial=0.0)) + 4
    shift = choose_shift(name, peak, demand)
    one = float(1 << shift)
    mul = _rhu(aff.mul * one)
    rmul = None if aff.rmul is None else np.full(mul.shape, int(_rhu(aff.rmul * one)), dtype=np.int64)
    bias = _rhu(bias_real * one)
    err = float(((s_bound + aff.r_bound + 1) * 0.5).max(initial=0.0)) / one
    return ir.Requant(mul, bias, shift, lo, hi, rmul, out_int32), err


# --- the builder -------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, cap: Capture, hw: object | None):
        self.cap, self.hw = cap, hw
        self.tensors: dict[str, ir.Tensor] = {}
        self.ops: list[ir.Op] = []
        self.values: dict[fx.Node, object] = {}
        self.fx_nodes: dict[str, str] = {}
        self.layers: dict[str, dict] = {}
        self.logits: dict[str, float] = {}
        self.inputs: list[str] = []

    # tensors and ops
    def _unique(self, name: str) -> str:
        out, k = name, 1
        while out in self.tensors:
            k += 1
            out = f"{name}:{k}"
        return out

    def _tensor(self, name: str, shape: tuple, bits: int, scale: float, zero: float, node: fx.Node) -> ir.Tensor:
        t = ir.Tensor(self._unique(name), tuple(int(v) for v in shape), bits, float(scale), float(zero))
        self.tensors[t.name] = t
        self.fx_nodes[t.name] = node.name
        return t

    def level_of(self, fn: FNode, node: fx.Node) -> Level:
        v = self.values.get(node)
        if isinstance(v, Pending):
            raise IntegerizeError(f"{fn.where()}: its input ({v.name}) is not quantized; the QAT model needs an "
                                  "activation quantizer there (build it with quantize_model)")
        if not isinstance(v, Level):
            raise IntegerizeError(f"{fn.where()}: input '{node.name}' is not a level tensor")
        if v.tensor.bits > 8:
            raise IntegerizeError(f"{fn.where()}: input '{v.tensor.name}' is an int32 result, not levels")
        return v

    def pending_of(self, fn: FNode, node: fx.Node) -> Pending:
        v = self.values.get(node)
        if not isinstance(v, Pending):
            raise IntegerizeError(f"{fn.where()}: expected an unquantized layer output as input")
        if len(v.node.users) != 1:
            raise IntegerizeError(f"{fn.where()}: the output of '{v.name}' is used by {len(v.node.users)} ops before "
                                  "it is quantized; insert an activation quantizer (quantize_model does)")
        return v

    # materialisation
    def materialize(self, p: Pending, q: QuantParams | None, node: fx.Node) -> Level:
        """Emit p's op with a requant to q's levels (or int32 when q is None)."""
        r_scale = p.residual.scale if p.residual is not None else 0.0
        r_off = r_scale * p.residual.zero if p.residual is not None else 0.0
        r_bound = (1 << p.residual.bits) - 1 if p.residual is not None else 0
        if q is None:
            bound = float((np.abs(p.A) * p.s_bound + np.abs(p.B) + r_scale * r_bound + abs(r_off)).max(initial=0.0))
            fine = float(np.abs(p.A)[np.abs(p.A) > 0].min(initial=1.0))
            scale = max(fine / LOGIT_RESOLUTION, bound / (1 << 30))
            zero, bits, lo, hi = 0.0, ir.INT32, 0, 0
        else:
            scale, zero, bits, lo, hi = q.scale, q.zero, q.bits, q.level(p.lo), q.level(p.hi)
        aff = _Affine(p.A / scale, (p.B - r_off) / scale + zero,
                      None if p.residual is None else r_scale / scale, r_bound)
        rq, err = _fixed_point(p.name, aff, p.s_bound, p.hw_acc, lo, hi, q is None)
        out = self._tensor(p.name, p.shape, bits, scale, zero, node)
        inputs = p.inputs + ([p.residual.name] if p.residual is not None else [])
        op = p.make(rq, out.name, inputs)
        self.ops.append(op)
        self.layers[op.name] = {**p.info, "kind": type(op).__name__.lower(), "out": out.name,
                                "a_out": None if q is None else q.bits, "requant_error": err}
        if q is None:
            self.logits[out.name] = scale
        self._check_hw(op)
        return Level(out)

    def _check_hw(self, op: ir.Op) -> None:
        if self.hw is None or not isinstance(op, ir.Conv):
            return
        x = self.tensors[op.inputs[0]]
        hardware_constants(op, x, group_layout(op, x.shape[2], self.hw), self.hw)


# --- per-kind handlers -----------------------------------------------------------------------------------


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) == 2:
        return 1, 1, shape[1]
    raise IntegerizeError(f"tensor of shape {shape} has no (H, W, C) form")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


_ROW_BLOCK = 1 << 18  # elements per block of rows in _check_accumulator (2 MB of int64)


def _check_accumulator(name: str, codes: np.ndarray, kbits: int, ternary: bool, mbits: int, groups: int = 1
                       ) -> dict:
    amax = (1 << kbits) - 1
    # max over output channels of Σ|w|, a block of rows at a time: no |codes| copy of the whole layer
    # (VGG's fc6 is 100 M int64 codes: 7.8 s whole, 0.1 s in blocks)
    flat = codes.reshape(codes.shape[0], -1)
    rows = max(1, _ROW_BLOCK // max(flat.shape[1], 1))
    contract = max((int(np.abs(flat[i : i + rows]).sum(axis=1).max(initial=0))
                    for i in range(0, flat.shape[0], rows)), default=0) * amax
    _, cin, kh, kw = codes.shape
    plane = kh * kw * cin * amax * (2 if ternary else (1 << mbits) - 1)
    for what, bound in (("Σ|w|·(2^K−1)", contract), ("±1-plane partial sums", plane)):
        if bound >= ACC_LIMIT:
            raise IntegerizeError(f"layer '{name}': |accumulator| can reach {bound} >= 2^31 ({what}, {kh}x{kw}x{cin} "
                                  f"window, W{'T' if ternary else mbits}A{kbits}); use fewer bits or split the layer")
    # grouped: a column tile may read every channel word, and masked M-bit layouts add two passes (conv.GroupLayout)
    passes = 2 if groups > 1 else 1
    coef = 2 if ternary else (1 << mbits) - 1
    padded = passes * kh * kw * math.ceil(cin * groups / WORD_BITS) * WORD_BITS * amax * coef
    return {"acc_bound": contract, "plane_bound": plane, "hw_acc": padded}


def _conv_pending(b: _Builder, fn: FNode, x: ir.Tensor) -> Pending:
    m = fn.module
    codes = m.wq.codes(m.weight).cpu().numpy()
    if isinstance(m, QuantLinear):
        h, w, c = x.shape
        if codes.shape[1] != h * w * c:
            raise IntegerizeError(f"{fn.where()}: Linear expects {codes.shape[1]} inputs, its input '{x.name}' has "
                                  f"{h}x{w}x{c}")
        codes = codes.reshape(codes.shape[0], c, h, w)  # torch flattens (C, H, W): the kernel covers the input
        stride, pad, dil, pad_w = 1, 0, 1, None
    else:
        stride, pad, dil, pad_w = fn.attrs["stride"], fn.attrs["pad"], fn.attrs["dil"], fn.attrs.get("pad_w")
        if (pad or pad_w) and x.zero != 0 and m.input_quant is None:
            raise IntegerizeError(f"{fn.where()}: pads a tensor whose level 0 is not real zero, but the QAT layer pads "
                                  "with real zero (set input_quant; quantize_model does)")
    ternary, mbits = m.wq.ternary, m.wq.bits
    groups = fn.attrs.get("groups", 1)
    bounds = _check_accumulator(fn.path, codes, x.bits, ternary, mbits, groups)
    info = {"w_bits": "T" if ternary else mbits, "a_in": x.bits, "acc_bound": bounds["acc_bound"],
            "plane_bound": bounds["plane_bound"]}
    cs = _np(m.wq.code_scale())
    A = x.scale * cs
    wsum = codes.reshape(codes.shape[0], -1).sum(axis=1)
    bias = _np(m.bias) if m.bias is not None else np.zeros(codes.shape[0])
    B = bias - A * x.zero * wsum  # padded positions are level 0 too, so the window is always full

    def make(rq: ir.Requant, out: str, inputs: list[str]) -> ir.Op:
        return ir.Conv(name=fn.path, inputs=inputs, output=out, weights=codes, mbits=mbits, ternary=ternary,
                       stride=stride, pad=pad, dil=dil, requant=rq, groups=groups, pad_w=pad_w)

    s_bound = np.abs(codes).reshape(codes.shape[0], -1).sum(axis=1) * ((1 << x.bits) - 1)
    return Pending("conv", fn.node, fn.path, make, [x.name], A, B, s_bound, bounds["hw_acc"], _hwc(fn.shape),
                   info=info)


def _bn(fn: FNode, p: Pending, standalone: bool = False) -> Pending:
    """Fold BatchNorm into the pending requantization: a fresh conv's, or (`standalone`) the 1x1 level requant a
    BatchNorm of a level tensor gets of its own."""
    m: nn.modules.batchnorm._BatchNorm = fn.module
    if not (p.fresh_conv() or standalone):
        raise IntegerizeError(f"{fn.where()}: BatchNorm must directly follow a convolution / linear layer")
    g = _np(m.weight) if m.weight is not None else np.ones_like(p.A)
    beta = _np(m.bias) if m.bias is not None else np.zeros_like(p.A)
    k = g / np.sqrt(_np(m.running_var) + m.eps)
    p.A, p.B = p.A * k, (p.B - _np(m.running_mean)) * k + beta
    p.node = fn.node
    return p


def _edge_counts(fn: FNode, k: int, kw: int) -> dict[str, int]:
    """Elements torch divides by in ceil_mode's partial last column / row / corner windows (frontend._ceil_extra)."""
    extra = fn.attrs.get("extra", (0, 0))
    rows, cols = fn.attrs.get("last_count", (k, kw))
    counts = {}
    if extra[1]:
        counts["col"] = k * cols
    if extra[0]:
        counts["row"] = rows * kw
    if extra[0] and extra[1]:
        counts["corner"] = rows * cols
    return counts


def _avgpool(fn: FNode, x: ir.Tensor) -> Pending:
    k, stride, pad = fn.attrs["kernel"], fn.attrs["stride"], fn.attrs["pad"]
    kw = fn.attrs.get("kernel_w") or k
    if pad and x.zero != 0:
        raise IntegerizeError(f"{fn.where()}: padded average pooling of '{x.name}' (level 0 is not real zero)")
    c = x.shape[2]
    extra = tuple(fn.attrs.get("extra", (0, 0)))
    counts = _edge_counts(fn, k, kw)
    if counts and x.zero != 0:
        raise IntegerizeError(f"{fn.where()}: ceil_mode average pooling of '{x.name}' (level 0 is not real zero)")
    smallest = min([k * kw, *counts.values()])

    def make(rq: ir.Requant, out: str, inputs: list[str]) -> ir.Op:
        def scaled(count: int) -> ir.Requant:
            # rq.mul is for the smallest window (the largest multiplier: the shift was chosen for it); a window of
            # `count` elements takes mul·smallest/count, rounded half up in integers
            mul = (2 * np.asarray(rq.mul, dtype=np.int64) * smallest + count) // (2 * count)
            return dataclasses.replace(rq, mul=mul)

        edge = {cls: scaled(n) for cls, n in counts.items()} or None
        return ir.Pool(fn.path, inputs, out, "avg", k, stride, pad, scaled(k * kw) if edge else rq,
                       kernel_w=kw if kw != k else 0, extra=extra, edge=edge)

    A = np.full(c, x.scale / smallest)
    total = k * kw * ((1 << x.bits) - 1)
    return Pending("pool", fn.node, fn.path, make, [x.name], A, np.full(c, -x.scale * x.zero), np.full(c, total),
                   total, _hwc(fn.shape), info={"a_in": x.bits})


def _requant_levels(fn: FNode, x: ir.Tensor) -> Pending:
    """An explicit level -> level requantization: average pooling over a 1x1 window."""
    name = f"{x.name}.requant"
    return _avgpool(FNode(fn.node, "avgpool", name, attrs={"kernel": 1, "stride": 1, "pad": 0}, shape=fn.shape), x)


def _add(b: _Builder, fn: FNode) -> Pending:
    va, vb = (b.values.get(n) for n in fn.inputs)
    if isinstance(va, Pending) or isinstance(vb, Pending):
        first = isinstance(va, Pending)
        p = b.pending_of(fn, fn.inputs[0 if first else 1])
        r = b.level_of(fn, fn.inputs[1 if first else 0]).tensor
        if not p.fresh_conv():
            raise IntegerizeError(f"{fn.where()}: residual add of '{p.name}' after its activation or another add; "
                                  "quantize it first")
        if r.shape != p.shape:
            raise IntegerizeError(f"{fn.where()}: residual shapes differ ({p.shape} vs {r.shape})")
        p.residual, p.node = r, fn.node
        return p
    a, r = b.level_of(fn, fn.inputs[0]).tensor, b.level_of(fn, fn.inputs[1]).tensor
    c = a.shape[2]

    def make(rq: ir.Requant, out: str, inputs: list[str]) -> ir.Op:
        return ir.Add(fn.path, inputs, out, rq)

    top = (1 << a.bits) - 1
    return Pending("add", fn.node, fn.path, make, [a.name], np.full(c, a.scale), np.full(c, -a.scale * a.zero),
                   np.full(c, top), top, a.shape, residual=r, info={"a_in": a.bits})


def _act(b: _Builder, fn: FNode) -> object:
    v = b.values.get(fn.inputs[0])
    lo, hi = fn.attrs["lo"], fn.attrs["hi"]
    if isinstance(v, Pending):
        p = b.pending_of(fn, fn.inputs[0])
        p.lo, p.hi, p.node = max(p.lo, lo), min(p.hi, hi), fn.node
        return p
    t = b.level_of(fn, fn.inputs[0]).tensor
    top = (1 << t.bits) - 1
    if t.dequantize(0) < lo or t.dequantize(top) > hi:
        raise IntegerizeError(f"{fn.where()}: activation on the quantized tensor '{t.name}' changes it; apply it "
                              "before the quantizer")
    return v


def _quant(b: _Builder, fn: FNode) -> Level:
    q: ActQuant = fn.module
    params = q.params()
    v = b.values.get(fn.inputs[0])
    if isinstance(v, _RawInput):
        if (params.bits, params.lo, params.hi) != (INPUT_BITS, 0.0, 1.0):
            raise IntegerizeError(f"{fn.where()}: the network input must be quantized to 8 bits over [0, 1], got "
                                  f"{params.bits} bits over [{params.lo}, {params.hi}]")
        t = b._tensor("input", _hwc(fn.shape), INPUT_BITS, params.scale, params.zero, fn.node)
        b.inputs.append(t.name)
        return Level(t)
    if isinstance(v, Pending):
        return b.materialize(b.pending_of(fn, fn.inputs[0]), params, fn.node)
    t = b.level_of(fn, fn.inputs[0]).tensor
    if (t.bits, t.scale, t.zero) == (params.bits, params.scale, params.zero):
        return Level(t)
    return b.materialize(_requant_levels(fn, t), params, fn.node)


def _level_op(b: _Builder, fn: FNode) -> Level:
    xs = [b.level_of(fn, n).tensor for n in fn.inputs]
    x = xs[0]
    if fn.kind == "maxpool":
        op: ir.Op = ir.Pool(fn.path, [x.name], "", "max", fn.attrs["kernel"], fn.attrs["stride"], fn.attrs["pad"],
                            extra=tuple(fn.attrs.get("extra", (0, 0))))
    elif fn.kind == "upsample":
        op = ir.Upsample(fn.path, [x.name], "", fn.attrs["factor"])
    elif fn.kind == "select":  # channel split / shuffle: out[..., j] = x[..., index[j]], exactly
        return _select(b, fn, xs)
    else:
        for t in xs[1:]:
            if (t.bits, t.scale, t.zero) != (x.bits, x.scale, x.zero):
                raise IntegerizeError(f"{fn.where()}: concat inputs '{x.name}' and '{t.name}' have different level "
                                      "grids; they must share one quantizer (quantize_model arranges it)")
        op = ir.Concat(fn.path, [t.name for t in xs], "")
    out = b._tensor(fn.path, _hwc(fn.shape), x.bits, x.scale, x.zero, fn.node)
    op.output = out.name
    b.ops.append(op)
    return Level(out)


def select_conv(name: str, x: ir.Tensor, index: list[int], offset: int = 0, residual: str | None = None) -> ir.Conv:
    """A channel gather as a 1x1 convolution: ternary weights 1 at (j, index[j] − offset) and 0 elsewhere (the
    {-1, +1} codes of M-bit weights have no 0), requantized by v = S·1 + 0 (+ u_res·1), no shift, clamped to x's
    levels: output channel j is x's channel index[j] − offset when that is one of x's channels, else level 0 (plus
    the residual's channel j). Output levels equal input levels, on x's grid (bits, scale, zero)."""
    n, c = len(index), x.shape[2]
    w = np.zeros((n, c, 1, 1), dtype=np.int64)
    rows = [j for j, i in enumerate(index) if offset <= i < offset + c]
    w[rows, [index[j] - offset for j in rows], 0, 0] = 1
    top = (1 << x.bits) - 1
    one, zero = np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    rq = ir.Requant(one, zero, 0, 0, top, one.copy() if residual is not None else None)
    return ir.Conv(name, [x.name] + ([residual] if residual is not None else []), "", weights=w, ternary=True,
                   requant=rq)


def _select(b: _Builder, fn: FNode, xs: list[ir.Tensor]) -> Level:
    """Channel gather over the concatenation of `xs`: one selection convolution per input that contributes, each
    adding the previous one's output as its residual (every output channel has exactly one source, the others add
    level 0), so a concat that is not whole lane slices never has to be stored."""
    for t in xs[1:]:
        if (t.bits, t.scale, t.zero) != (xs[0].bits, xs[0].scale, xs[0].zero):
            raise IntegerizeError(f"{fn.where()}: gathered tensors '{xs[0].name}' and '{t.name}' have different level "
                                  "grids; they must share one quantizer (quantize_model arranges it)")
    index, offsets = fn.attrs["index"], np.cumsum([0, *fn.attrs["sizes"]])
    used = [k for k, x in enumerate(xs) if any(offsets[k] <= i < offsets[k + 1] for i in index)]
    prev: ir.Tensor | None = None
    for n, k in enumerate(used):
        x, last = xs[k], n == len(used) - 1
        name = fn.path if last else f"{fn.path}.from{k}"
        op = select_conv(name, x, index, int(offsets[k]), prev.name if prev is not None else None)
        out = b._tensor(name, _hwc(fn.shape), x.bits, x.scale, x.zero, fn.node)  # (the last one is the node's)
        op.output = out.name
        b.ops.append(op)
        b.layers[op.name] = {"w_bits": "T", "a_in": x.bits, "acc_bound": (1 << x.bits) - 1, "kind": "conv",
                             "out": out.name, "a_out": x.bits, "requant_error": 0.0, "select": True}
        b._check_hw(op)
        prev = out
    return Level(prev)


def _visit(b: _Builder, fn: FNode) -> object:
    kind = fn.kind
    if kind == "input":
        return _RawInput()
    if kind == "quant":
        return _quant(b, fn)
    if kind in ("conv", "linear"):
        if not isinstance(fn.module, (QuantConv2d, QuantLinear)):
            raise IntegerizeError(f"{fn.where()}: float layer in the model; run quantize_model first")
        return _conv_pending(b, fn, b.level_of(fn, fn.inputs[0]).tensor)
    if kind == "bn":
        if isinstance(b.values.get(fn.inputs[0]), Pending):
            return _bn(fn, b.pending_of(fn, fn.inputs[0]))
        # BatchNorm of a level tensor (after a concat, DenseNet): a per-channel affine requantization of its own,
        # POOL sum over a 1x1 window + REQUANT with the folded scale and shift
        x = b.level_of(fn, fn.inputs[0]).tensor
        return _bn(fn, _avgpool(FNode(fn.node, "avgpool", fn.path, attrs={"kernel": 1, "stride": 1, "pad": 0},
                                      shape=fn.shape), x), standalone=True)
    if kind == "add":
        return _add(b, fn)
    if kind == "act":
        return _act(b, fn)
    if kind == "avgpool":
        return _avgpool(fn, b.level_of(fn, fn.inputs[0]).tensor)
    if kind in ("maxpool", "upsample", "cat", "select"):
        return _level_op(b, fn)
    if kind in ("flatten", "identity"):
        v = b.values.get(fn.inputs[0])
        if isinstance(v, Pending):
            b.pending_of(fn, fn.inputs[0]).node = fn.node
        return v
    if kind == "host":
        return _Host(fn)
    return None  # meta nodes (sizes)


# --- host ops and outputs ------------------------------------------------------------------------------------


def _as_tensor(b: _Builder, node: fx.Node) -> ir.Tensor:
    """The IR tensor for a non-host value (int32 for an unquantized layer output)."""
    v = b.values.get(node)
    if isinstance(v, Pending):
        v = b.materialize(b.pending_of(b.cap.of(node), node), None, node)
        b.values[node] = v
    if isinstance(v, _RawInput):
        raise IntegerizeError(f"node '{node.name}': the raw input reaches an output without being quantized")
    if not isinstance(v, Level):
        raise IntegerizeError(f"node '{node.name}' has no integer value")
    return v.tensor


def _host_op(b: _Builder, target: fx.Node) -> ir.Tensor:
    """One HostOp computing `target` in torch from the IR tensors it depends on."""
    needed, frontier, stack = set(), [], [target]
    while stack:
        n = stack.pop()
        if n in needed or n in frontier:
            continue
        if isinstance(b.values.get(n), _Host) or b.cap.of(n).kind == "meta":
            needed.add(n)
            stack.extend(b.cap.of(n).node.all_input_nodes)
        else:
            frontier.append(n)
    frontier = [n for n in b.cap.gm.graph.nodes if n in frontier]
    ins = [_as_tensor(b, n) for n in frontier]
    sub = fx.Graph()
    env = {n: sub.placeholder(n.name) for n in frontier}
    for n in b.cap.gm.graph.nodes:
        if n in needed:
            env[n] = sub.node_copy(n, lambda a: env[a])
    sub.output(env[target])
    module = fx.GraphModule(b.cap.gm, sub)
    p = next(b.cap.gm.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    shapes = [tuple(n.meta["tensor_meta"].shape) for n in frontier]

    def run(*arrays: np.ndarray) -> np.ndarray:
        args = [torch.from_numpy(t.dequantize(a)).permute(2, 0, 1).reshape(s).to(dtype)
                for t, a, s in zip(ins, arrays, shapes, strict=True)]
        with torch.no_grad():
            return module(*args)[0].detach().cpu().numpy()

    fn = b.cap.of(target)
    out_shape = tuple(fn.shape[1:]) if fn.shape else ()
    out = b._tensor(fn.path, out_shape, ir.INT32, 1.0, 0.0, target)
    what = type(fn.module).__name__ if fn.module is not None else getattr(target.target, "__name__", str(target.target))
    b.ops.append(ir.HostOp(fn.path, [t.name for t in ins], out.name, run, f"'{what}' is not an accelerator op"))
    return out


def _outputs(b: _Builder) -> list[str]:
    names = []
    for node in b.cap.outputs:
        v = b.values.get(node)
        t = _host_op(b, node) if isinstance(v, _Host) else _as_tensor(b, node)
        names.append(t.name)
    return names


# --- entry points --------------------------------------------------------------------------------------------


def to_ir(qat_model: nn.Module, input_shape: tuple[int, ...] | None = None, hw: object | None = None,
          progress: ir.Progress | None = None) -> ir.Graph:
    """The integer IR graph of a QAT model (eval semantics: BatchNorm running statistics).

    `input_shape` defaults to the shape quantize_model traced with. With `hw` (an isa.hwconfig.HwConfig)
    each convolution also passes the hardware-specific accumulator / constant range checks.
    `progress(done, total, module path)` is called per captured node.
    """
    info = getattr(qat_model, "meta", {}).get("bitbranch", {})
    shape = tuple(input_shape or info.get("input_shape") or ())
    if not shape:
        raise IntegerizeError("to_ir needs input_shape=(1, C, H, W)")
    cap = capture(qat_model, shape)
    b = _Builder(cap, hw)
    with torch.no_grad():
        for fn in ir.steps(cap.nodes, progress, lambda f: f.path):
            if fn.kind != "output":
                b.values[fn.node] = _visit(b, fn)
        outputs = _outputs(b)
    if not b.inputs:
        raise IntegerizeError("the network input is not quantized (no input quantizer); build the model with "
                              "quantize_model")
    host = [{"name": op.name, "inputs": op.inputs, "output": op.output, "reason": op.reason}
            for op in b.ops if isinstance(op, ir.HostOp)]
    meta = {"input_shape": list(shape), "precision": info.get("precision", ""),
            "input": {"tensor": b.inputs[0], "scale": 1 / 255, "levels": "u = round_half_up(255·x), x in [0, 1]"},
            "layers": b.layers, "logits_scale": b.logits, "host_ops": host, "fx_nodes": b.fx_nodes}
    for h in host:
        print(f"host op: {h['name']} ({h['reason']}) runs in torch after the accelerator", file=sys.stderr)
    # windows over the POOL unit's 15x15 become two pooling ops before the golden model runs (compiler/bigpool.py)
    return split_large_pools(ir.Graph(b.tensors, b.ops, b.inputs, outputs, meta))

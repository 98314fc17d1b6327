"""Lowering of one quantized convolution layer: weight packing, exact hardware constants, compute.

A `ConvLayer` is the integer description of a layer (levels in, odd weight codes or ternary values,
golden requant constants). `lower_conv` loads its weights and constants once, then lets
`compiler.tiling` cut the output into row tiles; each tile is one BGEMM over all column tiles and
one REQUANT per column tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from isa.hwconfig import HwConfig
from isa.numeric import code_to_level, ternary_to_planes
from isa.rounding import MAX_SHIFT
from isa.spec import Buffer, Dest, WeightMode

from .builder import ProgramBuilder
from .golden import conv_sum, requant_levels
from .tiling import ComputeInsn, LoweringError, Tile, TiledLayer, Window, emit_tiled_layer, out_size, tile_rows


@dataclass
class ConvLayer:
    """Integer description of a convolution + requantization (the golden semantics)."""

    name: str
    in_shape: tuple[int, int, int]  # (H, W, Cin) of input levels
    kbits: int  # input activation bits
    weights: np.ndarray  # (Cout, Cin, kh, kw): odd M-bit codes, or {-1, 0, 1} when ternary
    mbits: int
    mul: np.ndarray  # (Cout,) golden requant multiplier
    bias: np.ndarray  # (Cout,) golden requant bias
    shift: int
    kout: int  # output activation bits
    stride: int = 1
    pad: int = 0
    dil: int = 1
    ternary: bool = False
    lo: int = 0
    hi: int | None = None  # default: 2^kout - 1

    @property
    def cout(self) -> int:
        return self.weights.shape[0]

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weights.shape[2], self.weights.shape[3]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, _ = self.in_shape
        kh, kw = self.kernel
        ho = out_size(h, kh, self.stride, self.pad, self.dil)
        return ho, out_size(w, kw, self.stride, self.pad, self.dil), self.cout

    @property
    def clamp_hi(self) -> int:
        return (1 << self.kout) - 1 if self.hi is None else self.hi

    def golden(self, u: np.ndarray) -> np.ndarray:
        """Output levels (Ho, Wo, Cout) for input levels u (H, W, Cin)."""
        s = conv_sum(u, self.weights, self.stride, self.pad, self.dil)
        return requant_levels(s, self.mul, self.bias, self.shift, self.lo, self.clamp_hi)


@dataclass(frozen=True)
class ConvPlan:
    """Derived sizes of a lowered layer (entries, words, tiles)."""

    win: Window
    cw: int  # input channel words
    ctiles: int  # column tiles of C output channels computed by the array
    slices: int  # C-lane slices of the output words; slices past ctiles are written with level 0
    tile_rows: int  # output rows per tile
    wgt_entries: int

    @property
    def const_entries(self) -> int:
        """One CONST entry per column tile, plus an all-zero entry that fills unused output slices."""
        return self.ctiles + int(self.slices > self.ctiles)


def plan_conv(layer: ConvLayer, hw: HwConfig) -> ConvPlan:
    h, w, cin = layer.in_shape
    kh, kw = layer.kernel
    cw, cw_out = math.ceil(cin / hw.word_bits), math.ceil(layer.cout / hw.word_bits)
    ctiles, slices = math.ceil(layer.cout / hw.array_cols), cw_out * hw.slices_per_word
    win = Window(h, w, kh, kw, layer.stride, layer.pad, layer.dil, cw * layer.kbits, cw_out * layer.kout)
    wgt_entries = ctiles * kh * kw * cw * layer.mbits
    if wgt_entries > hw.wgt_entries:
        raise LoweringError(
            f"layer '{layer.name}': weights need {wgt_entries} WGT entries, {hw.name} has {hw.wgt_entries} "
            "(splitting the reduction across weight tiles is not implemented yet)"
        )
    if ctiles > 0xFF:
        raise LoweringError(f"layer '{layer.name}': {ctiles} column tiles exceed the 8-bit ctiles field")
    if slices > ctiles and layer.lo != 0:
        raise LoweringError(f"layer '{layer.name}': padded output channels need lo = 0 (level 0 in pad bits)")
    return ConvPlan(win, cw, ctiles, slices, tile_rows(layer.name, win, hw, win.out_w * ctiles), wgt_entries)



# --- packing ----------------------------------------------------------------------------------------


def weight_planes(layer: ConvLayer) -> np.ndarray:
    """(Cout, Cin, kh, kw, M) bit-planes (uint8): level bits of M-bit codes, or ternary planes."""
    if layer.ternary:
        return np.moveaxis(ternary_to_planes(layer.weights), 0, -1).astype(np.uint8)
    u = code_to_level(layer.weights, layer.mbits).astype(np.int64)
    return ((u[..., None] >> np.arange(layer.mbits)) & 1).astype(np.uint8)


def pack_weights(layer: ConvLayer, plan: ConvPlan, hw: HwConfig) -> bytes:
    """WGT image: entries [ctile][ky][kx][cw][plane], each C lanes x W bits (lane l = channel t*C + l)."""
    cout, cin, kh, kw = layer.weights.shape
    c, wb, m = hw.array_cols, hw.word_bits, layer.mbits
    bits = np.zeros((plan.ctiles * c, plan.cw * wb, kh, kw, m), dtype=np.uint8)  # channel pads stay 0
    bits[:cout, :cin] = weight_planes(layer)
    bits = bits.reshape(plan.ctiles, c, plan.cw, wb, kh, kw, m).transpose(0, 4, 5, 2, 6, 1, 3)
    return np.packbits(bits, axis=-1, bitorder="little").tobytes()


def hardware_constants(layer: ConvLayer, plan: ConvPlan, hw: HwConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(mul, bias, shift) for REQUANT so that the hardware result equals `layer.golden` exactly.

    The array computes R_hw = Σ qa·w' + pad, where qa = 2u − (2^K−1), w' = g·w (g = 2 for ternary
    planes, else 1) and `pad` = every channel-padding bit's +coef product. With S = Σ u·w:
    2g·S = R + (2^K−1)·g·Σw, so v = R_hw·mul + bias_hw with bias_hw = ((2^K−1)·g·Σw − pad)·mul + 2g·bias
    equals 2g·(S·mul + bias), and round_shift(v, shift + log2(2g)) = round_shift(S·mul + bias, shift).
    """
    g = 2 if layer.ternary else 1
    kh, kw = layer.kernel
    amax = (1 << layer.kbits) - 1
    wcoef_sum = 2 if layer.ternary else (1 << layer.mbits) - 1
    pad_bits = kh * kw * (plan.cw * hw.word_bits - layer.in_shape[2])
    pad = pad_bits * amax * wcoef_sum
    wsum = layer.weights.astype(np.int64).sum(axis=(1, 2, 3))
    mul = np.asarray(layer.mul, dtype=np.int64)
    bias_hw = (amax * g * wsum - pad) * mul + 2 * g * np.asarray(layer.bias, dtype=np.int64)
    shift = layer.shift + (2 if layer.ternary else 1)
    check_ranges(layer, plan, hw, mul, bias_hw, shift)
    return mul, bias_hw, shift


def check_ranges(layer: ConvLayer, plan: ConvPlan, hw: HwConfig, mul: np.ndarray, bias: np.ndarray, shift: int) -> None:
    """Refuse layers whose accumulators could leave int32 or whose requant could leave int64."""
    kh, kw = layer.kernel
    wcoef_sum = 2 if layer.ternary else (1 << layer.mbits) - 1
    acc_bound = kh * kw * plan.cw * hw.word_bits * ((1 << layer.kbits) - 1) * wcoef_sum
    if acc_bound >= 1 << 31:
        raise LoweringError(f"layer '{layer.name}': |accumulator| can reach {acc_bound} >= 2^31")
    if np.abs(mul).max(initial=0) >= 1 << 31:
        raise LoweringError(f"layer '{layer.name}': requant multiplier does not fit int32")
    if acc_bound * int(np.abs(mul).max(initial=0)) + int(np.abs(bias).max(initial=0)) >= 1 << 62:
        raise LoweringError(f"layer '{layer.name}': requantization could overflow int64")
    if shift > MAX_SHIFT:
        raise LoweringError(f"layer '{layer.name}': shift {shift} exceeds {MAX_SHIFT}")


def pack_constants(mul: np.ndarray, bias: np.ndarray, plan: ConvPlan, hw: HwConfig) -> bytes:
    """CONST image: per column tile C x int32 mul, C x int32 rmul (0), C x int64 bias; padded lanes 0."""
    lanes = plan.const_entries * hw.array_cols
    m, b = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    m[: len(mul)], b[: len(bias)] = mul, bias
    out = bytearray()
    for t in range(plan.const_entries):
        sl = slice(t * hw.array_cols, (t + 1) * hw.array_cols)
        out += m[sl].astype("<i4").tobytes() + np.zeros(hw.array_cols, "<i4").tobytes() + b[sl].astype("<i8").tobytes()
    return bytes(out)


# --- emission ----------------------------------------------------------------------------------------


def conv_tile(layer: ConvLayer, plan: ConvPlan, hw: HwConfig, shift: int, t: Tile) -> list[ComputeInsn]:
    """One BGEMM over all column tiles, then one REQUANT per column tile into its OUT lane slice."""
    win = plan.win
    n = t.rows * win.out_w
    insns = [ComputeInsn("bgemm", dict(
        acc=t.acc, inp=t.inp, wgt=0, oh=t.rows, ow=win.out_w, kh=win.kh, kw=win.kw, stride=win.stride, dil=win.dil,
        cw=plan.cw, ctiles=plan.ctiles, irow=win.irow, ipix=win.pix, kbits=layer.kbits, mbits=layer.mbits,
        wmode=WeightMode.EQUAL if layer.ternary else WeightMode.POW2), reads_inp=True)]
    for c in range(plan.slices):
        word, sl = divmod(c, hw.slices_per_word)
        computed = c < plan.ctiles  # else: any ACC region times the all-zero constants gives level 0
        insns.append(ComputeInsn("requant", dict(
            dest=Dest.OUT, acc=t.acc + c * n if computed else t.acc, n=n, const=min(c, plan.ctiles),
            out=t.out + word * layer.kout, ostride=win.pix_out,
            slice=sl, kout=layer.kout, shift=shift, lo=layer.lo, hi=layer.clamp_hi), writes_out=True))
    return insns


def lower_conv(b: ProgramBuilder, layer: ConvLayer, in_addr: int, out_addr: int, first: bool, last: bool) -> dict:
    """Append the layer's instructions; returns a layer-map record for the manifest."""
    hw = b.hw
    plan = plan_conv(layer, hw)
    mul, bias, shift = hardware_constants(layer, plan, hw)
    weights, consts = pack_weights(layer, plan, hw), pack_constants(mul, bias, plan, hw)
    preloads = [
        dict(buf=Buffer.WGT, sram=0, dram=b.alloc(len(weights), weights), rows=1, len=plan.wgt_entries,
             dstride=len(weights)),
        dict(buf=Buffer.CONST, sram=0, dram=b.alloc(len(consts), consts), rows=1, len=plan.const_entries,
             dstride=len(consts)),
    ]
    tiled = TiledLayer(layer.name, plan.win, plan.tile_rows, in_addr, out_addr,
                       lambda t: conv_tile(layer, plan, hw, shift, t), preloads)
    start, end, tiles = emit_tiled_layer(b, tiled, first, last)
    kh, kw = layer.kernel
    ho, wo, cout = layer.out_shape
    return {
        "name": layer.name,
        "kind": "conv",
        "instructions": [start, end],
        "in_shape": list(layer.in_shape),
        "out_shape": [ho, wo, cout],
        "bits": {"w": layer.mbits, "a_in": layer.kbits, "a_out": layer.kout, "ternary": layer.ternary},
        "kernel": [kh, kw],
        "stride": layer.stride,
        "pad": layer.pad,
        "tiles": tiles,
        "tile_rows": plan.tile_rows,
        "macs": ho * wo * cout * kh * kw * layer.in_shape[2],
    }

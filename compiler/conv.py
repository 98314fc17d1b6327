"""Lowering of one quantized convolution layer to the ISA: packing, hardware constants, tiling, tokens.

A `ConvLayer` is the integer description of a layer (levels in, odd weight codes, golden requant
constants). `lower_conv` appends its program to a ProgramBuilder: weights and constants are loaded
once, then the output is produced in tiles of whole output rows, double-buffered in INP, ACC and OUT
so that load, compute and store overlap. Dependency tokens:

    load  --(INP tile i ready)-->        compute   (every input tile)
    compute --(INP buffer i%2 free)-->   load      (tile i's BGEMM frees the buffer for tile i+2)
    compute --(OUT tile i ready)-->      store     (last REQUANT of tile i)
    store --(OUT buffer i%2 free)-->     compute   (consumed by tile i+2's first REQUANT, and at the
                                                    end of the layer by SYNCs, so layers never mix)
At a layer boundary compute sends one token to load, which the next layer's weight LOAD consumes:
the next layer reads its input only after every store of this one has finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from isa.hwconfig import HwConfig
from isa.numeric import code_to_level, ternary_to_planes
from isa.rounding import MAX_SHIFT
from isa.spec import Buffer, Dest, Unit, WeightMode

from .builder import ProgramBuilder
from .golden import conv_sum, requant_levels


class LoweringError(ValueError):
    """A layer cannot be mapped onto the configured hardware; the message names the layer."""


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
        span_h, span_w = (kh - 1) * self.dil + 1, (kw - 1) * self.dil + 1
        return (h + 2 * self.pad - span_h) // self.stride + 1, (w + 2 * self.pad - span_w) // self.stride + 1, self.cout

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

    cw: int  # input channel words
    cw_out: int  # output channel words
    ctiles: int  # column tiles (output channels padded to whole output words)
    pix: int  # INP entries per input pixel
    pix_out: int  # OUT entries per output pixel
    irow: int  # INP entries per (padded) input tile row
    tile_rows: int  # output rows per tile
    wgt_entries: int


def plan_conv(layer: ConvLayer, hw: HwConfig) -> ConvPlan:
    h, w, cin = layer.in_shape
    ho, wo, cout = layer.out_shape
    kh, kw = layer.kernel
    cw, cw_out = math.ceil(cin / hw.word_bits), math.ceil(cout / hw.word_bits)
    ctiles = cw_out * hw.slices_per_word
    pix, pix_out = cw * layer.kbits, cw_out * layer.kout
    irow = (w + 2 * layer.pad) * pix
    wgt_entries = ctiles * kh * kw * cw * layer.mbits
    if wgt_entries > hw.wgt_entries:
        raise LoweringError(
            f"layer '{layer.name}': weights need {wgt_entries} WGT entries, {hw.name} has {hw.wgt_entries} "
            "(splitting the reduction across weight tiles is not implemented yet)"
        )
    if ctiles > 1 << 8:
        raise LoweringError(f"layer '{layer.name}': {ctiles} column tiles exceed the 8-bit ctiles field")
    fits = [
        th
        for th in range(1, ho + 1)
        if ((th - 1) * layer.stride + (kh - 1) * layer.dil + 1) * irow <= hw.inp_entries // 2
        and th * wo * ctiles <= hw.acc_entries // 2
        and th * wo * pix_out <= min(hw.out_entries // 2, 0xFFFF)
        and th * wo <= 0xFFFF
    ]
    if not fits or w * pix > 0xFFFF:
        raise LoweringError(
            f"layer '{layer.name}': one output row ({wo} pixels x {cout} channels, input row {irow} INP entries) "
            f"does not fit half of the buffers of '{hw.name}' (tiling along the width is not implemented yet)"
        )
    return ConvPlan(cw, cw_out, ctiles, pix, pix_out, irow, max(fits), wgt_entries)


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
    if plan.ctiles * hw.array_cols > layer.cout and layer.lo != 0:
        raise LoweringError(f"layer '{layer.name}': padded output channels need lo = 0 (level 0 in pad bits)")


def pack_constants(mul: np.ndarray, bias: np.ndarray, plan: ConvPlan, hw: HwConfig) -> bytes:
    """CONST image: per column tile C x int32 mul, C x int32 rmul (0), C x int64 bias; padded lanes 0."""
    lanes = plan.ctiles * hw.array_cols
    m, b = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    m[: len(mul)], b[: len(bias)] = mul, bias
    out = bytearray()
    for t in range(plan.ctiles):
        sl = slice(t * hw.array_cols, (t + 1) * hw.array_cols)
        out += m[sl].astype("<i4").tobytes() + np.zeros(hw.array_cols, "<i4").tobytes() + b[sl].astype("<i8").tobytes()
    return bytes(out)


# --- emission ----------------------------------------------------------------------------------------


def lower_conv(b: ProgramBuilder, layer: ConvLayer, in_addr: int, out_addr: int, first: bool, last: bool) -> dict:
    """Append the layer's instructions; returns a layer-map record for the manifest."""
    hw = b.hw
    plan = plan_conv(layer, hw)
    mul, bias, shift = hardware_constants(layer, plan, hw)
    wgt_addr = b.alloc(len(data := pack_weights(layer, plan, hw)), data)
    const_addr = b.alloc(len(data := pack_constants(mul, bias, plan, hw)), data)
    h, w, _ = layer.in_shape
    ho, wo, _ = layer.out_shape
    kh, kw = layer.kernel
    e_in, e_w, e_c = hw.entry_bytes("inp"), hw.entry_bytes("wgt"), hw.entry_bytes("const")
    first_insn = len(b.program)

    b.emit("load", buf=Buffer.WGT, sram=0, dram=wgt_addr, rows=1, len=plan.wgt_entries,
           dstride=plan.wgt_entries * e_w, pop_next=int(not first))
    b.emit("load", buf=Buffer.CONST, sram=0, dram=const_addr, rows=1, len=plan.ctiles, dstride=plan.ctiles * e_c)
    tiles = list(range(0, ho, plan.tile_rows))
    for i, y0 in enumerate(tiles):
        th = min(plan.tile_rows, ho - y0)
        half = i % 2
        inp_base, acc_base = half * (hw.inp_entries // 2), half * (hw.acc_entries // 2)
        out_base = half * (hw.out_entries // 2)
        iy0 = y0 * layer.stride - layer.pad
        iy1 = iy0 + (th - 1) * layer.stride + (kh - 1) * layer.dil + 1
        pad_top, pad_bottom = max(0, -iy0), max(0, iy1 - h)
        b.emit("load", buf=Buffer.INP, sram=inp_base, dram=in_addr + max(iy0, 0) * w * plan.pix * e_in,
               rows=min(iy1, h) - max(iy0, 0), len=w * plan.pix, dstride=w * plan.pix * e_in,
               pad_top=pad_top, pad_bottom=pad_bottom, pad_left=layer.pad * plan.pix, pad_right=layer.pad * plan.pix,
               pop_next=int(i >= 2), push_next=1)
        b.emit("bgemm", acc=acc_base, inp=inp_base, wgt=0, oh=th, ow=wo, kh=kh, kw=kw, stride=layer.stride,
               dil=layer.dil, cw=plan.cw, ctiles=plan.ctiles, irow=plan.irow, ipix=plan.pix, kbits=layer.kbits,
               mbits=layer.mbits, wmode=WeightMode.EQUAL if layer.ternary else WeightMode.POW2,
               pop_prev=1, push_prev=int(i + 2 < len(tiles)))
        for t in range(plan.ctiles):
            word, sl = divmod(t, hw.slices_per_word)
            b.emit("requant", dest=Dest.OUT, acc=acc_base + t * th * wo, n=th * wo, const=t,
                   out=out_base + word * layer.kout, ostride=plan.pix_out, slice=sl, kout=layer.kout,
                   shift=shift, lo=layer.lo, hi=layer.clamp_hi,
                   pop_next=int(t == 0 and i >= 2), push_next=int(t == plan.ctiles - 1))
        b.emit("store", buf=Buffer.OUT, sram=out_base, dram=out_addr + y0 * wo * plan.pix_out * e_in, rows=1,
               len=th * wo * plan.pix_out, dstride=th * wo * plan.pix_out * e_in, pop_prev=1, push_prev=1)
    outstanding = min(len(tiles), 2)
    for k in range(outstanding):
        b.emit("sync", unit=Unit.COMPUTE, pop_next=1, push_prev=int(k == outstanding - 1 and not last))
    return {
        "name": layer.name,
        "kind": "conv",
        "instructions": [first_insn, len(b.program)],
        "in_shape": list(layer.in_shape),
        "out_shape": list(layer.out_shape),
        "bits": {"w": layer.mbits, "a_in": layer.kbits, "a_out": layer.kout, "ternary": layer.ternary},
        "kernel": [kh, kw],
        "stride": layer.stride,
        "pad": layer.pad,
        "tiles": len(tiles),
        "tile_rows": plan.tile_rows,
        "macs": ho * wo * layer.cout * kh * kw * layer.in_shape[2],
    }

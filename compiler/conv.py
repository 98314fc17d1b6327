"""Lowering of an IR convolution: weight packing, exact hardware constants, groups, tiles, compute.

Each row tile is one BGEMM over the group's column tiles and one REQUANT per C-lane slice of the
group's output words (slices past the last column tile are written with level 0 through an all-zero
CONST entry, so channel padding stays level 0). A residual operand is loaded per tile into the second
half of INP and added by REQUANT. int32 outputs (logits) are requantized in place in ACC and stored
from there. Output channel groups split layers whose weights do not fit WGT.

Grouped / depthwise convolutions (`GroupLayout`): column tiles whose lanes read the same input channel
words share one BGEMM with an offset `inp` and a smaller `cw`; where other groups' channels share those
words their weights are made to contribute zero (ternary code 0, or two cancelling M-bit passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from isa.hwconfig import HwConfig
from isa.numeric import code_to_level, ternary_to_planes
from isa.rounding import MAX_SHIFT
from isa.spec import Buffer, Dest, WeightMode

from . import ir
from .builder import ProgramBuilder
from .tiling import (
    ComputeInsn,
    LayerContext,
    LoweringError,
    Tile,
    TiledLayer,
    Window,
    emit_tiled_layer,
    fewest_passes,
    first_tile_rows,
    tile_needs,
    tile_rows,
)


@dataclass(frozen=True)
class OutDest:
    """Where a layer's output pixels go in DRAM: a tensor of `pix` entries per pixel, at a word offset."""

    addr: int
    pix: int
    word_offset: int = 0


@dataclass(frozen=True)
class WordSpan:
    """Column tiles that read the same input channel words: one BGEMM (per pass) with an offset `inp`."""

    ctiles: range
    word0: int  # first input channel word read
    cw: int  # channel words read


@dataclass(frozen=True)
class GroupLayout:
    """Which input channel words each column tile reads, for grouped (and plain, groups = 1) convolutions.

    A column tile reads the words spanned by the input channels of its lanes' groups. When some lane's
    group does not cover every real channel of those words (`masked`: depthwise packs 64 groups per word),
    the other channels' weights must contribute zero: ternary weights use the code 0 (planes (1, 0)), M-bit
    codes run two accumulating passes whose out-of-group (and channel-padding) bits are all 1 and then all
    0, so those products cancel and the in-group sum is doubled (`factor` 2, like ternary planes).
    """

    spans: tuple[WordSpan, ...]
    ctile_words: tuple[tuple[int, int], ...]  # per column tile: (first word, words)
    masked: bool
    passes: int  # BGEMMs per span: 2 for masked M-bit codes, else 1
    factor: int  # g: the hardware sum is 2g·S − (2^K−1)·g·Σw (see hardware_constants)

    @property
    def max_cw(self) -> int:
        return max(cw for _, cw in self.ctile_words)


def lane_channels(op: ir.Conv, cin: int) -> tuple[int, int]:
    """(input channels per group, output channels per group), checked against the weights' shape."""
    cout, cin_g, _, _ = op.weights.shape
    if op.groups < 1 or cin % op.groups or cout % op.groups or cin // op.groups != cin_g:
        raise LoweringError(f"layer '{op.name}': groups={op.groups} does not divide {cin} input / {cout} output "
                            f"channels into weights of {cin_g} input channels")
    return cin_g, cout // op.groups


def group_layout(op: ir.Conv, cin: int, hw: HwConfig) -> GroupLayout:
    """The GroupLayout of `op` on an input of `cin` channels."""
    cout = op.weights.shape[0]
    cin_g, cout_g = lane_channels(op, cin)
    c, wb = hw.array_cols, hw.word_bits
    words, masked = [], False
    for t in range(math.ceil(cout / c)):
        gs = range((t * c) // cout_g, (min((t + 1) * c, cout) - 1) // cout_g + 1)  # groups of the tile's lanes
        lo, hi = gs.start * cin_g, gs.stop * cin_g
        w0, w1 = lo // wb, math.ceil(hi / wb)
        words.append((w0, w1 - w0))
        masked |= len(gs) > 1 or lo != w0 * wb or hi != min(w1 * wb, cin)
    spans: list[WordSpan] = []
    for t, (w0, n) in enumerate(words):
        if spans and (spans[-1].word0, spans[-1].cw) == (w0, n):
            spans[-1] = WordSpan(range(spans[-1].ctiles.start, t + 1), w0, n)
        else:
            spans.append(WordSpan(range(t, t + 1), w0, n))
    passes = 2 if masked and not op.ternary else 1
    factor = 2 if op.ternary or passes == 2 else 1
    return GroupLayout(tuple(spans), tuple(words), masked, passes, factor)


def span_blocks(layout: GroupLayout, cts: range, kh: int, kw: int, mbits: int
                ) -> list[tuple[range, WordSpan, list[int]]]:
    """The BGEMMs of column tiles `cts`: (tiles, span, WGT offset of each pass), in WGT image order
    (per span piece: pass 0 of its tiles, then pass 1)."""
    out, offset = [], 0
    for span in layout.spans:
        piece = range(max(span.ctiles.start, cts.start), min(span.ctiles.stop, cts.stop))
        if len(piece) == 0:
            continue
        size = len(piece) * kh * kw * span.cw * mbits
        out.append((piece, span, [offset + p * size for p in range(layout.passes)]))
        offset += layout.passes * size
    return out


@dataclass(frozen=True)
class ConvPlan:
    """Derived sizes of a lowered convolution."""

    win: Window
    cw: int  # input channel words
    cw_out: int  # output channel words
    ctiles: int  # column tiles of C output channels
    group_words: int  # output words per group
    groups: int  # weight preload groups (not the convolution's groups: see layout)
    wgt_per_ctile: int  # WGT entries of the largest column tile (all passes)
    tile_rows: int
    first_rows: int  # rows of the first tile (of group 0)
    res_pix: int  # INP entries per residual pixel (0: no residual)
    halves: bool  # every group fits half of WGT and CONST (groups and layers alternate halves)
    layout: GroupLayout

    def group_ctiles(self, g: int, hw: HwConfig) -> range:
        spw = hw.slices_per_word
        return range(g * self.group_words * spw, min(self.ctiles, (g + 1) * self.group_words * spw))

    def group_word_range(self, g: int) -> range:
        return range(g * self.group_words, min(self.cw_out, (g + 1) * self.group_words))


def plan_conv(op: ir.Conv, x: ir.Tensor, out: ir.Tensor, res: ir.Tensor | None, hw: HwConfig) -> ConvPlan:
    h, w, cin = x.shape
    cout, _, kh, kw = op.weights.shape
    cw, cw_out = math.ceil(cin / hw.word_bits), math.ceil(cout / hw.word_bits)
    ctiles, spw = math.ceil(cout / hw.array_cols), hw.slices_per_word
    layout = group_layout(op, cin, hw)
    wgt_per_ctile = kh * kw * layout.max_cw * op.mbits * layout.passes
    group_words, halves = group_size(cw_out, ctiles, wgt_per_ctile, hw)
    if group_words == 0:
        raise LoweringError(
            f"layer '{op.name}': one output word of weights needs {wgt_per_ctile * spw} WGT entries, {hw.name} has "
            f"{hw.wgt_entries} (splitting the reduction across weight tiles is not implemented yet)"
        )
    if min(ctiles, group_words * spw) > 0xFF:
        raise LoweringError(f"layer '{op.name}': {ctiles} column tiles exceed the 8-bit ctiles field")
    out_int32 = op.requant.out_int32
    kout = 0 if out_int32 else out.bits
    if cw_out * spw > ctiles and not out_int32 and op.requant.lo != 0:
        raise LoweringError(f"layer '{op.name}': padded output channels need lo = 0 (level 0 in pad bits)")
    win = Window(h, w, kh, kw, op.stride, op.pad, op.dil, cw * x.bits, group_words * kout)
    res_pix = math.ceil(res.shape[2] / hw.word_bits) * res.bits if res is not None else 0
    parts = 2 if res is not None else 1
    acc = min(ctiles, group_words * spw)
    rows = tile_rows(op.name, win.out_h, lambda th: tile_needs(hw, win, th, parts, acc, res_pix))
    rows = fewest_passes(win.out_h, win.out_w, rows, hw.array_rows)
    first = first_tile_rows(win.out_h, win.out_w, rows, hw.array_rows)
    return ConvPlan(win, cw, cw_out, ctiles, group_words, math.ceil(cw_out / group_words), wgt_per_ctile, rows,
                    first, res_pix, halves, layout)


def group_size(cw_out: int, ctiles: int, wgt_per_ctile: int, hw: HwConfig) -> tuple[int, bool]:
    """Output words per group, and whether groups fit half of WGT/CONST (preferred: loads then overlap
    compute). 0 words when not even one output word fits. Groups are balanced: a group's ACC share
    (its column tiles x pixels) bounds the tile rows of every group, so the largest group sets them."""
    spw = hw.slices_per_word
    for wgt, const, halves in ((hw.wgt_entries // 2, hw.const_entries // 2, True),
                               (hw.wgt_entries, hw.const_entries, False)):
        if ctiles * wgt_per_ctile <= wgt and ctiles + 1 <= const:
            return cw_out, halves
        words = min(wgt // (wgt_per_ctile * spw), (const - 1) // spw)
        if words >= 1:  # as many groups as needed, of equal size: 4 + 4 words rather than 7 + 1
            return math.ceil(cw_out / math.ceil(cw_out / words)), halves
    return 0, False


def preload_groups(op: ir.Conv, graph: ir.Graph, hw: HwConfig) -> tuple[int, bool]:
    """(groups, halves) of the layer's weight preloads (see ConvPlan)."""
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    res = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
    plan = plan_conv(op, x, out, res, hw)
    return plan.groups, plan.halves


# --- packing ----------------------------------------------------------------------------------------


def weight_planes(op: ir.Conv) -> np.ndarray:
    """(Cout, Cin/groups, kh, kw, M) bit-planes (uint8): level bits of M-bit codes, or ternary planes."""
    if op.ternary:
        return np.moveaxis(ternary_to_planes(op.weights), 0, -1).astype(np.uint8)
    u = code_to_level(op.weights, op.mbits).astype(np.uint8)  # levels < 2^8: uint8 all the way (VGG fc6: 100 M)
    return (u[..., None] >> np.arange(op.mbits, dtype=np.uint8)) & 1


def masked_planes(op: ir.Conv, layout: GroupLayout, p: int) -> np.ndarray:
    """The M plane bits of every channel a tile reads outside its lanes' groups, in pass `p`.

    Unmasked layouts read only channel padding there: 0 bits (counted by `pad` in hardware_constants).
    Ternary: the code 0 = planes (1, 0). Two-pass M-bit codes: all 1 in pass 0, all 0 in pass 1 (cancel).
    """
    if not layout.masked:
        return np.zeros(op.mbits, np.uint8)
    if op.ternary:
        return np.array([1, 0], np.uint8)
    return np.full(op.mbits, 1 - p, np.uint8)


def pack_weights(op: ir.Conv, planes: np.ndarray, plan: ConvPlan, hw: HwConfig, cts: range) -> bytes:
    """WGT image of column tiles `cts` (`planes` = weight_planes(op)), in span_blocks order; per column tile
    and pass entries [ky][kx][cw][plane], each C lanes x W bits (lane l = output channel t*C + l)."""
    cout, cin_g, kh, kw = op.weights.shape
    c, wb, m, layout = hw.array_cols, hw.word_bits, op.mbits, plan.layout
    cout_g = cout // op.groups
    out = bytearray()
    for piece, span, _ in span_blocks(layout, cts, kh, kw, m):
        first, stop = piece.start * c, min(piece.stop * c, cout)  # the pieces' real output channels
        for p in range(layout.passes):
            bits = np.empty((len(piece) * c, span.cw * wb, kh, kw, m), dtype=np.uint8)
            bits[:] = masked_planes(op, layout, p)
            for g in range(first // cout_g, (stop - 1) // cout_g + 1):
                lanes = range(max(first, g * cout_g), min(stop, (g + 1) * cout_g))
                ch0 = g * cin_g - span.word0 * wb
                bits[lanes.start - first : lanes.stop - first, ch0 : ch0 + cin_g] = planes[lanes.start : lanes.stop]
            bits = bits.reshape(len(piece), c, span.cw, wb, kh, kw, m).transpose(0, 4, 5, 2, 6, 1, 3)
            out += np.packbits(bits, axis=-1, bitorder="little").tobytes()
    return bytes(out)


def hardware_constants(op: ir.Conv, x: ir.Tensor, layout: GroupLayout, hw: HwConfig):
    """(mul, rmul, bias, shift) for REQUANT so that the hardware result equals the IR's golden exactly.

    The array computes R_hw = Σ qa·w' + pad, where qa = 2u − (2^K−1), w' = g·w (g = layout.factor: 2 for
    ternary planes and two-pass masked layouts, else 1) and `pad` = every channel-padding bit's +coef
    product (0 when masked: padding bits cancel like other groups' channels). With S = Σ u·w:
    2g·S = R + (2^K−1)·g·Σw, so v = R_hw·mul + bias_hw (+ u_r·2g·rmul) with
    bias_hw = ((2^K−1)·g·Σw − pad)·mul + 2g·bias equals 2g·v_golden, and
    round_shift(2g·v_golden, shift + log2(2g)) = round_shift(v_golden, shift).
    """
    rq = op.requant
    g = layout.factor
    cout, cin_g, kh, kw = op.weights.shape
    amax = (1 << x.bits) - 1
    wcoef_sum = 2 if op.ternary else (1 << op.mbits) - 1
    lane_cw = np.repeat([cw for _, cw in layout.ctile_words], hw.array_cols)[:cout]
    pad = 0 if layout.masked else kh * kw * (lane_cw * hw.word_bits - cin_g) * amax * wcoef_sum
    wsum = op.weights.sum(axis=(1, 2, 3), dtype=np.int64)
    mul = np.asarray(rq.mul, dtype=np.int64)
    bias = (amax * g * wsum - pad) * mul + 2 * g * np.asarray(rq.bias, dtype=np.int64)
    rmul = 2 * g * np.asarray(rq.rmul, dtype=np.int64) if rq.rmul is not None else np.zeros_like(mul)
    shift = rq.shift + (2 * g).bit_length() - 1  # + log2(2g)
    acc_bound = layout.passes * kh * kw * layout.max_cw * hw.word_bits * amax * wcoef_sum
    if acc_bound >= 1 << 31:
        raise LoweringError(f"layer '{op.name}': |accumulator| can reach {acc_bound} >= 2^31")
    if max(np.abs(mul).max(initial=0), np.abs(rmul).max(initial=0)) >= 1 << 31:
        raise LoweringError(f"layer '{op.name}': requant multipliers do not fit int32")
    if acc_bound * int(np.abs(mul).max(initial=0)) + 255 * int(np.abs(rmul).max(initial=0)) + int(
        np.abs(bias).max(initial=0)
    ) >= 1 << 62:
        raise LoweringError(f"layer '{op.name}': requantization could overflow int64")
    if shift > MAX_SHIFT:
        raise LoweringError(f"layer '{op.name}': shift {shift} exceeds {MAX_SHIFT}")
    return mul, rmul, bias, shift


def pack_constants(mul: np.ndarray, rmul: np.ndarray, bias: np.ndarray, ctiles: range, zero_entry: bool,
                   hw: HwConfig) -> bytes:
    """CONST entries for column tiles `ctiles` (C x int32 mul, C x int32 rmul, C x int64 bias), plus an
    all-zero entry when the group has output slices without a column tile."""
    c = hw.array_cols
    out = bytearray()
    for t in [*ctiles, *([None] if zero_entry else [])]:
        m, r, b = np.zeros(c, "<i4"), np.zeros(c, "<i4"), np.zeros(c, "<i8")
        if t is not None and t * c < len(mul):  # (tiles past the last channel keep all-zero constants)
            lanes = slice(t * c, min((t + 1) * c, len(mul)))
            n = lanes.stop - lanes.start
            m[:n], r[:n], b[:n] = mul[lanes], rmul[lanes], bias[lanes]
        out += m.tobytes() + r.tobytes() + b.tobytes()
    return bytes(out)


# --- emission ----------------------------------------------------------------------------------------


def conv_compute(op: ir.Conv, x: ir.Tensor, out: ir.Tensor, res: ir.Tensor | None, plan: ConvPlan, hw: HwConfig,
                 shift: int, ctx: LayerContext, t: Tile) -> list[ComputeInsn]:
    win, rq, spw = plan.win, op.requant, hw.slices_per_word
    cts, words = plan.group_ctiles(t.group, hw), plan.group_word_range(t.group)
    n = t.rows * win.out_w
    const0 = ctx.const_base(t.group, hw)
    insns = [ComputeInsn("bgemm", dict(
        acc=t.acc + (piece.start - cts.start) * n, inp=t.inp + span.word0 * x.bits,
        wgt=ctx.wgt_base(t.group, hw) + offset, accumulate=int(p > 0), oh=t.rows, ow=win.out_w, kh=win.kh,
        kw=win.kw, stride=win.stride, dil=win.dil, cw=span.cw, ctiles=len(piece), irow=win.irow, ipix=win.pix,
        kbits=x.bits, mbits=op.mbits, wmode=WeightMode.EQUAL if op.ternary else WeightMode.POW2),
        reads_inp=True, writes_out=rq.out_int32)
        for piece, span, offsets in span_blocks(plan.layout, cts, win.kh, win.kw, op.mbits)
        for p, offset in enumerate(offsets)]

    def residual(ct: int) -> dict[str, int]:
        """REQUANT fields reading the residual lanes of column tile `ct` (channels ct*C .. ct*C+C-1)."""
        if res is None:
            return {}
        return dict(res=1, rinp=t.inp2 + (ct // spw) * res.bits, rstride=plan.res_pix, rk=res.bits)

    if rq.out_int32:
        for k, ct in enumerate(cts):
            insns.append(ComputeInsn("requant", dict(dest=Dest.ACC, acc=t.acc + k * n, n=n, const=const0 + k,
                                                     shift=shift, slice=ct % spw, **residual(ct)),
                                     reads_inp=res is not None))
        return insns
    for c in range(len(words) * spw):
        word, sl = divmod(c, spw)
        computed = c < len(cts)  # else: any ACC region times the all-zero constants gives level 0
        insns.append(ComputeInsn("requant", dict(
            dest=Dest.OUT, acc=t.acc + c * n if computed else t.acc, n=n, const=const0 + min(c, len(cts)),
            out=t.out + word * out.bits, ostride=win.pix_out, slice=sl, kout=out.bits, shift=shift,
            lo=rq.lo, hi=rq.hi, **residual(words[word] * spw + sl)), reads_inp=res is not None, writes_out=True))
    return insns


def level_stores(dests: list[OutDest], words: range, bits: int, t: Tile, out_w: int, ostride: int,
                 hw: HwConfig) -> list[dict]:
    """STOREs of a tile's OUT pixels (`ostride` entries apart; the group's `words`) into every destination."""
    e = hw.entry_bytes("out")
    n = t.rows * out_w
    group_pix = len(words) * bits
    stores = []
    for d in dests:
        first = (t.y0 * out_w * d.pix + (d.word_offset + words.start) * bits) * e
        if group_pix == d.pix == ostride:  # whole, dense pixels: one contiguous burst
            stores.append(dict(buf=Buffer.OUT, sram=t.out, dram=d.addr + first, rows=1, len=n * group_pix,
                               dstride=n * group_pix * e))
        else:
            stores.append(dict(buf=Buffer.OUT, sram=t.out, dram=d.addr + first, rows=n, len=group_pix,
                               dstride=d.pix * e, sstride=ostride))
    return stores


def int32_stores(addr: int, cstride: int, cts: range, t: Tile, out_w: int, hw: HwConfig) -> list[dict]:
    n, c = t.rows * out_w, hw.array_cols
    return [dict(buf=Buffer.ACC, sram=t.acc + k * n, dram=addr + (t.y0 * out_w * cstride + ct * c) * 4, rows=n,
                 len=1, dstride=cstride * 4) for k, ct in enumerate(cts)]


def lower_conv(b: ProgramBuilder, op: ir.Conv, graph: ir.Graph, addrs: dict[str, int], dests: list[OutDest],
               ctx: LayerContext) -> dict:
    """Append the layer's instructions; returns a layer-map record for the manifest."""
    hw = b.hw
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    res = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
    plan = plan_conv(op, x, out, res, hw)
    mul, rmul, bias, shift = hardware_constants(op, x, plan.layout, hw)
    planes = weight_planes(op)
    e_in = hw.entry_bytes("inp")

    def preloads(g: int) -> list[dict]:
        cts = plan.group_ctiles(g, hw)
        zero = not op.requant.out_int32 and len(plan.group_word_range(g)) * hw.slices_per_word > len(cts)
        consts = pack_constants(mul, rmul, bias, cts, zero, hw)
        w = pack_weights(op, planes, plan, hw, cts)
        return [
            dict(buf=Buffer.WGT, sram=ctx.wgt_base(g, hw), dram=b.alloc(len(w), w), rows=1,
                 len=len(w) // hw.entry_bytes("wgt"), dstride=len(w)),
            dict(buf=Buffer.CONST, sram=ctx.const_base(g, hw), dram=b.alloc(len(consts), consts), rows=1,
                 len=len(consts) // hw.entry_bytes("const"), dstride=len(consts)),
        ]

    def loads(t: Tile) -> list[dict]:
        main = plan.win.input_load(addrs[x.name], t.inp, t.y0, t.rows, e_in)
        if res is None:
            return [main]
        n = t.rows * plan.win.out_w * plan.res_pix
        dram = addrs[res.name] + t.y0 * plan.win.out_w * plan.res_pix * e_in
        return [main, dict(buf=Buffer.INP, sram=t.inp2, dram=dram, rows=1, len=n, dstride=n * e_in)]

    def stores(t: Tile) -> list[dict]:
        if op.requant.out_int32:
            return int32_stores(addrs[out.name], plan.ctiles * hw.array_cols, plan.group_ctiles(t.group, hw), t,
                                plan.win.out_w, hw)
        return level_stores(dests, plan.group_word_range(t.group), out.bits, t, plan.win.out_w, plan.win.pix_out, hw)

    tiled = TiledLayer(op.name, plan.win.out_h, plan.tile_rows, loads,
                       lambda t: conv_compute(op, x, out, res, plan, hw, shift, ctx, t), stores, preloads, plan.groups,
                       inp_parts=2 if res is not None else 1, first_rows=plan.first_rows)
    start, end, tiles = emit_tiled_layer(b, tiled, ctx)
    cout, cin_g, kh, kw = op.weights.shape
    ho, wo, _ = out.shape
    return {
        "name": op.name,
        "kind": "conv",
        "instructions": [start, end],
        "in_shape": list(x.shape),
        "out_shape": list(out.shape),
        "bits": {"w": op.mbits, "a_in": x.bits, "a_out": out.bits, "ternary": op.ternary},
        "kernel": [kh, kw],
        "stride": op.stride,
        "pad": op.pad,
        "residual": res.name if res is not None else None,
        "tiles": tiles,
        "groups": plan.groups,
        "tile_rows": plan.tile_rows,
        "conv_groups": op.groups,
        "bgemm_passes": plan.layout.passes,
        "macs": ho * wo * cout * kh * kw * cin_g,  # useful MACs: a grouped conv's padded array work is waste
        "weight_bits": int(op.weights.size) * op.mbits,
    }

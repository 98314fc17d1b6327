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

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.hwconfig import CONST_BYTES_PER_LANE, HwConfig, const_field_bytes
from bitbranch.isa.numeric import code_to_level, ternary_to_planes
from bitbranch.isa.rounding import MAX_SHIFT
from bitbranch.isa.spec import Buffer, Dest, WeightMode

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
    row_policy,
    tile_needs,
    tile_shape,
)


@dataclass(frozen=True)
class OutDest:
    """Where a layer's output pixels go in DRAM: a tensor of `pix` entries per pixel, at a word offset."""

    addr: int
    pix: int
    word_offset: int = 0


@dataclass(frozen=True)
class Chunk:
    """Part of a convolution's reduction: kernel rows [ky0, ky0+kh) x channel words [c0, c0+cw)."""

    ky0: int
    kh: int
    c0: int
    cw: int


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
    tile_cols: int  # out_w unless one output row does not fit (width tiles)
    first_rows: int  # rows of the first tile (of group 0)
    res_pix: int  # INP entries per residual pixel (0: no residual)
    halves: bool  # every group fits half of WGT and CONST (groups and layers alternate halves)
    layout: GroupLayout
    chunks: tuple[Chunk, ...]  # reduction chunks: one (the whole window) unless one output word's weights
    # do not fit WGT; then each tile loads every chunk's weights into half index%2 of WGT in turn
    word_loads: bool = False  # split reduction of a 1x1 layer on a one-pixel input (a Linear, a flat view):
    # each step loads only its chunk's channel words of that pixel

    @property
    def split(self) -> bool:
        return len(self.chunks) > 1

    def group_ctiles(self, g: int, hw: HwConfig) -> range:
        spw = hw.slices_per_word
        return range(g * self.group_words * spw, min(self.ctiles, (g + 1) * self.group_words * spw))

    def group_word_range(self, g: int) -> range:
        return range(g * self.group_words, min(self.cw_out, (g + 1) * self.group_words))


def plan_conv(op: ir.Conv, x: ir.Tensor, out: ir.Tensor, res: ir.Tensor | None, hw: HwConfig,
              pad_read: Callable[[], bool] = lambda: True) -> ConvPlan:
    """`pad_read()`: does some reader take the output's padded lanes as level 0 (compiler.padlanes)? Asked only
    when the layer would write padded lanes above level 0: it walks the graph's readers."""
    h, w, cin = x.shape
    cout, _, kh, kw = op.weights.shape
    cw, cw_out = math.ceil(cin / hw.word_bits), math.ceil(cout / hw.word_bits)
    ctiles, spw = math.ceil(cout / hw.array_cols), hw.slices_per_word
    layout = group_layout(op, cin, hw)
    wgt_per_ctile = kh * kw * layout.max_cw * op.mbits * layout.passes
    group_words, halves = group_size(cw_out, ctiles, wgt_per_ctile, hw)
    split = group_words == 0  # split the reduction: one output word per group, its weights streamed in chunks
    if split:
        group_words, halves = 1, False
    if min(ctiles, group_words * spw) > 0xFF:
        raise LoweringError(f"layer '{op.name}': {ctiles} column tiles exceed the 8-bit ctiles field")
    out_int32 = op.requant.out_int32
    kout = 0 if out_int32 else out.bits
    if cw_out * spw > ctiles and not out_int32 and op.requant.lo != 0 and pad_read():
        raise LoweringError(f"layer '{op.name}': padded output channels need lo = 0 (level 0 in pad bits)")
    win = Window(h, w, kh, kw, op.stride, op.pad, op.dil, cw * x.bits, group_words * kout, pad_w=op.pad_w)
    res_pix = math.ceil(res.shape[2] / hw.word_bits) * res.bits if res is not None else 0
    parts = 2 if res is not None else 1
    acc = min(ctiles, group_words * spw)

    word_loads = split and (h, w, kh, kw) == (1, 1, 1, 1) and op.pads == (0, 0)

    def shape(chunks: tuple[Chunk, ...]) -> tuple[int, int]:
        """Tile shape when every step loads the input rows of its chunk's kernel rows (or its channel words)."""
        cwin = dataclasses.replace(win, kh=max(c.kh for c in chunks))
        if word_loads:
            cwin = dataclasses.replace(cwin, pix=max(c.cw for c in chunks) * x.bits)
        return tile_shape(op.name, win.out_h, win.out_w,
                          lambda th, tw: tile_needs(hw, cwin, th, parts, acc, res_pix, tw))

    chunks = (Chunk(0, kh, 0, cw),)
    if not split:
        rows, cols = shape(chunks)
    max_words = hw.inp_entries // (2 * parts) // x.bits if word_loads else cw
    for max_rows in range(kh, 0, -1) if split else ():  # fewer kernel rows per chunk: less input per step
        chunks = reduction_chunks(op.name, kh, kw, cw, op.mbits, min(ctiles, spw), hw, max_rows, max_words)
        try:
            rows, cols = shape(chunks)
            break
        except LoweringError:
            if max_rows == 1:
                raise
    if split and (len(layout.spans) > 1 or layout.masked):
        raise LoweringError(f"layer '{op.name}': one output word of weights needs {wgt_per_ctile * spw} WGT entries, "
                            f"{hw.name} has {hw.wgt_entries} (reduction chunks exist for plain convolutions only, "
                            f"this one has groups={op.groups})")
    rows, first = row_policy(win.out_h, (rows, cols), win.out_w, hw.array_rows)
    return ConvPlan(win, cw, cw_out, ctiles, group_words, math.ceil(cw_out / group_words), wgt_per_ctile, rows,
                    cols, first, res_pix, halves, layout, chunks, word_loads)


def reduction_chunks(name: str, kh: int, kw: int, cw: int, mbits: int, ctiles: int, hw: HwConfig,
                     max_rows: int, max_words: int | None = None) -> tuple[Chunk, ...]:
    """Chunks of the reduction whose weights for `ctiles` column tiles fit half of WGT (the other half loads
    the next chunk meanwhile): as many kernel rows as fit (at most `max_rows`), then as many channel words
    as fit with them. Each chunk is one BGEMM accumulating into ACC; REQUANT applies the constants once."""
    budget = hw.wgt_entries // 2
    if hw.slices_per_word + 1 > hw.const_entries:
        raise LoweringError(f"layer '{name}': one output word needs {hw.slices_per_word + 1} CONST entries, "
                            f"{hw.name} has {hw.const_entries}")
    rows = min(max_rows, kh, budget // (ctiles * kw * mbits))
    if rows == 0:
        raise LoweringError(f"layer '{name}': one kernel row of one channel word needs {ctiles * kw * mbits} WGT "
                            f"entries, half of WGT on {hw.name} is {budget}")
    words = max(1, min(cw, budget // (ctiles * rows * kw * mbits), max_words or cw, 0xFFF))  # 12-bit cw
    return tuple(Chunk(ky0, min(rows, kh - ky0), c0, min(words, cw - c0))
                 for c0 in range(0, cw, words) for ky0 in range(0, kh, rows))


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


MAX_KERNEL = 15  # BGEMM's kh / kw are 4-bit fields


def flat_view(op: ir.Conv, graph: ir.Graph, hw: HwConfig) -> tuple[ir.Conv, ir.Graph]:
    """A Linear layer on a flattened map wider than the 4-bit kh/kw fields (an MLP after a 28x28 map): the
    same layer as a 1x1 convolution on a view of its input as one pixel of H·W·CW channel words.

    The input's DRAM layout `[y][x][word][plane]` is already that pixel's `[word][plane]`, so nothing moves;
    the weights are reordered to (y, x, channel) with every channel word padded to W channels. The padding
    channels hold level 0 and get the weight whose planes are all 0 (code −(2^M−1), ternary −1), exactly what
    channel padding contributes in the unflattened layout, so S and the hardware constants are unchanged.
    Returns (op, graph) unchanged when the layer is not such a Linear or fits the fields."""
    x = graph.tensors[op.inputs[0]]
    h, w, c = x.shape
    cout, cin_g, kh, kw = op.weights.shape
    if max(kh, kw) <= MAX_KERNEL or op.groups != 1 or op.pads != (0, 0) or (kh, kw) != (h, w):
        return op, graph
    words = math.ceil(c / hw.word_bits)
    fill = -1 if op.ternary else -((1 << op.mbits) - 1)
    codes = np.full((cout, h, w, words * hw.word_bits), fill, dtype=np.int64)
    codes[..., :c] = np.asarray(op.weights).transpose(0, 2, 3, 1)
    view = ir.Tensor(f"{x.name}.flat", (1, 1, h * w * words * hw.word_bits), x.bits, x.scale, x.zero)
    flat = dataclasses.replace(op, inputs=[view.name, *op.inputs[1:]], weights=codes.reshape(cout, -1, 1, 1),
                               stride=1, dil=1)
    return flat, dataclasses.replace(graph, tensors={**graph.tensors, view.name: view})


def preload_groups(op: ir.Conv, graph: ir.Graph, hw: HwConfig) -> tuple[int, bool]:
    """(groups, halves) of the layer's weight preloads (see ConvPlan)."""
    op, graph = flat_view(op, graph, hw)
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    res = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
    plan = plan_conv(op, x, out, res, hw, lambda: _pad_read(graph, op.output, hw))
    return plan.groups, plan.halves


def _pad_read(graph: ir.Graph, name: str, hw: HwConfig) -> bool:
    from .padlanes import pad_lanes_read  # here, not at the top: padlanes reads compiler.pool, which imports this

    return pad_lanes_read(graph, name, hw)


# --- packing ----------------------------------------------------------------------------------------


_PLANES: list[dict] = []  # the innermost reuse_weight_planes cache, when one is active


@contextmanager
def reuse_weight_planes(cache: dict) -> Iterator[None]:
    """Inside the block, weight_planes(op) is kept in `cache` (op.name -> (op.weights, planes)) and reused
    while the op still holds the same weights array, and so is pack_weights' WGT image per (array_cols,
    word_bits, group layout, column tiles). The planes do not depend on the hardware, the packed image only
    on those, so a caller that lowers one IR for many configs (bitbranch explore) computes each once; the
    cache lives as long as the caller keeps it."""
    _PLANES.append(cache)
    try:
        yield
    finally:
        _PLANES.pop()


def weight_planes(op: ir.Conv) -> np.ndarray:
    """(Cout, Cin/groups, kh, kw, M) bit-planes (uint8): level bits of M-bit codes, or ternary planes."""
    if _PLANES:
        hit = _PLANES[-1].get(op.name)
        if hit is not None and hit[0] is op.weights:
            return hit[1]
        planes = _weight_planes(op)
        _PLANES[-1][op.name] = (op.weights, planes)
        return planes
    return _weight_planes(op)


def _weight_planes(op: ir.Conv) -> np.ndarray:
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
    if _PLANES:  # the image depends on the config only through C, W and the group layout
        key = ("packed", op.name, hw.array_cols, hw.word_bits, plan.layout, cts.start, cts.stop, cts.step)
        hit = _PLANES[-1].get(key)
        if hit is not None and hit[0] is op.weights:
            return hit[1]
        packed = _pack_weights(op, planes, plan, hw, cts)
        _PLANES[-1][key] = (op.weights, packed)
        return packed
    return _pack_weights(op, planes, plan, hw, cts)


def _pack_weights(op: ir.Conv, planes: np.ndarray, plan: ConvPlan, hw: HwConfig, cts: range) -> bytes:
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
        rec = bytearray(CONST_BYTES_PER_LANE * c)
        for name, values in (("mul", m), ("rmul", r), ("bias", b)):
            rec[const_field_bytes(name, c)] = values.tobytes()
        out += rec
    return bytes(out)


# --- emission ----------------------------------------------------------------------------------------


def chunk_wgt_base(plan: ConvPlan, ctx: LayerContext, t: Tile, hw: HwConfig) -> int:
    """WGT base of a tile's weights: the group's preloaded part, or (split reduction) half index%2."""
    return (t.index % 2) * (hw.wgt_entries // 2) if plan.split else ctx.wgt_base(t.group, hw)


def chunk_weights(weights: bytes, ctiles: int, ch: Chunk, kh: int, kw: int, cw: int, mbits: int,
                  hw: HwConfig) -> bytes:
    """A plain convolution's WGT image of `ctiles` column tiles (entries [ctile][ky][kx][cw][plane],
    pack_weights) restricted to chunk `ch`, as BGEMM reads it with kh = ch.kh, cw = ch.cw."""
    e = hw.entry_bytes("wgt")
    full = np.frombuffer(weights, np.uint8).reshape(ctiles, kh, kw, cw, mbits, e)
    return full[:, ch.ky0:ch.ky0 + ch.kh, :, ch.c0:ch.c0 + ch.cw].tobytes()


def conv_compute(op: ir.Conv, x: ir.Tensor, out: ir.Tensor, res: ir.Tensor | None, plan: ConvPlan, hw: HwConfig,
                 shift: int, ctx: LayerContext, t: Tile) -> list[ComputeInsn]:
    win, rq, spw = plan.win, op.requant, hw.slices_per_word
    cts, words = plan.group_ctiles(t.group, hw), plan.group_word_range(t.group)
    n = t.pixels
    const0 = ctx.const_base(t.group, hw)
    ch, irow = plan.chunks[t.chunk], win.tile_irow(t.x0, t.cols)
    geometry = dict(oh=t.rows, ow=t.cols, kw=win.kw, stride=win.stride, dil=win.dil, irow=irow, ipix=win.pix,
                    kbits=x.bits, mbits=op.mbits, wmode=WeightMode.EQUAL if op.ternary else WeightMode.POW2)
    if plan.split:  # one chunk of a plain convolution's reduction, accumulated after the first
        insns = [ComputeInsn("bgemm", dict(
            acc=t.acc, inp=t.inp + (0 if plan.word_loads else ch.c0 * x.bits), wgt=chunk_wgt_base(plan, ctx, t, hw),
            kh=ch.kh, cw=ch.cw,
            ctiles=len(cts), accumulate=int(t.chunk > 0), **geometry), reads_inp=True, writes_out=rq.out_int32)]
        if t.chunk < len(plan.chunks) - 1:  # partial sums: the last chunk requantizes
            return insns
    else:
        insns = [ComputeInsn("bgemm", dict(
            acc=t.acc + (piece.start - cts.start) * n, inp=t.inp + span.word0 * x.bits,
            wgt=ctx.wgt_base(t.group, hw) + offset, accumulate=int(p > 0), kh=win.kh, cw=span.cw,
            ctiles=len(piece), **geometry), reads_inp=True, writes_out=rq.out_int32)
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
    n = t.pixels
    group_pix = len(words) * bits
    stores = []
    for d in dests:
        first = ((t.y0 * out_w + t.x0) * d.pix + (d.word_offset + words.start) * bits) * e
        if group_pix == d.pix == ostride and t.cols == out_w:  # whole, dense pixels: one contiguous burst
            stores.append(dict(buf=Buffer.OUT, sram=t.out, dram=d.addr + first, rows=1, len=n * group_pix,
                               dstride=n * group_pix * e))
        elif group_pix == d.pix == ostride:  # whole pixels of a rectangle: one burst per output row
            stores.append(dict(buf=Buffer.OUT, sram=t.out, dram=d.addr + first, rows=t.rows, len=t.cols * group_pix,
                               dstride=out_w * d.pix * e))
        elif t.cols == out_w:
            stores.append(dict(buf=Buffer.OUT, sram=t.out, dram=d.addr + first, rows=n, len=group_pix,
                               dstride=d.pix * e, sstride=ostride))
        else:  # part of each pixel, in a rectangle: one STORE per output row
            stores += [dict(buf=Buffer.OUT, sram=t.out + r * t.cols * ostride,
                            dram=d.addr + first + r * out_w * d.pix * e, rows=t.cols, len=group_pix,
                            dstride=d.pix * e, sstride=ostride) for r in range(t.rows)]
    return stores


def int32_stores(addr: int, cstride: int, cts: range, t: Tile, out_w: int, hw: HwConfig) -> list[dict]:
    """STOREs of a tile's int32 accumulators, per column tile (and per output row of a rectangle)."""
    n, c = t.pixels, hw.array_cols
    runs = [(0, n)] if t.cols == out_w else [(r * t.cols, t.cols) for r in range(t.rows)]
    return [dict(buf=Buffer.ACC, sram=t.acc + k * n + p, dram=addr + ((t.y0 * out_w + t.x0) * cstride + ct * c
                                                                       + p // t.cols * out_w * cstride) * 4,
                 rows=length, len=1, dstride=cstride * 4) for k, ct in enumerate(cts) for p, length in runs]


def operand_load(addr: int, sram: int, pix: int, t: Tile, out_w: int, entry_bytes: int) -> dict[str, int]:
    """LOAD of a second operand (residual, add) at the tile's output pixels, dense in INP."""
    dram = addr + (t.y0 * out_w + t.x0) * pix * entry_bytes
    if t.cols == out_w:  # whole rows: one contiguous burst
        n = t.pixels * pix
        return dict(buf=Buffer.INP, sram=sram, dram=dram, rows=1, len=n, dstride=n * entry_bytes)
    return dict(buf=Buffer.INP, sram=sram, dram=dram, rows=t.rows, len=t.cols * pix, dstride=out_w * pix * entry_bytes)


def lower_conv(b: ProgramBuilder, op: ir.Conv, graph: ir.Graph, addrs: dict[str, int], dests: list[OutDest],
               ctx: LayerContext) -> dict:
    """Append the layer's instructions; returns a layer-map record for the manifest."""
    hw = b.hw
    orig = op
    op, graph = flat_view(op, graph, hw)
    if op is not orig:  # the view reads the input tensor's DRAM image as it is
        addrs = {**addrs, op.inputs[0]: addrs[orig.inputs[0]]}
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    res = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
    plan = plan_conv(op, x, out, res, hw, lambda: _pad_read(graph, op.output, hw))
    mul, rmul, bias, shift = hardware_constants(op, x, plan.layout, hw)
    planes = weight_planes(op)
    e_in = hw.entry_bytes("inp")

    def preloads(g: int) -> list[dict]:
        cts = plan.group_ctiles(g, hw)
        zero = not op.requant.out_int32 and len(plan.group_word_range(g)) * hw.slices_per_word > len(cts)
        consts = pack_constants(mul, rmul, bias, cts, zero, hw)
        w = [] if plan.split else [pack_weights(op, planes, plan, hw, cts)]  # split: chunks load per step
        return [
            *[dict(buf=Buffer.WGT, sram=ctx.wgt_base(g, hw), dram=b.alloc(len(x), x), rows=1,
                   len=len(x) // hw.entry_bytes("wgt"), dstride=len(x)) for x in w],
            dict(buf=Buffer.CONST, sram=ctx.const_base(g, hw), dram=b.alloc(len(consts), consts), rows=1,
                 len=len(consts) // hw.entry_bytes("const"), dstride=len(consts)),
        ]

    chunk_addr: dict[tuple[int, int], tuple[int, int]] = {}  # (group, chunk) -> (DRAM address, bytes)

    def chunk_load(t: Tile) -> list[dict]:
        """The step's weight chunk (split reduction), packed once per (group, chunk) in DRAM."""
        if not plan.split:
            return []
        key = (t.group, t.chunk)
        if key not in chunk_addr:
            cts, ch = plan.group_ctiles(t.group, hw), plan.chunks[t.chunk]
            w = chunk_weights(pack_weights(op, planes, plan, hw, cts), len(cts), ch, *op.weights.shape[2:], plan.cw,
                              op.mbits, hw)
            chunk_addr[key] = (b.alloc(len(w), w), len(w))
        addr, size = chunk_addr[key]
        return [dict(buf=Buffer.WGT, sram=chunk_wgt_base(plan, ctx, t, hw), dram=addr, rows=1,
                     len=size // hw.entry_bytes("wgt"), dstride=size)]

    zeros: list[int] = []  # DRAM address of a zero input row, allocated when first needed

    def zero_rows(fields: dict[str, int]) -> dict[str, int]:
        """A chunk whose kernel rows read only padding for this tile: one zero row from DRAM, the rest fill."""
        if fields["rows"] > 0:
            return fields
        if not zeros:
            zeros.append(b.alloc(plan.win.in_w * plan.win.pix * e_in))
        total = fields["pad_top"] + fields["rows"] + fields["pad_bottom"]
        return {**fields, "dram": zeros[0], "rows": 1, "pad_top": total - 1, "pad_bottom": 0}

    def loads(t: Tile) -> list[dict]:
        ch = plan.chunks[t.chunk]  # the step loads the input rows of its kernel rows
        if plan.word_loads:  # (or, one-pixel input, only its channel words)
            n = ch.cw * x.bits
            main = [dict(buf=Buffer.INP, sram=t.inp, dram=addrs[x.name] + ch.c0 * x.bits * e_in, rows=1, len=n,
                         dstride=n * e_in), *chunk_load(t)]
        else:
            main = [zero_rows(plan.win.input_load(addrs[x.name], t.inp, t.y0, t.rows, e_in, t.x0, t.cols, ch.ky0,
                                                  ch.kh)), *chunk_load(t)]
        if res is None or t.chunk < len(plan.chunks) - 1:
            return main
        return [*main, operand_load(addrs[res.name], t.inp2, plan.res_pix, t, plan.win.out_w, e_in)]

    def stores(t: Tile) -> list[dict]:
        if op.requant.out_int32:
            return int32_stores(addrs[out.name], plan.ctiles * hw.array_cols, plan.group_ctiles(t.group, hw), t,
                                plan.win.out_w, hw)
        return level_stores(dests, plan.group_word_range(t.group), out.bits, t, plan.win.out_w, plan.win.pix_out, hw)

    tiled = TiledLayer(op.name, plan.win.out_h, plan.tile_rows, loads,
                       lambda t: conv_compute(op, x, out, res, plan, hw, shift, ctx, t), stores, preloads, plan.groups,
                       inp_parts=2 if res is not None else 1, out_w=plan.win.out_w, cols_per_tile=plan.tile_cols,
                       chunks=len(plan.chunks), first_rows=plan.first_rows)
    start, end, tiles = emit_tiled_layer(b, tiled, ctx)
    cout, cin_g, kh, kw = orig.weights.shape
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
        **({"pad_w": op.pad_w} if op.pad_w is not None else {}),
        "residual": res.name if res is not None else None,
        "tiles": tiles,
        "groups": plan.groups,
        "chunks": len(plan.chunks),
        "tile_rows": plan.tile_rows,
        "tile_cols": plan.tile_cols,
        "conv_groups": op.groups,
        "bgemm_passes": plan.layout.passes,
        "macs": ho * wo * cout * kh * kw * cin_g,  # useful MACs: a grouped conv's padded array work is waste
        "weight_bits": int(orig.weights.size) * op.mbits,
        **({"flat_view": True} if op is not orig else {}),
    }

"""Lowering of the IR's level-domain ops that use the POOL unit: max/avg pooling, residual add, upsample.

- max pooling: POOL max per (channel word, lane slice), exact because levels are monotone in the real
  value and level-0 padding never wins over a z = 0 level;
- average pooling: POOL sum into ACC, then REQUANT with the IR's per-channel constants;
- add: POOL sum with a 1x1 window copies u_a into ACC, REQUANT adds u_b·rmul from the second INP part;
- nearest upsample: the LOADs replicate pixels (SRAM stride) and rows (the same DRAM row loaded again),
  then POOL max over a 1x1 window copies INP to OUT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import Buffer, Dest, PoolMode

from . import ir
from .builder import ProgramBuilder
from .conv import OutDest, level_stores, operand_load, pack_constants
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
    tile_rows,
    tile_shape,
)


def _words(channels: int, hw: HwConfig) -> int:
    return math.ceil(channels / hw.word_bits)


def _slices(channels: int, hw: HwConfig) -> list[tuple[int, int]]:
    """(word, slice) pairs covering the channel words."""
    return [(c, s) for c in range(_words(channels, hw)) for s in range(hw.slices_per_word)]


def _requant_constants(rq: ir.Requant, name: str, channels: int, hw: HwConfig, part: range | None = None) -> bytes:
    """CONST entries of every lane slice of the channel words in `part` (default: all words)."""
    words = len(part) if part is not None else _words(channels, hw)
    start = part.start if part is not None else 0
    if words * hw.slices_per_word > hw.const_entries:
        raise LoweringError(f"layer '{name}': {channels} channels need more CONST entries than {hw.name} has")
    if rq.lo != 0 and channels % hw.word_bits:
        raise LoweringError(f"layer '{name}': padded channels need lo = 0 (level 0 in pad bits)")
    mul = np.asarray(rq.mul, dtype=np.int64)
    rmul = np.asarray(rq.rmul if rq.rmul is not None else np.zeros_like(mul), dtype=np.int64)
    spw = hw.slices_per_word
    return pack_constants(mul, rmul, np.asarray(rq.bias, dtype=np.int64), range(start * spw, (start + words) * spw),
                          False, hw)


def preload_groups(op: ir.Op, graph: ir.Graph, hw: HwConfig) -> tuple[int, bool]:
    """(groups, halves) of an average pool's or add's constant preload (one CONST entry per lane slice)."""
    words = _words(graph.tensors[op.inputs[0]].shape[2], hw)
    if isinstance(op, ir.Concat):  # a copied concat: its two CONST entries
        return 1, hw.const_entries // 2 >= 2
    if isinstance(op, ir.Pool):
        plan = plan_pool(op, graph, hw)
        classes = len(edge_classes(op))
        return plan.groups, classes * min(words, plan.group_words) * hw.slices_per_word <= hw.const_entries // 2
    return 1, words * hw.slices_per_word <= hw.const_entries // 2


@dataclass(frozen=True)
class PoolPlan:
    """A pooling layer's tiles, and its channel-word groups: an average pool whose window of whole pixels
    does not fit half of INP, or whose constants do not fit CONST (a global pool over many channels), runs
    over groups of channel words, each loading only its words of every pixel and its constants; POOL reads
    one word per instruction, so nothing else changes."""

    win: Window  # pix / pix_out: entries of one group's words
    words: int
    group_words: int
    shape: tuple[int, int]

    @property
    def groups(self) -> int:
        return math.ceil(self.words / self.group_words)

    def group_range(self, g: int) -> range:
        return range(g * self.group_words, min(self.words, (g + 1) * self.group_words))


MAX_WINDOW = 15  # POOL's kh / kw fields are 4 bits


def edge_classes(op: ir.Pool) -> list[str]:
    """Requant classes of an average pool, in CONST order: 'full', then ceil_mode's partial 'col' / 'row' /
    'corner' windows (each divides by its own number of elements, ir.Pool.edge)."""
    if op.mode != "avg":
        return []
    return ["full", *(op.edge or {})]


def plan_pool(op: ir.Pool, graph: ir.Graph, hw: HwConfig) -> PoolPlan:
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    if max(op.window) > MAX_WINDOW or op.stride > MAX_WINDOW:
        raise LoweringError(f"layer '{op.name}': pooling window {op.window[0]}x{op.window[1]} (stride {op.stride}) is "
                            f"larger than the POOL unit's {MAX_WINDOW}x{MAX_WINDOW} (4-bit kh/kw fields); use an input "
                            f"size whose last feature map is at most {MAX_WINDOW}x{MAX_WINDOW}, or pool in two steps")
    h, w, c = x.shape
    words, avg = _words(c, hw), op.mode == "avg"
    error = None
    grouped = avg and op.pad == 0 and op.extra == (0, 0)  # word groups: average pools without padding (one CONST
    # entry per slice)
    top = max(1, min(words, hw.const_entries // hw.slices_per_word)) if grouped else words
    classes = len(edge_classes(op))
    if classes > 1 and classes * words * hw.slices_per_word > hw.const_entries:
        raise LoweringError(f"layer '{op.name}': a ceil_mode average pool over {c} channels needs {classes} x "
                            f"{words * hw.slices_per_word} CONST entries (one per partial-window divisor), {hw.name} "
                            f"has {hw.const_entries}")
    for gw in range(top, 0 if grouped else words - 1, -1):
        win = Window(h, w, *op.window, op.stride, op.pad, 1, gw * x.bits, gw * out.bits, *op.extra)
        slices = gw * hw.slices_per_word * (2 if classes > 1 else 1) if avg else 0  # partial columns: a 2nd region
        try:
            shape = tile_shape(op.name, win.out_h, win.out_w,
                               lambda th, tw, win=win, slices=slices: tile_needs(hw, win, th, acc_per_pixel=slices,
                                                                                 tw=tw))
        except LoweringError as e:
            error = error or e
            continue
        return PoolPlan(win, words, gw, shape)
    raise error


def _record(op: ir.Op, kind: str, graph: ir.Graph, span: tuple[int, int, int], shape: tuple[int, int],
            **extra) -> dict:
    start, end, tiles = span
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    return {"name": op.name, "kind": kind, "instructions": [start, end], "in_shape": list(x.shape),
            "out_shape": list(out.shape), "bits": {"a_in": x.bits, "a_out": out.bits}, "tiles": tiles,
            "tile_rows": shape[0], "tile_cols": shape[1], "macs": 0, **extra}


def lower_pool(b: ProgramBuilder, op: ir.Pool, graph: ir.Graph, addrs: dict[str, int], dests: list[OutDest],
               ctx: LayerContext) -> dict:
    hw = b.hw
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    h, w, c = x.shape
    plan = plan_pool(op, graph, hw)
    win, shape = plan.win, plan.shape
    avg = op.mode == "avg"
    e = hw.entry_bytes("inp")
    rows, first = row_policy(win.out_h, shape, win.out_w, hw.array_rows)

    classes = edge_classes(op)
    block = min(plan.words, plan.group_words) * hw.slices_per_word  # CONST entries of one requant class

    def compute(t: Tile) -> list[ComputeInsn]:
        n = t.pixels
        # a group's LOADs put its words of a pixel densely (word_group_loads): a last group with fewer words than
        # the others (16 words in groups of 12: 12 + 4) has pixels `len(group) * bits` entries apart, not win.pix
        # (it read the wrong entries: issue 16, a 1000-channel 8-bit global pool on edge); rows stay win.pix apart
        geometry = dict(k=x.bits, oh=t.rows, ow=t.cols, kh=win.kh, kw=win.kw, stride=win.stride,
                        irow=win.tile_irow(t.x0, t.cols), ipix=len(plan.group_range(t.group)) * x.bits)
        insns = []
        slices = [(c, s) for c in range(len(plan.group_range(t.group))) for s in range(hw.slices_per_word)]
        for k, (word, s) in enumerate(slices):  # word: within the group
            if not avg:
                insns.append(ComputeInsn("pool", dict(mode=PoolMode.MAX, slice=s, inp=t.inp + word * x.bits,
                                                      out=t.out + word * x.bits, ostride=win.pix_out, **geometry),
                                         reads_inp=True, writes_out=True))
                continue
            insns.append(ComputeInsn("pool", dict(mode=PoolMode.SUM, slice=s, inp=t.inp + word * x.bits,
                                                  acc=t.acc + k * n, **geometry), reads_inp=True))
            insns.append(ComputeInsn("requant", dict(
                dest=Dest.OUT, acc=t.acc + k * n, n=n, const=ctx.const_base(t.group, hw) + k,
                out=t.out + word * out.bits, ostride=win.pix_out, slice=s, kout=out.bits, shift=op.requant.shift,
                lo=op.requant.lo, hi=op.requant.hi), writes_out=True))
            if len(classes) > 1:
                insns += edge_requants(t, k, word, s, len(slices))
        return insns

    def edge_requants(t: Tile, k: int, word: int, s: int, nslices: int) -> list[ComputeInsn]:
        """ceil_mode's partial windows: their sums again with their own divisor's constants. The last column's
        sums are gathered by a POOL of one output column into a second ACC region (REQUANT reads consecutive
        ACC entries); the last row's are consecutive already; the corner is the tile's last pixel."""
        n, insns = t.pixels, []
        last_col, last_row = t.x0 + t.cols == win.out_w, t.y0 + t.rows == win.out_h
        rq = op.requant
        base = dict(dest=Dest.OUT, slice=s, kout=out.bits, shift=rq.shift, lo=rq.lo, hi=rq.hi)
        out0 = t.out + word * out.bits
        const = {cls: ctx.const_base(t.group, hw) + i * block + k for i, cls in enumerate(classes)}
        if "col" in classes and last_col:
            col_acc = t.acc + nslices * n + k * t.rows
            insns.append(ComputeInsn("pool", dict(
                mode=PoolMode.SUM, slice=s, inp=t.inp + word * x.bits + (t.cols - 1) * win.stride * win.pix,
                acc=col_acc, k=x.bits, oh=t.rows, ow=1, kh=win.kh, kw=win.kw, stride=win.stride,
                irow=win.tile_irow(t.x0, t.cols), ipix=win.pix), reads_inp=True))
            insns.append(ComputeInsn("requant", dict(acc=col_acc, n=t.rows, const=const["col"],
                                                     out=out0 + (t.cols - 1) * win.pix_out,
                                                     ostride=t.cols * win.pix_out, **base), writes_out=True))
        if "row" in classes and last_row:
            cols = t.cols - 1 if "corner" in classes and last_col else t.cols
            insns.append(ComputeInsn("requant", dict(acc=t.acc + k * n + (t.rows - 1) * t.cols, n=cols,
                                                     const=const["row"], out=out0 + (t.rows - 1) * t.cols * win.pix_out,
                                                     ostride=win.pix_out, **base), writes_out=True))
        if "corner" in classes and last_row and last_col:
            insns.append(ComputeInsn("requant", dict(acc=t.acc + k * n + n - 1, n=1, const=const["corner"],
                                                     out=out0 + (n - 1) * win.pix_out, ostride=win.pix_out, **base),
                                     writes_out=True))
        return insns

    def preloads(g: int) -> list[dict]:
        if not avg:
            return []
        consts = b"".join(_requant_constants(op.requant if cls == "full" else op.edge[cls], op.name, c, hw,
                                             plan.group_range(g)) for cls in classes)
        return [dict(buf=Buffer.CONST, sram=ctx.const_base(g, hw), dram=b.alloc(len(consts), consts), rows=1,
                     len=len(consts) // hw.entry_bytes("const"), dstride=len(consts))]

    def loads(t: Tile) -> list[dict]:
        if plan.groups == 1:
            return [win.input_load(addrs[x.name], t.inp, t.y0, t.rows, e, t.x0, t.cols)]
        return word_group_loads(addrs[x.name], plan, t, x.bits, e)

    tiled = TiledLayer(
        op.name, win.out_h, rows, loads, compute,
        lambda t: level_stores(dests, plan.group_range(t.group), out.bits, t, win.out_w, win.pix_out, hw), preloads,
        groups=plan.groups, out_w=win.out_w, cols_per_tile=shape[1], first_rows=first)
    span = emit_tiled_layer(b, tiled, ctx)
    return _record(op, f"{op.mode}pool", graph, span, (rows, shape[1]), kernel=list(op.window), stride=op.stride,
                   pad=op.pad, groups=plan.groups, **({"ceil_extra": list(op.extra)} if any(op.extra) else {}))


def word_group_loads(addr: int, plan: PoolPlan, t: Tile, bits: int, entry_bytes: int) -> list[dict]:
    """One LOAD per input row of the tile, taking only the group's channel words of each pixel (a DRAM
    row per pixel, dense in INP); only for windows without padding (plan_pool)."""
    win, words = plan.win, plan.group_range(t.group)
    full_pix = plan.words * bits
    ix0, ix1 = win.in_cols(t.x0, t.cols)
    irow = win.tile_irow(t.x0, t.cols)
    iy0 = t.y0 * win.stride
    return [dict(buf=Buffer.INP, sram=t.inp + r * irow,
                 dram=addr + (((iy0 + r) * win.in_w + ix0) * full_pix + words.start * bits) * entry_bytes,
                 rows=ix1 - ix0, len=len(words) * bits, dstride=full_pix * entry_bytes)
            for r in range(win.in_rows(t.rows))]


def lower_add(b: ProgramBuilder, op: ir.Add, graph: ir.Graph, addrs: dict[str, int], dests: list[OutDest],
              ctx: LayerContext) -> dict:
    """u_out = requant(u_a·mul + u_b·rmul + bias): POOL sum (1x1) of a into ACC, REQUANT with residual b."""
    hw = b.hw
    a, bb, out = (graph.tensors[n] for n in (*op.inputs, op.output))
    if a.shape != bb.shape:
        raise LoweringError(f"layer '{op.name}': add of shapes {a.shape} and {bb.shape}")
    h, w, c = a.shape
    pa, pb = _words(c, hw) * a.bits, _words(c, hw) * bb.bits
    win = Window(h, w, 1, 1, 1, 0, 1, pa, _words(c, hw) * out.bits)
    slices = _slices(c, hw)
    shape = tile_shape(op.name, h, w, lambda th, tw: tile_needs(hw, win, th, 2, len(slices), pb, tw))
    rows, first = row_policy(h, shape, w, hw.array_rows)
    consts = _requant_constants(op.requant, op.name, c, hw)
    e = hw.entry_bytes("inp")

    def loads(t: Tile) -> list[dict]:
        return [win.input_load(addrs[a.name], t.inp, t.y0, t.rows, e, t.x0, t.cols),
                operand_load(addrs[bb.name], t.inp2, pb, t, w, e)]

    def compute(t: Tile) -> list[ComputeInsn]:
        n = t.pixels
        insns = []
        for k, (word, s) in enumerate(slices):
            insns.append(ComputeInsn("pool", dict(mode=PoolMode.SUM, k=a.bits, slice=s, inp=t.inp + word * a.bits,
                                                  oh=t.rows, ow=t.cols, kh=1, kw=1, stride=1,
                                                  irow=win.tile_irow(t.x0, t.cols), ipix=pa,
                                                  acc=t.acc + k * n), reads_inp=True))
            insns.append(ComputeInsn("requant", dict(
                dest=Dest.OUT, acc=t.acc + k * n, n=n, const=ctx.const_base(0, hw) + k, out=t.out + word * out.bits,
                ostride=win.pix_out, slice=s, kout=out.bits, shift=op.requant.shift, lo=op.requant.lo,
                hi=op.requant.hi, res=1,
                rinp=t.inp2 + word * bb.bits, rstride=pb, rk=bb.bits), reads_inp=True, writes_out=True))
        return insns

    preload = [dict(buf=Buffer.CONST, sram=ctx.const_base(0, hw), dram=b.alloc(len(consts), consts), rows=1,
                    len=len(consts) // hw.entry_bytes("const"), dstride=len(consts))]
    tiled = TiledLayer(op.name, h, rows, loads, compute,
                       lambda t: level_stores(dests, range(_words(c, hw)), out.bits, t, w, win.pix_out, hw),
                       lambda g: preload, inp_parts=2, out_w=w, cols_per_tile=shape[1], first_rows=first)
    return _record(op, "add", graph, emit_tiled_layer(b, tiled, ctx), (rows, shape[1]))


def lower_upsample(b: ProgramBuilder, op: ir.Upsample, graph: ir.Graph, addrs: dict[str, int],
                   dests: list[OutDest], ctx: LayerContext) -> dict:
    hw = b.hw
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    h, w, c = x.shape
    f = op.factor
    pix = _words(c, hw) * x.bits
    wo = w * f
    win = Window(h * f, wo, 1, 1, 1, 0, 1, pix, pix)  # the copy runs over the upsampled map
    shape = upsample_shape(op.name, win, f, hw)
    e = hw.entry_bytes("inp")

    def loads(t: Tile) -> list[dict]:
        fields = []
        for r in range(t.rows):  # output row r of the tile comes from input row (y0 + r) // f
            src = addrs[x.name] + (((t.y0 + r) // f) * w + t.x0 // f) * pix * e
            for px in range(f):  # output columns x0 + px, x0 + px + f, ... come from input columns x0/f, ...
                fields.append(dict(buf=Buffer.INP, sram=t.inp + (r * t.cols + px) * pix, dram=src, rows=t.cols // f,
                                   len=pix, dstride=pix * e, sstride=f * pix))
        return fields

    def compute(t: Tile) -> list[ComputeInsn]:
        return [ComputeInsn("pool", dict(mode=PoolMode.MAX, k=x.bits, slice=s, inp=t.inp + word * x.bits, oh=t.rows,
                                         ow=t.cols, kh=1, kw=1, stride=1, irow=win.tile_irow(t.x0, t.cols), ipix=pix,
                                         out=t.out + word * x.bits, ostride=pix), reads_inp=True, writes_out=True)
                for word, s in _slices(c, hw)]

    tiled = TiledLayer(op.name, h * f, shape[0], loads, compute,
                       lambda t: level_stores(dests, range(_words(c, hw)), out.bits, t, wo, pix, hw),
                       out_w=wo, cols_per_tile=shape[1])
    return _record(op, "upsample", graph, emit_tiled_layer(b, tiled, ctx), shape, factor=f)


def upsample_shape(name: str, win: Window, f: int, hw: HwConfig) -> tuple[int, int]:
    """(rows, cols) of an upsample's tiles: whole rows in multiples of f when a row fits, else rectangles
    whose width is a multiple of f (each LOAD replicates whole input pixels)."""
    rows = tile_rows(win.in_h // f, win.out_w, lambda r, tw: tile_needs(hw, win, r * f, tw=tw))
    if rows:
        return rows * f, win.out_w
    return tile_shape(name, win.out_h, win.out_w, lambda th, tw: tile_needs(hw, win, th, tw=tw), align=f)


def copied_concat(op: ir.Op, graph: ir.Graph, hw: HwConfig) -> bool:
    """A concat whose inputs are not whole W-channel words (but whole C-lane slices) runs as a copy layer
    (lower_concat); word-aligned ones cost nothing (producers store into it, compiler.lower._concat_views).
    A concat of a concat is copied too: the inner one has no producer that could also store into the outer."""
    if not isinstance(op, ir.Concat):
        return False
    return (any(graph.tensors[n].shape[2] % hw.word_bits for n in op.inputs[:-1])
            or any(isinstance(graph.producer(n), ir.Concat) for n in op.inputs))


def lower_concat(b: ProgramBuilder, op: ir.Concat, graph: ir.Graph, addrs: dict[str, int], dests: list[OutDest],
                 ctx: LayerContext) -> dict:
    """A channel concatenation of inputs that are not whole W-channel words, as a copy layer.

    STOREs write whole words, so two producers cannot share one: the concat tensor is written by one layer that
    loads every input's tile and moves each C-lane slice to its place: POOL sum over a 1x1 window copies the
    slice's levels into ACC, REQUANT (mul 1, shift 0) writes them to the output word and slice of the channels'
    offset (`slice` selects lanes, so offsets must be multiples of C, the array columns). Output slices past the
    last channel get level 0 from an all-zero CONST entry."""
    hw = b.hw
    out = graph.tensors[op.output]
    ins = [graph.tensors[n] for n in op.inputs]
    h, w, _ = out.shape
    c, spw = hw.array_cols, hw.slices_per_word
    offsets, o = [], 0
    for k, t in enumerate(ins):
        if t.bits != out.bits or t.shape[:2] != (h, w):
            raise LoweringError(f"concat '{op.name}': input '{t.name}' has {t.bits} bits / shape {t.shape}, the concat "
                                f"{out.bits} bits / {out.shape}")
        if k < len(ins) - 1 and t.shape[2] % c:
            raise LoweringError(f"concat '{op.name}': input '{t.name}' has {t.shape[2]} channels; a concatenation that "
                                f"is not whole {hw.word_bits}-channel words needs whole {c}-channel slices (the array "
                                f"columns of {hw.name})")
        offsets.append(o)
        o += t.shape[2]
    kbits = out.bits
    pix = [_words(t.shape[2], hw) * kbits for t in ins]
    words_out = _words(out.shape[2], hw)
    pix_out = words_out * kbits
    moves = []  # (input, its word, its slice, output word, output slice)
    for k, t in enumerate(ins):
        for g in range(math.ceil(t.shape[2] / c)):
            w_out, s_out = divmod(offsets[k] // c + g, spw)
            moves.append((k, *divmod(g, spw), w_out, s_out))
    written = {(m[3], m[4]) for m in moves}
    blanks = [(wo, so) for wo in range(words_out) for so in range(spw) if (wo, so) not in written]
    win = Window(h, w, 1, 1, 1, 0, 1, sum(pix), pix_out)
    shape = tile_shape(op.name, h, w, lambda th, tw: tile_needs(hw, win, th, acc_per_pixel=len(moves), tw=tw))
    rows, first = row_policy(h, shape, w, hw.array_rows)
    e = hw.entry_bytes("inp")
    lane = np.ones(c, dtype=np.int64)
    consts = pack_constants(lane, 0 * lane, 0 * lane, range(1), True, hw)  # entry 0: mul 1; entry 1: all zero

    def base(t: Tile, k: int) -> int:
        return t.inp + sum(pix[:k]) * t.pixels

    def loads(t: Tile) -> list[dict]:
        return [operand_load(addrs[x.name], base(t, k), pix[k], t, w, e) for k, x in enumerate(ins)]

    def compute(t: Tile) -> list[ComputeInsn]:
        n, insns = t.pixels, []
        req = dict(dest=Dest.OUT, n=n, ostride=pix_out, kout=kbits, shift=0, lo=0, hi=(1 << kbits) - 1)
        for j, (k, word, s, w_out, s_out) in enumerate(moves):
            insns.append(ComputeInsn("pool", dict(mode=PoolMode.SUM, k=kbits, slice=s, inp=base(t, k) + word * kbits,
                                                  oh=t.rows, ow=t.cols, kh=1, kw=1, stride=1, irow=t.cols * pix[k],
                                                  ipix=pix[k], acc=t.acc + j * n), reads_inp=True))
            insns.append(ComputeInsn("requant", dict(acc=t.acc + j * n, const=ctx.const_base(0, hw),
                                                     out=t.out + w_out * kbits, slice=s_out, **req), writes_out=True))
        for w_out, s_out in blanks:
            insns.append(ComputeInsn("requant", dict(acc=t.acc, const=ctx.const_base(0, hw) + 1,
                                                     out=t.out + w_out * kbits, slice=s_out, **req), writes_out=True))
        return insns

    preload = [dict(buf=Buffer.CONST, sram=ctx.const_base(0, hw), dram=b.alloc(len(consts), consts), rows=1,
                    len=len(consts) // hw.entry_bytes("const"), dstride=len(consts))]
    tiled = TiledLayer(op.name, h, rows, loads, compute,
                       lambda t: level_stores(dests, range(words_out), kbits, t, w, pix_out, hw),
                       lambda g: preload, out_w=w, cols_per_tile=shape[1], first_rows=first)
    return _record(op, "concat", graph, emit_tiled_layer(b, tiled, ctx), (rows, shape[1]), copies=len(moves))

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

import numpy as np

from isa.hwconfig import HwConfig
from isa.spec import Buffer, Dest, PoolMode

from . import ir
from .builder import ProgramBuilder
from .conv import OutDest, level_stores, pack_constants
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


def _words(channels: int, hw: HwConfig) -> int:
    return math.ceil(channels / hw.word_bits)


def _slices(channels: int, hw: HwConfig) -> list[tuple[int, int]]:
    """(word, slice) pairs covering the channel words."""
    return [(c, s) for c in range(_words(channels, hw)) for s in range(hw.slices_per_word)]


def _requant_constants(rq: ir.Requant, name: str, channels: int, hw: HwConfig) -> bytes:
    words = _words(channels, hw)
    if words * hw.slices_per_word > hw.const_entries:
        raise LoweringError(f"layer '{name}': {channels} channels need more CONST entries than {hw.name} has")
    if rq.lo != 0 and channels % hw.word_bits:
        raise LoweringError(f"layer '{name}': padded channels need lo = 0 (level 0 in pad bits)")
    mul = np.asarray(rq.mul, dtype=np.int64)
    rmul = np.asarray(rq.rmul if rq.rmul is not None else np.zeros_like(mul), dtype=np.int64)
    return pack_constants(mul, rmul, np.asarray(rq.bias, dtype=np.int64), range(words * hw.slices_per_word), False, hw)


def preload_groups(op: ir.Op, graph: ir.Graph, hw: HwConfig) -> tuple[int, bool]:
    """(groups, halves) of an average pool's or add's constant preload (one CONST entry per lane slice)."""
    return 1, _words(graph.tensors[op.inputs[0]].shape[2], hw) * hw.slices_per_word <= hw.const_entries // 2


def _record(op: ir.Op, kind: str, graph: ir.Graph, span: tuple[int, int, int], rows: int, **extra) -> dict:
    start, end, tiles = span
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    return {"name": op.name, "kind": kind, "instructions": [start, end], "in_shape": list(x.shape),
            "out_shape": list(out.shape), "bits": {"a_in": x.bits, "a_out": out.bits}, "tiles": tiles,
            "tile_rows": rows, "macs": 0, **extra}


def lower_pool(b: ProgramBuilder, op: ir.Pool, graph: ir.Graph, addrs: dict[str, int], dests: list[OutDest],
               ctx: LayerContext) -> dict:
    hw = b.hw
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    h, w, c = x.shape
    pix = _words(c, hw) * x.bits
    win = Window(h, w, op.kernel, op.kernel, op.stride, op.pad, 1, pix, _words(c, hw) * out.bits)
    slices = _slices(c, hw)
    avg = op.mode == "avg"
    rows = tile_rows(op.name, win.out_h, lambda th: tile_needs(hw, win, th, acc_per_pixel=len(slices) if avg else 0))
    rows = fewest_passes(win.out_h, win.out_w, rows, hw.array_rows)
    consts = _requant_constants(op.requant, op.name, c, hw) if avg else b""

    def compute(t: Tile) -> list[ComputeInsn]:
        n = t.rows * win.out_w
        geometry = dict(k=x.bits, oh=t.rows, ow=win.out_w, kh=win.kh, kw=win.kw, stride=win.stride, irow=win.irow,
                        ipix=win.pix)
        insns = []
        for k, (word, s) in enumerate(slices):
            if not avg:
                insns.append(ComputeInsn("pool", dict(mode=PoolMode.MAX, slice=s, inp=t.inp + word * x.bits,
                                                      out=t.out + word * x.bits, ostride=win.pix_out, **geometry),
                                         reads_inp=True, writes_out=True))
                continue
            insns.append(ComputeInsn("pool", dict(mode=PoolMode.SUM, slice=s, inp=t.inp + word * x.bits,
                                                  acc=t.acc + k * n, **geometry), reads_inp=True))
            insns.append(ComputeInsn("requant", dict(
                dest=Dest.OUT, acc=t.acc + k * n, n=n, const=ctx.const_base(0, hw) + k, out=t.out + word * out.bits,
                ostride=win.pix_out, slice=s, kout=out.bits, shift=op.requant.shift, lo=op.requant.lo,
                hi=op.requant.hi), writes_out=True))
        return insns

    preloads = (lambda g: [dict(buf=Buffer.CONST, sram=ctx.const_base(0, hw), dram=b.alloc(len(consts), consts), rows=1,
                                len=len(consts) // hw.entry_bytes("const"), dstride=len(consts))]) if avg else (
        lambda g: [])
    tiled = TiledLayer(
        op.name, win.out_h, rows,
        lambda t: [win.input_load(addrs[x.name], t.inp, t.y0, t.rows, hw.entry_bytes("inp"))], compute,
        lambda t: level_stores(dests, range(_words(c, hw)), out.bits, t, win.out_w, win.pix_out, hw), preloads,
        first_rows=first_tile_rows(win.out_h, win.out_w, rows, hw.array_rows))
    span = emit_tiled_layer(b, tiled, ctx)
    return _record(op, f"{op.mode}pool", graph, span, rows, kernel=[op.kernel, op.kernel], stride=op.stride,
                   pad=op.pad)


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
    rows = tile_rows(op.name, h, lambda th: tile_needs(hw, win, th, 2, len(slices), pb))
    rows = fewest_passes(h, w, rows, hw.array_rows)
    consts = _requant_constants(op.requant, op.name, c, hw)
    e = hw.entry_bytes("inp")

    def loads(t: Tile) -> list[dict]:
        n = t.rows * w * pb
        return [win.input_load(addrs[a.name], t.inp, t.y0, t.rows, e),
                dict(buf=Buffer.INP, sram=t.inp2, dram=addrs[bb.name] + t.y0 * w * pb * e, rows=1, len=n,
                     dstride=n * e)]

    def compute(t: Tile) -> list[ComputeInsn]:
        n = t.rows * w
        insns = []
        for k, (word, s) in enumerate(slices):
            insns.append(ComputeInsn("pool", dict(mode=PoolMode.SUM, k=a.bits, slice=s, inp=t.inp + word * a.bits,
                                                  oh=t.rows, ow=w, kh=1, kw=1, stride=1, irow=win.irow, ipix=pa,
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
                       lambda g: preload, inp_parts=2, first_rows=first_tile_rows(h, w, rows, hw.array_rows))
    return _record(op, "add", graph, emit_tiled_layer(b, tiled, ctx), rows)


def lower_upsample(b: ProgramBuilder, op: ir.Upsample, graph: ir.Graph, addrs: dict[str, int],
                   dests: list[OutDest], ctx: LayerContext) -> dict:
    hw = b.hw
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    h, w, c = x.shape
    f = op.factor
    pix = _words(c, hw) * x.bits
    wo = w * f
    win = Window(h * f, wo, 1, 1, 1, 0, 1, pix, pix)  # the copy runs over the upsampled map
    rows = f * tile_rows(op.name, h, lambda r: tile_needs(hw, win, r * f))
    e = hw.entry_bytes("inp")

    def loads(t: Tile) -> list[dict]:
        fields = []
        for r in range(t.rows):  # output row r of the tile comes from input row (y0 + r) // f
            src = addrs[x.name] + ((t.y0 + r) // f) * w * pix * e
            for px in range(f):
                fields.append(dict(buf=Buffer.INP, sram=t.inp + (r * wo + px) * pix, dram=src, rows=w, len=pix,
                                   dstride=pix * e, sstride=f * pix))
        return fields

    def compute(t: Tile) -> list[ComputeInsn]:
        return [ComputeInsn("pool", dict(mode=PoolMode.MAX, k=x.bits, slice=s, inp=t.inp + word * x.bits, oh=t.rows,
                                         ow=wo, kh=1, kw=1, stride=1, irow=win.irow, ipix=pix,
                                         out=t.out + word * x.bits, ostride=pix), reads_inp=True, writes_out=True)
                for word, s in _slices(c, hw)]

    tiled = TiledLayer(op.name, h * f, rows, loads, compute,
                       lambda t: level_stores(dests, range(_words(c, hw)), out.bits, t, wo, pix, hw))
    return _record(op, "upsample", graph, emit_tiled_layer(b, tiled, ctx), rows, factor=f)

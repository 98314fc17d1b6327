"""Row tiling, double buffering and dependency tokens shared by every layer kind.

A layer reads an (H, W) map of packed plane pixels from DRAM and writes an (Ho, Wo) map. It is cut
into tiles of whole output rows; tile i uses half i%2 of INP, ACC and OUT, so the load of tile i+1
and the store of tile i-1 overlap the compute of tile i. Tokens:

    load    --(INP tile i ready)-->      compute   (each input tile load; the first compute insn pops)
    compute --(INP half free)-->         load      (the last INP reader of tile i, for tile i+2's load)
    compute --(OUT tile i ready)-->      store     (the last compute insn of tile i)
    store   --(OUT half free)-->         compute   (tile i+2's first OUT writer pops; the rest are
                                                    popped by SYNCs at the end of the layer)
At a layer boundary compute sends one token to load; the next layer's first LOAD pops it, so a
layer reads its input (and overwrites WGT/CONST) only after every instruction of the previous layer
has finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from isa.spec import Buffer, Unit

from .builder import ProgramBuilder


class LoweringError(ValueError):
    """A layer cannot be mapped onto the configured hardware; the message names the layer."""


def out_size(n: int, k: int, stride: int, pad: int, dil: int = 1) -> int:
    """Output length of a sliding window (torch's convolution/pooling arithmetic, floor mode)."""
    return (n + 2 * pad - (k - 1) * dil - 1) // stride + 1


@dataclass(frozen=True)
class Window:
    """Spatial geometry of a sliding-window layer over packed pixels."""

    in_h: int
    in_w: int
    kh: int
    kw: int
    stride: int
    pad: int
    dil: int
    pix: int  # INP entries per input pixel
    pix_out: int  # OUT entries per output pixel

    @property
    def out_h(self) -> int:
        return out_size(self.in_h, self.kh, self.stride, self.pad, self.dil)

    @property
    def out_w(self) -> int:
        return out_size(self.in_w, self.kw, self.stride, self.pad, self.dil)

    @property
    def irow(self) -> int:
        """INP entries of one zero-padded input row."""
        return (self.in_w + 2 * self.pad) * self.pix

    def in_rows(self, out_rows: int) -> int:
        return (out_rows - 1) * self.stride + (self.kh - 1) * self.dil + 1


@dataclass(frozen=True)
class Tile:
    index: int
    y0: int  # first output row
    rows: int  # output rows
    inp: int  # INP base entry of this tile's half
    acc: int
    out: int


@dataclass
class ComputeInsn:
    """A compute instruction of one tile, before the tiling pass sets its token flags."""

    op: str
    fields: dict[str, int]
    reads_inp: bool = False
    writes_out: bool = False


def tile_rows(name: str, win: Window, hw, acc_per_row: int) -> int:
    """Largest number of output rows whose tile fits half of INP, ACC and OUT (and the field widths)."""
    best = 0
    for th in range(1, win.out_h + 1):
        if (
            win.in_rows(th) * win.irow <= hw.inp_entries // 2
            and th * acc_per_row <= hw.acc_entries // 2
            and th * win.out_w * win.pix_out <= min(hw.out_entries // 2, 0xFFFF)
            and th * win.out_w <= 0xFFFF
        ):
            best = th
        else:
            break
    if best == 0 or win.in_w * win.pix > 0xFFFF:
        raise LoweringError(
            f"layer '{name}': one output row ({win.out_w} pixels, input row of {win.irow} INP entries) does not fit "
            f"half of the buffers of '{hw.name}' (tiling along the width is not implemented yet)"
        )
    return best


@dataclass
class TiledLayer:
    """Everything `emit_tiled_layer` needs to know about one layer."""

    name: str
    win: Window
    rows_per_tile: int
    in_addr: int
    out_addr: int
    compute: Callable[[Tile], list[ComputeInsn]]
    preloads: list[dict[str, int]] = field(default_factory=list)  # LOAD fields (weights, constants)


def emit_tiled_layer(b: ProgramBuilder, layer: TiledLayer, first: bool, last: bool) -> tuple[int, int, int]:
    """Emit loads, compute and stores of all tiles with tokens; returns (first insn, end insn, tiles)."""
    hw, win = b.hw, layer.win
    start = len(b.program)
    e = hw.entry_bytes("inp")
    loads = 0

    def load(pop_next: int = 0, **fields: int) -> None:
        nonlocal loads
        boundary = loads == 0 and not first  # the layer's first LOAD waits for the previous layer
        b.emit("load", pop_next=int(pop_next or boundary), **fields)
        loads += 1

    for pre in layer.preloads:
        load(**pre)
    tiles = [
        Tile(i, y0, min(layer.rows_per_tile, win.out_h - y0), (i % 2) * (hw.inp_entries // 2),
             (i % 2) * (hw.acc_entries // 2), (i % 2) * (hw.out_entries // 2))
        for i, y0 in enumerate(range(0, win.out_h, layer.rows_per_tile))
    ]
    for t in tiles:
        iy0 = t.y0 * win.stride - win.pad
        iy1 = iy0 + win.in_rows(t.rows)
        load(buf=Buffer.INP, sram=t.inp, dram=layer.in_addr + max(iy0, 0) * win.in_w * win.pix * e,
             rows=min(iy1, win.in_h) - max(iy0, 0), len=win.in_w * win.pix, dstride=win.in_w * win.pix * e,
             pad_top=max(0, -iy0), pad_bottom=max(0, iy1 - win.in_h), pad_left=win.pad * win.pix,
             pad_right=win.pad * win.pix, pop_next=int(t.index >= 2), push_next=1)
        insns = layer.compute(t)
        last_reader = max(k for k, c in enumerate(insns) if c.reads_inp)
        first_writer = min(k for k, c in enumerate(insns) if c.writes_out)
        for k, c in enumerate(insns):
            b.emit(c.op, **c.fields, pop_prev=int(k == 0),
                   push_prev=int(k == last_reader and t.index + 2 < len(tiles)),
                   pop_next=int(k == first_writer and t.index >= 2), push_next=int(k == len(insns) - 1))
        n = t.rows * win.out_w * win.pix_out
        b.emit("store", buf=Buffer.OUT, sram=t.out, dram=layer.out_addr + t.y0 * win.out_w * win.pix_out * e,
               rows=1, len=n, dstride=n * e, pop_prev=1, push_prev=1)
    outstanding = min(len(tiles), 2)
    for k in range(outstanding):
        b.emit("sync", unit=Unit.COMPUTE, pop_next=1, push_prev=int(k == outstanding - 1 and not last))
    return start, len(b.program), len(tiles)

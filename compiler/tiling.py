"""Row tiling, double buffering and dependency tokens shared by every layer kind.

A layer writes an (Ho, Wo) map of packed pixels. It is cut into tiles of whole output rows, or, when
one row does not fit, rectangles of rows x a column range (`tile_shape`); global tile i uses half i%2
of INP (split again when the layer has a second operand), ACC and OUT, so the load of tile i+1 and the
store of tile i-1 overlap the compute of tile i. When the weights of a layer do not fit WGT, its output
channels are split into groups, each loading its own weights and constants (`preloads`) and running
over all tiles; tile indices run on across groups. When even one output word's weights do not fit,
every rectangle runs as several steps (`chunks` of the reduction): INP (and the chunk's WGT half) follow
the step index, ACC and OUT the rectangle index `seq`, and only the last chunk requantizes and stores.

Tokens (each push is matched by exactly one pop, in program order on both sides):
    load    --(tile i's inputs ready)-->  compute   last LOAD of tile i pushes; its first compute insn pops
    compute --(INP half free)-->          load      tile i's last INP reader, for tile i+2's first LOAD
                                                    (tile indices run on across groups)
    compute --(WGT/CONST part free)-->    load      for a group's (or the next layer's) first preload, once
                                                    the previous user of that part has finished
    compute --(OUT tile ready)-->         store     the last compute insn of rectangle r (its last chunk)
    store   --(OUT half free)-->          compute   rectangle r+2's first OUT writer pops; SYNCs at the end
                                                    of the layer pop the rest, so layers never overlap
At a layer boundary compute sends one token to load; the next layer's first input LOAD pops it, so a
layer reads its input only after every store of the previous one has finished.

Weight prefetch: when a group's weights and constants fit half of WGT and CONST, groups and layers
alternate between the halves, so a group's preload runs while the previous group or layer still
computes. Compute -> load tokens are matched in order, so each is pushed at the later of the point
where its condition holds and the previous push (see push_slots); extra pushes at one point ride on
SYNC instructions, and a token whose half was last used by an earlier layer is pushed by a SYNC before
the layer's first compute instruction.

Tile sizes: the fewest array passes, then the fewest tiles (fewest_passes), and a small first tile whose
un-overlapped input load is short (first_tile_rows). Program order is fixed up afterwards:
compiler/schedule.py hoists loads as early as their tokens allow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import Unit

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
    pix_out: int  # OUT entries per output pixel (of the words this layer writes)
    pad_end_h: int = 0  # extra level-0 rows after the bottom padding (ceil_mode pooling's partial last window)
    pad_end_w: int = 0  # extra level-0 columns after the right padding
    pad_w: int | None = None  # columns of padding left and right when they differ from `pad` (rows); None: pad

    @property
    def padw(self) -> int:
        return self.pad if self.pad_w is None else self.pad_w

    @property
    def out_h(self) -> int:
        return out_size(self.in_h + self.pad_end_h, self.kh, self.stride, self.pad, self.dil)

    @property
    def out_w(self) -> int:
        return out_size(self.in_w + self.pad_end_w, self.kw, self.stride, self.padw, self.dil)

    @property
    def irow(self) -> int:
        """INP entries of one zero-padded input row."""
        return (self.in_w + 2 * self.padw + self.pad_end_w) * self.pix

    def in_rows(self, out_rows: int) -> int:
        return (out_rows - 1) * self.stride + (self.kh - 1) * self.dil + 1

    def in_cols(self, x0: int, cols: int) -> tuple[int, int]:
        """Input columns [ix0, ix1) of output columns [x0, x0+cols), padding included (ix0 may be < 0).

        A full-width tile takes the whole zero-padded row (so whole-row programs are unchanged); a
        narrower tile takes just its window span, whose halo comes from the neighbouring tiles' columns."""
        if x0 == 0 and cols == self.out_w:
            return -self.padw, self.in_w + self.padw + self.pad_end_w
        ix0 = x0 * self.stride - self.padw
        return ix0, ix0 + (cols - 1) * self.stride + (self.kw - 1) * self.dil + 1

    def tile_irow(self, x0: int, cols: int) -> int:
        """INP entries of one input row of a tile (the BGEMM/POOL `irow`)."""
        ix0, ix1 = self.in_cols(x0, cols)
        return (ix1 - ix0) * self.pix

    def input_load(self, addr: int, sram: int, y0: int, rows: int, entry_bytes: int, x0: int = 0,
                   cols: int | None = None, ky0: int = 0, kh: int | None = None) -> dict[str, int]:
        """LOAD fields bringing the input of output rows [y0, y0+rows) x columns [x0, x0+cols) into INP,
        zero-padded on every side (columns outside the image become pad_left / pad_right); with `ky0`/`kh`
        only the input rows that kernel rows [ky0, ky0+kh) read (a chunk of a split reduction)."""
        iy0 = y0 * self.stride - self.pad + ky0 * self.dil
        iy1 = iy0 + (rows - 1) * self.stride + ((self.kh if kh is None else kh) - 1) * self.dil + 1
        ix0, ix1 = self.in_cols(x0, self.out_w if cols is None else cols)
        row_bytes = self.in_w * self.pix * entry_bytes
        return dict(buf=0, sram=sram, dram=addr + max(iy0, 0) * row_bytes + max(ix0, 0) * self.pix * entry_bytes,
                    rows=min(iy1, self.in_h) - max(iy0, 0), len=(min(ix1, self.in_w) - max(ix0, 0)) * self.pix,
                    dstride=row_bytes, pad_top=max(0, -iy0), pad_bottom=max(0, iy1 - self.in_h),
                    pad_left=max(0, -ix0) * self.pix, pad_right=max(0, ix1 - self.in_w) * self.pix)


@dataclass(frozen=True)
class Tile:
    """One step of a layer: output rows [y0, y0+rows) x columns [x0, x0+cols) of one group, and one chunk
    of the reduction (layers whose weights for one output word do not fit WGT run several chunks per
    output rectangle, accumulating into the same ACC region; only the last chunk writes OUT and stores)."""

    index: int  # global step index across groups (selects the INP half, and the WGT half of chunked layers)
    group: int
    y0: int  # first output row
    rows: int  # output rows
    inp: int  # INP base of the main input
    inp2: int  # INP base of the second operand (residual / add), when the layer has one
    acc: int
    out: int
    x0: int  # first output column
    cols: int  # output columns
    chunk: int = 0  # reduction chunk
    seq: int = 0  # global index of the output rectangle (selects the ACC and OUT halves)
    frame: int = 0  # batch frame (its activations sit LayerContext.frame_bytes further in DRAM)

    @property
    def pixels(self) -> int:
        return self.rows * self.cols


@dataclass
class ComputeInsn:
    """A compute instruction of one tile, before the tiling pass sets its token flags."""

    op: str
    fields: dict[str, int]
    reads_inp: bool = False
    writes_out: bool = False


@dataclass
class TiledLayer:
    """What `emit_tiled_layer` needs; the callables return instruction fields per group / tile."""

    name: str
    out_h: int
    rows_per_tile: int
    loads: Callable[[Tile], list[dict[str, int]]]
    compute: Callable[[Tile], list[ComputeInsn]]
    stores: Callable[[Tile], list[dict[str, int]]]
    preloads: Callable[[int], list[dict[str, int]]] = lambda g: []
    groups: int = 1
    inp_parts: int = 1  # 2 when a second operand shares INP with the main input
    out_w: int = 1
    cols_per_tile: int = 0  # 0: whole output rows
    chunks: int = 1  # reduction chunks per output rectangle
    first_rows: int = 0  # rows of the layer's first tile (0: rows_per_tile); see first_tile_rows

    def row_starts(self, group: int, frame: int = 0) -> list[int]:
        """First rows of a group's tiles: only the layer's first tile waits for its load (later groups'
        and frames' first loads overlap the previous tiles' compute), so only it is made small."""
        first = (self.first_rows if group == 0 and frame == 0 else 0) or self.rows_per_tile
        return [0, *range(first, self.out_h, self.rows_per_tile)]

    def tiles(self, hw: HwConfig, frames: int = 1) -> list[list[Tile]]:
        """Tiles per group (each group over every batch frame: its weights are loaded once per batch), with
        buffer halves assigned by global index (INP) and rectangle (ACC, OUT)."""
        part = hw.inp_entries // (2 * self.inp_parts)
        tw = self.cols_per_tile or self.out_w
        out: list[list[Tile]] = []
        i = seq = 0
        for g in range(self.groups):
            group = []
            for f in range(frames):
                starts = self.row_starts(g, f)
                for y0, y1 in zip(starts, [*starts[1:], self.out_h], strict=True):
                    for x0 in range(0, self.out_w, tw):
                        for k in range(self.chunks):
                            half, ohalf = i % 2, seq % 2
                            group.append(Tile(i, g, y0, y1 - y0, half * part, (2 + half) * part,
                                              ohalf * (hw.acc_entries // 2), ohalf * (hw.out_entries // 2), x0,
                                              min(tw, self.out_w - x0), k, seq, f))
                            i += 1
                        seq += 1
            out.append(group)
        return out


def tile_needs(hw: HwConfig, win: Window, th: int, inp_parts: int = 1, acc_per_pixel: int = 0,
               inp2_per_pixel: int = 0, tw: int | None = None) -> dict[str, tuple[int, int]]:
    """What a tile of `th` output rows x `tw` columns (default: whole rows) needs and has, per buffer
    share and instruction field."""
    part = hw.inp_entries // (2 * inp_parts)
    tw = win.out_w if tw is None else tw
    pixels = th * tw
    irow = win.tile_irow(0, tw)
    return {
        "INP (input rows)": (win.in_rows(th) * irow, part),
        "INP (second operand)": (pixels * inp2_per_pixel, part),
        "ACC": (pixels * acc_per_pixel, hw.acc_entries // 2),
        "OUT": (pixels * win.pix_out, min(hw.out_entries // 2, 0xFFFF)),
        "pixels per instruction": (pixels, 0xFFFF),
        "input row length": (irow, 0xFFFF),
        "tile width (12-bit ow)": (tw, 0xFFF),
        "tile height (12-bit oh)": (th, 0xFFF),
    }


Needs = Callable[[int, int], dict[str, tuple[int, int]]]


def _fits(needs: dict[str, tuple[int, int]]) -> bool:
    return all(need <= have for need, have in needs.values())


def tile_rows(out_h: int, out_w: int, needs: Needs) -> int:
    """Largest number of whole output rows per tile whose `needs(rows, out_w)` all fit (0: not one row)."""
    best = 0
    for th in range(1, out_h + 1):
        if not _fits(needs(th, out_w)):
            break
        best = th
    return best


def widest(out_w: int, th: int, needs: Needs, align: int) -> int:
    """Most output columns (a multiple of `align`, at most out_w) a tile of `th` rows can hold (0: none)."""
    lo, hi = 0, out_w // align
    while lo < hi:  # needs grow with the width: binary search on multiples of align
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _fits(needs(th, mid * align)) else (lo, mid - 1)
    return lo * align


def tile_shape(name: str, out_h: int, out_w: int, needs: Needs, align: int = 1) -> tuple[int, int]:
    """(rows, cols) per tile: whole rows whenever one row fits (existing programs keep their tiles), else
    the rectangle with the fewest tiles (then the widest: fewer DMA rows), columns a multiple of `align`."""
    rows = tile_rows(out_h, out_w, needs)
    if rows:
        return rows, out_w
    best: tuple[int, int, int] | None = None  # (tiles, -cols, rows)
    for th in range(1, out_h + 1):
        tw = widest(out_w, th, needs, align)
        if tw == 0:
            break
        key = (-(-out_h // th) * -(-out_w // tw), -tw, th)
        best = key if best is None or key < best else best
    if best is None:
        short = ", ".join(f"{what} needs {need} > {have}" for what, (need, have) in needs(1, align).items()
                          if need > have)
        raise LoweringError(f"layer '{name}': one output pixel does not fit the on-chip buffers ({short})")
    return best[2], -best[1]


def fewest_passes(out_h: int, out_w: int, max_rows: int, per_pass: int) -> int:
    """Rows per tile, at most `max_rows`, with the fewest array passes over the layer, then the fewest tiles.

    BGEMM, POOL and REQUANT walk a tile's pixels `per_pass` (= array rows R) at a time, so a tile of
    504 pixels costs as much as one of 512: 56 rows of 56 pixels in tiles of 8 rows take 196 passes,
    in tiles of 9 (the largest that fits) 199. Among equal pass counts, fewer tiles pay fewer fills.
    """
    return min(range(max_rows, 0, -1), key=lambda th: split_cost(out_h, out_w, th, per_pass))


def split_cost(out_h: int, out_w: int, rows: int, per_pass: int, first: int = 0) -> tuple[int, int]:
    """(array passes, tiles) of `out_h` rows cut into a first tile of `first` rows, then tiles of `rows`."""
    sizes = [first] if first else []
    full, rest = divmod(out_h - first, rows)
    sizes += [rows] * full + ([rest] if rest else [])
    return sum(-(-n * out_w // per_pass) for n in sizes), len(sizes)


def first_tile_rows(out_h: int, out_w: int, rows: int, per_pass: int) -> int:
    """Rows of a layer's (or group's) first tile: the fewest that add no array pass and at most one tile.

    A layer's first tile cannot overlap its own input load: its load starts when the previous layer's
    stores are done (the layer boundary) and its compute waits for it, so the array idles for the whole
    load. A small first tile shortens that wait; the following tiles' loads overlap its compute.
    """
    passes, tiles = split_cost(out_h, out_w, rows, per_pass)
    for first in range(1, rows):
        p, n = split_cost(out_h, out_w, rows, per_pass, first)
        if p <= passes and n <= tiles + 1:
            return first
    return rows


def row_policy(out_h: int, shape: tuple[int, int], out_w: int, per_pass: int) -> tuple[int, int]:
    """(rows per tile, rows of the first tile) for a tile `shape`: whole-row tiles take the fewest array
    passes and a small first tile (fewest_passes, first_tile_rows); width tiles keep their rows."""
    rows, cols = shape
    if cols != out_w:
        return rows, 0
    rows = fewest_passes(out_h, out_w, rows, per_pass)
    return rows, first_tile_rows(out_h, out_w, rows, per_pass)


@dataclass(frozen=True)
class LayerContext:
    """Where a layer sits in the program: boundaries, and how it uses WGT/CONST.

    With `halves`, group g of the layer preloads into half (half + g) % 2 of WGT and CONST, so a group's
    weights load while the previous group (or layer) computes; otherwise every group uses all of them.
    """

    first: bool = True
    last: bool = True
    halves: bool = False
    half: int = 0
    prefetched: bool = False  # the first preload pops the previous layer's prefetch token
    prefetch_next: bool = False  # push a prefetch token for the next layer's preloads
    frames: int = 1  # batch: every group runs its tiles for each frame, weights loaded once
    frame_bytes: int = 0  # DRAM distance between two frames' copies of the activation tensors [0, frame_bytes)

    def frame_fields(self, fields: dict[str, int], frame: int) -> dict[str, int]:
        """A tile's DMA for `frame`: activation addresses (DRAM [0, frame_bytes)) move to that frame's copy."""
        if frame == 0 or not 0 <= fields["dram"] < self.frame_bytes:
            return fields
        return {**fields, "dram": fields["dram"] + frame * self.frame_bytes}

    def wgt_base(self, group: int, hw: HwConfig) -> int:
        return ((self.half + group) % 2) * (hw.wgt_entries // 2) if self.halves else 0

    def const_base(self, group: int, hw: HwConfig) -> int:
        return ((self.half + group) % 2) * (hw.const_entries // 2) if self.halves else 0


def push_slots(layer_groups: list[list[Tile]], insns: dict[int, list[ComputeInsn]], ctx: LayerContext) -> Counter:
    """How many compute -> load tokens to push after each compute instruction (position in the layer).

    The load unit pops in program order: per group its first preload (group > 0), then the tile loads
    (global tile i >= 2 waits for tile i-2's INP half), and at the end the next layer's prefetch. Token
    j must be the j-th push, so each is pushed at the later of the point where its condition holds and
    the previous push. Position -1 is a SYNC before the layer's first compute instruction: a token pushed
    by that instruction would wait for its end, a whole tile later.
    """
    positions, reader, group_last = 0, {}, {}
    for tiles in layer_groups:
        for t in tiles:
            body = insns[t.index]
            reader[t.index] = positions + max(k for k, c in enumerate(body) if c.reads_inp)
            positions += len(body)
            group_last[t.group] = positions - 1

    def weights_free(g: int) -> int:
        """Where group g's preload may begin: the previous user of its WGT/CONST part is done. -1: before
        the layer's first compute instruction (that part was last used by an earlier layer)."""
        if not ctx.halves:
            return group_last[g - 1]
        return group_last[g - 2] if g >= 2 else -1

    earliest = []
    for g, tiles in enumerate(layer_groups):
        if g > 0:
            earliest.append(weights_free(g))
        earliest += [reader[t.index - 2] for t in tiles if t.index >= 2]
    if ctx.prefetch_next:
        earliest.append(weights_free(len(layer_groups)))
    slots, at = Counter(), -1
    for e in earliest:
        at = max(at, e)
        slots[at] += 1
    return slots


def out_reuse_pop(body: list[ComputeInsn], t: Tile, popped: set[int]) -> int:
    """Position in `body` of the instruction that pops the store -> compute token freeing rectangle t.seq's
    OUT/ACC half (stored by rectangle seq-2): the rectangle's first writer of a stored buffer; -1 if none here."""
    if t.seq < 2 or t.seq in popped:
        return -1
    writers = [k for k, c in enumerate(body) if c.writes_out]
    if writers:
        popped.add(t.seq)
        return writers[0]
    return -1


def emit_tiled_layer(b: ProgramBuilder, layer: TiledLayer, ctx: LayerContext) -> tuple[int, int, int]:
    """Emit preloads, loads, compute and stores of all tiles with tokens; returns (start, end, tiles)."""
    start = len(b.program)
    boundary = [not ctx.first]  # the previous layer's end token is still to be popped

    def load(fields: dict[str, int], pop: bool, push: bool, may_take_boundary: bool) -> None:
        take = may_take_boundary and boundary[0]
        boundary[0] = boundary[0] and not take
        b.emit("load", **fields, pop_next=int(pop or take), push_next=int(push))

    groups = layer.tiles(b.hw, ctx.frames)
    insns = {t.index: layer.compute(t) for tiles in groups for t in tiles}
    slots = push_slots(groups, insns, ctx)
    for _ in range(slots[-1]):
        b.emit("sync", unit=Unit.COMPUTE, push_prev=1)
    position, popped = 0, set()
    for g, tiles in enumerate(groups):
        for k, fields in enumerate(layer.preloads(g)):
            first = k == 0 and (g > 0 or ctx.prefetched)
            load(fields, pop=first, push=False, may_take_boundary=not ctx.prefetched)
        for t in tiles:
            loads = [ctx.frame_fields(f, t.frame) for f in layer.loads(t)]
            for k, fields in enumerate(loads):
                load(fields, pop=(k == 0 and t.index >= 2), push=(k == len(loads) - 1), may_take_boundary=True)
            body = insns[t.index]
            last_chunk = t.chunk == layer.chunks - 1  # only the rectangle's last chunk sends it to the store
            first_writer = out_reuse_pop(body, t, popped)
            for k, c in enumerate(body):
                pushes = slots[position]
                b.emit(c.op, **c.fields, pop_prev=int(k == 0), push_prev=int(pushes > 0),
                       pop_next=int(k == first_writer), push_next=int(last_chunk and k == len(body) - 1))
                for _ in range(pushes - 1):  # one flag per instruction: further tokens ride on SYNCs
                    b.emit("sync", unit=Unit.COMPUTE, push_prev=1)
                position += 1
            stores = [ctx.frame_fields(f, t.frame) for f in layer.stores(t)] if last_chunk else []
            for k, fields in enumerate(stores):
                b.emit("store", **fields, pop_prev=int(k == 0), push_prev=int(k == len(stores) - 1))
    total = groups[-1][-1].seq + 1  # output rectangles, each stored once
    outstanding = min(total, 2)
    for k in range(outstanding):
        b.emit("sync", unit=Unit.COMPUTE, pop_next=1, push_prev=int(k == outstanding - 1 and not ctx.last))
    return start, len(b.program), total

"""Pooling windows larger than the POOL unit's 15x15 (4-bit kh/kw/stride fields) as two pooling layers.

A window over more than 15 rows or columns (global average pooling of a 16x16 map, a 7x20 map, ...) is
split in the IR, before the golden model runs, into two ordinary `Pool` ops:

- **blocks**: b x b windows with stride b (b <= 15) and, for a global window, the symmetric level-0
  padding p < b that makes the blocks cover every pixel exactly once;
- **final**: the original op (same name, output and requant) over the map of blocks, a window of at most
  15x15 (stride 1 for a global window, s/b otherwise).

Max pooling: max of the block maxima, exact (level-0 padding never wins, levels are >= 0).

Average pooling: the blocks hold **sums** of levels. When a block sum fits 8 bits (b²·(2^K−1) <= 255:
b <= 9 at 2-bit, b <= 4 at 4-bit activations) the block tensor is the exact sum (mul 1, shift 0, the
fewest planes that hold it) and the final op keeps the original requant: Σ over blocks of block sums is
the original window sum, so every output integer equals the single-window golden value. Otherwise
(wide activations, e.g. A8) a block level is the sum rounded by the project's one rule,
`round_shift(Σ, e)` with 2^e >= b²·(2^K−1)/255 (isa.rounding), and the final requant is rescaled
(shift − e and round_shift(bias, e), or mul·2^e when the shift is too small): the golden model runs
these two ops, so it describes exactly what the hardware computes.

Windows that are not global must have no padding and a block size dividing kernel and stride.
"""

from __future__ import annotations

import numpy as np

from bitbranch.isa.rounding import round_shift

from . import ir
from .tiling import LoweringError, out_size

MAX_FIELD = 15  # POOL's kh, kw and stride are 4-bit fields


def needs_split(op: ir.Op) -> bool:
    return isinstance(op, ir.Pool) and (max(op.window) > MAX_FIELD or op.stride > MAX_FIELD)


def split_large_pools(graph: ir.Graph) -> ir.Graph:
    """`graph` with every pooling op whose window or stride exceeds the POOL fields split in two (in place)."""
    if not any(needs_split(op) for op in graph.ops):
        return graph
    ops: list[ir.Op] = []
    for op in graph.ops:
        ops += _split(op, graph) if needs_split(op) else [op]
    graph.ops = ops
    return graph


def _unique(graph: ir.Graph, name: str) -> str:
    out, k = name, 1
    while out in graph.tensors:
        k += 1
        out = f"{name}:{k}"
    return out


def _global_blocks(h: int, w: int, amax: int, avg: bool) -> tuple[int, int, int, int] | None:
    """(b, pad, blocks_h, blocks_w) for a window covering the whole h x w map: blocks b x b, stride b, pad p
    covering every pixel once, at most 15 x 15 blocks. Prefers exact block sums (avg), no padding, then large
    blocks (exact / max) or small blocks (rounded sums: less rounding)."""
    best, best_key = None, None
    for b in range(2, MAX_FIELD + 1):
        for p in range(b):
            nh, nw = out_size(h, b, b, p), out_size(w, b, b, p)
            if nh * b - p < h or nw * b - p < w or max(nh, nw) > MAX_FIELD:
                continue
            exact = not avg or b * b * amax <= 255
            key = (not exact, p > 0, -b if exact else b)
            if best_key is None or key < best_key:
                best, best_key = (b, p, nh, nw), key
            break  # the smallest padding for this b
    return best


def _split(op: ir.Pool, graph: ir.Graph) -> list[ir.Op]:
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    h, w, c = x.shape
    kh, kw = op.window
    if any(op.extra):
        raise LoweringError(f"layer '{op.name}': ceil_mode pooling with a {kh}x{kw} window (over the POOL unit's "
                            f"{MAX_FIELD}x{MAX_FIELD}) is not supported")
    s, p = op.stride, op.pad
    amax = (1 << x.bits) - 1
    avg = op.mode == "avg"
    oh, ow = out.shape[:2]
    covers = (oh, ow) == (1, 1) and kh - p >= h and kw - p >= w
    if covers:  # one window over the whole map (global pooling)
        found = _global_blocks(h, w, amax, avg)
        if found is None:
            raise LoweringError(f"layer '{op.name}': global pooling of a {h}x{w} map needs more than 15x15 blocks of "
                                f"at most 15x15 (the POOL unit's 4-bit fields); use a smaller input")
        b, p1, nh, nw = found
        final = dict(kernel=nh, kernel_w=nw if nw != nh else 0, stride=1, pad=0)
    else:
        sizes = [b for b in range(MAX_FIELD, 1, -1) if p == 0 and kh % b == 0 and kw % b == 0 and s % b == 0
                 and max(kh, kw, s) // b <= MAX_FIELD]
        if not sizes:
            raise LoweringError(f"layer '{op.name}': pooling window {kh}x{kw} (stride {s}, padding {p}) is larger "
                                f"than the POOL unit's {MAX_FIELD}x{MAX_FIELD} and cannot be split into blocks (a "
                                "block size must divide window and stride, without padding)")
        exact = [b for b in sizes if not avg or b * b * amax <= 255]
        b, p1 = (exact or sizes[::-1])[0], 0
        nh, nw = out_size(h, b, b, 0), out_size(w, b, b, 0)
        final = dict(kernel=kh // b, kernel_w=kw // b if kw != kh else 0, stride=s // b, pad=0)
    mid_name = _unique(graph, f"{op.output}.blocks")
    if not avg:
        graph.tensors[mid_name] = ir.Tensor(mid_name, (nh, nw, c), x.bits, x.scale, x.zero)
        first = ir.Pool(f"{op.name}.blocks", [x.name], mid_name, "max", b, b, p1)
        second = ir.Pool(op.name, [mid_name], op.output, "max", **final)
    else:
        rq = op.requant
        top = b * b * amax
        if top <= 255:  # exact block sums
            bits, e = max(1, top.bit_length()), 0
        else:  # rounded sums on 8 bits: round_shift(Σ, e) <= 255
            bits, e = 8, (-(-top // 255) - 1).bit_length()
        ones = np.ones(c, dtype=np.int64)
        first_rq = ir.Requant(ones, np.zeros(c, dtype=np.int64), e, 0, (1 << bits) - 1)
        if e == 0:
            second_rq = rq
        elif rq.shift >= e:
            second_rq = ir.Requant(rq.mul, round_shift(np.asarray(rq.bias, dtype=np.int64), e), rq.shift - e, rq.lo,
                                   rq.hi, rq.rmul, rq.out_int32)
        elif int(np.abs(rq.mul).max(initial=0)) << e < 1 << 31:
            second_rq = ir.Requant(np.asarray(rq.mul, dtype=np.int64) << e, rq.bias, rq.shift, rq.lo, rq.hi, rq.rmul,
                                   rq.out_int32)
        else:
            raise LoweringError(f"layer '{op.name}': the rescaled requantization of a split {kh}x{kw} average does not "
                                "fit int32 constants")
        graph.tensors[mid_name] = ir.Tensor(mid_name, (nh, nw, c), bits, x.scale * (1 << e), 0.0)
        first = ir.Pool(f"{op.name}.blocks", [x.name], mid_name, "avg", b, b, p1, first_rq)
        second = ir.Pool(op.name, [mid_name], op.output, "avg", requant=second_rq, **final)
        layers = graph.meta.setdefault("layers", {})
        layers[first.name] = {"kind": "pool", "out": mid_name, "a_in": x.bits, "a_out": bits,
                              "requant_error": 0.0 if e == 0 else 0.5, "split_of": op.name}
    if out_size(nh, second.window[0], second.stride, 0) != oh or out_size(nw, second.window[1], second.stride, 0) != ow:
        raise LoweringError(f"layer '{op.name}': internal error splitting the pooling window (output size)")
    return [first, second]

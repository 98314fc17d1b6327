"""Lowering of max pooling on K-bit levels (exact: levels are monotone in the real value).

Padding is level 0. For z = 0 activations (post-ReLU) every level is >= 0, so a level-0 border
never wins over a real pixel and the result equals torch's max_pool2d with -inf padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from isa.hwconfig import HwConfig
from isa.spec import PoolMode

from .builder import ProgramBuilder
from .tiling import ComputeInsn, Tile, TiledLayer, Window, emit_tiled_layer, out_size, tile_rows


@dataclass
class MaxPoolLayer:
    name: str
    in_shape: tuple[int, int, int]  # (H, W, C) levels
    bits: int
    kernel: int
    stride: int
    pad: int = 0

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, c = self.in_shape
        return out_size(h, self.kernel, self.stride, self.pad), out_size(w, self.kernel, self.stride, self.pad), c

    def golden(self, u: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(u, dtype=np.float32)).permute(2, 0, 1)[None]
        y = torch.nn.functional.max_pool2d(x, self.kernel, self.stride, self.pad)
        return y[0].permute(1, 2, 0).to(torch.uint8).numpy()


def pool_tile(layer: MaxPoolLayer, win: Window, hw: HwConfig, t: Tile) -> list[ComputeInsn]:
    """One POOL per (channel word, lane slice): lanes of a slice are pooled together."""
    words = math.ceil(layer.in_shape[2] / hw.word_bits)
    return [
        ComputeInsn("pool", dict(
            mode=PoolMode.MAX, k=layer.bits, slice=s, inp=t.inp + c * layer.bits, oh=t.rows, ow=win.out_w,
            kh=win.kh, kw=win.kw, stride=win.stride, irow=win.irow, ipix=win.pix, out=t.out + c * layer.bits,
            ostride=win.pix_out), reads_inp=True, writes_out=True)
        for c in range(words)
        for s in range(hw.slices_per_word)
    ]


def lower_maxpool(b: ProgramBuilder, layer: MaxPoolLayer, in_addr: int, out_addr: int, first: bool,
                  last: bool) -> dict:
    hw = b.hw
    h, w, c = layer.in_shape
    pix = math.ceil(c / hw.word_bits) * layer.bits
    win = Window(h, w, layer.kernel, layer.kernel, layer.stride, layer.pad, 1, pix, pix)
    rows = tile_rows(layer.name, win, hw, acc_per_row=0)
    start, end, tiles = emit_tiled_layer(
        b, TiledLayer(layer.name, win, rows, in_addr, out_addr, lambda t: pool_tile(layer, win, hw, t)), first, last
    )
    return {
        "name": layer.name, "kind": "maxpool", "instructions": [start, end], "in_shape": list(layer.in_shape),
        "out_shape": list(layer.out_shape), "bits": {"a_in": layer.bits, "a_out": layer.bits},
        "kernel": [layer.kernel, layer.kernel], "stride": layer.stride, "pad": layer.pad, "tiles": tiles,
        "tile_rows": rows, "macs": 0,
    }

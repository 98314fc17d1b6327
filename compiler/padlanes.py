"""Which tensors have readers of their padded channel lanes.

A tensor of C channels fills ceil(C / W) words; lanes C.. of the last word are padding. Readers that treat
padding as level 0 (a convolution's XNOR sums, an add, an output) need those lanes at level 0, so a layer whose
requantization clamps at lo != 0 cannot write padded lanes for them. Other readers never look at the padded
lanes' values: an average POOL (also BatchNorm of a level tensor) has all-zero constants there, so its padded
output lanes do not depend on its input's; a concat copy moves C-lane slices of real channels. Max pooling,
upsampling and word-aligned concats pass the lanes on, so their own readers decide (DenseNet-161's stem: 96 of
128 lanes, read by max pooling, BatchNorm and concat copies only).
"""

from __future__ import annotations

from bitbranch.isa.hwconfig import HwConfig

from . import ir
from .pool import copied_concat


def pad_lanes_read(graph: ir.Graph, name: str, hw: HwConfig) -> bool:
    """Does any reader of tensor `name` (or of what passes its lanes on) use its padded lanes as level 0?"""
    if name in graph.outputs:
        return True
    for op in graph.consumers(name):
        if isinstance(op, ir.Pool) and op.mode == "avg":
            continue
        if isinstance(op, ir.Concat) and copied_concat(op, graph, hw) and name != op.inputs[-1]:
            continue  # an input before the last is whole C-lane slices: only those are copied
        if isinstance(op, (ir.Pool, ir.Upsample, ir.Concat)):  # max pool, upsample, concat: lanes passed on
            if pad_lanes_read(graph, op.output, hw):
                return True
            continue
        return True
    return False

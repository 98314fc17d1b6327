"""Liveness: does a bit-exact result carry information?

Bit-exactness compares the simulator with the golden model; it says nothing about whether the numbers
mean anything. A network whose activations collapse onto one level (ReLU6 quantized over a fixed 0..6
range at 2 bits maps every value under 1 to level 0; a clip calibrated far too wide does the same)
runs "bit-exact" and outputs a constant. This module measures, per IR op, how the output values spread
over the levels, and turns collapses into warnings that name the layers.

Measures per op output (from the golden model's values, which equal the simulator's when bit-exact):
- `distinct`: number of different values (levels for K-bit tensors, integers for int32 results);
- `top_share`: share of the values on the most used one;
- `levels`: 2^K for K-bit tensors, None for int32 results.
A layer is *collapsed* when top_share > COLLAPSED_SHARE; an output is *constant* when distinct == 1, and
*nearly constant* when it has at least FEW_VALUES_MIN_SIZE values but fewer than FEW_VALUES_SHARE of them are
different (squeezenet1_1 at W2A2: 1000 logits on 4 values, too few to rank 1000 classes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import ir

COLLAPSED_SHARE = 0.99  # one level holding more than this share of a layer's outputs means the layer says ~nothing
FEW_VALUES_MIN_SIZE = 100  # outputs this large should spread over many values
FEW_VALUES_SHARE = 0.01  # ... at least this share of them different (10 of 1000 logits)
MAX_NAMED = 8  # layers named in one warning line


@dataclass(frozen=True)
class Usage:
    """How one tensor's values spread over its levels."""

    tensor: str
    bits: int
    size: int
    distinct: int
    top_share: float

    @property
    def levels(self) -> int | None:
        return (1 << self.bits) if self.bits <= 8 else None

    @property
    def collapsed(self) -> bool:
        return self.size > 1 and self.top_share > COLLAPSED_SHARE

    def label(self) -> str:
        """Short column text: `3/4 71%` (levels used / available, share of the most used one) or `998 v 1%`."""
        used = f"{self.distinct}/{self.levels}" if self.levels else f"{self.distinct} v"
        return f"{used} {self.top_share:.0%}"

    def to_dict(self) -> dict:
        return {**asdict(self), "levels": self.levels, "collapsed": self.collapsed, "label": self.label()}


def usage(name: str, bits: int, values: np.ndarray) -> Usage:
    v = np.asarray(values).ravel()
    if v.size == 0:
        return Usage(name, bits, 0, 0, 0.0)
    if bits <= 8:
        counts = np.bincount(v.astype(np.int64), minlength=1 << bits)
        counts = counts[counts > 0]
    else:
        _, counts = np.unique(v, return_counts=True)
    return Usage(name, bits, int(v.size), int(counts.size), float(counts.max() / v.size))


def measure(graph: ir.Graph, values: dict[str, np.ndarray]) -> dict[str, Usage]:
    """Usage of every accelerator op's output, keyed by op (= layer) name, in program order."""
    out: dict[str, Usage] = {}
    for op in graph.ops:
        if isinstance(op, ir.HostOp) or op.output not in values:
            continue
        t = graph.tensors[op.output]
        out[op.name] = usage(op.output, t.bits, values[op.output])
    return out


def warnings_for(per_layer: dict[str, Usage], outputs: dict[str, np.ndarray]) -> list[str]:
    """Warning lines (without a `warning:` prefix): collapsed layers by name, constant final outputs."""
    lines = []
    collapsed = [name for name, u in per_layer.items() if u.collapsed]
    if collapsed:
        named = ", ".join(collapsed[:MAX_NAMED]) + (f", ... ({len(collapsed) - MAX_NAMED} more)"
                                                    if len(collapsed) > MAX_NAMED else "")
        lines.append(f"{len(collapsed)} of {len(per_layer)} layers put > {COLLAPSED_SHARE:.0%} of their outputs on one "
                     f"level: {named}; their activation ranges do not fit the data (calibrate with --calib on "
                     "representative images, or use more activation bits)")
    for name, v in outputs.items():
        v = np.asarray(v)
        if v.size > 1 and np.all(v == v.flat[0]):
            lines.append(f"final output '{name}' is constant (all {v.size} values = {v.flat[0]}): the result "
                         "carries no information about the input")
        elif v.size >= FEW_VALUES_MIN_SIZE and (n := np.unique(v).size) < FEW_VALUES_SHARE * v.size:
            lines.append(f"final output '{name}' takes only {n} different values over its {v.size}: it can hardly "
                         "rank its entries (calibrate with --calib on representative images, or use more bits)")
    return lines


def report(graph: ir.Graph, values: dict[str, np.ndarray], outputs: list[str]) -> dict:
    """The manifest entry: {"layers": {name: usage dict}, "warnings": [...]} (JSON-ready)."""
    per_layer = measure(graph, values)
    return {"collapsed_share": COLLAPSED_SHARE,
            "layers": {k: u.to_dict() for k, u in per_layer.items()},
            "warnings": warnings_for(per_layer, {n: values[n] for n in outputs if n in values})}


def is_degenerate(values: np.ndarray) -> bool:
    """For tests: an output that is constant (every value equal) or empty carries no information."""
    v = np.asarray(values)
    return v.size == 0 or bool(np.all(v == v.flat[0]))

"""Integer IR: a quantized network as integer operations on level tensors — the golden model.

This is the contract between the front half of the compiler (torch model -> QAT -> integer ops:
BN folding, scales, fixed-point constants) and the back half (integer ops -> ISA program). Running a
`Graph` with `run_graph` *is* the golden model: the simulator and RTL must reproduce every integer.

Tensors hold level indices u in [0, 2^bits - 1] with real value scale·(u − zero), laid out (H, W, C);
`bits == 32` marks int32 results (logits, maps). All requantization follows one rule:
    r = round_shift(v, shift) (isa.rounding), out = clamp(r, lo, hi), or int32 saturation when out_int32.
Padding of convolutions and pooling windows is level 0 (real zero for post-ReLU tensors; for others
the golden model defines it this way and the float model differs only at borders).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from bitbranch.isa.rounding import clamp_levels, requantize, saturate_int32

from .golden import conv_sum, pool_max, pool_sum, upsample_nearest

T = TypeVar("T")
Progress = Callable[[int, int, str], None]  # (done, total, name of the item in work): per-layer progress


def steps(items: Sequence[T], progress: Progress | None, name: Callable[[T], str]) -> Iterator[T]:
    """Yield items, calling progress(k, n, name(item)) before the k-th and (n, n, "") after the last."""
    for k, item in enumerate(items):
        if progress:
            progress(k, len(items), name(item))
        yield item
    if progress:
        progress(len(items), len(items), "")


INT32 = 32


@dataclass
class Tensor:
    name: str
    shape: tuple[int, int, int]  # (H, W, C)
    bits: int  # 1..8 levels, or 32 for int32 results
    scale: float = 1.0
    zero: float = 0.0

    def dequantize(self, u: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(u, dtype=np.float64) - self.zero)


@dataclass
class Requant:
    """Per-output-channel integer affine: v = S·mul + bias (+ u_res·rmul), then round_shift and clamp."""

    mul: np.ndarray
    bias: np.ndarray
    shift: int
    lo: int = 0
    hi: int = 255
    rmul: np.ndarray | None = None  # residual multiplier (Conv with residual, Add)
    out_int32: bool = False

    def apply(self, s: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        if (residual is None) != (self.rmul is None):
            raise ValueError("requant: residual operand and rmul must be given together")
        r = requantize(s, self.mul, self.bias, self.shift, residual, self.rmul)
        return saturate_int32(r) if self.out_int32 else clamp_levels(r, self.lo, self.hi).astype(np.uint8)


@dataclass
class Op:
    name: str  # module path in the source model (what errors and reports show)
    inputs: list[str]
    output: str


@dataclass
class Conv(Op):
    """S = Σ u·w over the window (w: odd M-bit codes or ternary), then requant (optionally + residual).

    inputs = [x] or [x, residual]. Linear layers are convolutions whose kernel covers the whole input.
    Grouped (depthwise: groups = Cin) as in torch: weights (Cout, Cin/groups, kh, kw), output channel o
    reads only the input channels of its group o div (Cout/groups).
    """

    weights: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1, 1), np.int64))  # (Cout, Cin/groups, kh, kw)
    mbits: int = 2
    ternary: bool = False
    stride: int = 1
    pad: int = 0  # rows of level-0 padding above and below (and columns left and right unless pad_w is set)
    dil: int = 1
    requant: Requant | None = None
    groups: int = 1
    pad_w: int | None = None  # columns left and right when they differ from `pad` (Inception's 1x7 / 7x1); None: pad

    @property
    def pads(self) -> tuple[int, int]:
        """(rows, columns) of level-0 padding on each side."""
        return self.pad, self.pad if self.pad_w is None else self.pad_w


@dataclass
class Pool(Op):
    """mode 'max': max of levels (no requant). mode 'avg': Σ levels over the window, then requant."""

    mode: str = "max"
    kernel: int = 2
    stride: int = 2
    pad: int = 0
    requant: Requant | None = None
    kernel_w: int = 0  # window width when it differs from `kernel` (global pooling of a non-square map); 0: square
    extra: tuple[int, int] = (0, 0)  # level-0 rows / columns after the bottom / right padding (ceil_mode)
    # avg with ceil_mode: the partial last column / row / corner divide by fewer elements (torch's divisor):
    # {"col": Requant, "row": Requant, "corner": Requant} for the outputs whose window is partial
    edge: dict | None = None

    @property
    def window(self) -> tuple[int, int]:
        return self.kernel, self.kernel_w or self.kernel


@dataclass
class Add(Op):
    """out = requant(u_a·mul + u_b·rmul + bias): a residual sum of two level tensors."""

    requant: Requant | None = None


@dataclass
class Concat(Op):
    """Channel concatenation; all inputs share bits, scale and zero point."""


@dataclass
class Upsample(Op):
    factor: int = 2


@dataclass
class HostOp(Op):
    """Runs on the host in torch (reported in the manifest); `fn` maps input arrays to the output."""

    fn: object = None
    reason: str = ""


@dataclass
class Graph:
    tensors: dict[str, Tensor]
    ops: list[Op]  # topological order
    inputs: list[str]
    outputs: list[str]
    meta: dict = field(default_factory=dict)

    def producer(self, tensor: str) -> Op | None:
        return next((op for op in self.ops if op.output == tensor), None)

    def consumers(self, tensor: str) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]


def run_op(op: Op, args: list[np.ndarray]) -> np.ndarray:
    """The golden semantics of one op."""
    if isinstance(op, Conv):
        s = conv_sum(args[0], op.weights, op.stride, op.pads, op.dil, op.groups)
        return op.requant.apply(s, args[1] if len(args) > 1 else None)
    if isinstance(op, Pool):
        if op.mode == "max":
            return pool_max(args[0], op.window, op.stride, op.pad, op.extra)
        s = pool_sum(args[0], op.window, op.stride, op.pad, op.extra)
        out = op.requant.apply(s)
        for region, rq in (op.edge or {}).items():  # the partial last column / row / corner (ceil_mode)
            at = {"col": np.s_[:, -1:], "row": np.s_[-1:, :], "corner": np.s_[-1:, -1:]}[region]
            out[at] = rq.apply(s[at])
        return out
    if isinstance(op, Add):
        return op.requant.apply(np.asarray(args[0], dtype=np.int64), args[1])
    if isinstance(op, Concat):
        return np.concatenate(args, axis=-1)
    if isinstance(op, Upsample):
        return upsample_nearest(args[0], op.factor)
    if isinstance(op, HostOp):
        return np.asarray(op.fn(*args))
    raise TypeError(f"op '{op.name}': unknown IR op {type(op).__name__}")


def run_graph(graph: Graph, inputs: dict[str, np.ndarray], progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Execute the golden model; returns every tensor's value."""
    values = {}
    for name in graph.inputs:
        if name not in inputs:
            raise ValueError(f"graph input '{name}' not given")
        want = graph.tensors[name].shape
        if tuple(np.shape(inputs[name])) != want:
            raise ValueError(f"graph input '{name}': shape {np.shape(inputs[name])}, expected {want}")
        values[name] = np.asarray(inputs[name])
    for op in steps(graph.ops, progress, lambda o: o.name):
        values[op.output] = run_op(op, [values[i] for i in op.inputs])
        want = graph.tensors[op.output].shape
        if values[op.output].shape != want:
            raise ValueError(f"op '{op.name}': produced shape {values[op.output].shape}, IR says {want}")
    return values

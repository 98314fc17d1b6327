"""Random integer-IR graphs: networks with random weights and requant constants that exercise every lowering
path without torch (the lowering and RTL tests, and the mutation suite of `bitbranch mutate`)."""

from __future__ import annotations

import numpy as np

from bitbranch.compiler import ir


class GraphMaker:
    """Builds an IR graph op by op with random weights and requant constants."""

    def __init__(self, seed: int, in_shape: tuple[int, int, int], in_bits: int = 8) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors = {"input": ir.Tensor("input", in_shape, in_bits)}
        self.ops: list[ir.Op] = []
        self.value = self.rng.integers(0, 1 << in_bits, in_shape)

    def _requant(self, cout: int, kout: int, shift: int = 12, residual: bool = False, out_int32: bool = False):
        rng = self.rng
        return ir.Requant(rng.integers(1, 1 << 10, cout), rng.integers(-(1 << 14), 1 << 14, cout), shift, 0,
                          (1 << kout) - 1 if not out_int32 else 0,
                          rng.integers(1 << 8, 1 << 12, cout) if residual else None, out_int32)

    def _add(self, op: ir.Op, shape: tuple[int, int, int], bits: int) -> str:
        self.tensors[op.output] = ir.Tensor(op.output, shape, bits)
        self.ops.append(op)
        return op.output

    def conv(self, name: str, x: str, cout: int, k: int, mbits: int, kout: int, stride: int = 1, pad: int = 0,
             dil: int = 1, ternary: bool = False, residual: str | None = None, out_int32: bool = False,
             groups: int = 1) -> str:
        h, w, cin = self.tensors[x].shape
        wshape = (cout, cin // groups, k, k)
        if ternary:
            weights = self.rng.integers(-1, 2, wshape)
            mbits = 2
        else:
            top = (1 << mbits) - 1
            weights = 2 * self.rng.integers(0, top + 1, wshape) - top
        ho = (h + 2 * pad - (k - 1) * dil - 1) // stride + 1
        wo = (w + 2 * pad - (k - 1) * dil - 1) // stride + 1
        op = ir.Conv(name, [x] + ([residual] if residual else []), name, weights, mbits, ternary, stride, pad, dil,
                     self._requant(cout, kout, residual=residual is not None, out_int32=out_int32), groups)
        return self._add(op, (ho, wo, cout), ir.INT32 if out_int32 else kout)

    def pool(self, name: str, x: str, mode: str, k: int, stride: int, pad: int = 0, kout: int | None = None) -> str:
        h, w, c = self.tensors[x].shape
        bits = self.tensors[x].bits if mode == "max" else kout
        rq = None if mode == "max" else ir.Requant(np.full(c, 3), self.rng.integers(0, 64, c), 4 + k, 0,
                                                   (1 << kout) - 1)
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._add(ir.Pool(name, [x], name, mode, k, stride, pad, rq), (ho, wo, c), bits)

    def add(self, name: str, a: str, b: str, kout: int) -> str:
        c = self.tensors[a].shape[2]
        rq = ir.Requant(self.rng.integers(1, 64, c), self.rng.integers(-256, 256, c), 6, 0, (1 << kout) - 1,
                        self.rng.integers(1, 64, c))
        return self._add(ir.Add(name, [a, b], name, rq), self.tensors[a].shape, kout)

    def upsample(self, name: str, x: str, f: int = 2) -> str:
        h, w, c = self.tensors[x].shape
        return self._add(ir.Upsample(name, [x], name, f), (h * f, w * f, c), self.tensors[x].bits)

    def concat(self, name: str, xs: list[str]) -> str:
        h, w, _ = self.tensors[xs[0]].shape
        c = sum(self.tensors[x].shape[2] for x in xs)
        return self._add(ir.Concat(name, xs, name), (h, w, c), self.tensors[xs[0]].bits)

    def graph(self, outputs: list[str]) -> tuple[ir.Graph, dict[str, np.ndarray]]:
        return ir.Graph(dict(self.tensors), list(self.ops), ["input"], outputs), {"input": self.value}


def residual_block() -> tuple[ir.Graph, dict[str, np.ndarray]]:
    """A residual block with a downsample branch, an average pool and an int32 head (lowering and RTL tests)."""
    g = GraphMaker(11, (8, 8, 3))
    x = g.conv("stem", "input", 16, 3, 2, 2, pad=1)
    h = g.conv("block.conv1", x, 16, 3, 2, 2, pad=1)
    y = g.conv("block.conv2", h, 16, 3, 2, 2, pad=1, residual=x)
    d = g.conv("down", y, 24, 1, 2, 8, stride=2)
    z = g.conv("block2.conv", y, 24, 3, 2, 2, stride=2, pad=1, residual=d)
    p = g.pool("avgpool", z, "avg", 4, 4, kout=4)
    logits = g.conv("fc", p, 10, 1, 2, 0, out_int32=True)
    return g.graph([logits])


def pool_add_upsample_concat() -> tuple[ir.Graph, dict[str, np.ndarray]]:
    """Max pool, add, nearest upsample and a concat whose input `a` is also read by the pool (stored twice)."""
    g = GraphMaker(5, (10, 10, 3))
    a = g.conv("a", "input", 64, 3, 2, 2, pad=1)
    m = g.pool("maxpool", a, "max", 3, 2, pad=1)
    b = g.conv("b", m, 64, 3, 2, 2, pad=1)
    s = g.add("add", m, b, 2)
    u = g.upsample("up", s, 2)
    cat = g.concat("cat", [u, a])  # a is also read by the maxpool: stored twice
    out = g.conv("head", cat, 10, 1, 2, 3)
    return g.graph([out])

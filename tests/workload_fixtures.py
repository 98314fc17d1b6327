"""A tiny workload and a compile function for testing the run/report/sweep machinery without the
compiler's torch front end: `graph_compile` lowers an IR graph with the tiny model's layer names and
the requested precision (random weights, GraphMaker) and the real input image, via lower_graph."""

from __future__ import annotations

import numpy as np
from torch import nn

from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker
from bitbranch.isa.artifact import Artifact
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.workloads.precision import PrecisionSpec, label, layer_bits

INPUT_SHAPE = (3, 16, 16)


class TinyCNN(nn.Module):
    """The float model whose layer names and shapes graph_compile mirrors."""

    input_shape = INPUT_SHAPE

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.conv1(x)))
        y = self.conv3(self.relu(self.conv2(x)))
        x = self.relu(y + x)
        return self.fc(self.avgpool(x).flatten(1))


def tiny_cnn() -> nn.Module:
    return TinyCNN()


def graph_compile(model: nn.Module, precision: PrecisionSpec, hw: HwConfig, image: np.ndarray,
                  progress=None) -> Artifact:
    c, h, w = INPUT_SHAPE
    assert image.shape == (h, w, c) and image.dtype == np.uint8, image.shape
    g = GraphMaker(7, (h, w, c), 8)

    def conv(name: str, x: str, k: int, cout: int, **kw) -> str:
        mbits, ternary, kout = layer_bits(precision, name)
        return g.conv(name, x, cout, k, mbits, 0 if kw.get("out_int32") else kout, ternary=ternary, **kw)

    x = conv("conv1", "input", 3, 64, pad=1)
    m = g.pool("maxpool", x, "max", 3, 2, pad=1)
    y = conv("conv2", m, 3, 64, pad=1)
    z = conv("conv3", y, 3, 64, pad=1, residual=m)
    p = g.pool("avgpool", z, "avg", 8, 8, kout=precision.act_bits_for("avgpool"))
    logits = conv("fc", p, 1, 10, out_int32=True)
    graph, _ = g.graph([logits])
    if progress:
        for k, op in enumerate(graph.ops, 1):
            progress(k, len(graph.ops), op.name)
    return lower_graph(graph, hw, {"input": image}, meta={"model": "tiny_cnn", "precision": label(precision)})

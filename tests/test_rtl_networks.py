"""Compiled networks on the RTL: outputs bit-identical to the simulator and to the golden model, cycles equal.

Default: a CNN, a residual block with a downsample, an average-pool head and an int32 classifier, a graph
with max pool, add, upsample and concat, and two split reductions (a big Linear in channel-word chunks, a dilated
7x7 conv in kernel-row chunks), on `small` (Verilator; the residual block also on Icarus), and a full
ResNet-18 layer (layer1.0.conv1: 56x56x64, 3x3, W2A2) on `edge` and on `small` (there one output row does not
fit half of the buffers: 4x8-pixel width tiles, ~1M cycles, a few seconds on Verilator once the core is built),
and the whole layer1.0 BasicBlock with its residual add on `small` (~10 s). Slow: that layer on Icarus, and the
whole ResNet-18 (edge, Verilator; on Icarus it would take most of an hour). A MobileNet-style block
(pointwise, depthwise M-bit and ternary, grouped 1x1) runs on `small` and `edge`.
"""

from __future__ import annotations

import shutil

import pytest

from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker, pool_add_upsample_concat, residual_block
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtlharness.build import verilator_bin_dir
from bitbranch.rtlharness.compare import cross_check, cross_check_batch

needs_verilator = pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(),
                                     reason="verilator not installed")


def cnn():
    g = GraphMaker(7, (24, 16, 3))
    a = g.conv("a", "input", 16, 3, 2, 2, pad=1)
    b = g.conv("b", a, 16, 3, 2, 2, pad=1)
    c = g.conv("c", b, 8, 3, 2, 2, stride=2, pad=1)
    return g.graph([c])


def big_linear():
    """A Linear layer whose output words need 2048 WGT entries each: the reduction runs in weight chunks."""
    g = GraphMaker(13, (1, 1, 4096), 2)
    logits = g.conv("fc", "input", 100, 1, 2, 0, out_int32=True)
    return g.graph([logits])


def kernel_row_chunks():
    """An 8-bit 7x7 dilated convolution whose reduction runs in chunks of two kernel rows, each step loading
    only the input rows they read (some only padding: a zero row from DRAM)."""
    g = GraphMaker(15, (11, 11, 64), 2)
    y = g.conv("conv", "input", 16, 7, 8, 2, pad=6, dil=2)
    return g.graph([y])


def mobilenet_block():
    """Depthwise (two-pass M-bit, then ternary, stride 2) between a pointwise expand and a grouped projection."""
    g = GraphMaker(13, (10, 8, 3))
    x = g.conv("stem", "input", 24, 3, 2, 2, stride=2, pad=1)
    e = g.conv("block.expand", x, 72, 1, 2, 3)
    d = g.conv("block.dw", e, 72, 3, 2, 2, pad=1, groups=72)
    t = g.conv("block.dw_t", d, 72, 3, 2, 2, stride=2, pad=1, ternary=True, groups=72)
    p = g.conv("block.project", t, 24, 1, 3, 4, groups=4)
    return g.graph([p])


def resnet18_layer():
    g = GraphMaker(3, (56, 56, 64), 2)
    y = g.conv("layer1.0.conv1", "input", 64, 3, 2, 2, pad=1)
    return g.graph([y])


def resnet18_block():
    """layer1.0 of ResNet-18: two 56x56x64 3x3 convolutions at W2A2, the second adding the block's input."""
    g = GraphMaker(4, (56, 56, 64), 2)
    h = g.conv("layer1.0.conv1", "input", 64, 3, 2, 2, pad=1)
    y = g.conv("layer1.0.conv2", h, 64, 3, 2, 2, pad=1, residual="input")
    return g.graph([y])


def assert_exact(check, name):
    assert check.ok, f"{name}: {check.to_json_dict()}"
    assert check.golden_rtl is not None and all(check.golden_rtl.values()), name


@needs_verilator
def test_networks_on_small():
    small = get_config("small")
    graphs = {"cnn": cnn(), "residual block": residual_block(), "pool/add/upsample/concat": pool_add_upsample_concat(),
              "big linear": big_linear(), "kernel-row chunks": kernel_row_chunks()}
    arts = {name: lower_graph(graph, small, inputs) for name, (graph, inputs) in graphs.items()}
    for name, check in zip(arts, cross_check_batch(list(arts.values())), strict=True):
        assert_exact(check, name)
        assert check.cycles_rtl > 10_000


@needs_verilator
@pytest.mark.parametrize("preset", ["small", "edge"])
def test_depthwise_block(preset):
    graph, inputs = mobilenet_block()
    art = lower_graph(graph, get_config(preset), inputs)
    grouped = [r for r in art.layers if r.detail["conv_groups"] > 1]
    assert {r.detail["bgemm_passes"] for r in grouped} == {1, 2}  # both masking schemes
    assert_exact(cross_check(art), f"depthwise block on {preset}")


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_residual_block_on_icarus():
    graph, inputs = residual_block()
    assert_exact(cross_check(lower_graph(graph, get_config("small"), inputs), sim="icarus"), "residual block")


@needs_verilator
def test_resnet18_layer_on_edge():
    graph, inputs = resnet18_layer()
    check = cross_check(lower_graph(graph, get_config("edge"), inputs))
    assert_exact(check, "layer1.0.conv1")


@needs_verilator
def test_resnet18_layer_on_small():
    graph, inputs = resnet18_layer()
    art = lower_graph(graph, get_config("small"), inputs)
    assert art.layers[0].tile_cols < 56  # width tiles: the case this test exists for
    check = cross_check(art)
    assert_exact(check, "layer1.0.conv1")
    assert check.cycles_rtl == check.cycles_sim


@needs_verilator
def test_resnet18_block_on_small():
    graph, inputs = resnet18_block()
    art = lower_graph(graph, get_config("small"), inputs)
    assert all(r.tile_cols < 56 for r in art.layers)
    check = cross_check(art)
    assert_exact(check, "layer1.0 block")
    assert check.cycles_rtl == check.cycles_sim


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_resnet18_layer_on_icarus():
    """About a minute: Icarus runs the edge core at a few hundred BGEMM cycles per second."""
    graph, inputs = resnet18_layer()
    assert_exact(cross_check(lower_graph(graph, get_config("edge"), inputs), sim="icarus"), "layer1.0.conv1")


@pytest.mark.slow
@needs_verilator
def test_whole_resnet18():
    import torch

    from bitbranch.compiler.compile import compile_model
    from bitbranch.workloads import get
    from bitbranch.workloads.images import default_image

    torch.set_num_threads(2)
    hw = get_config("edge")
    spec = get("resnet18")
    art = compile_model(spec.factory().eval(), spec.precision, hw, default_image(spec.input_shape))
    assert_exact(cross_check(art), "resnet18")


@needs_verilator
def test_users_ops_on_small():
    """Issue 16's ops on the RTL (same ISA, so only the programs are new): ceil_mode average and max pooling with
    partial last windows, a global pool over 16x16 split into blocks, a batch of two frames, an MLP on a vector
    input, and a concat of inputs that are not whole words (a copy layer)."""
    import numpy as np
    import torch
    from torch import nn

    from bitbranch.compiler.compile import compile_model

    torch.manual_seed(0)
    small = get_config("small")
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
                        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
                        nn.Upsample(scale_factor=4), nn.Conv2d(16, 16, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    frames = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    mlp = nn.Sequential(nn.Linear(196, 32), nn.ReLU(), nn.Linear(32, 10)).eval()

    class Branches(nn.Module):  # GoogLeNet-style concat of 16 + 8 + 12 channels: a copy layer
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
            self.a, self.b, self.c = nn.Conv2d(16, 16, 1), nn.Conv2d(16, 8, 3, padding=1), nn.Conv2d(16, 12, 1)

        def forward(self, x):
            x = self.stem(x)
            return torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x)), torch.relu(self.c(x))], 1)

    arts = {"ceil/split pools, batch 2": compile_model(net, "W2A2", small, frames),
            "MLP on a vector": compile_model(mlp, "W2A2", small, frames[0, :, :, 0].reshape(-1)[:196].copy()),
            "concat of partial words": compile_model(Branches().eval(), "W2A2", small, frames[0, :8, :8])}
    assert any(r.kind == "concat" for r in arts["concat of partial words"].layers)
    kinds = {(r.name, r.detail.get("ceil_extra") is not None) for r in arts["ceil/split pools, batch 2"].layers}
    assert {("2", True), ("5", True), ("9.blocks", False)} <= kinds
    for name, check in zip(arts, cross_check_batch(list(arts.values())), strict=True):
        assert_exact(check, name)
        assert check.cycles_rtl == check.cycles_sim


@needs_verilator
def test_non_square_padding_and_channel_gathers_on_small():
    """Issue 16's Inception-v3 and ShuffleNetV2 ops on the RTL (same ISA, new programs): 1x7 / 7x1 / 3x1 convolutions
    padded (0, 3) / (3, 0) / (1, 0), and channel split / shuffle as ternary 1x1 selections chained by the residual."""
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from bitbranch.compiler.compile import compile_model

    sys.path.insert(0, str(Path(__file__).parent))
    from test_user_ops import Factorized7x7, shuffle_net

    torch.manual_seed(0)
    small = get_config("small")
    rng = np.random.default_rng(0)
    arts = {"factorized 7x7": compile_model(Factorized7x7().eval(), "W2A2", small,
                                            rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)),
            "shuffle units": compile_model(shuffle_net(), "W2A2", small,
                                           rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))}
    for name, check in zip(arts, cross_check_batch(list(arts.values())), strict=True):
        assert_exact(check, name)
        assert check.cycles_rtl == check.cycles_sim

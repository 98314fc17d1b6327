"""Grouped and depthwise convolutions end to end (issue #5).

IR level: compiled programs on `small` and `edge` reproduce the golden integers (torch's grouped conv) for
depthwise (stride 1/2, 24 / 70 / 96 channels, channel multiplier 2), groups 2 and 4 (word-aligned or not),
M-bit and ternary weights at random bit widths. Model level: a MobileNetV2-style net (depthwise + pointwise +
BN + ReLU6, a grouped 1x1) goes through QAT -> integer IR -> program; golden == simulator exactly, and the QAT
model agrees with the golden one within a level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qat_models import MobileNetish, randomize_bn
from torch import nn

from bitbranch.compiler import ir
from bitbranch.compiler.conv import group_layout, hardware_constants
from bitbranch.compiler.golden import conv_sum
from bitbranch.compiler.integerize import to_ir
from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.quantize import calibrate, quantize_model
from bitbranch.compiler.randgraph import GraphMaker
from bitbranch.compiler.reference import golden_values, image_levels, qat_values
from bitbranch.compiler.tiling import LoweringError
from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.rounding import INT32_MAX
from bitbranch.isa.validate import validate_program
from bitbranch.simulator import run

SMALL, EDGE = get_config("small"), get_config("edge")
HWS = [SMALL, EDGE]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check(graph: ir.Graph, inputs: dict, hw, datapath: str = "fast"):
    art = lower_graph(graph, hw, inputs)
    validate_program(art.program, hw, len(art.dram))
    result = run(art, datapath=datapath)
    assert result.outputs_match_golden and all(result.outputs_match_golden.values()), result.outputs_match_golden
    for name in art.outputs:
        assert len(np.unique(art.output(result.dram, name))) > 1, f"{name} is constant"
    return art, result


def test_grouped_golden_is_the_block_diagonal_dense_conv():
    """The golden grouped sum equals a dense conv whose out-of-group weights are 0 (independent of torch groups)."""
    rng = np.random.default_rng(0)
    u = rng.integers(0, 16, (7, 6, 12))
    for groups, cout in ((12, 24), (4, 8), (3, 6)):
        w = 2 * rng.integers(0, 4, (cout, 12 // groups, 3, 3)) - 3
        dense = np.zeros((cout, 12, 3, 3), np.int64)
        cin_g, cout_g = 12 // groups, cout // groups
        for o in range(cout):
            g = o // cout_g
            dense[o, g * cin_g : (g + 1) * cin_g] = w[o]
        assert np.array_equal(conv_sum(u, w, 2, 1, 1, groups), conv_sum(u, dense, 2, 1, 1))


# in_shape, in_bits, cout, k, groups, mbits, kout, stride, pad, ternary
CASES = {
    "dw24-s1": ((8, 7, 24), 2, 24, 3, 24, 2, 2, 1, 1, False),
    "dw96-s2": ((9, 8, 96), 3, 96, 3, 96, 3, 4, 2, 1, False),
    "dw96-ternary": ((6, 7, 96), 4, 96, 3, 96, 2, 3, 1, 1, True),
    "dw70-s2-binary": ((7, 7, 70), 8, 70, 3, 70, 1, 2, 2, 1, False),
    "dw24-x2": ((7, 6, 24), 2, 48, 3, 24, 2, 2, 1, 1, False),
    "g2-aligned": ((6, 6, 128), 2, 64, 3, 2, 2, 2, 1, 1, False),
    "g2-unaligned-ternary": ((5, 6, 100), 2, 32, 3, 2, 2, 2, 1, 1, True),  # 50 channels a group: masked
    "g2-word-groups-ternary": ((5, 6, 128), 2, 64, 3, 2, 2, 2, 1, 1, True),  # unmasked: pad bits counted
    "g2-unaligned": ((6, 6, 40), 3, 24, 3, 2, 3, 2, 1, 1, False),
    "g4-aligned-1x1": ((6, 5, 256), 1, 32, 1, 4, 2, 8, 1, 0, False),
    "g4-unaligned-ternary": ((6, 6, 40), 2, 40, 3, 4, 2, 2, 2, 1, True),
}


@pytest.mark.parametrize("hw", HWS, ids=lambda h: h.name)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_grouped_conv_matches_golden(case, hw):
    in_shape, in_bits, cout, k, groups, mbits, kout, stride, pad, ternary = case
    g = GraphMaker(sum(in_shape) + cout + groups, in_shape, in_bits)
    y = g.conv("dw", "input", cout, k, mbits, kout, stride, pad, ternary=ternary, groups=groups)
    art, _ = check(*g.graph([y]), hw)
    assert art.layers[0].detail["conv_groups"] == groups
    assert art.layers[0].macs == np.prod(art.layers[0].out_shape) * k * k * in_shape[2] // groups


def test_depthwise_on_the_bitwise_datapath():
    g = GraphMaker(3, (6, 5, 70), 3)
    y = g.conv("dw", "input", 70, 3, 3, 2, 1, 1, groups=70)
    check(*g.graph([y]), SMALL, datapath="bitwise")


def test_grouped_conv_with_residual_and_int32_output():
    g = GraphMaker(4, (6, 6, 24), 2)
    a = g.conv("dw1", "input", 24, 3, 2, 2, 1, 1, groups=24)
    b = g.conv("dw2", a, 24, 3, 3, 2, 1, 1, groups=24, residual="input")
    c = g.conv("head", b, 12, 1, 2, 0, groups=4, out_int32=True)
    for hw in HWS:
        check(*g.graph([c]), hw)


def _random_layer(rng: np.random.Generator, hw, kind: str) -> tuple[int, bool]:
    """(mbits, ternary): bits 1..8 or ternary; on `small` two-pass 3x3 layers keep M <= 3 so that one output word
    of weights (16 column tiles x 2 passes x 9 x M entries) fits its 1024-entry WGT."""
    top = 3 if hw is SMALL and kind == "dw" else 8
    m = int(rng.integers(1, top + 2))
    return (2, True) if m == top + 1 else (m, False)


@pytest.mark.parametrize("hw", HWS, ids=lambda h: h.name)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bit_widths_through_depthwise_blocks(seed, hw):
    """MobileNet-like IR chains: pointwise expand, depthwise (stride 1/2, multiplier), grouped project."""
    rng = np.random.default_rng(seed)
    g = GraphMaker(seed, (9, 8, 24), int(rng.integers(1, 9)))
    x = "input"
    for i, (cout, groups, k, stride, kind) in enumerate([(72, 1, 1, 1, "pw"), (72, 72, 3, 2, "dw"),
                                                          (144, 72, 3, 1, "dw"), (32, 4, 1, 1, "pw")]):
        mbits, ternary = _random_layer(rng, hw, kind)
        x = g.conv(f"l{i}", x, cout, k, mbits, int(rng.integers(1, 9)), stride, (k - 1) // 2, ternary=ternary,
                   groups=groups)
    check(*g.graph([x]), hw)


def test_layout_shares_bgemms_and_masks_only_where_needed():
    def conv(cin, cout, groups, ternary=False):
        w = np.ones((cout, cin // groups, 3, 3), np.int64)
        return ir.Conv("c", ["x"], "y", w, 2, ternary, groups=groups), cin

    plain = group_layout(*conv(100, 40, 1), EDGE)
    assert (len(plain.spans), plain.passes, plain.factor, plain.masked) == (1, 1, 1, False)
    assert plain.spans[0].cw == 2 and len(plain.spans[0].ctiles) == 3
    aligned = group_layout(*conv(128, 64, 2), EDGE)  # 2 column tiles per group, each reads one whole word
    assert [(s.ctiles, s.word0, s.cw) for s in aligned.spans] == [(range(0, 2), 0, 1), (range(2, 4), 1, 1)]
    assert (aligned.passes, aligned.factor, aligned.masked) == (1, 1, False)
    dw = group_layout(*conv(96, 96, 96), EDGE)  # 64 groups per word: two cancelling passes
    assert [(s.ctiles, s.word0, s.cw) for s in dw.spans] == [(range(0, 4), 0, 1), (range(4, 6), 1, 1)]
    assert (dw.passes, dw.factor, dw.masked) == (2, 2, True)
    dwt = group_layout(*conv(96, 96, 96, ternary=True), EDGE)  # ternary: out-of-group weights are code 0
    assert (dwt.passes, dwt.factor, dwt.masked) == (1, 2, True)
    straddle = group_layout(*conv(96, 96, 2), EDGE)  # group 1 = channels 48..95 spans words 0 and 1
    assert [(s.word0, s.cw) for s in straddle.spans] == [(0, 1), (0, 2)] and straddle.passes == 2


def test_depthwise_program_runs_two_accumulating_bgemms_per_span():
    g = GraphMaker(5, (5, 5, 96), 2)
    y = g.conv("dw", "input", 96, 3, 2, 2, 1, 1, groups=96)
    graph, inputs = g.graph([y])
    art = lower_graph(graph, EDGE, inputs)
    bgemms = [i for i in art.program if i.op == "bgemm"]
    tiles = art.layers[0].tiles
    assert len(bgemms) == tiles * 2 * 2  # 2 word spans x 2 passes per tile
    assert [b.accumulate for b in bgemms[:4]] == [0, 1, 0, 1]
    assert {b.cw for b in bgemms} == {1}


def test_two_pass_accumulator_bound_is_checked():
    """The masked layout doubles the accumulator bound: a layer the plain conv could run is refused by name."""
    x = ir.Tensor("x", (15, 15, 96), 8)
    for groups, ok in ((1, True), (2, False)):
        w = np.full((32, 96 // groups, 15, 15), 255, np.int64)
        rq = ir.Requant(np.ones(32, np.int64), np.zeros(32, np.int64), 30, 0, 3)
        op = ir.Conv("big.conv", ["x"], "y", w, 8, False, 1, 7, 1, rq, groups)
        layout = group_layout(op, 96, EDGE)
        if ok:
            hardware_constants(op, x, layout, EDGE)
        else:
            with pytest.raises(LoweringError, match=r"layer 'big.conv': \|accumulator\| can reach"):
                hardware_constants(op, x, layout, EDGE)


def test_groups_that_do_not_divide_the_channels_are_refused():
    w = np.ones((8, 4, 3, 3), np.int64)
    op = ir.Conv("odd.conv", ["x"], "y", w, 2, False, groups=4)
    with pytest.raises(LoweringError, match=r"layer 'odd.conv': groups=4 does not divide 12 input / 8 output"):
        group_layout(op, 12, EDGE)


def test_small_refuses_wide_two_pass_depthwise_by_name():
    g = GraphMaker(6, (5, 5, 64), 2)
    y = g.conv("blocks.0.dw", "input", 64, 3, 8, 2, 1, 1, groups=64)
    graph, inputs = g.graph([y])
    with pytest.raises(LoweringError, match=r"layer 'blocks.0.dw': one output word of weights needs 2304 WGT"):
        lower_graph(graph, SMALL, inputs)


# --- the whole flow on a MobileNetV2-style model -----------------------------------------------------------

SHAPE = (1, 3, 16, 16)


def random_mapping(seed: int, small: bool) -> dict:
    """Per-layer precision: weights 1..8 bits or ternary, activations 1..8 bits (depthwise on small: M <= 3)."""
    rng = np.random.default_rng(seed)
    layers = {}
    for path, m in MobileNetish().named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            top = 3 if small and isinstance(m, nn.Conv2d) and m.groups > 1 and m.kernel_size[0] > 1 else 8
            w = int(rng.integers(1, top + 2))
            layers[path] = {"w": "ternary" if w == top + 1 else w, "a": int(rng.integers(2, 9))}
    return {"default": "W2A2", "layers": layers}


def quantized(precision) -> tuple[nn.Module, ir.Graph]:
    torch.manual_seed(0)
    model = randomize_bn(MobileNetish())
    qat = quantize_model(model, precision, SHAPE).double()
    g = torch.Generator().manual_seed(1)
    calibrate(qat, [torch.rand((8, *SHAPE[1:]), generator=g, dtype=torch.float64) for _ in range(2)])
    return qat, to_ir(qat, SHAPE, EDGE)


def images(n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(SHAPE, generator=g, dtype=torch.float64) for _ in range(n)]


def assert_golden_near_qat(qat: nn.Module, graph: ir.Graph, forced: bool) -> None:
    equal = total = 0
    for x in images(2, 7):
        gold = golden_values(graph, x)
        ref = qat_values(qat, graph, x, gold if forced else None)
        for k, t in graph.tensors.items():
            got, want = np.asarray(gold[k], dtype=np.float64), ref[k]
            if t.bits == ir.INT32:
                op = graph.producer(k)
                bound = 0.5 + graph.meta["layers"][op.name]["requant_error"] + 1e-9
                assert np.abs(got).max() < INT32_MAX
                if forced:
                    assert np.abs(got - want).max() <= bound, k
                continue
            assert np.abs(got - want).max() <= (1 if forced else 2), k
            equal += int((got == want).sum())
            total += got.size
    assert equal >= (0.999 if forced else 0.99) * total


@pytest.mark.parametrize("hw", HWS, ids=lambda h: h.name)
@pytest.mark.parametrize("seed", [0, 1])
def test_mobilenet_block_random_precision_end_to_end(seed, hw):
    qat, graph = quantized(random_mapping(seed, hw is SMALL))
    dws = [op for op in graph.ops if isinstance(op, ir.Conv) and op.groups > 1]
    assert {op.groups for op in dws} >= {16, 96, 144, 4}  # the depthwise layers and the grouped 1x1 reached the IR
    assert_golden_near_qat(qat, graph, forced=True)
    x = images(1, 9)[0]
    art = lower_graph(graph, hw, {graph.inputs[0]: image_levels(x)})
    result = run(art)
    assert result.outputs_match_golden and all(result.outputs_match_golden.values())
    for name in art.outputs:
        assert len(np.unique(art.output(result.dram, name))) > 1, f"{name} is constant"


def test_mobilenet_golden_tracks_qat_free_running():
    qat, graph = quantized("W4A4")
    assert_golden_near_qat(qat, graph, forced=False)


def test_report_counts_useful_macs_so_depthwise_waste_is_low_utilization():
    from bitbranch.workloads.report.summary import build_report

    g = GraphMaker(8, (8, 8, 128), 2)
    pw = g.conv("pw", "input", 128, 1, 2, 2)
    dw = g.conv("dw", pw, 128, 3, 2, 2, 1, 1, groups=128)
    graph, inputs = g.graph([dw])
    art = lower_graph(graph, EDGE, inputs)
    report = build_report(art, run(art))
    rows = {r.name: r for r in report.layers}
    assert rows["dw"].macs == 8 * 8 * 128 * 9 and rows["pw"].macs == 8 * 8 * 128 * 128
    # each depthwise lane reduces whole 64-channel words, twice (two passes), for one useful channel
    assert rows["dw"].issued_bitops == 2 * 64 * rows["dw"].bitops
    assert rows["pw"].issued_bitops == rows["pw"].bitops
    # the array can at best issue every cycle, so useful utilization is bounded by useful / issued = 1/128
    assert rows["dw"].util <= rows["dw"].bitops / rows["dw"].issued_bitops < rows["pw"].util / 10

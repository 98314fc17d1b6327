"""QAT model -> integer IR (golden): the golden model matches the QAT model's fake-quant output.

Comparisons are teacher-forced (compiler.reference.qat_values with golden values): each layer of the QAT
model reads the golden values of its inputs, so every layer is checked on identical inputs:
  - level tensors: |golden − QAT| <= 1 level everywhere, and equal almost everywhere (a difference
    needs a pre-rounding value within requant_error of a rounding boundary);
  - int32 outputs: |r − y/scale| <= 0.5 (rounding) + requant_error, and argmax equal wherever the
    QAT top-2 margin exceeds twice that bound.
A free-running comparison (no forcing) bounds how far rounding flips can spread.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from qat_models import (
    MLP,
    BasicBlock,
    Bottleneck,
    HtanhNet,
    MnistNet,
    ResNet,
    SmallCNN,
    TimmStyle,
    TinyYolo,
    VGGish,
    WithHostTail,
    randomize_bn,
)
from torch import nn

from bitbranch.compiler import ir
from bitbranch.compiler.integerize import IntegerizeError, to_ir
from bitbranch.compiler.quantize import calibrate, quantize_model
from bitbranch.compiler.reference import golden_values, image_levels, qat_values
from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.rounding import INT32_MAX

pytestmark = pytest.mark.usefixtures("one_torch_thread")


MODELS = {
    "smallcnn": (SmallCNN, (1, 3, 16, 16)),
    "resnet": (lambda: ResNet(BasicBlock, [2, 1]), (1, 3, 16, 16)),
    "bottleneck": (lambda: ResNet(Bottleneck, [1, 1], width=4), (1, 3, 16, 16)),
    "yolo": (TinyYolo, (1, 3, 16, 16)),
    "vgg": (VGGish, (1, 3, 16, 16)),
    "htanh": (HtanhNet, (1, 3, 8, 8)),
    "mnist": (MnistNet, (1, 1, 28, 28)),
    "mlp": (MLP, (1, 3, 8, 8)),
    "host": (WithHostTail, (1, 3, 16, 16)),
    "timm": (TimmStyle, (1, 3, 12, 12)),
}
MIXED = {"default": "W2A2", "layers": {"conv1": {"w": 8}, "fc": {"w": "ternary"}, "layer1.*.conv2": {"a": 4},
                                       "layer2.0.downsample.0": {"a": 6}, "layer1.1.conv1": {"w": 1, "a": 1}}}


@functools.cache
def compiled(name: str, precision: str | None = None):
    """(qat model in float64, calibrated, and its IR graph); precision None = the per-layer MIXED mapping."""
    factory, shape = MODELS[name]
    torch.manual_seed(0)
    model = randomize_bn(factory())
    qat = quantize_model(model, precision or MIXED, shape).double()
    g = torch.Generator().manual_seed(1)
    calibrate(qat, [torch.rand((8, *shape[1:]), generator=g, dtype=torch.float64) for _ in range(2)])
    return qat, to_ir(qat)


def images(shape, n: int, seed: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g, dtype=torch.float64) for _ in range(n)]


def compare(qat, graph: ir.Graph, x: torch.Tensor, forced: bool = True) -> list[tuple[str, np.ndarray, np.ndarray]]:
    gold = golden_values(graph, x)
    ref = qat_values(qat, graph, x, gold if forced else None)
    assert set(ref) == set(graph.tensors)  # every IR tensor has its QAT counterpart
    return [(k, np.asarray(gold[k], dtype=np.float64), ref[k]) for k in graph.tensors]


def logits_bound(graph: ir.Graph, tensor: str) -> float:
    op = graph.producer(tensor)
    return 0.5 + graph.meta["layers"][op.name]["requant_error"] + 1e-9


CASES = [("smallcnn", "W1A1"), ("smallcnn", "W8A8"), ("resnet", "W2A2"), ("resnet", "W4A4"), ("resnet", "W8A8"),
         ("resnet", "WTA2"), ("resnet", None), ("bottleneck", "W2A2"), ("bottleneck", "W8A8"), ("yolo", "W2A2"),
         ("yolo", "W4A4"), ("vgg", "W1A1"), ("vgg", "WTA2"), ("htanh", "W2A2"), ("htanh", "W8A8"),
         ("mnist", "W2A2"), ("mlp", "W8A8"), ("host", "W2A2"), ("timm", "W4A4"), ("timm", "W1A1")]


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_golden_matches_qat_layer_by_layer(name, precision):
    qat, graph = compiled(name, precision)
    host = {h["output"] for h in graph.meta["host_ops"]}
    equal = total = decided = 0
    for x in images(MODELS[name][1], 3):
        for k, gold, ref in compare(qat, graph, x):
            t = graph.tensors[k]
            if k in host:
                assert np.allclose(gold, ref, atol=1e-6), k  # host ops see identical (forced) inputs
            elif t.bits == ir.INT32:
                bound = logits_bound(graph, k)
                assert np.abs(gold - ref).max() <= bound, k
                assert np.abs(gold).max() < INT32_MAX
                if gold.size > 1:
                    top2 = np.sort(ref.ravel())[-2:]
                    if top2[1] - top2[0] > 2 * bound:
                        decided += 1
                        assert np.argmax(gold) == np.argmax(ref), k
            else:
                assert gold.min() >= 0 and gold.max() <= (1 << t.bits) - 1
                assert np.abs(gold - ref).max() <= 1, k
                equal += int((gold == ref).sum())
                total += gold.size
    assert equal >= 0.999 * total
    if name != "yolo":  # (the yolo heads are 384-value maps, ties are likely)
        assert decided > 0


@pytest.mark.parametrize(("name", "precision"), [("resnet", "W2A2"), ("bottleneck", "W8A8"), ("htanh", "W4A4")])
def test_golden_matches_qat_free_running(name, precision):
    qat, graph = compiled(name, precision)
    equal = total = 0
    for x in images(MODELS[name][1], 4, seed=5):
        for k, gold, ref in compare(qat, graph, x, forced=False):
            if graph.tensors[k].bits <= 8:
                assert np.abs(gold - ref).max() <= 2, k
                equal += int((gold == ref).sum())
                total += gold.size
    assert equal >= 0.99 * total


def _ops(graph: ir.Graph, kind: type) -> list:
    return [op for op in graph.ops if isinstance(op, kind)]


def test_resnet_structure_residuals_fused_and_downsample_8bit():
    _, graph = compiled("resnet", "W2A2")
    with_res = [op for op in _ops(graph, ir.Conv) if len(op.inputs) == 2]
    assert [op.name for op in with_res] == ["layer1.0.conv2", "layer1.1.conv2", "layer2.0.conv2"]
    assert all(op.requant.rmul is not None and op.requant.lo == 0 and op.requant.hi == 3 for op in with_res)
    assert with_res[0].inputs[1] == "maxpool"  # identity: the block input levels
    ds = graph.tensors["layer2.0.downsample.0"]
    assert (ds.bits, ds.zero) == (8, 127.5) and with_res[2].inputs[1] == ds.name
    assert not _ops(graph, ir.Add)
    assert graph.tensors["input"].scale == pytest.approx(1 / 255) and graph.tensors["input"].bits == 8
    pool = graph.producer("avgpool")
    assert isinstance(pool, ir.Pool) and (pool.mode, pool.kernel) == ("avg", 4)
    fc = graph.producer(graph.outputs[0])
    assert fc.requant.out_int32 and graph.tensors[fc.output].scale == graph.meta["logits_scale"][fc.output]


def test_requant_constants_use_int32_precision():
    _, graph = compiled("bottleneck", "W2A2")
    for op in _ops(graph, ir.Conv):
        rq = op.requant
        assert np.abs(rq.mul).max() < 2**31 and (rq.rmul is None or 4 * np.abs(rq.rmul).max() < 2**31)
        assert np.abs(rq.mul).max() >= 2**29 or (rq.rmul is not None and 4 * np.abs(rq.rmul).max() >= 2**29) \
            or rq.shift == 56  # the shift is as large as int32 / int64 allow


def test_linear_after_flatten_covers_the_input_in_chw_order():
    qat, graph = compiled("vgg", "W1A1")
    fc = graph.producer("classifier.0")
    assert fc.weights.shape == (32, 16, 4, 4)
    codes = qat.get_submodule("classifier.0").wq.codes(qat.get_submodule("classifier.0").weight)
    assert np.array_equal(fc.weights, codes.numpy().reshape(32, 16, 4, 4))
    x = images((1, 3, 16, 16), 1)[0]
    gold = golden_values(graph, x)
    wrong = fc.weights.transpose(0, 2, 3, 1).reshape(32, 16, 4, 4)  # HWC flatten order: a different layer
    s_right = ir.run_op(fc, [gold["features.5"]])
    s_wrong = ir.run_op(ir.Conv(**{**fc.__dict__, "weights": wrong}), [gold["features.5"]])
    assert np.array_equal(s_right, gold["classifier.0"]) and not np.array_equal(s_wrong, s_right)


def test_concat_and_upsample_share_one_grid():
    _, graph = compiled("yolo", "W2A2")
    cat = _ops(graph, ir.Concat)[0]
    grids = {(graph.tensors[i].bits, graph.tensors[i].scale, graph.tensors[i].zero) for i in cat.inputs}
    assert len(grids) == 1
    assert [op.factor for op in _ops(graph, ir.Upsample)] == [2, 1]
    assert [graph.tensors[o].bits for o in graph.outputs] == [32, 32]


def test_ternary_and_per_layer_precision_reach_the_ir():
    _, graph = compiled("resnet", "WTA2")
    assert all(op.ternary and op.mbits == 2 and set(np.unique(op.weights)) <= {-1, 0, 1} for op in _ops(graph, ir.Conv))
    _, mixed = compiled("resnet", None)
    conv = {op.name: op for op in _ops(mixed, ir.Conv)}
    assert conv["conv1"].mbits == 8 and not conv["conv1"].ternary
    assert conv["fc"].ternary and conv["layer1.0.conv1"].mbits == 2
    assert conv["layer1.1.conv1"].mbits == 1 and mixed.tensors["layer1.1.conv1"].bits == 1
    assert mixed.tensors["layer1.0.conv2"].bits == 4 and mixed.tensors["layer2.0.conv2"].bits == 2
    assert mixed.tensors["layer2.0.downsample.0"].bits == 6
    assert mixed.meta["layers"]["layer1.1.conv2"]["a_in"] == 1


def test_symmetric_levels_pad_in_level_space():
    qat, graph = compiled("htanh", "W2A2")
    assert graph.tensors["conv1"].zero == 1.5 and graph.producer("conv2").pad == 1
    conv2 = qat.get_submodule("conv2")
    saved, conv2.input_quant = conv2.input_quant, None
    try:
        with pytest.raises(IntegerizeError, match="conv2.*level 0 is not real zero"):
            to_ir(qat)
    finally:
        conv2.input_quant = saved


def test_host_tail_becomes_a_host_op(capsys):
    _, graph = compiled("host", "W2A2")
    host = _ops(graph, ir.HostOp)
    assert len(host) == 1 and host[0].inputs == ["body.fc"] and graph.outputs == [host[0].output]
    assert graph.meta["host_ops"][0]["name"] == "sigmoid"
    out = ir.run_graph(graph, {"input": image_levels(images((1, 3, 16, 16), 1)[0])})[host[0].output]
    assert out.shape == (10,) and np.all((out > 0) & (out < 1))


def test_add_of_two_activated_tensors_is_an_ir_add():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.head(torch.relu(self.a(x) + self.b(x)))

    qat = quantize_model(Net(), "W4A4", (1, 3, 6, 6)).double()
    calibrate(qat, images((4, 3, 6, 6), 1))
    graph = to_ir(qat)
    add = _ops(graph, ir.Add)
    assert len(add) == 1 and add[0].inputs == ["a.0", "b.0"] and graph.tensors[add[0].output].zero == 0
    for x in images((1, 3, 6, 6), 3):
        for k, gold, ref in compare(qat, graph, x):
            bound = logits_bound(graph, k) if graph.tensors[k].bits == 32 else 1
            assert np.abs(gold - ref).max() <= bound, k


def _wide(cin: int, k: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, cin, 1), nn.ReLU(), nn.Conv2d(cin, 2, k))


def test_accumulator_overflow_is_refused_by_name():
    qat = quantize_model(_wide(4096, 9), "W8A8", (1, 3, 9, 9))
    with pytest.raises(IntegerizeError, match=r"layer '2'.*>= 2\^31.*9x9x4096.*W8A8"):
        to_ir(qat)
    to_ir(quantize_model(_wide(4096, 9), "W2A2", (1, 3, 9, 9)))  # fewer bits fit


def test_hardware_specific_bound_is_checked_with_hw():
    from bitbranch.compiler.tiling import LoweringError

    qat = quantize_model(_wide(60, 23), "W8A8", (1, 3, 23, 23))
    graph = to_ir(qat)  # 23·23·60 inputs fit the contract bound ...
    assert graph.meta["layers"]["2"]["plane_bound"] < 2**31
    with pytest.raises(LoweringError, match="layer '2'.*accumulator"):
        to_ir(qat, hw=get_config("edge"))  # ... but not once channels are padded to 64-bit words
    to_ir(compiled("resnet", "W2A2")[0], hw=get_config("small"))


def test_float_model_or_missing_quantizer_is_refused():
    with pytest.raises(IntegerizeError, match="features.0.*quantize_model"):
        to_ir(SmallCNN(), (1, 3, 16, 16))
    qat = quantize_model(SmallCNN(), "W2A2", (1, 3, 16, 16))
    node = next(n for n in qat.graph.nodes if n.target == "features.0.aq")
    node.replace_all_uses_with(node.args[0])
    qat.graph.erase_node(node)
    qat.recompile()
    with pytest.raises(IntegerizeError, match=r"features\.3.*features\.0.*not quantized"):
        to_ir(qat)


def test_concat_with_different_grids_is_refused():
    qat = quantize_model(TinyYolo(), "W2A2", (1, 3, 16, 16))
    first = next(n for n in qat.graph.nodes if n.target == "stem.0.aq")
    qat.add_submodule("other_aq", type(qat.get_submodule("stem.0.aq"))(4, "unsigned", hi=2.0))
    first.target = "other_aq"
    qat.recompile()
    with pytest.raises(IntegerizeError, match="concat inputs .* different level grids"):
        to_ir(qat)


def test_timm_style_pools():
    qat, graph = compiled("timm", "W4A4")
    pools = {op.name: op for op in _ops(graph, ir.Pool)}
    assert (pools["pool"].kernel, pools["pool"].stride, pools["pool"].pad) == (3, 2, 1)
    assert (pools["mean"].kernel, pools["mean"].stride) == (6, 6) and graph.tensors["mean"].shape == (1, 1, 16)
    # ReLU6's range is calibrated inside [0, 6] (issue 16: a fixed 0..6 grid wastes levels), z = 0 kept
    hi, stem = float(qat.get_submodule("stem.0.aq").hi), graph.tensors["stem.0"]
    assert 0 < hi <= 6 and stem.scale == pytest.approx(hi / 15) and stem.zero == 0


def test_quantizer_on_levels_becomes_an_explicit_requant():
    qat = quantize_model(SmallCNN(), "W2A2", (1, 3, 16, 16)).double()
    calibrate(qat, images((4, 3, 16, 16), 1))
    q = next(n for n in qat.graph.nodes if n.target == "features.0.aq")
    qat.add_submodule("wider_aq", type(qat.get_submodule("features.0.aq"))(5, "unsigned", hi=1.5).double())
    with qat.graph.inserting_after(q):
        wider = qat.graph.call_module("wider_aq", (q,))
    q.replace_all_uses_with(wider, delete_user_cb=lambda u: u is not wider)
    qat.recompile()
    graph = to_ir(qat)
    rq = graph.producer("features.0.requant")
    assert isinstance(rq, ir.Pool) and (rq.mode, rq.kernel) == ("avg", 1) and graph.tensors[rq.output].bits == 5
    for x in images((1, 3, 16, 16), 2):
        for k, gold, ref in compare(qat, graph, x):
            bound = logits_bound(graph, k) if graph.tensors[k].bits == 32 else 1
            assert np.abs(gold - ref).max() <= bound, k


def test_activation_bound_inside_the_quantizer_range_becomes_the_clamp():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 6, 3, padding=1)
            self.b = nn.Conv2d(6, 2, 3, padding=1)

        def forward(self, x):
            return self.b(torch.clamp(self.a(x), max=0.5))

    qat = quantize_model(Net(), "W4A3", (1, 3, 6, 6)).double()
    with torch.no_grad():
        qat.get_submodule("a.aq").clip.fill_(1.0)  # symmetric [-1, 1], 3 bits: 0.5 is level 5 of 0..7
    graph = to_ir(qat)
    rq = graph.producer("a").requant
    assert (rq.lo, rq.hi) == (0, 5)
    for x in images((1, 3, 6, 6), 3):
        for k, gold, ref in compare(qat, graph, x):
            bound = logits_bound(graph, k) if graph.tensors[k].bits == 32 else 1
            assert np.abs(gold - ref).max() <= bound, k
        assert (golden_values(graph, x)["a"] == 5).any()  # the clamp is active


def test_accumulator_bound_in_row_blocks():
    """Σ|w| is taken a block of rows at a time (VGG's fc6 has 100 M codes): the same bound as over the whole layer."""
    from bitbranch.compiler.integerize import _ROW_BLOCK, _check_accumulator

    rng = np.random.default_rng(5)
    codes = 2 * rng.integers(0, 4, size=(3 * _ROW_BLOCK // (64 * 9) + 7, 64, 3, 3), dtype=np.int64) - 3
    codes[-1] = 3  # the largest row in the last, partial block
    bound = _check_accumulator("fc", codes, 2, False, 2)["acc_bound"]
    assert bound == int(np.abs(codes).reshape(codes.shape[0], -1).sum(axis=1).max()) * 3 == 64 * 9 * 3 * 3

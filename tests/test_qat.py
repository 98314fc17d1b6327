"""Quantized layers, precision specs, quantizer placement and calibration (compiler.qat / placement / precision)."""

from __future__ import annotations

import json

import pytest
import torch
from qat_models import BasicBlock, HtanhNet, ResNet, SmallCNN, TinyYolo, randomize_bn
from torch import nn

from bitbranch.compiler.precision import PrecisionError, WeightPrecision, parse_precision, parse_token
from bitbranch.compiler.qat import (
    ActQuant,
    QuantConv2d,
    QuantLinear,
    WeightQuant,
    fold_input_normalization,
    ladder,
)
from bitbranch.compiler.quantize import calibrate, quantize_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- weight quantizers --------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", range(1, 9))
def test_ladder_is_the_papers_hard_ladder(bits):
    x = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    top = (1 << bits) - 1
    paper = 2 * (torch.floor(top * (x + 1) / 2 + 0.5) / top - 0.5)  # METHOD.md q_n(x), round half up
    codes = ladder(x, bits)
    assert torch.allclose(codes / top, paper, rtol=0, atol=1e-12)
    assert torch.all(codes % 2 == 1) and codes.abs().max() == top
    assert set(codes.unique().tolist()) == set(range(-top, top + 1, 2))


def test_two_bit_codes_of_the_paper():
    x = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0, 0.0])
    assert ladder(x, 2).tolist() == [-3, -1, 1, 3, 1]  # 0 is not a weight value: ties go up


def test_weight_quant_codes_and_real_values_agree():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    for prec in (WeightPrecision(1), WeightPrecision(3), WeightPrecision(2, True)):
        wq = WeightQuant(6, prec).double()
        wq.init_scale(w)
        real = wq(w)
        codes = wq.codes(w)
        assert torch.allclose(real, codes * wq.code_scale().view(-1, 1, 1, 1))
        if prec.ternary:
            assert set(codes.unique().tolist()) <= {-1, 0, 1} and (codes == 0).any()
        else:
            assert torch.all(codes % 2 == 1)


def test_ternary_threshold_is_delta_times_alpha():
    wq = WeightQuant(1, WeightPrecision(2, True), delta=0.3)
    with torch.no_grad():
        wq.alpha.fill_(2.0)
    w = torch.tensor([[-0.7, -0.59, 0.0, 0.59, 0.61, 5.0]])
    assert wq.codes(w).tolist() == [[-1, 0, 0, 0, 1, 1]]
    wq.set_mode("mbit", bits=1)
    assert wq.codes(w).tolist() == [[-1, -1, 1, 1, 1, 1]] and not wq.ternary
    with pytest.raises(ValueError, match="mode"):
        wq.set_mode("quaternary")


def test_binary_scale_init_is_near_the_mse_optimum():
    torch.manual_seed(1)
    w = torch.randn(4, 64, 3, 3)
    wq = WeightQuant(4, WeightPrecision(1))
    wq.init_scale(w)
    mean_abs = w.abs().reshape(4, -1).mean(dim=1)  # the closed-form optimum for sign(w)·α
    assert torch.allclose(wq.alpha, mean_abs, rtol=0.06)

    def mse(a):
        return ((torch.sign(w) * a.view(-1, 1, 1, 1) - w) ** 2).sum()

    assert mse(wq.alpha.detach()) < mse(w.abs().reshape(4, -1).amax(dim=1))


def test_ste_gradients_pass_inside_the_clip_range_and_reach_alpha():
    wq = WeightQuant(1, WeightPrecision(2))
    with torch.no_grad():
        wq.alpha.fill_(1.0)
    w = torch.tensor([[-2.0, -0.4, 0.2, 0.9, 1.5]], requires_grad=True)
    wq(w).sum().backward()
    assert w.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]
    assert wq.alpha.grad is not None and wq.alpha.grad.abs().sum() > 0


# --- activation quantizers ------------------------------------------------------------------------------


def test_unsigned_quantizer_levels_and_pact_gradient():
    q = ActQuant(2, "unsigned", hi=3.0)
    x = torch.tensor([-1.0, 0.4, 0.5, 1.49, 1.5, 2.9, 7.0], requires_grad=True)
    y = q(x)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 3.0]  # round half up: 0.5 -> 1, 1.5 -> 2
    assert q.levels(y).tolist() == [0, 0, 1, 1, 2, 3, 3]
    p = q.params()
    assert (p.scale, p.zero, p.lo, p.hi) == (1.0, 0.0, 0.0, 3.0)
    y.sum().backward()
    assert q.clip.grad is not None and q.clip.grad > 0  # the clipped 7.0 pulls the range up
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_symmetric_and_htanh_zero_points():
    for q in (ActQuant(3, "symmetric", hi=1.0), ActQuant(3, "fixed", -1.0, 1.0)):
        p = q.params()
        assert p.zero == 3.5 and p.scale == pytest.approx(2 / 7)
        assert q(torch.tensor([-5.0, 0.01, 5.0])).tolist() == pytest.approx([-1.0, 1 / 7, 1.0])
    relu6 = ActQuant(2, "fixed", 0.0, 6.0).params()
    assert (relu6.scale, relu6.zero) == (2.0, 0.0)


def test_input_quantizer_is_255x():
    q = ActQuant(8, "fixed", 0.0, 1.0).double()
    x = torch.rand(1000, dtype=torch.float64)
    assert torch.equal(q.levels(q(x)), torch.floor(255 * x + 0.5).to(torch.int64))
    assert q.params().scale == pytest.approx(1 / 255)


# --- precision specs ------------------------------------------------------------------------------------


def test_precision_tokens():
    assert parse_token("W2A2") == (WeightPrecision(2), 2)
    assert parse_token("w1a8") == (WeightPrecision(1), 8)
    assert parse_token("WTA4") == (WeightPrecision(2, True), 4)


@pytest.mark.parametrize("bad", ["W9A2", "W2A0", "X2A2", "W2", "W2A2B", "WA2"])
def test_bad_precision_tokens_name_the_token(bad):
    with pytest.raises(PrecisionError, match=bad):
        parse_precision(bad)


def test_precision_files_json_and_toml(tmp_path):
    data = {"default": "W2A4", "linear_bits": 6,
            "layers": {"conv1": {"w": 8}, "layer*.conv2": {"w": "ternary", "a": 3}, "layer1.0.conv2": {"w": 1}}}
    (tmp_path / "p.json").write_text(json.dumps(data))
    (tmp_path / "p.toml").write_text('default = "W2A4"\nlinear_bits = 6\n[layers]\n"conv1" = { w = 8 }\n'
                                     '"layer*.conv2" = { ternary = true, a = 3 }\n"layer1.0.conv2" = { w = 1 }\n')
    for name in ("p.json", "p.toml"):
        spec = parse_precision(tmp_path / name)
        assert spec.weight_for("conv1") == WeightPrecision(8)
        assert spec.weight_for("layer2.0.conv2") == WeightPrecision(2, True)
        assert spec.weight_for("layer1.0.conv2") == WeightPrecision(1)  # exact path beats the pattern
        assert spec.act_bits_for("layer1.0.conv2") == 3 and spec.act_bits_for("fc") == 4
        assert spec.act_bits_for("layer1.0.downsample.0", linear=True) == 6


@pytest.mark.parametrize(("data", "needle"), [
    ({"default": "W2A2", "bits": 3}, "'bits'"),
    ({"default": "W2A2", "layers": {"conv1": {"wbits": 3}}}, "'wbits'"),
    ({"default": "W2A2", "layers": {"conv1": {"w": 12}}}, "12"),
    ({"default": "W2A2", "layers": {"conv1": {"w": "quad"}}}, "quad"),
    ({"default": "W0A2"}, "W0A2"),
])
def test_bad_precision_files_name_the_key(tmp_path, data, needle):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    with pytest.raises(PrecisionError, match=needle):
        parse_precision(p)


def test_override_of_an_unknown_layer_is_an_error():
    with pytest.raises(PrecisionError, match="layer9.conv"):
        quantize_model(SmallCNN(), {"default": "W2A2", "layers": {"layer9.conv": {"w": 4}}}, (1, 3, 16, 16))


# --- quantize_model --------------------------------------------------------------------------------------


def _calls(gm, target):
    return [n for n in gm.graph.nodes if n.op == "call_module" and n.target == target]


def test_resnet_keeps_paths_and_places_quantizers():
    model = ResNet(BasicBlock, [1, 1])
    q = quantize_model(model, "W2A2", (1, 3, 16, 16))
    assert type(model.layer1[0].conv1) is nn.Conv2d  # the float model is not modified
    assert isinstance(q.get_submodule("layer1.0.conv1"), QuantConv2d)
    assert isinstance(q.get_submodule("fc"), QuantLinear)
    assert q.get_submodule("layer2.0.downsample.0").wq.bits == 2
    ds = q.get_submodule("layer2.0.downsample.0.aq")  # bn_d(conv_d(x)) feeds the residual add: 8-bit linear
    assert (ds.kind, ds.bits) == ("symmetric", 8)
    block_out = q.get_submodule("layer2.0.conv2.aq")  # relu(bn2(conv2) + identity)
    assert (block_out.kind, block_out.bits) == ("unsigned", 2)
    pool = q.get_submodule("avgpool.aq")  # the pooled features feeding fc are levels too
    assert (pool.kind, pool.bits) == ("unsigned", 2)
    inp = q.get_submodule("input_aq")
    assert (inp.kind, inp.bits, float(inp.lo), float(inp.hi)) == ("fixed", 8, 0.0, 1.0)
    assert not any(n.target == "fc.aq" for n in q.graph.nodes)  # logits stay int32
    # the residual add consumes the un-quantized bn2 output: no quantizer between bn2 and the add
    add = next(n for n in q.graph.nodes if n.op == "call_function" and "add" in n.name)
    assert {a.op for a in add.args} == {"call_module"} and add.args[0].target == "layer1.0.bn2"


def test_concat_inputs_share_one_quantizer():
    q = quantize_model(TinyYolo(), "W2A2", (1, 3, 16, 16))
    shared = [n for n in q.graph.nodes if n.op == "call_module" and n.target == "stem.0.aq"]
    assert len(shared) == 2  # called after the stem and after the deep branch
    assert not any(n.target == "deep.0.aq" for n in q.graph.nodes if n.op == "call_module")
    assert not any(str(n.target).startswith("head") and str(n.target).endswith(".aq") for n in q.graph.nodes)


def test_per_layer_mapping_sets_bits():
    spec = {"default": "W2A2", "layers": {"conv1": {"w": 8}, "fc": {"w": "ternary"}, "layer1.*.conv2": {"a": 4},
                                          "layer2.0.downsample.0": {"a": 5}}}
    q = quantize_model(ResNet(BasicBlock, [1, 1]), spec, (1, 3, 16, 16))
    assert q.get_submodule("conv1").wq.bits == 8
    assert q.get_submodule("fc").wq.ternary
    assert q.get_submodule("layer1.0.conv2.aq").bits == 4
    assert q.get_submodule("layer1.0.conv1.aq").bits == 2
    assert q.get_submodule("layer2.0.downsample.0.aq").bits == 5


def test_level_space_padding_for_symmetric_inputs():
    q = quantize_model(HtanhNet(), "W2A2", (1, 3, 8, 8))
    conv2 = q.get_submodule("conv2")
    assert conv2.input_quant is q.get_submodule("conv1.aq")  # Hardtanh levels: level 0 is -1, not 0
    assert q.get_submodule("conv1").input_quant is None  # the image: level 0 is real 0
    x = torch.full((1, 8, 4, 4), -1.0)  # every input at level 0
    w = conv2.wq(conv2.weight)
    ref = torch.nn.functional.conv2d(x, w, conv2.bias)  # unpadded window: 2x2 valid outputs
    assert torch.allclose(conv2(x)[..., 1:3, 1:3], ref)
    assert torch.allclose(conv2(x)[..., 0, 0], ref[..., 0, 0])  # the border pads with level 0 too


def test_symmetric_linear_tensor_feeding_a_padded_conv_pads_in_level_space():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    q = quantize_model(model, "W2A2", (1, 3, 8, 8))
    lin = q.get_submodule("0.aq")
    assert (lin.kind, lin.bits) == ("symmetric", 8)
    assert q.get_submodule("2").input_quant is lin


def test_calibrate_sets_ranges_from_data_and_keeps_fixed_ones():
    torch.manual_seed(0)
    q = quantize_model(randomize_bn(HtanhNet()), "W4A4", (1, 3, 8, 8))
    fixed_before = float(q.get_submodule("conv1.aq").hi)
    q2 = quantize_model(randomize_bn(SmallCNN()), "W4A4", (1, 3, 16, 16))
    before = float(q2.get_submodule("features.0.aq").clip.detach())
    data = [torch.rand(4, 3, 16, 16) for _ in range(2)]
    calibrate(q2, data)
    after = float(q2.get_submodule("features.0.aq").clip.detach())
    assert after != before
    with torch.no_grad():
        pre = q2.get_submodule("features.2")  # observe the ReLU output range directly
        seen = []
        h = pre.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
        q2(data[0])
        h.remove()
    assert 0 < after <= float(torch.cat(seen).max()) + 1e-6
    calibrate(q, [torch.rand(4, 3, 8, 8)])
    # Hardtanh's [-1, 1] is where the function clips, not where the data is: calibration narrows it to a
    # symmetric [-c, c] inside it (issue 16: fixed 0..6 ReLU6 ranges collapsed MobileNetV2 at 2 bits) ...
    htanh = q.get_submodule("conv1.aq")
    assert 0 < float(htanh.hi) <= fixed_before and float(htanh.lo) == -float(htanh.hi)
    # ... while the network input keeps its fixed 8-bit [0, 1] grid (u = round(255·x) is the image itself)
    assert (float(q.get_submodule("input_aq").lo), float(q.get_submodule("input_aq").hi)) == (0.0, 1.0)


def test_qat_model_trains():
    """Gradients reach weights, weight scales and activation ranges; an easy task is learned at W2A2."""
    torch.manual_seed(0)
    q = quantize_model(SmallCNN(classes=2), "W2A2", (1, 3, 16, 16))
    y = torch.arange(32) % 2
    x = torch.rand(32, 3, 16, 16) * 0.5 + 0.5 * y.view(-1, 1, 1, 1)  # class 1: bright images
    calibrate(q, [x])
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    losses = []
    for step in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(q(x), y)
        loss.backward()
        if step == 0:
            # (a conv followed by BatchNorm is invariant to its per-channel α in training mode: zero gradient)
            assert q.get_submodule("features.5").wq.alpha.grad.abs().sum() > 0
            assert q.get_submodule("fc").wq.alpha.grad.abs().sum() > 0
            assert q.get_submodule("features.0").weight.grad.abs().sum() > 0
            assert q.get_submodule("features.0.aq").clip.grad.abs() > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]
    q.eval()
    assert torch.equal(q(x).argmax(dim=1), y)


def test_fold_input_normalization():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = torch.rand(1, 3, 8, 8)
    want = conv((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    fold_input_normalization(conv, mean, std)
    assert torch.allclose(conv(x), want, atol=1e-5)

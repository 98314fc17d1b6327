"""Smart Quantization regularizer (compiler.smartquant): formulas, parametrisation, export."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bitbranch.compiler.integerize import to_ir
from bitbranch.compiler.quantize import quantize_model
from bitbranch.compiler.smartquant import (
    SmartQuant,
    SQConfig,
    apply_deltas,
    memory,
    quant_layers,
    scaled_weights,
    well_penalty,
    zero_threshold,
)


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 10))


def qat_tiny() -> nn.Module:
    torch.manual_seed(0)
    return quantize_model(tiny(), "WTA2", (1, 1, 4, 4))


def test_zero_threshold_is_where_the_wells_meet() -> None:
    assert float(zero_threshold(torch.tensor(1.0), 2)) == pytest.approx(0.5)  # β = π/4: plain ternary rounding
    for tan in (1.5, 10.0, 1e4):
        t = torch.tensor(tan, dtype=torch.float64)
        d = zero_threshold(t, 2)
        assert float((1 - d) ** 2) == pytest.approx(float(t * d**2))
        inside, outside = well_penalty(d * 0.99, t, 2), well_penalty(d * 1.01, t, 2)
        assert float(inside) == pytest.approx(float(t * (d * 0.99) ** 2))  # zero-well branch
        assert float(outside) == pytest.approx(float((1 - d * 1.01) ** 2))  # ±1-well branch


def test_angle_stays_in_range() -> None:
    sq = SmartQuant(qat_tiny())
    with torch.no_grad():
        sq.theta.copy_(torch.tensor([-20.0, 20.0]))
    beta = sq.betas().detach().double()
    assert math.pi / 4 <= float(beta[0]) < float(beta[1]) < math.pi / 2
    assert float(sq.deltas()[0].detach()) == pytest.approx(0.5, abs=1e-6)
    assert 0 < float(sq.deltas()[1].detach()) < 1e-4


def test_gamma_pushes_toward_binary_and_zeros_pull_back() -> None:
    model = qat_tiny()
    sq = SmartQuant(model, SQConfig(lam=0.0, gamma=1.0, theta_init=-2.0))
    sq.penalty().backward()
    assert (sq.theta.grad < 0).all()  # descending the gradient raises β: a shallower zero well, less memory
    sq = SmartQuant(model, SQConfig(lam=1.0, gamma=0.0, theta_init=-2.0))
    sq.penalty().backward()
    assert (sq.theta.grad > 0).all()  # weights inside the zero well pull β down (toward ternary)


def test_penalty_does_not_move_the_scales() -> None:
    model = qat_tiny()
    SmartQuant(model).penalty().backward()
    for _, m in quant_layers(model):
        assert m.wq.alpha.grad is None
        assert m.weight.grad is not None


def test_sync_and_export_set_the_quantizers() -> None:
    model = qat_tiny()
    sq = SmartQuant(model, SQConfig(cutoff=0.02))
    with torch.no_grad():
        sq.theta.copy_(torch.tensor([-4.0, 30.0]))  # first layer ternary (Δ ≈ 0.5), second binary (Δ ≈ 0)
    sq.sync()
    (_, conv), (_, fc) = quant_layers(model)
    assert conv.wq.ternary and conv.wq.delta == pytest.approx(float(sq.deltas()[0].detach()))
    mapping, choices = sq.export(act_bits=2)
    assert [c.depth for c in choices] == ["ternary", "binary"]
    assert mapping == {"default": "WTA2", "layers": {choices[1].path: {"w": 1}}}
    assert conv.wq.ternary and not fc.wq.ternary and fc.wq.bits == 1
    share = float((scaled_weights(conv).abs() <= choices[0].delta).double().mean())
    assert choices[0].zero_share == pytest.approx(share)
    mem = memory(choices)
    assert (mem.binary, mem.ternary) == (8 * 9 + 128 * 10, 2 * (8 * 9 + 128 * 10))
    assert mem.mixed == 2 * 8 * 9 + 128 * 10


def test_exported_mapping_rebuilds_the_same_integer_model() -> None:
    model = qat_tiny()
    sq = SmartQuant(model)
    with torch.no_grad():
        sq.theta.copy_(torch.tensor([-4.0, 30.0]))
    mapping, choices = sq.export(act_bits=2)
    rebuilt = quantize_model(tiny(), mapping, (1, 1, 4, 4))
    rebuilt.load_state_dict(model.state_dict())
    apply_deltas(rebuilt, {c.path: c.delta for c in choices if c.depth == "ternary"})
    a, b = to_ir(model.eval(), (1, 1, 4, 4)), to_ir(rebuilt.eval(), (1, 1, 4, 4))
    conv_a, conv_b = (next(op for op in g.ops if op.name == choices[0].path) for g in (a, b))
    assert conv_a.ternary and conv_b.ternary
    assert (conv_a.weights == conv_b.weights).all()
    fc = next(op for op in b.ops if op.name == choices[1].path)
    assert not fc.ternary and fc.mbits == 1

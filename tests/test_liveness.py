"""Liveness (issue 16): level usage per layer, warnings on collapse, calibrated ReLU6 / Hardtanh clips, --calib."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bitbranch.cli import main
from bitbranch.compiler import qat
from bitbranch.compiler.compile import compile_model
from bitbranch.compiler.liveness import is_degenerate, usage, warnings_for
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_usage_counts_levels_and_values():
    u = usage("t", 2, np.array([0, 0, 0, 1, 3, 3]))
    assert (u.distinct, u.levels, u.top_share, u.collapsed) == (3, 4, 0.5, False)
    assert u.label() == "3/4 50%"
    flat = usage("t", 2, np.zeros(1000, np.int64))
    assert flat.collapsed and flat.label() == "1/4 100%"
    assert not usage("t", 2, np.r_[np.zeros(985), np.ones(15)]).collapsed  # 98.5% on one level: still alive
    logits = usage("fc", 32, np.arange(-500, 500))
    assert (logits.distinct, logits.levels) == (1000, None) and logits.label() == "1000 v 0%"


def test_warnings_name_the_layers_and_constant_outputs():
    per = {"a": usage("a", 2, np.zeros(500, np.int64)), "b": usage("b", 2, np.arange(400) % 4)}
    lines = warnings_for(per, {"fc": np.full(10, 7), "ok": np.arange(10)})
    assert len(lines) == 2
    assert "1 of 2 layers" in lines[0] and lines[0].split(": ", 1)[1].startswith("a;")
    assert "final output 'fc' is constant" in lines[1] and "= 7" in lines[1]
    assert warnings_for({"b": per["b"]}, {"ok": np.arange(10)}) == []
    # 1000 logits on 4 values (squeezenet1_1 at W2A2) cannot rank 1000 classes; 10 values can, a little
    few = warnings_for({}, {"logits": np.arange(1000) % 4, "fine": np.arange(1000) % 10, "tiny": np.arange(99) % 2})
    assert len(few) == 1 and "'logits' takes only 4 different values over its 1000" in few[0]
    assert is_degenerate(np.full(5, 3)) and not is_degenerate(np.arange(5))


def small_activations_net() -> nn.Module:
    """ReLU6 layers whose data lives far below 1: a fixed 0..6 grid at 2 bits maps all of it to level 0 (the
    MobileNetV2 collapse in miniature)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
                      nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6(),
                      nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU6(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    with torch.no_grad():
        for bn in (m[1], m[4], m[7]):
            bn.weight.mul_(0.05)  # activations ~0.05: under the 0..6 grid's first step (1.0 at 2 bits)
            bn.bias.zero_()
        m[-1].bias.zero_()  # the logits then say only what the features say
    return m.eval()


def _image(seed: int = 0, size: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_calibrated_relu6_keeps_the_network_alive_and_bit_exact():
    art = compile_model(small_activations_net(), "W2A2", get_config("small"), _image())
    live = art.meta["liveness"]
    assert not live["warnings"], live["warnings"]
    relu6 = [u for k, u in live["layers"].items() if k in ("0", "3", "6")]
    assert all(u["distinct"] >= 3 for u in relu6), relu6
    result = run(art)
    assert result.golden_ok
    out = art.outputs[0]
    assert len(np.unique(result.outputs[out])) == np.asarray(result.outputs[out]).size  # 10 distinct logits


def test_fixed_relu6_range_collapses_and_is_warned_about(monkeypatch):
    """The old behaviour (fixed 0..6), forced: the warning names the collapsed layers and the constant output."""
    orig = qat.ActQuant.__init__

    def fixed(self, *a, **k):
        k["calibrate_range"] = False
        orig(self, *a, **k)

    monkeypatch.setattr(qat.ActQuant, "__init__", fixed)
    art = compile_model(small_activations_net(), "W2A2", get_config("small"), _image())
    warnings = art.meta["liveness"]["warnings"]
    assert any("layers put > 99%" in w and "0, 3, 6" in w for w in warnings), warnings
    assert any("is constant" in w for w in warnings), warnings


def test_calibration_floor_never_divides_by_zero():
    q = qat.ActQuant(2, "fixed", 0.0, 6.0, calibrate_range=True)
    q.start_observing()
    q(torch.zeros(100))
    q.finish_observing()  # all-zero data: the range is kept
    assert float(q.hi) == 6.0
    tiny = qat.ActQuant(2, "unsigned", 0.0, 4.0)
    tiny.start_observing()
    tiny(torch.full((100,), 1e-12))
    tiny.finish_observing()
    assert 0 < float(tiny.params().hi) <= 1e-11 and float(tiny.params().scale) > 0
    assert torch.unique(tiny(torch.linspace(0, 1e-12, 50))).numel() > 1  # no 1e-8 floor swallowing the data


def test_input_quantizer_stays_fixed():
    q = qat.ActQuant(8, "fixed", 0.0, 1.0)  # the network input: never calibrated
    assert not q.calibrate_range
    assert not qat.ActQuant(2, "fixed", -1.0, 3.0, calibrate_range=True).calibrate_range  # asymmetric: kept


MODEL = textwrap.dedent("""
    import torch
    from torch import nn
    INPUT_SHAPE = (3, 12, 12)

    def dead():
        m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
        with torch.no_grad():
            m[0].weight.zero_(); m[0].bias.fill_(-1.0); m[4].bias.zero_()  # ReLU(-1) everywhere: dead
        return m

    def alive():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
""")


def test_cli_warns_on_stderr_and_report_shows_levels(tmp_path, capsys, monkeypatch):
    (tmp_path / "m.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "m.py:dead", "--hw", "small", "--no-plots", "--json"]) == 0
    cap = capsys.readouterr()
    import json

    data = json.loads(cap.out)  # warnings never break the JSON on stdout
    assert any(ln.startswith("warning:") and "is constant" in ln for ln in cap.err.splitlines()), cap.err
    assert any("is constant" in w for w in data["warnings"])
    assert data["layers"][0]["levels"].startswith("1/")
    assert main(["run", "m.py:alive", "--hw", "small", "--no-plots"]) == 0
    cap = capsys.readouterr()
    assert "warning:" not in cap.err and "levels" in cap.out.splitlines()[cap.out.splitlines().index("") + 1]
    # its BatchNorm was never tracked (a built, untrained model): estimated on the image, and said so on stderr
    assert any(ln.startswith("note: BatchNorm statistics of the one BatchNorm layer were never tracked")
               for ln in cap.err.splitlines()), cap.err


def test_calib_option_uses_several_images(tmp_path, capsys, monkeypatch):
    (tmp_path / "m.py").write_text(MODEL)
    calib = tmp_path / "calib"
    calib.mkdir()
    for k in range(3):
        Image.fromarray(_image(k, 24)).save(calib / f"{k}.png")
    np.save(calib / "stack.npy", np.stack([_image(k + 5, 12) for k in range(2)]))
    seen = {}
    import bitbranch.compiler.compile as cc

    real = cc.compile_model

    def spy(*a, calib_images=None, **k):
        seen["n"] = len(calib_images or [])
        return real(*a, calib_images=calib_images, **k)

    monkeypatch.setattr(cc, "compile_model", spy)
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "m.py:alive", "--hw", "small", "--calib", str(calib), "-o", str(tmp_path / "a")]) == 0
    assert seen["n"] == 5  # 3 PNGs + a stack of 2
    assert main(["run", "m.py:alive", "--hw", "small", "--no-plots", "--calib", str(calib / "stack.npy")]) == 0
    assert seen["n"] == 2

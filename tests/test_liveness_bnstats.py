"""BatchNorm statistics that were never tracked (an untrained model) are estimated before calibration (issue 16).

torchvision / timm models built with random weights keep every BatchNorm at mean 0 / variance 1 with
`num_batches_tracked` 0. Folded as they are, the per-channel offsets and scales of the convolutions are
never normalised: GoogLeNet's activations shrink ~10^5x, Inception-v3's grow ~10^10x, branches joined by a
concat (one level grid) differ by orders of magnitude and layers collapse onto one level. compiler.bnstats
estimates the statistics on the calibration images then — and only then: a model with any tracked
statistics is compiled as it is.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch
from torch import nn

from bitbranch.compiler import bnstats
from bitbranch.compiler.compile import compile_model, image_tensor
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Branches(nn.Module):
    """Inception in miniature: two conv-BN-ReLU branches on one concat (one level grid), then a classifier. The
    first branch's weights are 100 times smaller (GoogLeNet initialises its convolutions with std 0.01)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.small = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.large = nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        with torch.no_grad():
            self.small[0].weight.mul_(1e-2)
            self.small[0].bias.mul_(1e-2)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([self.small(x), self.large(x)], 1))


def _image(size: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _mark_tracked(model: nn.Module) -> nn.Module:
    """The same statistics (mean 0, variance 1), but tracked: as if training had found exactly these."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.num_batches_tracked.fill_(1)
    return model


def _compile(model: nn.Module):
    art = compile_model(model.eval(), "W2A2", get_config("small"), _image())
    result = run(art)
    assert result.golden_ok
    out = result.outputs[art.outputs[0]]
    assert np.array_equal(out, art.golden[art.outputs[0]])
    return art, np.asarray(out)


def test_untracked_batchnorm_is_estimated_and_the_network_lives():
    model = Branches().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    art, out = _compile(model)
    assert not art.meta["liveness"]["warnings"], art.meta["liveness"]["warnings"]
    assert len(np.unique(out)) == out.size  # 10 distinct logits: not degenerate
    notes = art.meta["notes"]
    assert len(notes) == 1 and "all 4 BatchNorm layers were never tracked" in notes[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    # the same weights with tracked statistics are compiled as they are: the small branch collapses onto one
    # level of the concat's grid, and the liveness warning names it
    tracked, out = _compile(_mark_tracked(Branches()))
    assert "notes" not in tracked.meta
    warnings = tracked.meta["liveness"]["warnings"]
    assert any("layers put > 99%" in w and "small.0" in w for w in warnings), warnings
    assert tracked.layers and [r.name for r in tracked.layers] == [r.name for r in art.layers]  # same program
    assert len(np.unique(out)) > 1


def test_estimation_only_when_every_batchnorm_is_at_its_reset_values():
    x = image_tensor(_image())
    fresh = Branches().eval()
    est, note = bnstats.estimate_untracked(fresh, [x])
    assert est is not fresh and note and "4 BatchNorm layers" in note
    assert all(int(b.num_batches_tracked) == 0 for b in bnstats.batchnorms(fresh))  # the original is not modified
    assert est.training is False and all(not bnstats.never_tracked(b) for b in bnstats.batchnorms(est))
    assert [b.momentum for b in bnstats.batchnorms(est)] == [0.1] * 4  # momentum restored
    # the first BatchNorm's statistics are those of its input over the image and its mirror
    stem = fresh.stem[0](torch.cat([x, x.flip(-1)]))
    assert torch.allclose(est.stem[1].running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(est.stem[1].running_var, stem.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4)

    tracked = _mark_tracked(Branches()).eval()  # tracked: left alone
    assert bnstats.estimate_untracked(tracked, [x]) == (tracked, None)
    partly = Branches().eval()  # one layer tracked: the model was trained (or loaded) — nothing is re-estimated
    partly.head[1].num_batches_tracked.fill_(3)
    assert bnstats.estimate_untracked(partly, [x]) == (partly, None)
    loaded = Branches().eval()  # an old checkpoint without num_batches_tracked still carries its statistics
    loaded.large[1].running_var.fill_(2.5)
    assert bnstats.estimate_untracked(loaded, [x]) == (loaded, None)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())  # no BatchNorm
    assert bnstats.estimate_untracked(plain, [x]) == (plain, None)


def test_batchnorm_on_a_1x1_map_is_estimated_with_the_mirror():
    """A BatchNorm1d after global pooling sees one value per channel per image: the mirror makes it two."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)).eval()
    est, note = bnstats.estimate_untracked(m, [image_tensor(_image())])
    assert note and not bnstats.never_tracked(est[6]) and torch.all(est[6].running_var > 0)


def test_qat_models_are_compiled_as_given():
    """qat=True skips quantization, calibration — and the estimation (a trained QAT model is what it is)."""
    from bitbranch.compiler.quantize import calibrate, quantize_model

    q = quantize_model(Branches().eval(), "W2A2", input_shape=(1, 3, 12, 12))
    calibrate(q, [image_tensor(_image())])
    art = compile_model(q, "W2A2", get_config("small"), _image(), qat=True)
    assert "notes" not in art.meta


ZOO = importlib.util.find_spec("torchvision") is not None


@pytest.mark.skipif(not ZOO and not os.environ.get("BITBRANCH_REQUIRE_ZOO"), reason="zoo extra not installed")
def test_shufflenet_random_weights_live_at_64px_on_edge():
    """torchvision's ShuffleNetV2 x0.5 with random weights: 19 layers collapsed at 64x64 before (17 at 224);
    live and bit-exact now, with the note."""
    from bitbranch.workloads import get
    from bitbranch.workloads.images import default_image

    torch.manual_seed(0)
    spec = get("torchvision:shufflenet_v2_x0_5")
    art = compile_model(spec.build(), spec.precision, get_config("edge"), default_image((3, 64, 64)))
    result = run(art)
    assert result.golden_ok
    out = np.asarray(result.outputs[art.outputs[0]])
    assert np.array_equal(out, art.golden[art.outputs[0]])
    assert len(np.unique(out)) > 900, "bit-exact but (nearly) constant logits"
    assert not art.meta["liveness"]["warnings"], art.meta["liveness"]["warnings"]
    assert any("56 BatchNorm layers were never tracked" in n for n in art.meta["notes"])

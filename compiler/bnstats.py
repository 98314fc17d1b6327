"""BatchNorm statistics that were never tracked, estimated from the calibration images.

A BatchNorm layer at inference normalises with the running mean and variance its training tracked. A model
that was built and never trained (torchvision / timm with random weights, `weights=None`) still holds the
reset values on every BatchNorm: mean 0, variance 1, `num_batches_tracked` 0. Folded into the requantize
step, those "statistics" normalise nothing: with torchvision's initialisation the activations of
Inception-v3 grow ~10^9x through the network, GoogLeNet's shrink, and layers of ShuffleNetV2 put more than
99 % of their outputs on one level (issue 16). No trained model looks like that, so the quantized network
would be measured on activations it can never see.

`estimate_untracked(model, images)`: when EVERY BatchNorm of the model with running statistics is
untouched — `num_batches_tracked == 0`, running mean exactly 0 and running variance exactly 1 — it
returns a copy whose statistics are estimated on the images (what a short pass over data in train mode
does: each image with its horizontal mirror as a batch of two, so that a 1x1 map still has two values per
channel; a cumulative average over the images, `momentum=None`), and a note saying so. A model with any
tracked BatchNorm (trained, or loaded from a checkpoint with statistics — an old checkpoint without
`num_batches_tracked` still carries its mean and variance) is returned unchanged, as is a model without
BatchNorm. The caller's model is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers that normalise with running statistics at inference."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats
            and m.running_mean is not None and m.running_var is not None]


def never_tracked(bn: _BatchNorm) -> bool:
    """Still at the reset values: no batch tracked, mean exactly 0, variance exactly 1."""
    count = bn.num_batches_tracked
    return ((count is None or int(count) == 0) and bool(torch.all(bn.running_mean == 0))
            and bool(torch.all(bn.running_var == 1)))


def untracked(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers when every one of them was never tracked, else [] (nothing to estimate)."""
    bns = batchnorms(model)
    return bns if bns and all(never_tracked(b) for b in bns) else []


@torch.no_grad()
def estimate_untracked(model: nn.Module, images: Sequence[torch.Tensor]) -> tuple[nn.Module, str | None]:
    """(model with estimated BatchNorm statistics, note) when every BatchNorm was never tracked, else
    (model, None) unchanged. `images`: (1, C, H, W) (or (1, N)) tensors in the model's input convention."""
    if not untracked(model) or not images:
        return model, None
    if images[0].dim() == 4:  # each image with its mirror: two values per channel even on a 1x1 map
        batches = [torch.cat([x, x.flip(-1)]) for x in images]
        source = f"the {len(images)} calibration image(s) and their mirrors"
    elif len(images) > 1:  # vectors (an MLP's input) have no mirror: one batch of all of them
        batches, source = [torch.cat(list(images))], f"the {len(images)} calibration inputs"
    else:
        return model, None  # one vector says nothing about a variance
    est = copy.deepcopy(model)
    bns = batchnorms(est)
    momenta = [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative average over the batches
    was_training = est.training
    est.eval()  # Dropout and the like stay at inference; only the BatchNorm layers gather statistics
    for b in bns:
        b.train()
    try:
        for x in batches:
            est(x)
    finally:
        for b, m in zip(bns, momenta, strict=True):
            b.momentum = m
        est.train(was_training)
    which = f"all {len(bns)} BatchNorm layers" if len(bns) > 1 else "the one BatchNorm layer"
    note = (f"BatchNorm statistics of {which} were never tracked (num_batches_tracked = 0, "
            f"mean 0, variance 1: an untrained model); estimated on {source} before calibration (a model with "
            "tracked statistics is left as it is)")
    return est, note

"""Segmentation: per-pixel argmax of the class map on the host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LabelMap:
    labels: Tensor  # (N, H, W) class index per pixel

    def shares(self) -> dict[int, float]:
        """Share of the first image's pixels per predicted class."""
        values, counts = torch.unique(self.labels[0], return_counts=True)
        return {int(v): float(c) / self.labels[0].numel() for v, c in zip(values, counts, strict=True)}

    def summary(self) -> str:
        top = sorted(self.shares().items(), key=lambda kv: -kv[1])[:5]
        h, w = self.labels.shape[1:]
        return f"{h}x{w} label map; classes by pixel share: " + ", ".join(f"{c} {s:.1%}" for c, s in top)

    def to_dict(self) -> dict:
        return {"shape": list(self.labels.shape), "shares": {str(k): v for k, v in self.shares().items()}}


def argmax_map(scores: Tensor) -> LabelMap:
    """(N, C, H, W) class scores -> (N, H, W) labels (ties: lower class index, as torch.argmax)."""
    return LabelMap(torch.argmax(scores, dim=1))


def postprocess(outputs: Sequence[Tensor]) -> LabelMap:
    return argmax_map(outputs[0])

"""Classification: softmax and top-k on the host (the accelerator stops at the int32 logits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TopK:
    """Per image: class indices and probabilities, best first."""

    indices: Tensor  # (N, k)
    probs: Tensor  # (N, k)

    def summary(self) -> str:
        pairs = zip(self.indices[0].tolist(), self.probs[0].tolist(), strict=True)
        return f"top-{self.indices.shape[1]}: " + ", ".join(f"{i} ({p:.1%})" for i, p in pairs)

    def to_dict(self) -> dict:
        return {"indices": self.indices.tolist(), "probs": self.probs.tolist()}


def topk(logits: Tensor, k: int = 5) -> TopK:
    """Softmax over classes, then the k most probable (ties: lower class index first)."""
    probs = torch.softmax(logits.reshape(logits.shape[0], -1).double(), dim=1)
    order = torch.sort(probs, dim=1, descending=True, stable=True).indices[:, :k]
    return TopK(order, torch.gather(probs, 1, order))


def postprocess(outputs: Sequence[Tensor]) -> TopK:
    return topk(outputs[0], 5)

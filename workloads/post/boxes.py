"""Box utilities and non-maximum suppression in pure torch (no torchvision.ops)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def cxcywh_to_xyxy(b: Tensor) -> Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)


def xyxy_to_cxcywh(b: Tensor) -> Tensor:
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1)


def box_area(b: Tensor) -> Tensor:
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) intersection over union of xyxy boxes; 0 where both areas are 0."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: indices of kept boxes, by decreasing score (ties: lower index first).

    A box is dropped when its IoU (as `box_iou`) with an already kept, higher-scored box exceeds the
    threshold. Each kept box is compared with the survivors only: O(n x kept), no n x n matrix.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.sort(scores, descending=True, stable=True).indices
    x1, y1, x2, y2 = boxes[order].double().numpy().T
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    alive = np.arange(len(order))
    keep = []
    while alive.size:
        i, rest = alive[0], alive[1:]
        keep.append(i)
        inter = (np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
                 * np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None))
        union = area[i] + area[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive = rest[iou <= iou_threshold]
    return order[torch.as_tensor(keep, dtype=torch.long)]


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """NMS per label: boxes of different labels never suppress each other (shifted apart, then one NMS)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    span = boxes.max() - boxes.min() + 1
    shifted = boxes + (labels.to(boxes.dtype) * span)[:, None]
    return nms(shifted, scores, iou_threshold)


@dataclass
class Detections:
    """Detections of one image: xyxy boxes in input pixels, scores, class labels (by decreasing score)."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.scores)

    def summary(self, top: int = 5) -> str:
        if not len(self):
            return "no detections above the score threshold"
        parts = [f"class {int(c)} {float(s):.2f} at ({', '.join(f'{float(v):.0f}' for v in b)})"
                 for b, s, c in zip(self.boxes[:top], self.scores[:top], self.labels[:top], strict=True)]
        return f"{len(self)} detections; best: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {"count": len(self), "boxes": self.boxes.tolist(), "scores": self.scores.tolist(),
                "labels": self.labels.tolist()}


def select(boxes: Tensor, scores: Tensor, score_threshold: float, iou_threshold: float, pre_nms: int,
           max_detections: int, first_label: int = 0) -> Detections:
    """(P, 4) boxes with (P, C) class scores -> detections: the (box, class) pairs above the threshold,
    the `pre_nms` best of them, class-wise NMS, the `max_detections` best. Labels start at `first_label`."""
    box, cls = torch.nonzero(scores > score_threshold, as_tuple=True)
    s = scores[box, cls]
    best = torch.sort(s, descending=True, stable=True).indices[:pre_nms]
    box, cls, s = box[best], cls[best], s[best]
    keep = batched_nms(boxes[box], s, cls, iou_threshold)[:max_detections]
    return Detections(boxes[box[keep]], s[keep], cls[keep] + first_label)

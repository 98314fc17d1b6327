"""SSD300 host work: default boxes, box decoding, softmax, class-wise NMS.

Default boxes follow NVIDIA's SSD300 (feature sizes 38..1, steps 8..300, scales 21..315 pixels,
aspect ratios {2} or {2, 3}) in the position-major order of the original Caffe SSD: for each cell
(row i, column j) its boxes a = 0..A-1 — the order of a head map (N, A*k, H, W) permuted to NHWC and
flattened, channel a*k + j. Offsets are the usual SSD encoding with variances (0.1, 0.2).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .boxes import Detections, cxcywh_to_xyxy, select, xyxy_to_cxcywh

FIG_SIZE = 300
FEATURE_SIZES = (38, 19, 10, 5, 3, 1)
STEPS = (8, 16, 32, 64, 100, 300)
SCALES = (21, 45, 99, 153, 207, 261, 315)
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
VARIANCES = (0.1, 0.2)


def box_sizes(k: int) -> list[tuple[float, float]]:
    """(w, h) of the default boxes of feature map k, relative to the image."""
    s1, s2 = SCALES[k] / FIG_SIZE, SCALES[k + 1] / FIG_SIZE
    sizes = [(s1, s1), (math.sqrt(s1 * s2),) * 2]
    for ar in ASPECT_RATIOS[k]:
        w, h = s1 * math.sqrt(ar), s1 / math.sqrt(ar)
        sizes += [(w, h), (h, w)]
    return sizes


def default_boxes() -> Tensor:
    """(8732, 4) default boxes as (cx, cy, w, h) in [0, 1], position-major (see module doc)."""
    return _default_boxes().clone()


@functools.cache
def _default_boxes() -> Tensor:
    boxes = []
    for k, size in enumerate(FEATURE_SIZES):
        fk = FIG_SIZE / STEPS[k]
        sizes = box_sizes(k)
        for i, j in itertools.product(range(size), repeat=2):
            boxes += [((j + 0.5) / fk, (i + 0.5) / fk, w, h) for w, h in sizes]
    return torch.tensor(boxes, dtype=torch.float64).clamp(0, 1)


def flatten_heads(maps: Sequence[Tensor], k: int) -> Tensor:
    """Per-scale (N, A*k, H, W) maps -> (N, sum H*W*A, k) in default-box order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, k) for m in maps], dim=1)


def decode(loc: Tensor, priors: Tensor) -> Tensor:
    """SSD offsets (..., 4) against (cx, cy, w, h) priors -> xyxy boxes relative to the image."""
    v0, v1 = VARIANCES
    cxcy = priors[..., :2] + loc[..., :2] * v0 * priors[..., 2:]
    wh = priors[..., 2:] * torch.exp(loc[..., 2:] * v1)
    return cxcywh_to_xyxy(torch.cat((cxcy, wh), -1))


def encode(boxes: Tensor, priors: Tensor) -> Tensor:
    """Inverse of `decode`: the offsets that decode to `boxes` (xyxy, relative)."""
    v0, v1 = VARIANCES
    b = xyxy_to_cxcywh(boxes)
    return torch.cat(((b[..., :2] - priors[..., :2]) / (v0 * priors[..., 2:]),
                      torch.log(b[..., 2:] / priors[..., 2:]) / v1), -1)


def detect(loc: Tensor, conf: Tensor, priors: Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.45,
           max_detections: int = 200, image_size: int = FIG_SIZE) -> list[Detections]:
    """Per image: softmax over classes (0 = background), decode, class-wise NMS; boxes in input pixels."""
    result = []
    for n in range(loc.shape[0]):
        boxes = (decode(loc[n].double(), priors) * image_size).clamp(0, image_size)
        scores = torch.softmax(conf[n].double(), dim=-1)[:, 1:]  # (P, C-1) without the background
        result.append(select(boxes, scores, score_threshold, iou_threshold, 4 * max_detections, max_detections,
                             first_label=1))
    return result


def postprocess(outputs: Sequence[Tensor]) -> Detections:
    """The model's 12 head maps (6 loc, then 6 conf) -> detections of the first image."""
    half = len(outputs) // 2
    num_classes = outputs[half].shape[1] // len(box_sizes(0))
    loc, conf = flatten_heads(outputs[:half], 4), flatten_heads(outputs[half:], num_classes)
    return detect(loc, conf, default_boxes())[0]

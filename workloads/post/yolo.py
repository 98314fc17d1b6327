"""YOLOv3(-tiny) host work: decode the head maps, objectness x class score, class-wise NMS.

A head map is (N, A*(5+C), H, W) with channel a*(5+C) + k (darknet's order): k = 0..3 the box
(tx, ty, tw, th), 4 the objectness, 5.. the classes. Box of anchor a in cell (row i, column j):
    cx = (sigmoid(tx) + j) * stride,  cy = (sigmoid(ty) + i) * stride,
    w = anchor_w * exp(tw),           h = anchor_h * exp(th)        (input pixels)
Scores are sigmoid(objectness) * sigmoid(class), as darknet computes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..models.yolo import ANCHORS, MASKS, STRIDES
from .boxes import Detections, cxcywh_to_xyxy, select, xyxy_to_cxcywh


def split_head(m: Tensor, anchors: int) -> Tensor:
    """(N, A*(5+C), H, W) -> (N, A, H, W, 5+C)."""
    n, ch, h, w = m.shape
    return m.reshape(n, anchors, ch // anchors, h, w).permute(0, 1, 3, 4, 2)


def _grid(h: int, w: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    i, j = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return j, i  # x, y


def decode(m: Tensor, anchors: Sequence[tuple[float, float]], stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """One head map -> xyxy boxes (N, A*H*W, 4) in input pixels, objectness (N, A*H*W), class probs."""
    p = split_head(m.double(), len(anchors))
    gx, gy = _grid(p.shape[2], p.shape[3], p.dtype)
    a = torch.tensor(anchors, dtype=p.dtype)[None, :, None, None, :]
    cx = (torch.sigmoid(p[..., 0]) + gx) * stride
    cy = (torch.sigmoid(p[..., 1]) + gy) * stride
    wh = a * torch.exp(p[..., 2:4])
    boxes = cxcywh_to_xyxy(torch.stack((cx, cy, wh[..., 0], wh[..., 1]), -1))
    n = p.shape[0]
    return boxes.reshape(n, -1, 4), torch.sigmoid(p[..., 4]).reshape(n, -1), torch.sigmoid(p[..., 5:]).reshape(
        n, -1, p.shape[-1] - 5)


def encode(boxes: Tensor, anchors: Sequence[tuple[float, float]], stride: int, h: int, w: int) -> Tensor:
    """Inverse of the box part of `decode`: (A, H, W, 4) xyxy boxes -> (A, H, W, 4) raw (tx, ty, tw, th).

    Each box center must lie inside its own cell (else the sigmoid cannot reach it)."""
    b = xyxy_to_cxcywh(boxes.double())
    gx, gy = _grid(h, w, b.dtype)
    a = torch.tensor(anchors, dtype=b.dtype)[:, None, None, :]
    fx, fy = b[..., 0] / stride - gx, b[..., 1] / stride - gy
    return torch.stack((torch.logit(fx), torch.logit(fy), *torch.log(b[..., 2:] / a).unbind(-1)), -1)


def detect(maps: Sequence[Tensor], score_threshold: float = 0.25, iou_threshold: float = 0.45,
           max_detections: int = 100) -> list[Detections]:
    """Both heads -> per image detections, boxes clipped to the input."""
    heads = zip(maps, MASKS, STRIDES, strict=True)
    parts = [decode(m, [ANCHORS[k] for k in mask], stride) for m, mask, stride in heads]
    boxes = torch.cat([p[0] for p in parts], 1)
    scores = torch.cat([p[1][..., None] * p[2] for p in parts], 1)  # (N, boxes, C)
    size = maps[0].shape[2] * STRIDES[0]
    return [select(boxes[n].clamp(0, size), scores[n], score_threshold, iou_threshold, 4 * max_detections,
                   max_detections) for n in range(boxes.shape[0])]


def postprocess(outputs: Sequence[Tensor]) -> Detections:
    """The model's (13x13 head, 26x26 head) -> detections of the first image."""
    return detect(outputs)[0]

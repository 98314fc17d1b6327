"""Host-side post-processing on hand-made tensors: NMS, SSD and YOLO decoding, top-k, argmax maps."""

from __future__ import annotations

import math

import pytest
import torch

from bitbranch import workloads
from bitbranch.workloads.models.yolo import ANCHORS, MASKS
from bitbranch.workloads.post import boxes, classify, segment, ssd, yolo


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_box_iou_by_hand():
    a = t([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = t([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    iou = boxes.box_iou(a, b)
    assert torch.allclose(iou[0], t([50 / 150, 0, 1]))
    assert torch.equal(iou[1], t([0, 0, 0]))  # empty box: IoU 0, not NaN


def test_nms_keeps_best_of_each_overlapping_cluster():
    b = t([[0, 0, 10, 10],  # 0: cluster A
           [1, 1, 11, 11],  # 1: IoU 81/119 = 0.68 with 0
           [20, 20, 30, 30],  # 2: cluster B
           [21, 20, 31, 30],  # 3: IoU 90/110 = 0.82 with 2
           [5, 0, 15, 10]])  # 4: IoU 1/3 with 0: survives at 0.5
    scores = t([0.9, 0.95, 0.3, 0.8, 0.7])
    keep = boxes.nms(b, scores, 0.5)
    assert keep.tolist() == [1, 3, 4]  # by decreasing score; 0 and 2 suppressed
    assert boxes.nms(b, scores, 0.9).tolist() == [1, 0, 3, 4, 2]  # nothing overlaps that much
    assert boxes.nms(b, scores, 0.3).tolist() == [1, 3]  # 4 overlaps 1 with IoU 60/140 = 0.43


def test_nms_suppression_is_greedy_not_transitive():
    """a suppresses b, b would suppress c; c survives because b was already gone."""
    b = t([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]])  # IoU(a,b)=IoU(b,c)=6/14, IoU(a,c)=2/18
    keep = boxes.nms(b, t([0.9, 0.8, 0.7]), 0.4)
    assert keep.tolist() == [0, 2]


def test_batched_nms_never_crosses_classes():
    b = t([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    keep = boxes.batched_nms(b, t([0.9, 0.8, 0.7]), torch.tensor([1, 2, 1]), 0.5)
    assert keep.tolist() == [0, 1]
    assert boxes.nms(t([]).reshape(0, 4), t([]), 0.5).numel() == 0


def test_select_thresholds_classes_and_caps():
    b = t([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [0, 0, 10, 10]])
    scores = t([[0.9, 0.0], [0.04, 0.0], [0.6, 0.0], [0.8, 0.7]])  # (boxes, classes)
    det = boxes.select(b, scores, 0.05, 0.5, 10, 10, first_label=1)
    # box 3 class 1 is suppressed by box 0 (same place, same class); as class 2 it stays
    assert det.scores.tolist() == [0.9, 0.7, 0.6] and det.labels.tolist() == [1, 2, 1]
    assert torch.equal(det.boxes, b[[0, 3, 2]])
    assert boxes.select(b, scores, 0.05, 0.5, 10, 1).scores.tolist() == [0.9]
    assert boxes.select(b, scores, 0.05, 0.5, 2, 10).scores.tolist() == [0.9]  # pre-NMS cap: 0.9, 0.8 -> NMS


def test_ssd_default_boxes():
    priors = ssd.default_boxes()
    assert priors.shape == (8732, 4)
    assert priors.min() >= 0 and priors.max() <= 1
    # first cell of the 38x38 map: center (0.5 * 8 / 300), square box of 21 px, then sqrt(21 * 45) px
    c = 0.5 * 8 / 300
    assert torch.allclose(priors[0], t([c, c, 21 / 300, 21 / 300]))
    assert torch.allclose(priors[1], t([c, c, math.sqrt(21 * 45) / 300, math.sqrt(21 * 45) / 300]))
    assert torch.allclose(priors[2, 2] / priors[2, 3], t(2.0))  # aspect ratio 2, then its transpose
    assert torch.allclose(priors[4, :2], t([1.5 * 8 / 300, c]))  # next cell to the right (row-major)
    s1 = 261 / 300  # last map (1x1): ..., then aspect ratio 2 transposed, its height clamped to the image
    assert torch.allclose(priors[-1], t([0.5, 0.5, s1 / math.sqrt(2), 1.0]))


def test_ssd_head_flattening_matches_prior_order():
    """Channel a*k + j of cell (i, x) lands at box index (i*W + x)*A + a."""
    a, k, h, w = 4, 4, 2, 3
    m = torch.arange(a * k * h * w, dtype=torch.float64).reshape(1, a * k, h, w)
    flat = ssd.flatten_heads([m], k)
    i, x, anchor, j = 1, 2, 3, 1
    assert flat[0, (i * w + x) * a + anchor, j] == m[0, anchor * k + j, i, x]


def test_ssd_decode_encode_round_trip():
    priors = ssd.default_boxes()[::97]
    gen = torch.Generator().manual_seed(0)
    target = ssd.cxcywh_to_xyxy(torch.cat([torch.rand(len(priors), 2, generator=gen, dtype=torch.float64),
                                           0.05 + 0.5 * torch.rand(len(priors), 2, generator=gen,
                                                                   dtype=torch.float64)], 1))
    loc = ssd.encode(target, priors)
    assert torch.allclose(ssd.decode(loc, priors), target)
    zero = ssd.decode(torch.zeros(1, 4, dtype=torch.float64), priors[:1])
    assert torch.allclose(zero, ssd.cxcywh_to_xyxy(priors[:1]))  # zero offsets give the prior itself


def test_ssd_detect_finds_the_planted_box():
    priors = ssd.default_boxes()
    n, c = len(priors), 21
    target = t([[0.2, 0.3, 0.6, 0.8]])
    loc = torch.zeros(1, n, 4, dtype=torch.float64)
    conf = torch.zeros(1, n, c, dtype=torch.float64)
    conf[..., 0] = 10  # background everywhere
    k = 5000
    loc[0, k] = ssd.encode(target, priors[k : k + 1])[0]
    conf[0, k, 0], conf[0, k, 7] = 0, 10
    det = ssd.detect(loc, conf, priors)[0]
    assert len(det) == 1 and det.labels.tolist() == [7]
    assert torch.allclose(det.boxes[0], target[0] * 300)


def test_yolo_decode_by_hand():
    """One cell, hand-computed: sigmoid(0) = 0.5, exp(0) = 1 -> centered box of the anchor's size."""
    anchors = [ANCHORS[k] for k in MASKS[0]]
    m = torch.zeros(1, 3 * 85, 2, 2, dtype=torch.float64)
    a, i, j = 2, 1, 0  # anchor (344, 319) in row 1, column 0
    m[0, a * 85 + 2, i, j] = math.log(0.5)  # width halved
    m[0, a * 85 + 4, i, j] = 2.0
    m[0, a * 85 + 5 + 9, i, j] = -1.0
    b, obj, cls = yolo.decode(m, anchors, 32)
    idx = (a * 2 + i) * 2 + j
    cx, cy, w, h = 0.5 * 32, 1.5 * 32, 344 / 2, 319
    assert torch.allclose(b[0, idx], t([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    assert math.isclose(obj[0, idx].item(), 1 / (1 + math.exp(-2)))
    assert math.isclose(cls[0, idx, 9].item(), 1 / (1 + math.e)) and math.isclose(cls[0, idx, 0].item(), 0.5)


def test_yolo_encode_decode_round_trip():
    anchors = [ANCHORS[k] for k in MASKS[1]]
    h = w = 4
    gen = torch.Generator().manual_seed(1)
    gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx = (gx + 0.1 + 0.8 * torch.rand(3, h, w, generator=gen)) * 16
    cy = (gy + 0.1 + 0.8 * torch.rand(3, h, w, generator=gen)) * 16
    wh = 5 + 100 * torch.rand(3, h, w, 2, generator=gen)
    target = boxes.cxcywh_to_xyxy(torch.stack((cx, cy, wh[..., 0], wh[..., 1]), -1).double())
    raw = yolo.encode(target, anchors, 16, h, w)  # (A, H, W, 4)
    m = torch.zeros(1, 3, 85, h, w, dtype=torch.float64)
    m[0, :, :4] = raw.permute(0, 3, 1, 2)
    decoded, _, _ = yolo.decode(m.reshape(1, 3 * 85, h, w), anchors, 16)
    assert torch.allclose(decoded[0], target.reshape(-1, 4))


def test_yolo_detect_objectness_times_class_and_nms():
    m13 = torch.full((1, 255, 13, 13), -20.0, dtype=torch.float64)
    m26 = torch.full((1, 255, 26, 26), -20.0, dtype=torch.float64)
    for a in (0, 1):  # two anchors of one cell predict the same object; NMS keeps the stronger
        m13[0, a * 85 : a * 85 + 2, 6, 6] = 0.0  # centered in the cell
        m13[0, a * 85 + 4, 6, 6] = 5.0 - a
        m13[0, a * 85 + 5 + 3, 6, 6] = 5.0
        m13[0, a * 85 + 2 : a * 85 + 4, 6, 6] = torch.log(t([100 / ANCHORS[3 + a][0], 100 / ANCHORS[3 + a][1]]))
    det = yolo.detect([m13, m26])[0]
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert len(det) == 1 and det.labels.tolist() == [3]
    assert math.isclose(det.scores[0].item(), sig(5.0) * sig(5.0))
    assert torch.allclose(det.boxes[0], t([208 - 50, 208 - 50, 208 + 50, 208 + 50]))


def test_topk_softmax_and_ties():
    logits = t([[1.0, 3.0, 3.0, 0.0, 2.0, -1.0]])
    top = classify.topk(logits, 3)
    assert top.indices.tolist() == [[1, 2, 4]]  # tie 1/2: lower index first
    z = math.exp(1) + 2 * math.exp(3) + 1 + math.exp(2) + math.exp(-1)
    assert torch.allclose(top.probs, t([[math.exp(3) / z, math.exp(3) / z, math.exp(2) / z]]))
    assert classify.postprocess([logits.reshape(1, 6, 1, 1)]).indices[0, 0] == 1  # (N, C, 1, 1) maps too


def test_argmax_map():
    scores = torch.zeros(1, 3, 2, 2)
    scores[0, 2, 0, 0] = 1
    scores[0, 1, 1, :] = 5
    lm = segment.argmax_map(scores)
    assert lm.labels.tolist() == [[[2, 0], [1, 1]]]
    assert lm.shares() == {0: 0.25, 1: 0.5, 2: 0.25}


@pytest.mark.parametrize("name", ["ssd300_resnet18", "yolov3_tiny", "fcn_resnet18", "resnet18"])
def test_postprocess_runs_on_model_outputs(name):
    from test_workloads_models import EXPECTED

    spec = workloads.get(name)
    gen = torch.Generator().manual_seed(0)
    shapes = EXPECTED[name] if name != "fcn_resnet18" else [(1, 21, 64, 64)]
    res = spec.postprocess([3 * torch.randn(s, generator=gen) for s in shapes])
    d = res.to_dict()
    assert res.summary()
    if spec.task == "detect":
        assert 0 < d["count"] <= 200 and len(d["boxes"]) == d["count"]
        assert all(0 <= v <= spec.input_shape[1] for b in d["boxes"] for v in b)
    elif spec.task == "segment":
        assert d["shape"] == [1, 64, 64] and math.isclose(sum(d["shares"].values()), 1.0)
    else:
        assert len(d["indices"][0]) == 5 and d["probs"][0] == sorted(d["probs"][0], reverse=True)

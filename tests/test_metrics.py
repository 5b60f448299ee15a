"""Metrics on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hvsa.errors import InputError, ShapeError
from hvsa.metrics import (
    VideoScores,
    boundary_band,
    boundary_iou,
    boundary_stats,
    confusion_matrix,
    consistency_confusion,
    iou_per_class,
    miou,
    pixel_accuracy,
)

GT = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 255, 255],
        [2, 2, 255, 255],
    ],
    np.uint8,
)
PRED = np.array(
    [
        [0, 1, 1, 1],
        [0, 0, 1, 1],
        [2, 0, 0, 4],
        [2, 2, 3, 3],
    ],
    np.uint8,
)


def test_confusion_matrix_by_hand():
    conf = confusion_matrix(GT, PRED, 5)
    assert conf.dtype == np.int64 and conf.shape == (5, 5)
    expected = np.zeros((5, 5), np.int64)
    expected[0, 0], expected[0, 1] = 3, 1  # gt 0: three right, one predicted 1
    expected[1, 1] = 4
    expected[2, 2], expected[2, 0] = 3, 1
    assert np.array_equal(conf, expected)  # the four ignore pixels are skipped (preds 0, 4, 3, 3)
    assert conf.sum() == 12


def test_iou_miou_accuracy_by_hand():
    conf = confusion_matrix(GT, PRED, 5)
    iou = iou_per_class(conf)
    # class 0: tp 3, gt 4, pred 4 -> 3 / 5; class 1: 4 / 5; class 2: 3 / 4; classes 3, 4 absent
    assert iou[:3] == pytest.approx([3 / 5, 4 / 5, 3 / 4])
    assert np.isnan(iou[3]) and np.isnan(iou[4])
    assert miou(conf) == pytest.approx((3 / 5 + 4 / 5 + 3 / 4) / 3)
    assert pixel_accuracy(conf) == pytest.approx(10 / 12)


def test_class_only_in_prediction_counts():
    gt = np.zeros((2, 2), np.uint8)
    pred = np.array([[0, 0], [0, 1]], np.uint8)
    conf = confusion_matrix(gt, pred, 3)
    assert iou_per_class(conf)[1] == 0  # present in the prediction only: IoU 0, averaged
    assert miou(conf) == pytest.approx((3 / 4 + 0) / 2)


def test_empty_and_all_ignore():
    conf = confusion_matrix(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8), 2)
    assert conf.sum() == 0 and math.isnan(miou(conf)) and math.isnan(pixel_accuracy(conf))
    assert math.isnan(boundary_iou(np.zeros(2), np.zeros(2)))


def test_confusion_matrix_errors():
    with pytest.raises(ShapeError):
        confusion_matrix(GT, PRED[:3], 5)
    with pytest.raises(ShapeError):
        confusion_matrix(GT, PRED, 2)  # gt holds class 2
    bad = PRED.copy()
    bad[0, 0] = 4
    with pytest.raises(ShapeError):
        confusion_matrix(GT, bad, 3)  # pred 4 where gt is labelled
    assert confusion_matrix(GT, PRED, 3).sum() == 12  # preds 3 and 4 only on ignore pixels: fine
    with pytest.raises(ShapeError):
        confusion_matrix(GT, PRED.astype(np.float32), 5)
    with pytest.raises(InputError):
        confusion_matrix(GT, PRED, 0)
    with pytest.raises(ShapeError):
        iou_per_class(np.zeros((2, 3)))


def test_boundary_band_width():
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    band = boundary_band(mask, 3)
    assert band.sum() == 20 * 20 - 14 * 14
    edge = np.ones((10, 10), bool)  # the image edge counts as outside the mask
    assert boundary_band(edge, 1).sum() == 100 - 64


def test_boundary_iou_identical_is_one():
    gt = np.zeros((30, 40), np.uint8)
    gt[5:20, 10:25] = 1
    gt[22:28, 2:8] = 2
    inter, union = boundary_stats(gt, gt, 4)
    assert np.array_equal(inter, union) and union[3] == 0
    assert boundary_iou(inter, union) == 1.0


def test_boundary_iou_of_shifted_square_by_hand():
    # 10 x 10 image: d = max(1, round(0.02 * 14.1)) = 1. gt square rows 2..5 cols 2..5,
    # prediction shifted right by one column.
    gt = np.zeros((10, 10), np.uint8)
    gt[2:6, 2:6] = 1
    pred = np.zeros((10, 10), np.uint8)
    pred[2:6, 3:7] = 1
    inter, union = boundary_stats(gt, pred, 2)
    # class 1: each band is the square's 12-pixel ring; they share rows 2 and 5 over cols 3..5
    # class 0: each band is the 36-pixel image-edge ring plus the 20-pixel ring around the
    #          square; the two surrounding rings share rows 1 and 6 over cols 2..6
    assert inter.tolist() == [36 + 10, 6]
    assert union.tolist() == [56 + 56 - 46, 12 + 12 - 6]
    assert boundary_iou(inter, union) == pytest.approx((46 / 66 + 6 / 18) / 2)  # = 17 / 33


def test_boundary_skips_ignore_pixels():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, 5:] = 255
    pred = np.zeros((10, 10), np.uint8)
    pred[:, 5:] = 1  # wrong, but only where gt is ignore
    inter, union = boundary_stats(gt, pred, 2)
    assert union[1] == 0 and inter[0] == union[0]
    assert boundary_iou(inter, union) == 1.0


def test_consistency_confusion():
    a = np.array([[0, 0], [1, 1]], np.uint8)
    b = np.array([[0, 1], [1, 255]], np.uint8)
    reliable = np.array([[True, True], [False, True]])
    conf = consistency_confusion(a, b, reliable, 2)
    # (0,0) agree, (0,1) disagree, (1,0) unreliable, (1,1) warped from outside: skipped
    assert conf.tolist() == [[1, 1], [0, 0]]
    assert miou(conf) == pytest.approx((1 / 2 + 0) / 2)
    with pytest.raises(ShapeError):
        consistency_confusion(a, b, reliable[:1], 2)


def test_video_scores_stream_equals_stack():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 3, (12, 16)).astype(np.uint8) for _ in range(4)]
    preds = [np.where(rng.random((12, 16)) < 0.8, g, 2).astype(np.uint8) for g in gts]
    gts[1][:3] = 255
    scores = VideoScores(3)
    for g, p in zip(gts, preds):
        scores.update(g, p)
    res = scores.result()
    assert set(res) == {"miou", "pixel_acc", "boundary_iou"} and scores.frames == 4
    conf = confusion_matrix(np.stack(gts), np.stack(preds), 3)
    assert res["miou"] == pytest.approx(miou(conf))
    assert res["pixel_acc"] == pytest.approx(pixel_accuracy(conf))
    inter = sum(boundary_stats(g, p, 3)[0] for g, p in zip(gts, preds))
    union = sum(boundary_stats(g, p, 3)[1] for g, p in zip(gts, preds))
    assert res["boundary_iou"] == pytest.approx(boundary_iou(inter, union))
    assert 0 < res["boundary_iou"] < 1
    assert math.isnan(VideoScores(3, boundary=False).result()["boundary_iou"])

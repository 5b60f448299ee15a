"""Pure scoring functions of active selection (paper 3.2).

Pixel uncertainty is the margin score ``1 - (p_top1 - p_top2)`` of the softmax; a sample's
uncertainty is a reduction (default: the sum, as in the paper) of its pixels' scores; a
sample's feature is the mean of the feature map over its pixels. Class-balanced selection
splits a sample's sum by class, half of each pixel's score to its predicted class and half to
the runner-up (:func:`sums_per_class`, once per half), and weighs each class by its rarity in
the video (:func:`rarity_weights`).
"""

from __future__ import annotations

import numpy as np

from hvsa.checks import check_array
from hvsa.errors import InputError
from hvsa.pools import sample_areas, sample_sums

__all__ = [
    "REDUCTIONS",
    "margin_uncertainty",
    "margin_uncertainty_torch",
    "rarity_weights",
    "reduce_per_sample",
    "sums_per_class",
]

REDUCTIONS = ("sum", "mean", "max")


def margin_uncertainty(probs: np.ndarray) -> np.ndarray:
    """(C, H, W) probabilities -> (H, W) float32 uncertainty ``1 - (p1 - p2)`` in [0, 1].

    With one class the margin is 1 everywhere (uncertainty 0).
    """
    check_array(probs, "probs", ndim=3)
    if probs.shape[0] == 1:
        return np.zeros(probs.shape[1:], np.float32)
    top2 = -np.partition(-probs.astype(np.float32, copy=False), 1, axis=0)[:2]
    return (1.0 - (top2[0] - top2[1])).astype(np.float32)


def margin_uncertainty_torch(probs):  # noqa: ANN001, ANN201 - torch types, imported lazily
    """Torch twin of :func:`margin_uncertainty`: (B, C, H, W) -> (B, H, W)."""
    if probs.shape[1] == 1:
        return probs.new_zeros(probs.shape[:1] + probs.shape[2:])
    top2 = probs.topk(2, dim=1).values
    return 1.0 - (top2[:, 0] - top2[:, 1])


def reduce_per_sample(region_map: np.ndarray, scores: np.ndarray, n: int, reduction: str = "sum") -> np.ndarray:
    """Reduce pixel ``scores`` (H, W) to one score per sample of ``region_map``: float64 (n,).

    ``reduction``: "sum" (paper: larger uncertain samples rank higher), "mean" or "max".
    Samples without pixels score 0.
    """
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction {reduction!r}: expected one of {', '.join(REDUCTIONS)}")
    check_array(scores, "scores", ndim=2)
    if reduction == "sum":
        return sample_sums(region_map, scores, n).astype(np.float64)
    if reduction == "mean":
        area = sample_areas(region_map, n)
        return sample_sums(region_map, scores, n) / np.maximum(area, 1)
    out = np.zeros(n, np.float64)
    np.maximum.at(out, region_map.ravel(), scores.ravel().astype(np.float64))
    return out


def sums_per_class(region_map: np.ndarray, labels: np.ndarray, scores: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Sum pixel ``scores`` (H, W) per sample of ``region_map`` and per class of ``labels``
    (H, W): float64 (n, num_classes). Pixels labelled outside ``[0, num_classes)`` (an ignore
    index) count for no class; each row otherwise sums to the sample's ``"sum"`` reduction."""
    check_array(scores, "scores", ndim=2)
    if labels.shape != scores.shape or region_map.shape != scores.shape:
        raise InputError(f"sums_per_class: region map {region_map.shape}, labels {labels.shape} "
                         f"and scores {scores.shape} must have one shape")
    lab = labels.ravel().astype(np.int64)
    keep = lab < num_classes
    idx = region_map.ravel().astype(np.int64)[keep] * num_classes + lab[keep]
    out = np.bincount(idx, weights=scores.ravel()[keep].astype(np.float64), minlength=n * num_classes)
    return out.reshape(n, num_classes)


def rarity_weights(class_pixels: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-class weights ``f_c ** -power`` from the pixels predicted as each class (C,): float64
    (C,), scaled so that the pixel-weighted mean weight is 1.

    ``f_c`` is class c's share of the predicted pixels. mIoU averages over classes, so a pixel of
    a rare class moves it more than one of a common class: with ``power`` 1 in inverse
    proportion to the class's area, with 0 (plain uncertainty) not at all. A class predicted
    nowhere weighs 1 (no pixel carries it).
    """
    f = np.asarray(class_pixels, np.float64)
    if f.ndim != 1 or len(f) == 0 or not bool(np.all(f >= 0)) or f.sum() <= 0:
        raise InputError(f"rarity_weights: expected non-negative pixel counts with a positive total, got {f!r}")
    if not power >= 0:
        raise InputError(f"rarity_weights: power must be >= 0, got {power}")
    f = f / f.sum()
    w = np.where(f > 0, f, 1.0) ** -float(power)
    return w / float((f * w).sum())

"""Pure scoring functions of active selection (paper 3.2).

Pixel uncertainty is the margin score ``1 - (p_top1 - p_top2)`` of the softmax; a sample's
uncertainty is a reduction (default: the sum, as in the paper) of its pixels' scores; a
sample's feature is the mean of the feature map over its pixels.
"""

from __future__ import annotations

import numpy as np

from hvsa.checks import check_array
from hvsa.errors import InputError
from hvsa.pools import sample_areas, sample_sums

__all__ = ["margin_uncertainty", "margin_uncertainty_torch", "reduce_per_sample", "REDUCTIONS"]

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

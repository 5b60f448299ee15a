"""Active sample selection: scores, k-means diversity, and the selector registry."""

from hvsa.select.cluster import kmeans, nearest_to_centroids
from hvsa.select.scores import (
    margin_uncertainty,
    margin_uncertainty_torch,
    rarity_weights,
    reduce_per_sample,
    sums_per_class,
)
from hvsa.select.selectors import SELECTORS, Candidates, Selector, make_selector

__all__ = [
    "SELECTORS",
    "Candidates",
    "Selector",
    "kmeans",
    "make_selector",
    "margin_uncertainty",
    "margin_uncertainty_torch",
    "nearest_to_centroids",
    "rarity_weights",
    "reduce_per_sample",
    "sums_per_class",
]

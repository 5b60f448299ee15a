"""Selection strategies, chosen by name from :data:`SELECTORS`.

A selector ranks unlabelled candidates and returns the positions of the ``b`` it picks, best
first (so a prefix is the best smaller pick, which budgeted selection relies on). Each strategy
declares what it needs (``needs``): the session computes only that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np

from hvsa.errors import InputError
from hvsa.registry import Registry
from hvsa.select.cluster import kmeans, nearest_to_centroids
from hvsa.select.scores import rarity_weights

__all__ = ["Candidates", "Selector", "SELECTORS", "make_selector"]

SELECTORS: Registry[type["Selector"]] = Registry("selector")


@dataclass(frozen=True)
class Candidates:
    """The unlabelled samples a selector chooses from.

    Attributes:
        index: int64 (N,) pool indices of the candidates.
        uncertainty: float (N,) sample uncertainty (summed margin scores), when needed.
        features: float32 (N, D) mean-pooled features, when needed.
        clicks: float (N,) estimated clicks of each candidate, when the selection spends a click
            budget; uncertainty-driven selectors then rank by uncertainty per click
            (:meth:`value`).
        class_uncertainty: float (N, C) each candidate's uncertainty split by class: half of
            each pixel's to its predicted class, half to the runner-up
            (:func:`hvsa.select.scores.sums_per_class`), when needed.
        class_pixels: (C,) pixels of the whole video predicted as each class; given with
            ``class_uncertainty`` (it describes the video, not a candidate).
        disagreement: float (N,) each candidate's summed doubt of the fused labels, 1 -
            :func:`hvsa.methods.disagreement_margin` (the uncertainty where the method's labels
            come from one source), when needed.
    """

    index: np.ndarray
    uncertainty: np.ndarray | None = None
    features: np.ndarray | None = None
    clicks: np.ndarray | None = None
    class_uncertainty: np.ndarray | None = None
    class_pixels: np.ndarray | None = None
    disagreement: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.index)
        for name in ("uncertainty", "disagreement"):
            if (values := getattr(self, name)) is not None and len(values) != n:
                raise InputError(f"candidates: {len(values)} {name} values for {n} samples")
        if self.clicks is not None:
            if len(self.clicks) != n:
                raise InputError(f"candidates: {len(self.clicks)} click estimates for {n} samples")
            if not bool(np.all(np.asarray(self.clicks) > 0)):
                raise InputError("candidates: click estimates must be positive")
        if self.features is not None and (self.features.ndim != 2 or len(self.features) != n):
            raise InputError(f"candidates: features of shape {self.features.shape} for {n} samples")
        if (self.class_uncertainty is None) != (self.class_pixels is None):
            raise InputError("candidates: class_uncertainty and class_pixels come together")
        if self.class_uncertainty is not None:
            shape = np.shape(self.class_uncertainty)
            if len(shape) != 2 or shape[0] != n or np.shape(self.class_pixels) != shape[1:]:
                raise InputError(f"candidates: class uncertainty of shape {shape} and class pixels of shape "
                                 f"{np.shape(self.class_pixels)} for {n} samples")

    def __len__(self) -> int:
        return len(self.index)

    def take(self, positions: np.ndarray) -> "Candidates":
        """The candidates at ``positions``, every field given kept."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[positions]

        return Candidates(self.index[positions], pick(self.uncertainty), pick(self.features), pick(self.clicks),
                          pick(self.class_uncertainty), self.class_pixels, pick(self.disagreement))

    def value(self) -> np.ndarray:
        """What uncertainty-driven selection ranks by: the uncertainty, or, under a click budget,
        the uncertainty per estimated click. A budget buys clicks, not samples: a boundary tile
        worth five clicks must be five times as uncertain as a one-click tile to be worth its
        price."""
        if self.uncertainty is None:
            raise InputError("candidates: no uncertainty to rank by")
        u = np.asarray(self.uncertainty, np.float64)
        return u if self.clicks is None else u / np.asarray(self.clicks, np.float64)


class Selector(ABC):
    """Picks ``b`` candidates. ``needs`` names the candidate fields it reads."""

    name: str = ""
    needs: frozenset[str] = frozenset()

    def select(self, candidates: Candidates, b: int, *, iteration: int, rng: np.random.Generator) -> np.ndarray:
        """Positions (int64, into ``candidates``) of at most ``b`` picks, best first.

        Args:
            candidates: the unlabelled samples, with the fields this selector needs.
            b: how many samples to pick.
            iteration: 1-based iteration of the loop.
            rng: the only source of randomness.
        """
        if b < 0:
            raise InputError(f"selector: b must be >= 0, got {b}")
        for field in self.needs:
            if getattr(candidates, field) is None:
                raise InputError(f"selector {self.name!r} needs candidate {field}")
        if b == 0 or len(candidates) == 0:
            return np.zeros(0, np.int64)
        return np.asarray(self._select(candidates, min(b, len(candidates)), iteration, rng), np.int64)

    @abstractmethod
    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray: ...


@SELECTORS.register("random")
class RandomSelector(Selector):
    """Uniformly random samples."""

    name = "random"

    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(len(c))[:b]


@SELECTORS.register("uncertainty")
class UncertaintySelector(Selector):
    """The ``b`` most uncertain samples (summed margin scores; per click under a click budget,
    :meth:`Candidates.value`)."""

    name = "uncertainty"
    needs = frozenset({"uncertainty"})

    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        return np.argsort(-c.value(), kind="stable")[:b]


def _diverse(features: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """k-means into ``b`` clusters, the sample nearest each centroid (largest cluster first)."""
    return nearest_to_centroids(features, kmeans(features, b, rng))


@SELECTORS.register("diversity")
class DiversitySelector(Selector):
    """Representative samples: k-means on features, the sample nearest each centroid."""

    name = "diversity"
    needs = frozenset({"features"})

    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        return _diverse(c.features, b, rng)


@SELECTORS.register("hvsa")
class HvsaSelector(Selector):
    """The paper's strategy (3.2): diversity only in the first iteration; later, keep the most
    uncertain ``keep`` fraction (default half) of the candidates, k-means them into ``b``
    clusters and pick the sample nearest each centroid. Under a click budget "most uncertain"
    is per estimated click (:meth:`Candidates.value`); the paper's budget counts samples."""

    name = "hvsa"
    needs = frozenset({"uncertainty", "features"})

    def __init__(self, keep: float = 0.5) -> None:
        if not 0.0 < keep <= 1.0:
            raise InputError(f"hvsa selector: keep must be in (0, 1], got {keep}")
        self.keep = keep

    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        if iteration <= 1:
            return _diverse(c.features, b, rng)
        m = max(b, int(np.ceil(self.keep * len(c))))
        uncertain = np.argsort(-c.value(), kind="stable")[:m]
        return uncertain[_diverse(c.features[uncertain], b, rng)]


@SELECTORS.register("hvsa-balanced")
class BalancedHvsaSelector(HvsaSelector):
    """:class:`HvsaSelector` with each pixel's uncertainty weighted by how rare, in the video's
    prediction, the two classes it hesitates between are: half of it by its predicted class's
    weight, half by the runner-up's (:func:`hvsa.select.scores.rarity_weights`, ``power`` 0.5:
    a class on 1 % of the pixels weighs 5.5 times one on 30 %). mIoU averages over classes, and on
    many-class video the paper's sum of margins spends the budget on the large classes, whose
    uncertain pixels are many; the runner-up's half reaches a small class the network still
    labels as its surroundings. With two classes every pixel weighs the same (its two halves go
    to the two classes), so on foreground/background video it picks what :class:`HvsaSelector`
    picks. The first iteration is diversity only, as there."""

    name = "hvsa-balanced"
    needs = frozenset({"class_uncertainty", "features"})

    def __init__(self, keep: float = 0.5, power: float = 0.5) -> None:
        super().__init__(keep)
        if not power >= 0:
            raise InputError(f"hvsa-balanced selector: power must be >= 0, got {power}")
        self.power = power

    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        if iteration > 1:
            w = rarity_weights(c.class_pixels, self.power)
            c = replace(c, uncertainty=np.asarray(c.class_uncertainty, np.float64) @ w)
        return super()._select(c, b, iteration, rng)


@SELECTORS.register("hvsa-disagree")
class DisagreementHvsaSelector(HvsaSelector):
    """:class:`HvsaSelector` ranking by the doubt of fused labels (``hvsa-fused``, ``hvsa-crf``):
    where the network and label propagation agree, 1 - the larger of their confidences; where
    they disagree, 1 - the difference (:func:`hvsa.methods.disagreement_margin`). The fused label
    takes the more confident source, so its own confidence calls a pixel sure when either source
    is, and hides the pixels where a confident network contradicts a confident chain: one of the
    two is confidently wrong there. A committee of two reads that as doubt. Where the labels come
    from one source it ranks what :class:`HvsaSelector` ranks. The first iteration is diversity
    only, as there."""

    name = "hvsa-disagree"
    needs = frozenset({"disagreement", "features"})

    def _select(self, c: Candidates, b: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        if iteration > 1:
            c = replace(c, uncertainty=c.disagreement)
        return super()._select(c, b, iteration, rng)


def make_selector(name: str) -> Selector:
    """A selector by registry name (unknown names list the valid ones)."""
    return SELECTORS.get(name)()

"""Active selection on synthetic pools with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hvsa.errors import InputError, UnknownNameError
from hvsa.select import (
    SELECTORS,
    Candidates,
    kmeans,
    make_selector,
    margin_uncertainty,
    margin_uncertainty_torch,
    nearest_to_centroids,
    rarity_weights,
    reduce_per_sample,
    sums_per_class,
)


def blobs(centres: list[tuple[float, float]], per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.asarray(c) + 0.05 * rng.standard_normal((per, 2)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(len(centres)), per)


def test_margin_uncertainty_hand_computed() -> None:
    probs = np.array([[[0.7, 0.5]], [[0.2, 0.5]], [[0.1, 0.0]]], np.float32)  # (3, 1, 2)
    np.testing.assert_allclose(margin_uncertainty(probs), [[0.5, 1.0]], atol=1e-6)
    np.testing.assert_allclose(margin_uncertainty(np.ones((1, 2, 2), np.float32)), 0.0)
    import torch

    t = margin_uncertainty_torch(torch.from_numpy(probs)[None])
    np.testing.assert_allclose(t.numpy()[0], [[0.5, 1.0]], atol=1e-6)


def test_reduce_per_sample_sum_mean_max() -> None:
    rm = np.array([[0, 0, 1], [2, 2, 1]], np.int32)
    s = np.array([[0.1, 0.3, 1.0], [0.5, 0.5, 0.0]], np.float32)
    np.testing.assert_allclose(reduce_per_sample(rm, s, 4, "sum"), [0.4, 1.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(reduce_per_sample(rm, s, 4, "mean"), [0.2, 0.5, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(reduce_per_sample(rm, s, 4, "max"), [0.3, 1.0, 0.5, 0.0], atol=1e-6)
    with pytest.raises(InputError, match="reduction 'median'"):
        reduce_per_sample(rm, s, 4, "median")


def test_sums_per_class_split_the_sample_sum_by_predicted_class() -> None:
    rm = np.array([[0, 0, 1], [2, 2, 1]], np.int32)
    labels = np.array([[0, 1, 1], [255, 0, 1]], np.uint8)  # 255: ignore, counts for no class
    s = np.array([[0.1, 0.3, 1.0], [0.5, 0.25, 0.0]], np.float32)
    got = sums_per_class(rm, labels, s, 4, 2)
    np.testing.assert_allclose(got, [[0.1, 0.3], [0.0, 1.0], [0.25, 0.0], [0.0, 0.0]], atol=1e-6)
    full = np.where(labels == 255, 0, labels)
    np.testing.assert_allclose(sums_per_class(rm, full, s, 4, 2).sum(1), reduce_per_sample(rm, s, 4, "sum"), atol=1e-6)
    with pytest.raises(InputError, match="must have one shape"):
        sums_per_class(rm, labels[:, :2], s, 4, 2)


def test_rarity_weights_hand_computed() -> None:
    # shares 3/4 and 1/4; power 1: weights 4/3 and 4, whose pixel-weighted mean (2) scales them to 1
    np.testing.assert_allclose(rarity_weights(np.array([75, 25]), power=1.0), [2 / 3, 2.0])
    np.testing.assert_allclose(rarity_weights(np.array([75, 25]), power=0.0), [1.0, 1.0])
    w = rarity_weights(np.array([300, 10, 0]))  # power 0.5; a class predicted nowhere weighs 1 before scaling
    assert w[1] / w[0] == pytest.approx(np.sqrt(30)) and w[2] / w[0] == pytest.approx(np.sqrt(300 / 310))
    assert float(np.array([300, 10, 0]) @ w) / 310 == pytest.approx(1.0)
    for bad in (np.array([0, 0]), np.array([5, -1]), np.zeros(0)):
        with pytest.raises(InputError, match="non-negative pixel counts"):
            rarity_weights(bad)
    with pytest.raises(InputError, match="power must be >= 0"):
        rarity_weights(np.array([1, 1]), power=-1.0)


def test_hvsa_balanced_prefers_the_uncertainty_of_a_rare_class() -> None:
    """Blob 0 is the most uncertain in sum, on the common class; blob 1 a little less, on a class
    predicted on one pixel in ten. Keeping the most uncertain quarter (one blob), hvsa takes
    blob 0; hvsa-balanced weighs blob 1's pixels 3 times as much and takes it. In the first
    iteration both choose by diversity alone."""
    from hvsa.select.selectors import BalancedHvsaSelector, HvsaSelector

    x, blob = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=20)
    by_class = np.zeros((len(x), 2))
    by_class[blob == 0, 0] = 2.0
    by_class[blob == 1, 1] = 1.5
    by_class[blob >= 2, 0] = 0.1
    cands = Candidates(np.arange(len(x)), by_class.sum(1), x, class_uncertainty=by_class,
                       class_pixels=np.array([900, 100]))
    plain = HvsaSelector(keep=0.25).select(cands, 1, iteration=2, rng=np.random.default_rng(0))
    balanced = BalancedHvsaSelector(keep=0.25).select(cands, 1, iteration=2, rng=np.random.default_rng(0))
    assert blob[plain].tolist() == [0] and blob[balanced].tolist() == [1]
    first = [make_selector(n).select(cands, 4, iteration=1, rng=np.random.default_rng(0)) for n in ("hvsa", "hvsa-balanced")]
    np.testing.assert_array_equal(*first)
    # under a click budget the weighted uncertainty counts per click: blob 1 at 4 clicks loses
    priced = Candidates(np.arange(len(x)), None, x, np.where(blob == 1, 4.0, 1.0), by_class, np.array([900, 100]))
    assert blob[BalancedHvsaSelector(keep=0.25).select(priced, 1, iteration=2, rng=np.random.default_rng(0))].tolist() == [0]
    # the candidates a budget lets through keep the video's class pixels
    assert cands.take(np.array([3, 40])).class_pixels.tolist() == [900, 100]
    with pytest.raises(InputError, match="needs candidate class_uncertainty"):
        make_selector("hvsa-balanced").select(Candidates(np.arange(len(x)), features=x), 1, iteration=2,
                                              rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="power must be >= 0"):
        BalancedHvsaSelector(power=-0.5)
    with pytest.raises(InputError, match="come together"):
        Candidates(np.arange(2), class_uncertainty=np.zeros((2, 2)))
    with pytest.raises(InputError, match="class uncertainty of shape"):
        Candidates(np.arange(2), class_uncertainty=np.zeros((2, 3)), class_pixels=np.ones(2))


def test_hvsa_balanced_is_hvsa_on_two_classes() -> None:
    """With two classes every pixel's runner-up is the other class, so half of every pixel's
    uncertainty goes to each and a sample weighs the mean of the two weights: a constant factor,
    and hvsa-balanced picks exactly what hvsa does (davis2016's runs did: docs/experiments.md,
    "Class-balanced selection")."""
    x, _ = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=20, seed=4)
    rng = np.random.default_rng(5)
    unc = rng.uniform(0, 3, len(x))
    by_class = np.repeat(0.5 * unc[:, None], 2, axis=1)
    cands = Candidates(np.arange(len(x)), unc, x, rng.uniform(1, 4, len(x)), by_class, np.array([950, 50]))
    for b in (1, 3, 7):
        plain = make_selector("hvsa").select(cands, b, iteration=2, rng=np.random.default_rng(b))
        balanced = make_selector("hvsa-balanced").select(cands, b, iteration=2, rng=np.random.default_rng(b))
        np.testing.assert_array_equal(plain, balanced)


def test_hvsa_disagree_ranks_by_the_fused_labels_doubt() -> None:
    """Blob 0 is the most uncertain by the winner's confidence; blob 1, where the two sources
    disagree, by their joint doubt. Keeping the most doubtful quarter, hvsa takes blob 0 and
    hvsa-disagree blob 1; in the first iteration both choose by diversity alone."""
    from hvsa.select.selectors import DisagreementHvsaSelector, HvsaSelector

    x, blob = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=20)
    unc = np.where(blob == 0, 2.0, 0.5)
    doubt = np.where(blob == 1, 3.0, unc)
    cands = Candidates(np.arange(len(x)), unc, x, disagreement=doubt)
    plain = HvsaSelector(keep=0.25).select(cands, 1, iteration=2, rng=np.random.default_rng(0))
    disagree = DisagreementHvsaSelector(keep=0.25).select(cands, 1, iteration=2, rng=np.random.default_rng(0))
    assert blob[plain].tolist() == [0] and blob[disagree].tolist() == [1]
    first = [make_selector(n).select(cands, 4, iteration=1, rng=np.random.default_rng(0)) for n in ("hvsa", "hvsa-disagree")]
    np.testing.assert_array_equal(*first)
    # under a click budget the doubt counts per click, and a budget's subset keeps it
    priced = Candidates(np.arange(len(x)), None, x, np.where(blob == 1, 8.0, 1.0), disagreement=doubt)
    assert blob[DisagreementHvsaSelector(keep=0.25).select(priced, 1, iteration=2, rng=np.random.default_rng(0))].tolist() == [0]
    np.testing.assert_array_equal(cands.take(np.array([3, 25])).disagreement, doubt[[3, 25]])
    with pytest.raises(InputError, match="needs candidate disagreement"):
        make_selector("hvsa-disagree").select(Candidates(np.arange(len(x)), unc, x), 1, iteration=2,
                                              rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="1 disagreement values for 2 samples"):
        Candidates(np.arange(2), disagreement=np.zeros(1))


def test_kmeans_finds_separated_blobs_and_picks_one_per_blob() -> None:
    x, blob = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=30)
    rng = np.random.default_rng(1)
    c = kmeans(x, 4, rng)
    assert sorted(np.round(c).astype(int).tolist()) == [[0, 0], [0, 5], [5, 0], [5, 5]]
    picks = nearest_to_centroids(x, c)
    assert len(set(picks.tolist())) == 4
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]


def test_kmeans_is_deterministic_by_seed_and_clips_k() -> None:
    x, _ = blobs([(0, 0), (3, 3)], per=10)
    a = kmeans(x, 3, np.random.default_rng(7))
    b = kmeans(x, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    same = np.zeros((5, 2), np.float32)
    assert len(nearest_to_centroids(same, kmeans(same, 3, np.random.default_rng(0)))) == 1


def test_nearest_to_centroids_in_chunks_equals_small_case(monkeypatch: pytest.MonkeyPatch) -> None:
    from hvsa.select import cluster as km

    x, _ = blobs([(0, 0), (5, 0), (0, 5)], per=40, seed=3)
    c = kmeans(x, 6, np.random.default_rng(0))
    whole = nearest_to_centroids(x, c)
    monkeypatch.setattr(km, "_CHUNK_ELEMENTS", 7)  # one point per chunk
    np.testing.assert_array_equal(nearest_to_centroids(x, c), whole)
    # a short list of one candidate forces the full-scan fallback when points collide
    np.testing.assert_array_equal(nearest_to_centroids(x, c, candidates=1), whole)


def test_hvsa_first_iteration_is_diversity_only() -> None:
    x, blob = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=20)
    unc = np.where(blob == 0, 10.0, 0.0)  # uncertainty must not matter in iteration 1
    cands = Candidates(index=np.arange(len(x)) + 100, uncertainty=unc, features=x)
    picks = make_selector("hvsa").select(cands, 4, iteration=1, rng=np.random.default_rng(0))
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]


def test_hvsa_later_iterations_pick_the_most_uncertain_diverse_samples() -> None:
    x, blob = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=20)
    # blobs 1 and 2 are uncertain (the top half); blob 1 is a bit more uncertain than blob 2
    unc = np.select([blob == 1, blob == 2], [2.0, 1.5], 0.1) + np.linspace(0, 0.01, len(x))
    cands = Candidates(index=np.arange(len(x)), uncertainty=unc, features=x)
    picks = make_selector("hvsa").select(cands, 2, iteration=2, rng=np.random.default_rng(0))
    assert sorted(blob[picks].tolist()) == [1, 2]  # one per uncertain cluster, not two from blob 1
    plain = make_selector("uncertainty").select(cands, 2, iteration=2, rng=np.random.default_rng(0))
    assert blob[plain].tolist() == [1, 1]  # plain uncertainty picks redundant samples


def test_under_a_click_budget_uncertainty_counts_per_click() -> None:
    """A budget buys clicks: a tile ten times as dear must be ten times as uncertain."""
    unc = np.array([10.0, 4.0, 3.0, 0.5])
    clicks = np.array([10.0, 1.0, 1.0, 1.0])
    by_sample = Candidates(index=np.arange(4), uncertainty=unc)
    by_click = Candidates(index=np.arange(4), uncertainty=unc, clicks=clicks)
    np.testing.assert_allclose(by_click.value(), [1.0, 4.0, 3.0, 0.5])
    rng = np.random.default_rng(0)
    assert make_selector("uncertainty").select(by_sample, 2, iteration=2, rng=rng).tolist() == [0, 1]
    assert make_selector("uncertainty").select(by_click, 2, iteration=2, rng=rng).tolist() == [1, 2]


def test_hvsa_keeps_the_most_uncertain_per_click_under_a_budget() -> None:
    x, blob = blobs([(0, 0), (5, 0), (0, 5), (5, 5)], per=20)
    # blob 0 is the most uncertain per sample but five times as dear; per click blobs 1 and 2 lead
    unc = np.select([blob == 0, blob == 1, blob == 2], [4.0, 2.0, 1.5], 0.1)
    clicks = np.where(blob == 0, 5.0, 1.0)
    rng = np.random.default_rng(0)
    plain = make_selector("hvsa").select(Candidates(np.arange(len(x)), unc, x), 2, iteration=2, rng=rng)
    assert 0 in blob[plain].tolist()
    priced = make_selector("hvsa").select(Candidates(np.arange(len(x)), unc, x, clicks), 2, iteration=2, rng=rng)
    assert sorted(blob[priced].tolist()) == [1, 2]


def test_random_and_diversity_selectors() -> None:
    x, blob = blobs([(0, 0), (9, 9)], per=10)
    cands = Candidates(index=np.arange(20), uncertainty=np.zeros(20), features=x)
    r1 = make_selector("random").select(cands, 5, iteration=1, rng=np.random.default_rng(3))
    r2 = make_selector("random").select(cands, 5, iteration=1, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(r1, r2)
    assert len(set(r1.tolist())) == 5
    d = make_selector("diversity").select(cands, 2, iteration=3, rng=np.random.default_rng(0))
    assert sorted(blob[d].tolist()) == [0, 1]
    everything = make_selector("diversity").select(cands, 50, iteration=1, rng=np.random.default_rng(0))
    assert sorted(everything.tolist()) == list(range(20))


def test_selector_registry_and_missing_inputs() -> None:
    assert SELECTORS.names() == ["diversity", "hvsa", "hvsa-balanced", "hvsa-disagree", "random", "uncertainty"]
    with pytest.raises(UnknownNameError, match="expected one of: diversity, hvsa, hvsa-balanced, hvsa-disagree, random, uncertainty"):
        make_selector("entropy")
    with pytest.raises(InputError, match="needs candidate features"):
        make_selector("diversity").select(Candidates(index=np.arange(3)), 1, iteration=1, rng=np.random.default_rng())
    with pytest.raises(InputError, match="3 uncertainty values for 2 samples"):
        Candidates(index=np.arange(2), uncertainty=np.zeros(3))
    with pytest.raises(InputError, match="3 click estimates for 2 samples"):
        Candidates(index=np.arange(2), clicks=np.ones(3))
    with pytest.raises(InputError, match="must be positive"):
        Candidates(index=np.arange(2), clicks=np.array([1.0, 0.0]))
    with pytest.raises(InputError, match="no uncertainty to rank by"):
        Candidates(index=np.arange(2)).value()
    assert make_selector("random").select(Candidates(index=np.arange(0)), 4, iteration=1, rng=np.random.default_rng()).size == 0

"""The permutohedral lattice and the fully connected CRF, on tiny inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hvsa.crf import CRFConfig, dense_crf
from hvsa.errors import InputError, ShapeError
from hvsa.lattice import Lattice, gaussian_filter_exact
from hvsa.methods import fuse_labels, fused_distribution


@pytest.mark.parametrize("d", [1, 2, 5])
def test_lattice_filter_is_symmetric(d: int) -> None:
    # splat, blur and slice: S^T B S with each axis's blur symmetric, so <a, K b> = <K a, b> up
    # to the order of the axes' blurs, which commute only where no lattice vertex is missing
    rng = np.random.default_rng(d)
    lattice = Lattice(rng.normal(size=(300, d)))
    a, b = rng.random(300), rng.random(300)
    np.testing.assert_allclose(a @ lattice.filter(b), lattice.filter(a) @ b, rtol=5e-3)


@pytest.mark.parametrize(("d", "spread", "min_corr"), [(1, 2.0, 0.999), (2, 2.0, 0.998), (5, 0.7, 0.98)])
def test_lattice_filter_follows_the_exact_gaussian(d: int, spread: float, min_corr: float) -> None:
    rng = np.random.default_rng(10 + d)
    f = rng.normal(size=(400, d)) * spread
    v = rng.random((400, 2))
    approx, exact = Lattice(f).filter(v), gaussian_filter_exact(f, v)
    assert approx.shape == (400, 2) and approx.dtype == np.float32
    for ch in range(2):
        assert np.corrcoef(approx[:, ch], exact[:, ch])[0, 1] > min_corr


def test_lattice_filter_ignores_the_points_order_and_follows_them_far_from_the_origin() -> None:
    # the splat matrix comes from sorting the vertices' packed keys, and the keys are offset by
    # the smallest: reordering the points must reorder the output (to float rounding: the sums
    # run in another order), and points moved far into negative coordinates must still be
    # filtered like the exact Gaussian
    rng = np.random.default_rng(7)
    f = rng.normal(size=(500, 3)) * 2
    v = rng.random((500, 3))
    out = Lattice(f).filter(v)
    perm = rng.permutation(500)
    np.testing.assert_allclose(Lattice(f[perm]).filter(v[perm]), out[perm], rtol=1e-5, atol=1e-6)
    exact = gaussian_filter_exact(f, v)
    shifted = Lattice(f - 300.0).filter(v)
    for ch in range(3):
        assert np.corrcoef(shifted[:, ch], exact[:, ch])[0, 1] > 0.99


def test_lattice_points_far_apart_do_not_interact() -> None:
    f = np.array([[0.0, 0.0], [0.1, 0.0], [50.0, 50.0]])
    out = Lattice(f).filter(np.array([1.0, 0.0, 0.0]))
    assert out[0] > 0 and out[1] > 0.5 * out[0] and out[2] == 0.0


def test_lattice_rejects_bad_input() -> None:
    with pytest.raises(ShapeError, match=r"features: expected 2 dimensions"):
        Lattice(np.zeros(5))
    lattice = Lattice(np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"values: expected \(4, C\)"):
        lattice.filter(np.zeros((3, 1)))
    with pytest.raises(ShapeError, match="larger standard deviations"):
        Lattice(np.array([[0.0] * 5, [1e6] * 5]))


def _two_halves(h: int = 12, w: int = 24, edge: int = 12) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:, edge:] = 200
    return image


def test_crf_moves_a_soft_outline_onto_the_image_edge() -> None:
    # the image changes at column 12; the probabilities say column 9, with a soft ramp around it
    image = _two_halves()
    cols = np.arange(24)
    p1 = np.clip(0.5 + (cols - 8.5) * 0.08, 0.02, 0.98)  # p(class 1) crosses 0.5 between 8 and 9
    probs = np.stack([1 - p1, p1])[:, None, :].repeat(12, axis=1).astype(np.float32)
    assert (probs.argmax(0)[:, 9:12] == 1).all()  # before: three columns of the dark half wrong
    q = dense_crf(probs, image, CRFConfig(settled=1.0, appearance_xy=8.0))
    np.testing.assert_allclose(q.sum(0), 1.0, rtol=1e-5)
    labels = q.argmax(0)
    assert (labels[:, :12] == 0).all() and (labels[:, 12:] == 1).all()


def test_crf_leaves_settled_pixels_alone_and_the_band_agrees_with_the_whole_frame() -> None:
    image = _two_halves()
    probs = np.zeros((2, 12, 24), np.float32)
    probs[0, :, :10], probs[1, :, :10] = 0.999, 0.001  # settled class 0
    probs[0, :, 14:], probs[1, :, 14:] = 0.001, 0.999  # settled class 1
    probs[:, :, 10:14] = np.array([0.4, 0.6], np.float32)[:, None, None]  # unsure, wrong at 10-11
    band = dense_crf(probs, image, CRFConfig(margin=1))
    np.testing.assert_array_equal(band[:, :, :9], probs[:, :, :9])  # outside the band: untouched
    np.testing.assert_array_equal(band[:, :, 15:], probs[:, :, 15:])
    whole = dense_crf(probs, image, CRFConfig(settled=1.0))
    np.testing.assert_array_equal(band.argmax(0), whole.argmax(0))
    assert (band.argmax(0)[:, :12] == 0).all() and (band.argmax(0)[:, 12:] == 1).all()
    settled = np.stack([np.full((12, 24), 0.995), np.full((12, 24), 0.005)]).astype(np.float32)
    np.testing.assert_array_equal(dense_crf(settled, image), settled)  # nothing unsure: a copy


def test_crf_checks_its_input() -> None:
    with pytest.raises(ShapeError, match=r"image: expected 12x24 pixels"):
        dense_crf(np.full((2, 12, 24), 0.5, np.float32), np.zeros((10, 24, 3), np.uint8))
    with pytest.raises(ShapeError, match="probs: expected 3 dimensions"):
        dense_crf(np.full((12, 24), 0.5, np.float32), np.zeros((12, 24, 3), np.uint8))
    with pytest.raises(InputError, match="crf appearance_xy: expected a positive standard deviation"):
        CRFConfig(appearance_xy=0)
    with pytest.raises(InputError, match="crf iterations"):
        CRFConfig(iterations=0)


def test_fused_distribution_puts_the_fused_label_on_top() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 30, 40)) * 3
    probs = (np.exp(logits) / np.exp(logits).sum(0)).astype(np.float32)
    prop = rng.integers(0, 4, (30, 40)).astype(np.uint8)
    conf = rng.random((30, 40)).astype(np.float32)
    top2 = np.sort(probs, axis=0)[-2:]
    labels, fused_conf = fuse_labels(probs.argmax(0).astype(np.uint8), top2[1] - top2[0], prop, conf)
    dist = fused_distribution(probs, prop, conf)
    assert dist.dtype == np.float32
    np.testing.assert_allclose(dist.sum(0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(dist.argmax(0), labels)
    dist_top2 = np.sort(dist, axis=0)[-2:]
    np.testing.assert_allclose(dist_top2[1] - dist_top2[0], fused_conf, atol=1e-5)
    conf[:5] = 1.0  # an annotated pixel's distribution is its label alone
    dist = fused_distribution(probs, prop, conf)
    np.testing.assert_array_equal(dist[:, :5].max(0), 1.0)

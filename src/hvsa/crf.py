"""Fully connected CRF refinement of per-pixel class probabilities (Krähenbühl and Koltun,
"Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials", NIPS 2011).

The network decodes at stride 4, so its labels follow object outlines only to within a few
pixels, and on DAVIS most of the remaining error lies within 2 px of the true outline. The CRF
moves those outlines onto the image's edges: unary energies ``-log p`` from the labelling
method, Potts pairwise terms with an appearance kernel (position and colour) and a smoothness
kernel (position only), and a few mean-field steps

    Q <- softmax(log p + w_a * K_a(Q) + w_s * K_s(Q))

where ``K(Q)`` is the symmetrically normalised Gaussian filter of Q (``n^-1/2 K (n^-1/2 Q)``
with ``n = K 1``, as in the reference implementation, so its weights keep their usual meaning).
The appearance kernel runs on the permutohedral lattice (:mod:`hvsa.lattice`), the smoothness
kernel is a plain Gaussian blur.

Pixels whose top probability is at least ``settled`` and that lie farther than ``margin`` px
from any pixel below it keep their probabilities: the CRF runs only on the uncertain band and
its surroundings, a fraction of the frame for most videos, which is where labels can change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from hvsa.checks import check_array, check_frame, check_in_range
from hvsa.errors import InputError, ShapeError
from hvsa.lattice import Lattice

__all__ = ["CRFConfig", "dense_crf"]


@dataclass(frozen=True)
class CRFConfig:
    """Settings of :func:`dense_crf` (pixel units at the video's working size).

    Attributes:
        iterations: mean-field steps.
        appearance_xy: spatial standard deviation of the appearance kernel, px.
        appearance_rgb: its colour standard deviation, in 0-255 units.
        appearance_weight: its Potts weight.
        smoothness_xy: spatial standard deviation of the smoothness kernel, px.
        smoothness_weight: its Potts weight.
        settled: pixels at least this sure (top probability) and farther than ``margin`` px
            from any less sure pixel are left as they are; 1 refines every pixel.
        margin: context kept around the uncertain pixels, px.
    """

    iterations: int = 3
    appearance_xy: float = 20.0
    appearance_rgb: float = 10.0
    appearance_weight: float = 5.0
    smoothness_xy: float = 3.0
    smoothness_weight: float = 3.0
    settled: float = 0.95
    margin: int = 12

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InputError(f"crf iterations: expected >= 1, got {self.iterations}")
        for name in ("appearance_xy", "appearance_rgb", "smoothness_xy"):
            if not getattr(self, name) > 0:
                raise InputError(f"crf {name}: expected a positive standard deviation, got {getattr(self, name)}")
        for name in ("appearance_weight", "smoothness_weight"):
            if not getattr(self, name) >= 0:
                raise InputError(f"crf {name}: expected a weight >= 0, got {getattr(self, name)}")
        check_in_range(self.settled, "crf settled", 0.0, 1.0)
        if self.margin < 0:
            raise InputError(f"crf margin: expected >= 0 px, got {self.margin}")

    def to_dict(self) -> dict:
        return asdict(self)


def dense_crf(probs: np.ndarray, image: np.ndarray, config: CRFConfig = CRFConfig()) -> np.ndarray:
    """Refine class probabilities with a fully connected CRF.

    Args:
        probs: float (C, H, W) probabilities (each pixel's sum 1).
        image: uint8 (H, W, 3) RGB frame.
        config: kernels, weights and steps.

    Returns:
        float32 (C, H, W): the mean-field marginals (``probs`` unchanged where settled).
    """
    check_array(probs, "probs", ndim=3)
    check_frame(image, "image")
    c, h, w = probs.shape
    if image.shape[:2] != (h, w):
        raise ShapeError(f"image: expected {h}x{w} pixels to match probs {probs.shape}, got {image.shape}")
    p = probs.astype(np.float32)
    if c < 2:
        return p.copy()
    active = _active_pixels(p, config)
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return p.copy()

    ys, xs = np.divmod(idx, w)
    feats = np.empty((idx.size, 5), np.float64)
    feats[:, 0] = xs / config.appearance_xy
    feats[:, 1] = ys / config.appearance_xy
    feats[:, 2:] = image.reshape(-1, 3)[idx] / config.appearance_rgb
    lattice = Lattice(feats)
    norm = 1.0 / np.sqrt(lattice.filter(np.ones(idx.size, np.float32)) + 1e-20)
    blur_norm = 1.0 / np.sqrt(_blur(np.ones((1, h, w), np.float32), config.smoothness_xy)[0] + 1e-20)

    flat = p.reshape(c, -1)
    log_p = np.log(np.clip(flat[:, idx], 1e-8, 1.0)).T  # (n, C)
    q_full = flat.copy()
    q = flat[:, idx].T.copy()
    for _ in range(config.iterations):
        energy = log_p.copy()
        if config.appearance_weight:
            energy += config.appearance_weight * (norm[:, None] * lattice.filter(q * norm[:, None]))
        if config.smoothness_weight:
            q_full[:, idx] = q.T
            smooth = _blur(q_full.reshape(c, h, w) * blur_norm, config.smoothness_xy) * blur_norm
            energy += config.smoothness_weight * smooth.reshape(c, -1)[:, idx].T
        energy -= energy.max(axis=1, keepdims=True)
        np.exp(energy, out=energy)
        q = energy / energy.sum(axis=1, keepdims=True)
    q_full[:, idx] = q.T
    return q_full.reshape(c, h, w)


def _active_pixels(p: np.ndarray, config: CRFConfig) -> np.ndarray:
    """bool (H, W): the pixels the CRF runs on (uncertain, or within ``margin`` of one)."""
    if config.settled >= 1.0:
        return np.ones(p.shape[1:], bool)
    unsure = p.max(axis=0) < config.settled
    if config.margin == 0 or not unsure.any():
        return unsure
    size = 2 * config.margin + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(unsure.astype(np.uint8), kernel).astype(bool)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every channel of (C, H, W) float32 (borders reflected)."""
    return np.stack([cv2.GaussianBlur(ch, (0, 0), sigma) for ch in x])

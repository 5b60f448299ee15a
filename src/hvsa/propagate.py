"""Label propagation along optical-flow chains, and nearest-frame copying: baselines that label
every frame of a video from its annotated pixels alone, with no network.

The variant implemented here (in the spirit of Budvytis et al., "Large scale labelled video
data augmentation for semantic segmentation in driving scenarios", ICCVW 2017):

1. **Two directional passes.** The forward pass walks t = 0..T-1 and carries a per-pixel state
   (label, confidence); the backward pass walks t = T-1..0 the same way. Annotated pixels of
   frame t set the state to (their label, 1).
2. **One step.** Pixel x of frame t takes the state of frame s (s = t - 1 or t - 2 forward,
   t + 1 or t + 2 backward) at x + O_t->s(x) (nearest pixel), its confidence multiplied by
   ``decay ** |t - s|`` and, when the flow vector is not forward-backward consistent
   (``reliable(t, s)`` False: occluded, disoccluded, or leaving the frame), by ``broken`` too.
   Of the two candidates the more confident wins (the distance-2 one bridges a one-frame
   occlusion); ties go to s = t -+ 1. So the confidence of a label is
   ``decay ** (frames travelled) * broken ** (unreliable steps)``: a broken chain still carries
   its label, heavily discounted.
3. **Fusion.** Per pixel, the more confident of the two directions wins (ties: forward). Where
   both carry the same label the confidence is ``1 - (1 - c_f)(1 - c_b)``, where they disagree
   it is ``|c_f - c_b|`` (a margin, like the network's p1 - p2). So where a chain breaks in one
   direction the other direction's reliable chain takes over, and where both break the label
   nearest in time (fewest unreliable steps) wins.
4. **Unreached pixels** (no chain from any annotated pixel: partial-frame annotation) take the
   label of the nearest reached pixel of the same frame, with confidence 0; a frame with no
   reached pixel at all takes ``default`` (class 0) with confidence 0.

``copy`` is the same machinery with identity motion (every step reliable, no flow read): each
pixel takes the label of the nearest-in-time frame whose annotation covers it (ties: the
earlier frame), with confidence ``decay ** distance``.

Frames stream: the backward pass writes its per-frame state to a scratch store (on disk for
long videos), then the forward pass yields the fused labels of frame 0, 1, ... holding two
frames of state at a time. Memory is a few frames whatever the video's length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from hvsa.checks import check_array, check_in_range
from hvsa.errors import InputError, ShapeError
from hvsa.flow.warp import warp

__all__ = [
    "PropagationConfig",
    "PropagationInputs",
    "carry",
    "fill_unreached",
    "fuse",
    "propagate",
]


@dataclass(frozen=True)
class PropagationConfig:
    """Settings of :func:`propagate`.

    Attributes:
        decay: confidence kept per frame travelled, in (0, 1].
        broken: extra factor for a step along an unreliable (forward-backward inconsistent)
            flow vector, in [0, 1]; 0 stops a chain at its first break.
        max_distance: 1, or 2 to let a chain skip a frame (bridges one-frame occlusions).
        follow_flow: False gives ``copy``: identity motion, every step reliable, no flow read.
        default: label of a frame no chain reaches at all.
    """

    decay: float = 0.98
    broken: float = 0.3
    max_distance: int = 2
    follow_flow: bool = True
    default: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.decay <= 1:
            raise InputError(f"decay: expected a number in (0, 1], got {self.decay}")
        check_in_range(self.broken, "broken", 0.0, 1.0)
        if self.max_distance not in (1, 2):
            raise InputError(f"max_distance: expected 1 or 2, got {self.max_distance}")


class PropagationInputs(Protocol):
    """What :func:`propagate` reads (a session's training data fits), indexed by frame t."""

    num_frames: int
    frame_hw: tuple[int, int]

    def annotation(self, t: int) -> np.ndarray | None:
        """uint8 (H, W) annotated labels of frame t (the ignore index elsewhere), or None."""

    def flow(self, t: int, t2: int) -> np.ndarray:
        """float32 (H, W, 2) O_t->t2, for 1 <= |t - t2| <= 2."""

    def reliable(self, t: int, t2: int) -> np.ndarray:
        """bool (H, W): forward-backward consistency of O_t->t2."""


# ---------------------------------------------------------------------------------- pure parts


def carry(
    labels: np.ndarray,
    conf: np.ndarray,
    flow: np.ndarray | None,
    reliable: np.ndarray | None,
    factor: float,
    broken: float,
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """One step of a chain: the state of frame s brought to frame t.

    Args:
        labels: uint8 (H, W) labels of frame s (the ignore index where unknown).
        conf: float (H, W) their confidence in [0, 1] (0 where unknown).
        flow: O_t->s, float (H, W, 2), or None for identity motion.
        reliable: bool (H, W) consistency of O_t->s on frame t's grid, or None (all reliable).
        factor: confidence kept by the step (``decay ** |t - s|``).
        broken: extra factor where the step is not reliable.
        ignore_index: the label of unknown pixels.

    Returns:
        (labels uint8 (H, W), conf float32 (H, W)) on frame t's grid: ``out[x] = in[x + O(x)]``
        (nearest pixel), confidence times ``factor`` (times ``broken`` where unreliable). A
        chain whose confidence reaches 0 ends: its pixels become unknown.
    """
    labels = check_array(labels, "labels", ndim=2, dtype=np.uint8)
    conf = check_array(conf, "conf", shape=labels.shape)
    if flow is not None:
        both = np.stack([labels.astype(np.float32), conf.astype(np.float32)], axis=-1)
        moved = warp(both, flow, mode="nearest")
        labels = moved[..., 0].astype(np.uint8)
        conf = moved[..., 1]
    out = conf.astype(np.float32) * np.float32(factor)
    if reliable is not None:
        reliable = check_array(reliable, "reliable", dtype=np.bool_, shape=labels.shape)
        out = np.where(reliable, out, out * np.float32(broken))
    return np.where(out > 0, labels, np.uint8(ignore_index)), out


def _best(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the more confident of two (labels, conf) candidates; ties go to ``a``."""
    take_b = b[1] > a[1]
    return np.where(take_b, b[0], a[0]), np.where(take_b, b[1], a[1])


def _annotate(state: tuple[np.ndarray, np.ndarray], annotation: np.ndarray | None, ignore_index: int):  # noqa: ANN202
    """Annotated pixels set the state to (their label, 1)."""
    if annotation is None:
        return state
    known = annotation != ignore_index
    return np.where(known, annotation, state[0]), np.where(known, np.float32(1), state[1])


def fuse(
    labels_a: np.ndarray, conf_a: np.ndarray, labels_b: np.ndarray, conf_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse two label maps with confidences (the forward and backward passes).

    Returns:
        (labels, conf float32): per pixel the more confident label (ties: ``a``); confidence
        ``1 - (1 - c_a)(1 - c_b)`` where the labels agree, ``|c_a - c_b|`` where they differ.
    """
    if not labels_a.shape == conf_a.shape == labels_b.shape == conf_b.shape:
        raise ShapeError(
            f"fuse: shapes differ: {labels_a.shape}, {conf_a.shape}, {labels_b.shape}, {conf_b.shape}"
        )
    ca = conf_a.astype(np.float32)
    cb = conf_b.astype(np.float32)
    labels = np.where(cb > ca, labels_b, labels_a)
    conf = np.where(labels_a == labels_b, 1 - (1 - ca) * (1 - cb), np.abs(ca - cb))
    return labels, conf.astype(np.float32)


def fill_unreached(labels: np.ndarray, ignore_index: int = 255, default: int = 0) -> np.ndarray:
    """Give every pixel labelled ``ignore_index`` the label of the nearest labelled pixel
    (Euclidean distance, OpenCV's 5x5-mask approximation; ties as OpenCV breaks them), or
    ``default`` when no pixel is labelled.

    Args:
        labels: uint8 (H, W).

    Returns:
        uint8 (H, W) with no ``ignore_index`` left.
    """
    import cv2

    labels = check_array(labels, "labels", ndim=2, dtype=np.uint8)
    unknown = labels == ignore_index
    if not unknown.any():
        return labels
    if unknown.all():
        return np.full(labels.shape, default, np.uint8)
    _, nearest = cv2.distanceTransformWithLabels(
        unknown.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # DIST_LABEL_PIXEL numbers the known (zero) pixels 1, 2, ... in raster order
    return labels[~unknown][nearest - 1]


# ---------------------------------------------------------------------------------- streaming


class _Scratch:
    """Per-frame (labels uint8, conf float16) of one pass: in memory, or on disk in ``folder``
    until :meth:`close` deletes it (a session would otherwise keep three bytes per pixel per
    frame that nothing reads again)."""

    def __init__(self, n: int, hw: tuple[int, int], folder: str | os.PathLike | None) -> None:
        self._disk: list = []
        if folder is None:
            self.labels = np.empty((n, *hw), np.uint8)
            self.conf = np.empty((n, *hw), np.float16)
            return
        from hvsa.diskarray import DiskArray

        folder = Path(folder)
        # every record is written by the backward pass before the forward pass reads it
        meta = {"what": "label propagation scratch"}
        self.labels = DiskArray.open_or_create(folder / "lp-scratch-labels.u8", n, hw, np.uint8, meta=meta)
        self.conf = DiskArray.open_or_create(folder / "lp-scratch-conf.f16", n, hw, np.float16, meta=meta)
        self._disk = [self.labels, self.conf]

    def close(self) -> None:
        for array in self._disk:
            array.remove()
        self._disk = []


def _pass(data: PropagationInputs, order: range, cfg: PropagationConfig, ignore_index: int):  # noqa: ANN202
    """One directional pass: yields (t, labels uint8, conf float32) in ``order``."""
    h, w = data.frame_hw
    unknown = (np.full((h, w), ignore_index, np.uint8), np.zeros((h, w), np.float32))
    step = order.step
    history: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for t in order:
        state = unknown
        for d in range(1, cfg.max_distance + 1 if cfg.follow_flow else 2):
            s = t - d * step
            if s not in history or not history[s][1].any():  # nothing to carry: read no flow
                continue
            if cfg.follow_flow:
                motion = data.flow(t, s), data.reliable(t, s)
            else:
                motion = None, None
            cand = carry(*history[s], *motion, cfg.decay**d, cfg.broken, ignore_index)
            state = _best(state, cand)
        state = _annotate(state, data.annotation(t), ignore_index)
        history = {s: v for s, v in history.items() if abs(t - s) < cfg.max_distance}
        history[t] = state
        yield t, state[0], state[1]


def propagate(
    data: PropagationInputs,
    config: PropagationConfig | None = None,
    *,
    ignore_index: int = 255,
    scratch: str | os.PathLike | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Label every frame from the annotated pixels (see the module notes for the variant).

    Args:
        data: frame count and size, annotations, flows and consistency masks.
        config: propagation settings (default :class:`PropagationConfig`).
        ignore_index: the label of unannotated pixels in ``data.annotation(t)``.
        scratch: folder for the backward pass's per-frame state (three bytes per pixel per
            frame), deleted when the generator finishes or is closed; None keeps it in memory
            (short clips).

    Yields:
        (t, labels uint8 (H, W), confidence float32 (H, W) in [0, 1]) for t = 0..T-1 in order.
        Annotated pixels keep their label with confidence 1.
    """
    cfg = config or PropagationConfig()
    n = int(data.num_frames)
    if n < 1:
        raise InputError(f"propagate: the video has no frames ({n})")
    hw = tuple(int(v) for v in data.frame_hw)
    store = _Scratch(n, hw, scratch)
    try:
        for t, labels, conf in _pass(data, range(n - 1, -1, -1), cfg, ignore_index):
            store.labels[t] = labels
            store.conf[t] = conf
        for t, labels, conf in _pass(data, range(n), cfg, ignore_index):
            # both directions at the scratch's float16 precision, so equal confidences tie
            fused, fconf = fuse(labels, conf.astype(np.float16), store.labels[t], store.conf[t])
            yield t, fill_unreached(fused, ignore_index, cfg.default), np.clip(fconf, 0.0, 1.0)
    finally:
        store.close()

"""Test-time fine-tuning (paper 3.3): lambda * L_tc + L_ce on frame pairs of one video.

Losses (pure functions, :func:`ce_loss`, :func:`tc_loss`):

* ``L_ce``: cross-entropy on annotated pixels only (every other pixel carries the ignore index);
* ``L_tc``: mean over reliable pixels x of ``||q_t(x) - q_t'(x + O_t->t'(x))||^2``, with q the
  softmax probabilities, q_t' warped back to t along the flow, and "reliable" the
  forward-backward consistency mask (DESIGN.md). It applies to pairs without annotation too.

Training items are frame pairs (t, t') with 1 <= |t - t'| <= 2. The encoder is frozen (its
taps come from a per-video disk cache; training its body too was within chance on davis2016 and
about 4 points lower on camvid-1hz, at twice the time: docs/experiments.md), the decoder is
trained with SGD (momentum 0.9, poly learning-rate decay), continuing from the previous
iteration's weights. A share of the items that start at an annotated frame train L_ce on a
*view* of it instead (rescaled or mirrored and re-encoded, :mod:`hvsa.model.views`): a few
annotated frames then teach the object at the sizes and orientations the rest of the video
shows it in. While some class has no annotated pixel,
``hold_unseen`` adds the confident labels from before the fine-tuning to L_ce's targets, so a
first batch of background samples does not erase the classes nobody has annotated yet.
``propagated_targets`` adds the labels propagated from the annotated pixels along optical-flow
chains (:mod:`hvsa.propagate`) where their chain is confident, so the frames near an annotation
teach its labels too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from hvsa.errors import InputError
from hvsa.flow.warp import target_in_frame, warp_torch
from hvsa.model.views import View, views_for

__all__ = ["FinetuneConfig", "TrainingData", "FineTuner", "ce_loss", "tc_loss", "tap_strides", "pair_offsets",
           "cells_holding", "windows_holding"]

pair_offsets = (-2, -1, 1, 2)


def ce_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over annotated pixels: logits (B, C, H, W), labels int64 (B, H, W).

    ``weight`` (C,) weighs each pixel by its class (the mean is over the weights, as in
    :func:`torch.nn.functional.cross_entropy`). Zero, with a gradient path, when no pixel is
    annotated.
    """
    if not bool((labels != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)


def class_weights(counts: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Class weights ``(N / (C' * n_c)) ** power`` from annotated pixel counts ``n_c`` (C,),
    with N their sum and C' the number of classes present; power 0 gives equal weights, 1
    inverse frequency. Absent classes get the largest present weight. float32 (C,).

    A small object annotated in one frame is a few percent of the pixels; without weighting,
    a decoder trained for a few hundred steps predicts the background everywhere.
    """
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    w = np.ones(counts.shape, np.float64)
    if present.any():
        w[present] = (counts[present].sum() / (present.sum() * counts[present])) ** power
        w[~present] = w[present].max()
    return w.astype(np.float32)


def tc_loss(q_t: torch.Tensor, q_t2: torch.Tensor, flow: torch.Tensor, reliable: torch.Tensor) -> torch.Tensor:
    """Temporal-consistency loss of DESIGN.md.

    Args:
        q_t: probabilities of frame t, (B, C, H, W).
        q_t2: probabilities of frame t', (B, C, H, W).
        flow: O_t->t', (B, H, W, 2) or (B, 2, H, W), (dx, dy) pixels.
        reliable: (B, H, W) bool or float weights; only these pixels count.

    Returns:
        Mean over reliable pixels of the squared L2 distance between q_t and q_t' warped to t
        (zero when no pixel is reliable).
    """
    warped = warp_torch(q_t2, flow)
    w = reliable.to(q_t.dtype)
    d = ((q_t - warped) ** 2).sum(1)
    return (d * w).sum() / w.sum().clamp_min(1.0)


class TrainingData(Protocol):
    """What the fine-tuner reads from a session (all indexed by frame index t)."""

    num_frames: int
    frame_hw: tuple[int, int]
    annotated: Sequence[int]

    def taps(self, t: int) -> list[torch.Tensor]:
        """Frozen encoder taps of frame t, each (1, C_i, h_i, w_i) float32."""

    def annotation(self, t: int) -> np.ndarray | None:
        """uint8 (H, W) annotated labels of frame t (ignore index elsewhere), or None."""

    def flow(self, t: int, t2: int) -> np.ndarray:
        """float32 (H, W, 2) O_t->t2."""

    def reliable(self, t: int, t2: int) -> np.ndarray:
        """bool (H, W) forward-backward consistency of O_t->t2."""

    # Optional: without it, no views are trained on.
    # def view(self, t: int, view: View) -> tuple[list[torch.Tensor], np.ndarray]:
    #     """Taps of ``view`` of annotated frame t, and its annotation seen through the view."""

    # Optional: without it, no propagated labels are trained on (FinetuneConfig.propagated_targets).
    # def propagated(self, t: int) -> tuple[np.ndarray, np.ndarray] | None:
    #     """Labels uint8 (H, W) propagated from the annotated pixels to frame t, and their chain
    #     confidence float32 (H, W)."""

    # Optional: without it, nothing is held (FinetuneConfig.hold_unseen).
    # def prediction(self, t: int) -> tuple[np.ndarray, np.ndarray] | None:
    #     """Labels uint8 (H, W) and confidence float32 (H, W) of frame t before this fine-tuning."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings (paper: lambda 1, SGD momentum 0.9, lr 0.004 with poly decay).

    Attributes:
        lambda_tc: weight of L_tc; 0 is the "fine-tune only" ablation.
        lr: initial learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        poly_power: exponent of the poly decay ``lr * (1 - step / steps) ** power``.
        epochs: training items per frame of the video; steps = ceil(epochs * T), clipped to
            [min_steps, max_steps]. Scaling with T keeps seconds per frame constant.
        min_steps: lower bound on steps per iteration.
        max_steps: upper bound on steps per iteration.
        annotated_share: share of items whose first frame is annotated (the rest are drawn
            uniformly, so L_tc sees the whole video).
        class_balance: exponent of the class weights of L_ce (:func:`class_weights`); 0 is the
            paper's unweighted cross-entropy. 1.0 (inverse frequency) was level on davis2016
            (rec40, 2 %, 30 pairs: +0.1 points), up on libby and down on paragliding-launch,
            whose haze of lines it calls object (docs/experiments.md, "Class weights at inverse
            frequency").
        loss_stride: both losses are computed on every ``loss_stride``-th pixel of each row and
            column (the logits upsampled to that grid, labels and masks subsampled, the flow
            scaled). 2 quarters the cost of the losses and their backward pass (the decoder
            itself runs at stride 4); 1 is full resolution.
        crop: side of each item's training window as a fraction of the frame's height and
            width; the window is placed at random, aligned to the coarsest tap's cells, and
            both frames of the pair use the same window (L_tc counts only pixels whose flow
            target stays inside it). 1 trains on whole frames; 0.5 a quarter of the area at
            about a third of the cost per step, so more steps fit in the same time.
        anchor_windows: an item whose frames give L_ce targets (annotated, held or propagated
            pixels) trains on a window that holds one, drawn uniformly from the windows that do
            (:meth:`FineTuner._window`). A window placed anywhere misses small samples: at rec40
            and 1 % of the clicks on davis2016 an annotated frame holds one or two tiles, and 60 %
            of the windows at crop 0.5 held none of them, so those items taught L_ce nothing.
            Whole annotated frames train as without it, draw for draw. On davis2016 (rec40, 2 %,
            30 pairs of runs) it was level in quality (+0.2 points) for 0.06 % fewer clicks
            charged, on camvid-1hz (9 pairs) 2.3 points ahead for 0.14 % more (docs/experiments.md,
            "Training windows over the annotations"); False places every window anywhere, as
            before.
        view_share: share of the items starting at an annotated frame that train L_ce on a view
            of that frame (:func:`hvsa.model.views.views_for` of ``view_scales``) instead of
            the pair; 0 trains on the frames as they are (the paper).
        view_scales: scales of the views (each plain and mirrored; scale 1 mirrored only).
        hold_unseen: while some class has no annotated pixel, the labels from before this
            fine-tuning are held where their confidence is at least this: those pixels (outside
            the annotations) join L_ce as targets of their label. Without it, the first samples
            annotated (often all background) teach the decoder that every other class is
            absent; holding only the unseen classes would teach the opposite, as their targets
            would then cover the video and the seen classes' only the samples. The hold ends
            once every class has an annotated pixel. 0 holds nothing (the paper; the methods
            ``hvsa`` and ``finetune-only`` always train so, :mod:`hvsa.methods`).
        propagated_targets: outside the annotations, the labels propagated from them along flow
            chains (``data.propagated``, :func:`hvsa.propagate.propagate`) join L_ce as targets
            where their chain confidence is at least this (``decay ** frames travelled``, 0.98
            per frame by default, so 0.95 reaches two frames along reliable flow, or a pixel
            both directions' chains agree on from further). They take precedence over the hold.
            0 trains on the annotated pixels alone (the paper; the methods ``hvsa`` and
            ``finetune-only`` always train so). On davis2016 0.95 lifted hvsa-crf's first
            iteration by two points and ended level at 1 and 2 % of the clicks, so it is off by
            default (docs/experiments.md, "Training on the propagated labels").
        ignore_index: label of unannotated pixels.
    """

    lambda_tc: float = 1.0
    lr: float = 0.004
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    epochs: float = 8.0
    min_steps: int = 60
    max_steps: int = 4000
    annotated_share: float = 0.5
    class_balance: float = 0.5
    loss_stride: int = 2
    crop: float = 0.5
    anchor_windows: bool = True
    view_share: float = 0.5
    view_scales: tuple[float, ...] = (0.75, 1.25)
    hold_unseen: float = 0.5
    propagated_targets: float = 0.0
    ignore_index: int = 255

    def __post_init__(self) -> None:
        object.__setattr__(self, "view_scales", tuple(float(v) for v in self.view_scales))
        if not 0 <= self.view_share <= 1:
            raise InputError(f"view-share: expected a fraction in [0, 1], got {self.view_share}")
        views_for(self.view_scales)  # validates the scales
        if not (self.lambda_tc >= 0 and math.isfinite(self.lambda_tc)):
            raise InputError(f"lambda-tc: expected a number >= 0, got {self.lambda_tc}")
        if not self.lr > 0:
            raise InputError(f"lr: expected a positive number, got {self.lr}")
        if not self.epochs > 0:
            raise InputError(f"epochs: expected a positive number, got {self.epochs}")
        if not self.class_balance >= 0:
            raise InputError(f"class-balance: expected an exponent >= 0, got {self.class_balance}")
        if not 0 <= self.annotated_share <= 1:
            raise InputError(f"annotated_share: expected a number in [0, 1], got {self.annotated_share}")
        if not 0 <= self.hold_unseen <= 1:
            raise InputError(f"hold-unseen: expected a confidence in [0, 1], got {self.hold_unseen}")
        if not 0 <= self.propagated_targets <= 1:
            raise InputError(f"propagated-targets: expected a confidence in [0, 1], got {self.propagated_targets}")
        if not 0 < self.crop <= 1:
            raise InputError(f"crop: expected a fraction in (0, 1], got {self.crop}")
        if self.loss_stride not in (1, 2, 4):
            raise InputError(f"loss_stride: expected 1, 2 or 4, got {self.loss_stride}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise InputError(f"steps: need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")

    def steps_for(self, num_frames: int) -> int:
        return int(min(self.max_steps, max(self.min_steps, math.ceil(self.epochs * num_frames))))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["view_scales"] = list(self.view_scales)
        return d


def sample_pair(num_frames: int, annotated: Sequence[int], share: float, rng: np.random.Generator) -> tuple[int, int]:
    """A training item (t, t') with 1 <= |t - t'| <= 2: t annotated with probability ``share``
    (when any frame is), otherwise uniform; t' a uniformly chosen valid neighbour."""
    if annotated and rng.random() < share:
        t = int(annotated[rng.integers(len(annotated))])
    else:
        t = int(rng.integers(num_frames))
    offsets = [d for d in pair_offsets if 0 <= t + d < num_frames]
    return t, t + int(offsets[rng.integers(len(offsets))])


def _annotated_class_counts(data: TrainingData, frames: list[int], num_classes: int, ignore_index: int) -> np.ndarray:
    """int64 (num_classes,) annotated pixels of each class over ``frames``."""
    counts = np.zeros(256, np.int64)
    for t in frames:
        a = data.annotation(t)
        if a is not None:
            counts += np.bincount(a.ravel(), minlength=256)
    counts[ignore_index] = 0
    return counts[:num_classes]


class FineTuner:
    """Trains a :class:`hvsa.model.SegNet`'s decoder on one video (any module with
    ``num_classes``, ``decoder`` and ``decode(taps)`` will do).

    The optimizer is rebuilt for each :meth:`run` (a fresh poly schedule per iteration); the
    weights carry over from the previous iteration.
    """

    def __init__(self, model: torch.nn.Module, config: FinetuneConfig, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.config = config
        self.device = torch.device(device)
        self._tap_strides: tuple[int, ...] | None = None
        self._unseen: np.ndarray | None = None  # the unseen class ids while the run holds (hold_unseen)
        self._propagated = False  # whether this run trains on propagated labels (propagated_targets)

    def run(
        self,
        data: TrainingData,
        rng: np.random.Generator,
        *,
        steps: int | None = None,
        on_step: Callable[[int, int, dict], None] | None = None,
    ) -> dict:
        """Fine-tune; returns statistics (steps, seconds, mean losses)."""
        cfg = self.config
        n = data.num_frames
        if n < 2:
            raise InputError("fine-tuning needs a video of at least 2 frames")
        annotated = list(data.annotated)
        total = cfg.steps_for(n) if steps is None else int(steps)
        if not annotated:
            return {"steps": 0, "seconds": 0.0, "ce": None, "tc": None, "skipped": "no annotations"}
        counts = _annotated_class_counts(data, annotated, self.model.num_classes, cfg.ignore_index)
        self._propagated = cfg.propagated_targets > 0 and hasattr(data, "propagated")
        self._unseen = None
        if cfg.hold_unseen > 0 and hasattr(data, "prediction") and not (counts > 0).all():
            self._unseen = np.flatnonzero(counts == 0)
        self._weight = torch.from_numpy(class_weights(counts, cfg.class_balance)).to(self.device)
        views = views_for(cfg.view_scales) if cfg.view_share > 0 and hasattr(data, "view") else ()
        annotated_set = set(annotated)
        params = [p for p in self.model.decoder.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.model.train()
        sums = {"ce": 0.0, "tc": 0.0}
        view_items = 0
        start = time.perf_counter()
        for step in range(total):
            lr = cfg.lr * (1.0 - step / total) ** cfg.poly_power
            for g in opt.param_groups:
                g["lr"] = lr
            t, t2 = sample_pair(n, annotated, cfg.annotated_share, rng)
            if views and t in annotated_set and rng.random() < cfg.view_share:
                view = views[int(rng.integers(len(views)))]
                ce, tc = self._view_loss(data, t, view, rng), torch.zeros(())
                loss = ce
                view_items += 1
            else:
                ce, tc = self._pair_losses(data, t, t2, rng)
                loss = ce + cfg.lambda_tc * tc if cfg.lambda_tc > 0 else ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ce_value, tc_value = ce.detach().item(), tc.detach().item()
            sums["ce"] += ce_value
            sums["tc"] += tc_value
            if on_step is not None:
                on_step(step + 1, total, {"ce": ce_value, "tc": tc_value, "lr": lr})
        self.model.eval()
        seconds = time.perf_counter() - start
        return {"steps": total, "seconds": seconds, "ce": sums["ce"] / total, "tc": sums["tc"] / total,
                "view_items": view_items, "unseen_classes": [] if self._unseen is None else self._unseen.tolist(),
                "propagated_targets": self._propagated}

    def _pair_losses(
        self, data: TrainingData, t: int, t2: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_ce, L_tc) of the training item (t, t2) in a random window (see :meth:`_window`:
        with ``anchor_windows``, over a pixel of frame t with an L_ce target)."""
        targets = self._pair_targets(data, t, t2)
        window = self._window(data, rng, targets=self._target_pixels(targets))
        return self._losses(data, t, t2, window, targets)

    def _target(self, data: TrainingData, t: int, grid: tuple[slice, slice]) -> np.ndarray | None:
        """int64 L_ce target of frame ``t`` on ``grid``: its annotation; outside it the labels
        propagated from the annotations where their chains are confident enough
        (``propagated_targets``), and, where neither labels a pixel while a class is unseen,
        the labels from before this fine-tuning where they are confident enough
        (``hold_unseen``); the ignore index elsewhere. None: nothing to learn there."""
        cfg = self.config
        a = data.annotation(t)
        target = None if a is None else a[grid].astype(np.int64)
        if self._propagated:
            propagated = data.propagated(t)  # type: ignore[attr-defined] - checked by run()
            target = _fill(target, propagated, grid, cfg.propagated_targets, cfg.ignore_index)
        if self._unseen is not None:
            before = data.prediction(t)  # type: ignore[attr-defined] - checked by run()
            target = _fill(target, before, grid, cfg.hold_unseen, cfg.ignore_index)
        return target

    def _window(self, data: TrainingData, rng: np.random.Generator, hw: tuple[int, int] | None = None,
                targets: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        """A random training window (y0, y1, x0, x1) in coarsest-tap cells of an image of ``hw``
        (default: the frame), or None (the whole image). Its size is the frame's ``crop``, so views
        of every scale train on windows of one size.

        With ``anchor_windows`` and ``targets`` (bool, the image's pixels with an L_ce target), the
        window is drawn uniformly from those that hold such a pixel: a uniform draw is kept when it
        holds one, and replaced by a uniform draw among those that do when it does not (which
        together give each such window the same chance). A whole annotated frame keeps every
        first draw."""
        if self.config.crop >= 1 and hw is None:
            return None
        cell = self._strides(data)[-1]
        fh, fw = self._coarse_cells(data, data.frame_hw)
        ch, cw = self._coarse_cells(data, hw or data.frame_hw)
        hh = min(ch, max(1, round(fh * self.config.crop)))
        ww = min(cw, max(1, round(fw * self.config.crop)))
        y0, x0 = int(rng.integers(ch - hh + 1)), int(rng.integers(cw - ww + 1))
        if (self.config.anchor_windows and targets is not None
                and not targets[y0 * cell : (y0 + hh) * cell, x0 * cell : (x0 + ww) * cell].any()):
            holding = np.flatnonzero(windows_holding(cells_holding(targets, cell), hh, ww))
            if holding.size:
                y0, x0 = divmod(int(holding[rng.integers(holding.size)]), cw - ww + 1)
        return y0, y0 + hh, x0, x0 + ww

    def _pair_targets(self, data: TrainingData, t: int, t2: int) -> tuple[np.ndarray | None, ...] | None:
        """The whole-frame L_ce targets of ``t`` and ``t2`` (:meth:`_target`) when the windows are
        anchored, read once per item: the window is chosen from them and the losses cut them to
        it. None when the windows are not anchored (the losses then read only the window)."""
        if not self.config.anchor_windows or self.config.crop >= 1:
            return None
        whole = (slice(None), slice(None))
        return self._target(data, t, whole), self._target(data, t2, whole)

    def _target_pixels(self, targets: tuple[np.ndarray | None, ...] | None) -> np.ndarray | None:
        """bool (H, W): the pixels that some frame of ``targets`` (:meth:`_pair_targets`) has an
        L_ce target for (annotated, held or propagated); None when neither frame has one, or
        without ``targets``."""
        out = None
        for target in targets or ():
            if target is not None:
                has = target != self.config.ignore_index
                out = has if out is None else out | has
        return out

    def _coarse_cells(self, data: TrainingData, hw: tuple[int, int]) -> tuple[int, int]:
        stride = self._strides(data)[-1]
        return -(-hw[0] // stride), -(-hw[1] // stride)

    def _strides(self, data: TrainingData) -> tuple[int, ...]:
        """Strides of the decoder's taps, finest first (read once from frame 0's taps)."""
        if self._tap_strides is None:
            self._tap_strides = tap_strides(data.taps(0), data.frame_hw)
        return self._tap_strides

    def _crop(self, data: TrainingData, taps: list[torch.Tensor], hw: tuple[int, int],
              window: tuple[int, int, int, int] | None) -> tuple[list[torch.Tensor], slice, slice]:
        """``taps`` of an image of ``hw`` cut to ``window`` (coarsest-tap cells), and the rows and
        columns of the image it covers."""
        h, w = hw
        if window is None:
            return taps, slice(0, h), slice(0, w)
        strides = self._strides(data)
        coarse = strides[-1]
        y0, y1, x0, x1 = window
        taps = [tap[..., y0 * coarse // st : y1 * coarse // st, x0 * coarse // st : x1 * coarse // st]
                for tap, st in zip(taps, strides)]
        return taps, slice(y0 * coarse, min(y1 * coarse, h)), slice(x0 * coarse, min(x1 * coarse, w))

    def _view_loss(self, data: TrainingData, t: int, view: View, rng: np.random.Generator) -> torch.Tensor:
        """L_ce on a random window of ``view`` of annotated frame ``t``."""
        cfg = self.config
        s = cfg.loss_stride
        taps, labels = data.view(t, view)  # type: ignore[attr-defined] - checked by run()
        hw = labels.shape
        taps, py, px = self._crop(data, taps, hw, self._window(data, rng, hw, labels != cfg.ignore_index))
        grid = (slice(py.start, py.stop, s), slice(px.start, px.stop, s))
        target = torch.from_numpy(labels[grid].astype(np.int64))[None].to(self.device)
        logits = self.model.decode([tap.to(self.device) for tap in taps])
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return ce_loss(logits, target, cfg.ignore_index, self._weight)

    def _losses(
        self, data: TrainingData, t: int, t2: int, window: tuple[int, int, int, int] | None = None,
        targets: tuple[np.ndarray | None, ...] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_ce, L_tc) of the pair (t, t2), on the whole frames or on ``window`` (coarsest-tap
        cells, see :meth:`_window`). ``targets``: the pair's whole-frame L_ce targets when already
        read (:meth:`_pair_targets`); otherwise they are read for the window alone."""
        cfg = self.config
        s = cfg.loss_stride
        h, w = data.frame_hw
        taps = [torch.cat(pair) for pair in zip(data.taps(t), data.taps(t2))]
        taps, py, px = self._crop(data, taps, (h, w), window)
        taps = [tap.to(self.device) for tap in taps]
        grid = (slice(py.start, py.stop, s), slice(px.start, px.stop, s))
        gh, gw = -(-(py.stop - py.start) // s), -(-(px.stop - px.start) // s)
        logits = F.interpolate(self.model.decode(taps), size=(gh, gw), mode="bilinear", align_corners=False)
        target = torch.full((2, gh, gw), cfg.ignore_index, dtype=torch.int64)
        for i, u in enumerate((t, t2)):
            if targets is None:
                a = self._target(data, u, grid)
            else:
                a = None if targets[i] is None else targets[i][grid]
            if a is not None:
                target[i] = torch.from_numpy(a)
        ce = ce_loss(logits, target.to(self.device), cfg.ignore_index, self._weight)
        if cfg.lambda_tc <= 0:
            return ce, ce.detach() * 0.0
        q = logits.softmax(1)
        flow = np.ascontiguousarray(data.flow(t, t2)[grid], np.float32)
        if s > 1:
            flow /= s
        reliable = data.reliable(t, t2)[grid]
        if window is not None:  # the flow must land inside the window, where q_t2 is known
            reliable = reliable & target_in_frame(flow)
        # (B, 2, H, W): unambiguous even for a 2 x 2 grid, where (B, H, W, 2) would also fit
        flow = torch.from_numpy(flow).permute(2, 0, 1)[None].to(self.device)
        rel = torch.from_numpy(np.ascontiguousarray(reliable))[None].to(self.device)
        return ce, tc_loss(q[:1], q[1:], flow, rel)


def _fill(target: np.ndarray | None, labelled: tuple[np.ndarray, np.ndarray] | None, grid: tuple[slice, slice],
          threshold: float, ignore_index: int) -> np.ndarray | None:
    """``target`` (int64 on ``grid``, or None: no pixel labelled yet) with its ignored pixels
    set to ``labelled``'s labels where its confidence is at least ``threshold``."""
    if labelled is None:
        return target
    labels, conf = labelled[0][grid], labelled[1][grid]
    take = conf >= threshold
    if target is None:
        target = np.full(labels.shape, ignore_index, np.int64)
    take &= target == ignore_index
    target[take] = labels[take]
    return target


def cells_holding(mask: np.ndarray, cell: int) -> np.ndarray:
    """bool (ceil(H / cell), ceil(W / cell)): which ``cell`` x ``cell`` cells of ``mask`` (H, W)
    hold a True pixel (the last row and column of cells may be partial)."""
    h, w = mask.shape
    ch, cw = -(-h // cell), -(-w // cell)
    padded = np.zeros((ch * cell, cw * cell), bool)
    padded[:h, :w] = mask
    return padded.reshape(ch, cell, cw, cell).any(axis=(1, 3))


def windows_holding(cells: np.ndarray, hh: int, ww: int) -> np.ndarray:
    """bool (ch - hh + 1, cw - ww + 1): for each placement (y0, x0) of an ``hh`` x ``ww`` window
    on a grid ``cells`` (ch, cw) bool, whether the window holds a True cell (a summed-area table)."""
    ch, cw = cells.shape
    if not (1 <= hh <= ch and 1 <= ww <= cw):
        raise ValueError(f"a {hh} x {ww} window does not fit a {ch} x {cw} grid")
    s = np.zeros((ch + 1, cw + 1), np.int64)
    s[1:, 1:] = cells.astype(np.int64).cumsum(0).cumsum(1)
    return (s[hh:, ww:] - s[:-hh, ww:] - s[hh:, :-ww] + s[:-hh, :-ww]) > 0


def tap_strides(taps: Sequence[torch.Tensor], frame_hw: tuple[int, int]) -> tuple[int, ...]:
    """The stride of each tap (B, C, h, w) of a frame of ``frame_hw``: the power of two nearest
    H / h (taps of "same"-padded encoders have ceil(H / s) rows)."""
    h = frame_hw[0]
    return tuple(int(2 ** round(math.log2(h / t.shape[-2]))) for t in taps)

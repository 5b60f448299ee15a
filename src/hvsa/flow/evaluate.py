"""Scoring flow fields and the forward-backward check against ground truth.

The metrics are pure functions on arrays; :func:`iter_evaluate_folder` walks a folder of
benchmark pairs (the layout of ``../shared/data/flow``) and yields one :class:`PairResult` each::

    <root>/sintel/<pass>-<difficulty>/frame_0002.png, frame_0003.png   frames t and t + 1
                                      flow_0002_0003.flo                ground truth O_2->3
                                      occlusions_0002.png               255 = visible in 2, hidden in 3
                                      invalid_0002.png                  255 = no valid ground truth (optional)
    <root>/flyingchairs/<id>-img0.png, <id>-img1.png, <id>-gt.flo

For Sintel the backward flow O_3->2 is computed with the same backend, the forward-backward
check (:func:`hvsa.flow.consistency.fb_consistency`) gives the reliable mask, and it is scored
against the ground-truth occlusions: ideally every occluded pixel is unreliable (recall) and every
visible one reliable.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hvsa.checks import check_array, check_flow, check_path, check_positive
from hvsa.errors import DataError, InputError
from hvsa.flow.consistency import fb_consistency
from hvsa.flow.dis import FlowBackend, make_flow_backend
from hvsa.flow.io import read_flo

__all__ = [
    "DatasetSummary",
    "PairResult",
    "endpoint_error",
    "evaluate_folder",
    "iter_evaluate_folder",
    "occlusion_recall",
    "summarize",
    "visible_reliability",
]

#: Ground-truth flow components at or above this magnitude mean "unknown" (Middlebury convention).
UNKNOWN_FLOW = 1e9


# -- metrics (pure) --------------------------------------------------------------------------


def _mask(mask: object, name: str, hw: tuple[int, int]) -> np.ndarray:
    return check_array(mask, name, dtype=np.bool_, shape=(hw[0], hw[1]))


def endpoint_error(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean endpoint error ``|| pred(x) - gt(x) ||`` in pixels.

    Args:
        pred: predicted flow, float (H, W, 2).
        gt: ground-truth flow, float (H, W, 2); non-finite or >= 1e9 components count as unknown
            and are skipped.
        valid: bool (H, W); only these pixels count (default: all).

    Returns:
        The mean over counted pixels; NaN when none counts.
    """
    pred = check_flow(pred, "pred")
    gt = check_flow(gt, "gt", hw=pred.shape[:2])
    known = np.isfinite(gt).all(axis=2) & (np.abs(gt) < UNKNOWN_FLOW).all(axis=2)
    if valid is not None:
        known &= _mask(valid, "valid", pred.shape[:2])
    if not known.any():
        return float("nan")
    diff = pred[known].astype(np.float64) - gt[known].astype(np.float64)
    return float(np.sqrt((diff**2).sum(axis=1)).mean())


def _share(flags: np.ndarray, where: np.ndarray) -> float:
    n = int(where.sum())
    return float(flags[where].sum() / n) if n else float("nan")


def occlusion_recall(reliable_mask: np.ndarray, occluded_gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of ground-truth-occluded pixels that the reliable mask marks unreliable.

    Args:
        reliable_mask: bool (H, W), True = reliable (forward-backward consistent).
        occluded_gt: bool (H, W), True = visible in frame t, hidden in frame t'.
        valid: bool (H, W); only these pixels count (default: all).

    Returns:
        A fraction in [0, 1]; NaN when no counted pixel is occluded.
    """
    reliable = check_array(reliable_mask, "reliable_mask", ndim=2, dtype=np.bool_)
    hw = reliable.shape
    where = _mask(occluded_gt, "occluded_gt", hw).copy()
    if valid is not None:
        where &= _mask(valid, "valid", hw)
    return _share(~reliable, where)


def visible_reliability(
    reliable_mask: np.ndarray, occluded_gt: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """Share of ground-truth-visible (not occluded) pixels that the reliable mask keeps.

    The counterpart of :func:`occlusion_recall`: marking everything unreliable has recall 1 and
    keeps nothing. Arguments as there; NaN when no counted pixel is visible.
    """
    reliable = check_array(reliable_mask, "reliable_mask", ndim=2, dtype=np.bool_)
    hw = reliable.shape
    where = ~_mask(occluded_gt, "occluded_gt", hw)
    if valid is not None:
        where &= _mask(valid, "valid", hw)
    return _share(reliable, where)


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairResult:
    """The scores of one benchmark pair.

    Attributes:
        dataset: "sintel" or "flyingchairs".
        name: the pair within its dataset ("clean-easy/0002", "0000003").
        size: (W, H) at which the flow was computed.
        epe: mean endpoint error over valid pixels, in pixels of ``size``.
        seconds_per_field: wall-clock seconds per computed flow field.
        occlusion_recall: share of occluded pixels marked unreliable (None without occlusion
            ground truth).
        visible_reliable: share of visible pixels marked reliable (None likewise).
        occluded: number of valid occluded pixels (for pooling recall over pairs).
        occluded_flagged: how many of them were marked unreliable.
    """

    dataset: str
    name: str
    size: tuple[int, int]
    epe: float
    seconds_per_field: float
    occlusion_recall: float | None = None
    visible_reliable: float | None = None
    occluded: int = 0
    occluded_flagged: int = 0


@dataclass(frozen=True)
class DatasetSummary:
    """Means over the pairs of one dataset.

    ``pooled_occlusion_recall`` counts every occluded pixel of every pair once (pairs with many
    occluded pixels weigh more); ``occlusion_recall`` is the plain mean of the per-pair recalls.
    """

    dataset: str
    pairs: int
    epe: float
    seconds_per_field: float
    occlusion_recall: float | None = None
    pooled_occlusion_recall: float | None = None
    visible_reliable: float | None = None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(vals)) if vals else None


def _mean_or_nan(values: Sequence[float | None]) -> float:
    m = _mean(values)
    return float("nan") if m is None else m


def summarize(results: Sequence[PairResult]) -> list[DatasetSummary]:
    """One :class:`DatasetSummary` per dataset, in order of first appearance."""
    out = []
    for dataset in dict.fromkeys(r.dataset for r in results):
        rs = [r for r in results if r.dataset == dataset]
        occluded = sum(r.occluded for r in rs)
        has_occ = any(r.occlusion_recall is not None for r in rs)
        out.append(
            DatasetSummary(
                dataset=dataset,
                pairs=len(rs),
                epe=_mean_or_nan([r.epe for r in rs]),
                seconds_per_field=_mean_or_nan([r.seconds_per_field for r in rs]),
                occlusion_recall=_mean([r.occlusion_recall for r in rs]) if has_occ else None,
                pooled_occlusion_recall=(sum(r.occluded_flagged for r in rs) / occluded) if occluded else None,
                visible_reliable=_mean([r.visible_reliable for r in rs]) if has_occ else None,
            )
        )
    return out


# -- the benchmark folder --------------------------------------------------------------------

_SINTEL_GT = re.compile(r"^flow_(\d+)_(\d+)\.flo$")
_IMAGE_SUFFIXES = (".png", ".ppm", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class _Pair:
    dataset: str
    name: str
    frame_a: Path
    frame_b: Path
    gt: Path
    occlusions: Path | None = None
    invalid: Path | None = None


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: {what} is missing")
    return path


def _find_image(folder: Path, stem: str) -> Path:
    for suffix in _IMAGE_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    raise DataError(f"{folder / stem}.png: frame is missing (looked for {', '.join(_IMAGE_SUFFIXES)})")


def _find_pairs(root: Path) -> list[_Pair]:
    pairs: list[_Pair] = []
    sintel = root / "sintel"
    if sintel.is_dir():
        for seq in sorted(p for p in sintel.iterdir() if p.is_dir()):
            for gt in sorted(seq.glob("flow_*_*.flo")):
                m = _SINTEL_GT.match(gt.name)
                if not m:
                    continue
                a, b = m.group(1), m.group(2)
                invalid = seq / f"invalid_{a}.png"
                pairs.append(
                    _Pair(
                        "sintel",
                        f"{seq.name}/{a}",
                        _find_image(seq, f"frame_{a}"),
                        _find_image(seq, f"frame_{b}"),
                        gt,
                        occlusions=_need(seq / f"occlusions_{a}.png", "occlusion mask"),
                        invalid=invalid if invalid.is_file() else None,
                    )
                )
    chairs = root / "flyingchairs"
    if chairs.is_dir():
        for gt in sorted(chairs.glob("*-gt.flo")):
            stem = gt.name[: -len("-gt.flo")]
            pairs.append(
                _Pair(
                    "flyingchairs", stem, _find_image(chairs, f"{stem}-img0"), _find_image(chairs, f"{stem}-img1"), gt
                )
            )
    if not pairs:
        raise InputError(
            f"{root}: no flow benchmark pairs found; expected sintel/<sequence>/flow_NNNN_MMMM.flo"
            " or flyingchairs/<id>-gt.flo beside their frames"
        )
    return pairs


def _read_mask(path: Path, hw: tuple[int, int]) -> np.ndarray:
    from hvsa.video.sources import read_image

    m = read_image(path, mode="L")
    if m.shape != hw:
        raise DataError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, its frames are {hw[1]}x{hw[0]}")
    return m > 127


def _resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a flow field to (W, H), vectors rescaled to the new pixels."""
    import cv2

    h, w = flow.shape[:2]
    out = cv2.resize(flow, size, interpolation=cv2.INTER_NEAREST)
    return (out * np.array([size[0] / w, size[1] / h], dtype=np.float32)).astype(np.float32)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def _evaluate_pair(pair: _Pair, backend: FlowBackend, threshold: float, longest: int | None) -> PairResult:
    from hvsa.checks import working_size
    from hvsa.video.sources import read_image, resize_frame

    frame_a = read_image(pair.frame_a)
    frame_b = read_image(pair.frame_b)
    if frame_a.shape != frame_b.shape:
        raise DataError(
            f"{pair.frame_b}: frame size {frame_b.shape[1]}x{frame_b.shape[0]} differs from"
            f" {frame_a.shape[1]}x{frame_a.shape[0]} of {pair.frame_a.name}"
        )
    gt = read_flo(pair.gt)
    hw = frame_a.shape[:2]
    if gt.shape[:2] != hw:
        raise DataError(f"{pair.gt}: flow is {gt.shape[1]}x{gt.shape[0]}, its frames are {hw[1]}x{hw[0]}")
    occluded = _read_mask(pair.occlusions, hw) if pair.occlusions else None
    valid = ~_read_mask(pair.invalid, hw) if pair.invalid else np.ones(hw, dtype=bool)

    size = (hw[1], hw[0])
    if longest is not None:
        size = working_size(size, None, longest)
        if size != (hw[1], hw[0]):
            frame_a, frame_b = resize_frame(frame_a, size), resize_frame(frame_b, size)
            gt = _resize_flow(gt, size)
            valid = _resize_mask(valid, size)
            occluded = _resize_mask(occluded, size) if occluded is not None else None

    t0 = time.perf_counter()
    fw = backend(frame_a, frame_b)
    seconds = time.perf_counter() - t0
    fields = 1
    result = dict(dataset=pair.dataset, name=pair.name, size=size, epe=endpoint_error(fw, gt, valid))
    if occluded is not None:
        t0 = time.perf_counter()
        bw = backend(frame_b, frame_a)
        seconds += time.perf_counter() - t0
        fields += 1
        reliable = fb_consistency(fw, bw, threshold)
        where = occluded & valid
        result.update(
            occlusion_recall=occlusion_recall(reliable, occluded, valid),
            visible_reliable=visible_reliability(reliable, occluded, valid),
            occluded=int(where.sum()),
            occluded_flagged=int((where & ~reliable).sum()),
        )
    return PairResult(seconds_per_field=seconds / fields, **result)


def iter_evaluate_folder(
    root: str | os.PathLike,
    preset: str = "medium",
    threshold: float = 1.0,
    *,
    backend: str | FlowBackend = "dis",
    longest: int | None = None,
) -> Iterator[PairResult]:
    """Score the flow backend on every pair under ``root``, yielding results as they come.

    Args:
        root: the benchmark folder (layout in the module notes).
        preset: DIS preset for a backend given by name.
        threshold: forward-backward threshold in pixels (of the evaluated size).
        backend: a registered backend name or a backend object.
        longest: when given, frames, ground truth and masks are first resized so the longest
            side is ``longest`` (as :func:`hvsa.checks.working_size` does for videos; flow vectors
            rescaled, masks nearest-neighbour), to score the flow at hvsa's working size.
    """
    root = check_path(root, "flow benchmark folder", kind="dir")
    threshold = check_positive(threshold, "threshold")
    if longest is not None:
        longest = int(check_positive(longest, "longest", integer=True))
    flow = make_flow_backend(backend, preset=preset) if isinstance(backend, str) else backend
    pairs = _find_pairs(root)  # bad input fails on the call, not at the first result
    return _evaluate_pairs(pairs, flow, threshold, longest)


def _evaluate_pairs(
    pairs: list[_Pair], flow: FlowBackend, threshold: float, longest: int | None
) -> Iterator[PairResult]:
    warm = np.zeros((32, 32, 3), dtype=np.uint8)
    flow(warm, warm)  # load the library and build the solver outside the timings
    for pair in pairs:
        yield _evaluate_pair(pair, flow, threshold, longest)


def evaluate_folder(
    root: str | os.PathLike,
    preset: str = "medium",
    threshold: float = 1.0,
    *,
    backend: str | FlowBackend = "dis",
    longest: int | None = None,
) -> list[PairResult]:
    """All results of :func:`iter_evaluate_folder` as a list (Sintel pairs first)."""
    return list(iter_evaluate_folder(root, preset, threshold, backend=backend, longest=longest))

"""Quality metrics as pure functions on label maps and whole-video confusion matrices.

Conventions: label maps are integer arrays of one shape (uint8 (H, W) usually), class ids
``0..C-1``, ``ignore_index`` (255) in the ground truth marks pixels that are not scored.
Confusion matrices are int64 (C, C), rows = ground truth, columns = prediction, summed over the
whole video before any ratio is taken (DESIGN.md "report.json"). Figures are fractions in
[0, 1]; a figure with nothing to average over is NaN.

* mIoU averages the IoU of the classes that occur in the ground truth or the prediction.
* Boundary IoU (Cheng et al., CVPR 2021): for each class, the boundary band of a mask is its
  pixels within distance d (chessboard, that is d erosions with a 3x3 square) of a pixel not in
  the mask or of the image edge, with d = round(dilation_ratio * image diagonal), at least 1.
  Per class, |band(gt) & band(pred)| and |band(gt) | band(pred)| are accumulated over the video
  (ignore pixels of the ground truth are not counted) and the ratio is averaged over the classes
  with a non-empty union.
* Temporal consistency (TC): mIoU of the confusion between the prediction of frame t and the
  prediction of frame t+1 warped to t, over reliable (forward-backward consistent) pixels, summed
  over the video; :func:`consistency_confusion` is the per-pair part, warping is the caller's.
"""

from __future__ import annotations

import numpy as np

from hvsa.checks import check_array, check_in_range
from hvsa.errors import InputError, ShapeError

__all__ = [
    "confusion_matrix",
    "iou_per_class",
    "miou",
    "pixel_accuracy",
    "boundary_band",
    "boundary_stats",
    "boundary_iou",
    "consistency_confusion",
    "VideoScores",
]


def _check_int_map(a: object, name: str) -> np.ndarray:
    a = check_array(a, name)
    if not np.issubdtype(a.dtype, np.integer):
        raise ShapeError(f"{name}: expected an integer label map, got dtype {a.dtype}")
    return a


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise InputError(f"num_classes: expected a positive integer, got {num_classes!r}")
    return int(num_classes)


def _confusion(a: np.ndarray, b: np.ndarray, c: int, valid: np.ndarray) -> np.ndarray:
    """One bincount over the pixels where ``valid``: rows ``a``, columns ``b``."""
    aa = a[valid].astype(np.int64)
    bb = b[valid].astype(np.int64)
    return np.bincount(aa * c + bb, minlength=c * c).reshape(c, c)


def _check_pair(gt: object, pred: object, num_classes: int, ignore_index: int, names=("gt", "pred")):
    c = _check_num_classes(num_classes)
    gt = _check_int_map(gt, names[0])
    pred = _check_int_map(pred, names[1])
    if gt.shape != pred.shape:
        raise ShapeError(f"{names[0]} and {names[1]} must have the same shape, got {gt.shape} and {pred.shape}")
    valid = gt != ignore_index
    if gt.size:
        g = gt[valid]
        if g.size and (int(g.min()) < 0 or int(g.max()) >= c):
            raise ShapeError(
                f"{names[0]}: values must be class ids 0..{c - 1} or the ignore index {ignore_index},"
                f" got {int(g.min())}..{int(g.max())}"
            )
        p = pred[valid]
        if p.size and (int(p.min()) < 0 or int(p.max()) >= c):
            raise ShapeError(
                f"{names[1]}: values must be class ids 0..{c - 1} where {names[0]} is labelled,"
                f" got {int(p.min())}..{int(p.max())}"
            )
    return gt, pred, c, valid


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Confusion matrix of one frame (or a stack): int64 (C, C), rows gt, columns pred.

    Args:
        gt: integer (H, W) (or any shape) ground truth; ``ignore_index`` pixels are skipped.
        pred: integer array of the same shape, class ids 0..C-1 where gt is labelled.
        num_classes: C.
    """
    gt, pred, c, valid = _check_pair(gt, pred, num_classes, ignore_index)
    return _confusion(gt, pred, c, valid)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix: float64 (C,), NaN where the union is empty."""
    conf = check_array(conf, "conf", ndim=2)
    if conf.shape[0] != conf.shape[1]:
        raise ShapeError(f"conf: expected a square (C, C) matrix, got shape {conf.shape}")
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def miou(conf: np.ndarray) -> float:
    """Mean IoU over the classes that occur in the ground truth or the prediction (NaN if none)."""
    iou = iou_per_class(conf)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def pixel_accuracy(conf: np.ndarray) -> float:
    """Fraction of scored pixels predicted right (NaN if none)."""
    conf = check_array(conf, "conf", ndim=2)
    total = conf.sum()
    return float(np.trace(conf) / total) if total > 0 else float("nan")


def _dilation(hw: tuple[int, int], dilation_ratio: float) -> int:
    h, w = hw
    return max(1, int(round(dilation_ratio * float(np.hypot(h, w)))))


def boundary_band(mask: np.ndarray, d: int) -> np.ndarray:
    """Inner boundary band of a bool (H, W) mask: its pixels within chessboard distance ``d`` of
    a pixel outside the mask or of the image edge. bool (H, W)."""
    import cv2

    mask = check_array(mask, "mask", ndim=2, dtype=np.bool_)
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)  # zero ring: the image edge counts as outside
    padded[1:-1, 1:-1] = mask
    kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)  # = d erosions with a 3x3 square
    eroded = cv2.erode(padded, kernel)[1:-1, 1:-1]
    return mask & (eroded == 0)


def boundary_stats(
    gt: np.ndarray,
    pred: np.ndarray,
    num_classes: int,
    dilation_ratio: float = 0.02,
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class boundary intersection and union of one frame, to sum over a video.

    Args:
        gt: integer (H, W) ground truth; ``ignore_index`` pixels are not counted.
        pred: integer (H, W) prediction.
        num_classes: C.
        dilation_ratio: band width as a fraction of the image diagonal (Cheng et al.: 0.02).

    Returns:
        (inter int64 (C,), union int64 (C,)). Feed their sums to :func:`boundary_iou`.
    """
    gt, pred, c, valid = _check_pair(gt, pred, num_classes, ignore_index)
    if gt.ndim != 2:
        raise ShapeError(f"gt: expected an (H, W) label map, got shape {gt.shape}")
    check_in_range(dilation_ratio, "dilation_ratio", 0.0, 1.0)
    d = _dilation(gt.shape, dilation_ratio)
    inter = np.zeros(c, np.int64)
    union = np.zeros(c, np.int64)
    counts = np.bincount(gt[valid].astype(np.int64), minlength=c)[:c]
    counts += np.bincount(pred[valid].astype(np.int64), minlength=c)[:c]
    classes = np.flatnonzero(counts)
    for k in classes:  # a loop over classes present in this frame, not over pixels
        bg = boundary_band(gt == k, d)
        bp = boundary_band(pred == k, d) & valid
        inter[k] = np.count_nonzero(bg & bp)
        union[k] = np.count_nonzero(bg | bp)
    return inter, union


def boundary_iou(inter: np.ndarray, union: np.ndarray) -> float:
    """Boundary IoU: mean of inter / union over the classes with a non-empty union (NaN if none)."""
    inter = np.asarray(inter, np.float64)
    union = np.asarray(union, np.float64)
    if inter.shape != union.shape or inter.ndim != 1:
        raise ShapeError(f"inter and union: expected two (C,) arrays, got {inter.shape} and {union.shape}")
    keep = union > 0
    return float((inter[keep] / union[keep]).mean()) if keep.any() else float("nan")


def consistency_confusion(
    pred_t: np.ndarray,
    pred_next_warped: np.ndarray,
    reliable: np.ndarray,
    num_classes: int,
    ignore_index: int = 255,
) -> np.ndarray:
    """Confusion between the prediction of frame t and that of t+1 warped to t: int64 (C, C).

    Only ``reliable`` pixels count, and pixels where either map holds ``ignore_index`` (for
    example warped from outside the frame) are skipped. TC of a video = :func:`miou` of the sum
    of these matrices over its consecutive pairs.

    Args:
        pred_t: integer (H, W) prediction of frame t.
        pred_next_warped: integer (H, W) prediction of frame t+1 sampled at x + O_t->t+1(x).
        reliable: bool (H, W), forward-backward consistent pixels.
        num_classes: C.
    """
    c = _check_num_classes(num_classes)
    a = _check_int_map(pred_t, "pred_t")
    b = _check_int_map(pred_next_warped, "pred_next_warped")
    reliable = check_array(reliable, "reliable", dtype=np.bool_)
    if not a.shape == b.shape == reliable.shape:
        raise ShapeError(
            f"pred_t, pred_next_warped and reliable must share a shape, got {a.shape}, {b.shape}"
            f" and {reliable.shape}"
        )
    valid = reliable & (a != ignore_index) & (b != ignore_index)
    for name, m in (("pred_t", a), ("pred_next_warped", b)):
        v = m[valid]
        if v.size and (int(v.min()) < 0 or int(v.max()) >= c):
            raise ShapeError(f"{name}: values must be class ids 0..{c - 1}, got {int(v.min())}..{int(v.max())}")
    return _confusion(a, b, c, valid)


class VideoScores:
    """Streaming video-level scores: feed frames with :meth:`update`, read :meth:`result`.

    Args:
        num_classes: C.
        ignore_index: ground-truth value that is not scored.
        dilation_ratio: boundary band width (fraction of the image diagonal).
        boundary: compute boundary IoU (costs C erosions per frame).
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, dilation_ratio: float = 0.02, boundary: bool = True
    ) -> None:
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = int(ignore_index)
        self.dilation_ratio = check_in_range(dilation_ratio, "dilation_ratio", 0.0, 1.0)
        self.boundary = bool(boundary)
        self.conf = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.boundary_inter = np.zeros(self.num_classes, np.int64)
        self.boundary_union = np.zeros(self.num_classes, np.int64)
        self.frames = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one frame: ground truth and prediction, integer (H, W)."""
        self.conf += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)
        if self.boundary:
            inter, union = boundary_stats(gt, pred, self.num_classes, self.dilation_ratio, self.ignore_index)
            self.boundary_inter += inter
            self.boundary_union += union
        self.frames += 1

    def result(self) -> dict[str, float]:
        """``{"miou", "pixel_acc", "boundary_iou"}`` over the frames seen (NaN when undefined;
        boundary_iou is NaN when ``boundary`` is off)."""
        biou = boundary_iou(self.boundary_inter, self.boundary_union) if self.boundary else float("nan")
        return {"miou": miou(self.conf), "pixel_acc": pixel_accuracy(self.conf), "boundary_iou": biou}

"""Click cost of annotating a sample, and the simulated annotator's mimic manual annotation.

Click model (DESIGN.md "Annotation", paper 3.4). For one sample (a set of pixels of one frame)
and the ground truth (uint8 (H, W), ``ignore_index`` = not annotated):

1. Every 8-connected component of one class inside the sample becomes one polygon: the
   component's external contour (OpenCV ``findContours``, ``CHAIN_APPROX_NONE``; holes are not
   traced) simplified with Ramer-Douglas-Peucker (``approxPolyDP``, closed, tolerance
   ``epsilon`` pixels, default :data:`DEFAULT_EPSILON` = 1.5).
2. Each vertex costs one *boundary click*, except vertices on the sample's own border: a vertex
   pixel with a 4-neighbour outside the sample or outside the image. There the rectangle,
   superpixel or frame edge closes the polygon for free.
3. Each polygon costs one *class click*.

So a sample of a single class (no ignore pixels) costs exactly 1 click. A component enclosed by
another one (in its hole) is a polygon of its own; the enclosing polygon pays nothing for the
hole. Ignore pixels are never annotated: no polygon, no clicks. Examples (tested): a 10x10
square of class 1 inside a frame of class 0 costs 4 + 1 = 5 clicks, and the whole frame costs
5 + 1 = 6 (the background's outline is the frame border, so only its class click is paid);
the part of that square inside a ``rec`` tile whose border cuts it costs 2 + 1 (its two
vertices on the tile border are free).

Mimic manual annotation (what the simulated annotator returns instead of the ground truth):
the simplified polygons are painted back in decreasing polygon area (so enclosed polygons land
on top of the ones enclosing them; ties keep the class order), restricted to the sample. Sample
pixels that no polygon covers take the label of the nearest covered pixel (Euclidean distance),
except when their ground truth is the ignore index: then they stay ignore. Pixels outside the
sample are ignore.

One sample's contour work happens on its bounding-box crop. :func:`pool_clicks` prices every
sample of a frame at once: samples of a single class are found with one bincount over
(sample, class) and cost 1 without any contour work; only mixed samples are traced, grouped so
that each (group of non-touching samples, class) is one ``findContours`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hvsa.checks import check_array, check_in_range, check_labels
from hvsa.errors import InputError, ShapeError
from hvsa.pools import check_region_map

__all__ = [
    "DEFAULT_EPSILON",
    "Polygon",
    "Annotation",
    "sample_polygons",
    "sample_clicks",
    "sample_border",
    "rasterize_polygons",
    "annotate_sample",
    "annotate_region",
    "pool_clicks",
    "frame_clicks",
    "video_clicks",
]

DEFAULT_EPSILON = 1.5
"""Ramer-Douglas-Peucker tolerance in pixels: contour points within 1.5 px of the simplified
polygon are dropped (a straight edge of any length keeps only its two end vertices)."""


class Polygon(NamedTuple):
    """One simplified polygon of a sample's annotation.

    Attributes:
        class_id: the class the polygon is drawn with.
        vertices: int32 (K, 2) vertex pixels as (x, y) in frame coordinates.
        on_border: bool (K,), True for vertices on the sample's border (free).
    """

    class_id: int
    vertices: np.ndarray
    on_border: np.ndarray

    @property
    def clicks(self) -> int:
        """One class click plus one boundary click per vertex not on the sample's border."""
        return 1 + int(np.count_nonzero(~self.on_border))


@dataclass(frozen=True)
class Annotation:
    """A simulated annotation of one sample.

    Attributes:
        labels: uint8 (H, W), the mimic manual annotation on the sample's pixels and the ignore
            index everywhere else.
        clicks: total clicks (sum of the polygons' clicks).
        polygons: the polygons, in painting order (decreasing area).
        bbox: (x0, y0, x1, y1) of the sample, x1 and y1 exclusive.
    """

    labels: np.ndarray
    clicks: int
    polygons: tuple[Polygon, ...]
    bbox: tuple[int, int, int, int]


# --------------------------------------------------------------------------- crop-level core

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _crop_polygons(
    gt: np.ndarray, mask: np.ndarray, epsilon: float, ignore_index: int, x0: int = 0, y0: int = 0
) -> list[tuple[Polygon, float]]:
    """Polygons of the sample ``mask`` over labels ``gt`` (both (h, w) crops at (x0, y0)), each
    with its polygon area; in class order, then contour order."""
    import cv2

    h, w = mask.shape
    # one pixel of padding: outside the crop is outside the sample (or outside the image)
    m = np.zeros((h + 2, w + 2), np.uint8)
    m[1:-1, 1:-1] = mask
    g = np.full((h + 2, w + 2), ignore_index, np.uint8)
    inner = g[1:-1, 1:-1]
    inner[mask] = gt[mask]
    border = (m > 0) & (cv2.erode(m, _CROSS) == 0)
    present = np.flatnonzero(np.bincount(inner[mask], minlength=256))
    out: list[tuple[Polygon, float]] = []
    for c in present:
        if c == ignore_index:
            continue
        contours, hierarchy = cv2.findContours((g == c).view(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        # RETR_CCOMP: contours without a parent are the external contours of the class's
        # components (a component inside another's hole is top level too); the rest are holes.
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0]):
            if parent != -1:
                continue
            approx = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
            on_border = border[approx[:, 1], approx[:, 0]]
            vertices = (approx + np.array([x0 - 1, y0 - 1])).astype(np.int32)
            area = float(cv2.contourArea(approx)) if len(approx) >= 3 else 0.0
            out.append((Polygon(int(c), vertices, on_border), area))
    return out


def _paint_order(polys: list[tuple[Polygon, float]]) -> tuple[Polygon, ...]:
    order = sorted(range(len(polys)), key=lambda i: -polys[i][1])  # stable: ties keep class order
    return tuple(polys[i][0] for i in order)


def _rasterize_crop(
    polygons: Sequence[Polygon],
    mask: np.ndarray,
    keep_ignore: np.ndarray | None,
    ignore_index: int,
    x0: int,
    y0: int,
) -> np.ndarray:
    """Paint ``polygons`` (in order) inside the crop ``mask``; fill uncovered pixels from the
    nearest covered one unless ``keep_ignore`` marks them. Returns uint8 (h, w)."""
    import cv2

    h, w = mask.shape
    canvas = np.zeros((h, w), np.uint16)  # class + 1; 0 = not covered
    shift = np.array([x0, y0])
    for p in polygons:
        pts = (np.asarray(p.vertices, np.int64) - shift).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [pts], int(p.class_id) + 1)
    canvas[~mask] = 0
    covered = canvas > 0
    need = mask & ~covered
    if keep_ignore is not None:
        need &= ~keep_ignore
    if need.any() and covered.any():
        _, nearest = cv2.distanceTransformWithLabels(
            (~covered).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        lut = np.zeros(int(nearest.max()) + 1, np.uint16)
        lut[nearest[covered]] = canvas[covered]
        canvas[need] = lut[nearest[need]]
    out = np.full((h, w), ignore_index, np.uint8)
    painted = canvas > 0
    out[painted] = (canvas[painted] - 1).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- public API


def _check_ignore(ignore_index: int) -> int:
    ok = isinstance(ignore_index, (int, np.integer)) and not isinstance(ignore_index, bool)
    if not ok or not 0 <= ignore_index <= 255:
        raise InputError(f"ignore_index: expected an integer in 0..255 (a uint8 label value), got {ignore_index!r}")
    return int(ignore_index)


def _check_inputs(gt: np.ndarray, mask: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray, float]:
    gt = check_labels(gt, "gt")
    mask = check_array(mask, "mask", dtype=np.bool_, shape=gt.shape)
    epsilon = check_in_range(epsilon, "epsilon", 0.0, 1e6)
    return gt, mask, epsilon


def sample_polygons(
    gt: np.ndarray, mask: np.ndarray, *, epsilon: float = DEFAULT_EPSILON, ignore_index: int = 255
) -> tuple[Polygon, ...]:
    """The polygons that annotate sample ``mask``, in painting order (decreasing area).

    Args:
        gt: uint8 (H, W) ground truth, ``ignore_index`` = not annotated.
        mask: bool (H, W), the sample's pixels.
        epsilon: Ramer-Douglas-Peucker tolerance in pixels.
        ignore_index: label value that is never annotated.
    """
    gt, mask, epsilon = _check_inputs(gt, mask, epsilon)
    ignore_index = _check_ignore(ignore_index)
    box = _bbox(mask)
    if box is None:
        return ()
    x0, y0, x1, y1 = box
    return _paint_order(_crop_polygons(gt[y0:y1, x0:x1], mask[y0:y1, x0:x1], epsilon, ignore_index, x0, y0))


def sample_clicks(
    gt: np.ndarray, mask: np.ndarray, *, epsilon: float = DEFAULT_EPSILON, ignore_index: int = 255
) -> int:
    """Clicks to annotate sample ``mask`` (see the module docstring)."""
    return sum(p.clicks for p in sample_polygons(gt, mask, epsilon=epsilon, ignore_index=ignore_index))


def sample_border(mask: np.ndarray) -> np.ndarray:
    """bool (H, W): the pixels of sample ``mask`` where a polygon vertex is free (rule 2 of the
    module docstring: a 4-neighbour outside the sample or outside the image).

    A person drawing on a sample (the web app) is charged by this rule:
    ``Polygon(c, vertices, sample_border(mask)[vertices[:, 1], vertices[:, 0]])``.
    """
    mask = check_array(mask, "mask", ndim=2, dtype=np.bool_)
    return _region_border(mask.view(np.uint8)) & mask


def rasterize_polygons(
    polygons: Sequence[Polygon],
    mask: np.ndarray,
    *,
    keep_ignore: np.ndarray | None = None,
    ignore_index: int = 255,
) -> np.ndarray:
    """Paint polygons inside a sample: the mimic-annotation rule of the module docstring.

    Polygons are painted in the given order (later ones on top), restricted to ``mask``; sample
    pixels left uncovered take the label of the nearest covered pixel, unless ``keep_ignore`` is
    True there (then they stay ``ignore_index``).

    Args:
        polygons: polygons with vertices in frame coordinates (for example
            :func:`sample_polygons`, already in painting order).
        mask: bool (H, W), the sample's pixels.
        keep_ignore: optional bool (H, W): pixels that stay ignore when uncovered (the
            simulated annotator passes ``gt == ignore_index``).
        ignore_index: the label written outside the sample and on unlabelled pixels.

    Returns:
        uint8 (H, W) labels, ``ignore_index`` outside the sample.
    """
    mask = check_array(mask, "mask", ndim=2, dtype=np.bool_)
    ignore_index = _check_ignore(ignore_index)
    if keep_ignore is not None:
        keep_ignore = check_array(keep_ignore, "keep_ignore", dtype=np.bool_, shape=mask.shape)
    out = np.full(mask.shape, ignore_index, np.uint8)
    box = _bbox(mask)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    keep = None if keep_ignore is None else keep_ignore[y0:y1, x0:x1]
    crop = out[y0:y1, x0:x1]
    crop_mask = mask[y0:y1, x0:x1]
    crop[crop_mask] = _rasterize_crop(polygons, crop_mask, keep, ignore_index, x0, y0)[crop_mask]
    return out


def annotate_sample(
    gt: np.ndarray, mask: np.ndarray, *, epsilon: float = DEFAULT_EPSILON, ignore_index: int = 255
) -> Annotation:
    """Simulate a person annotating sample ``mask`` from the ground truth.

    Args:
        gt: uint8 (H, W) ground truth, ``ignore_index`` = not annotated.
        mask: bool (H, W), the sample's pixels.
        epsilon: Ramer-Douglas-Peucker tolerance in pixels.
        ignore_index: label value that is never annotated.

    Returns:
        An :class:`Annotation`: the mimic manual annotation (uint8 (H, W), ignore outside the
        sample), its clicks and polygons.
    """
    gt, mask, epsilon = _check_inputs(gt, mask, epsilon)
    ignore_index = _check_ignore(ignore_index)
    labels = np.full(gt.shape, ignore_index, np.uint8)
    box = _bbox(mask)
    if box is None:
        return Annotation(labels, 0, (), (0, 0, 0, 0))
    x0, y0, x1, y1 = box
    g, m = gt[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    polygons = _paint_order(_crop_polygons(g, m, epsilon, ignore_index, x0, y0))
    crop = _rasterize_crop(polygons, m, g == ignore_index, ignore_index, x0, y0)
    labels[y0:y1, x0:x1][m] = crop[m]
    return Annotation(labels, sum(p.clicks for p in polygons), polygons, box)


def annotate_region(
    gt: np.ndarray,
    region_map: np.ndarray,
    index: int,
    *,
    epsilon: float = DEFAULT_EPSILON,
    ignore_index: int = 255,
) -> Annotation:
    """:func:`annotate_sample` for the sample ``index`` of a region map (int (H, W))."""
    region_map = check_array(region_map, "region_map", ndim=2)
    return annotate_sample(gt, region_map == index, epsilon=epsilon, ignore_index=ignore_index)


def pool_clicks(
    gt: np.ndarray,
    region_map: np.ndarray,
    n: int,
    *,
    epsilon: float = DEFAULT_EPSILON,
    ignore_index: int = 255,
) -> np.ndarray:
    """Clicks to annotate every sample of one frame: int64 (n,).

    Equal to :func:`sample_clicks` of each sample. Samples whose pixels all carry one class cost
    1 and samples with only ignore pixels cost 0, both from one bincount over (sample, class).
    Only mixed samples are traced, and not one by one: they are split into groups of samples
    that do not touch (not even diagonally), and each (group, class) is traced in one
    ``findContours`` call over the frame. A component's external contour does not depend on
    components that do not touch it, so the polygons equal those of the per-sample crops.

    Args:
        gt: uint8 (H, W) ground truth.
        region_map: integer (H, W) with values 0..n-1 (a pool's region map).
        n: number of samples.
        epsilon: Ramer-Douglas-Peucker tolerance in pixels.
        ignore_index: label value that is never annotated.
    """
    gt = check_labels(gt, "gt")
    rm = check_region_map(region_map, n, hw=gt.shape)
    epsilon = check_in_range(epsilon, "epsilon", 0.0, 1e6)
    ignore_index = _check_ignore(ignore_index)
    present = np.bincount(gt.ravel(), minlength=256) > 0
    values = np.flatnonzero(present)  # compact column -> label value
    k = values.size
    wide = np.int32 if n * k < 2**31 else np.int64
    lut = (np.cumsum(present) - 1).astype(wide)  # label value -> compact column
    hist = np.bincount((rm.astype(wide, copy=False) * wide(k) + lut[gt]).ravel(), minlength=n * k).reshape(n, k)
    areas = hist.sum(axis=1)
    if present[ignore_index]:
        hist[:, lut[ignore_index]] = 0
    labelled = hist.sum(axis=1)
    pure = (areas > 0) & (hist.max(axis=1) == areas)
    clicks = np.zeros(n, np.int64)
    clicks[pure] = 1
    mixed = (labelled > 0) & ~pure
    if mixed.any():
        clicks += _mixed_clicks(gt, rm, n, mixed, hist > 0, values, epsilon)
    return clicks


def _region_border(rm: np.ndarray) -> np.ndarray:
    """bool (H, W): pixels with a 4-neighbour in another region or outside the image."""
    b = np.zeros(rm.shape, bool)
    b[0, :] = b[-1, :] = True
    b[:, 0] = b[:, -1] = True
    dx = rm[:, :-1] != rm[:, 1:]
    b[:, :-1] |= dx
    b[:, 1:] |= dx
    dy = rm[:-1, :] != rm[1:, :]
    b[:-1, :] |= dy
    b[1:, :] |= dy
    return b


def _touching_groups(rm: np.ndarray, n: int, active: np.ndarray) -> np.ndarray:
    """Greedy colouring of the ``active`` regions so that regions of one colour never touch
    (8-neighbourhood). int64 (n,), -1 for inactive regions."""
    colour = np.full(n, -1, np.int64)
    ids = np.flatnonzero(active)
    if ids.size == 1:
        colour[ids] = 0
        return colour
    a_parts, b_parts = [], []
    for x, y in (
        (rm[:, :-1], rm[:, 1:]),
        (rm[:-1, :], rm[1:, :]),
        (rm[:-1, :-1], rm[1:, 1:]),
        (rm[:-1, 1:], rm[1:, :-1]),
    ):
        d = x != y
        a_parts.append(x[d])
        b_parts.append(y[d])
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    keep = active[a] & active[b]
    a, b = a[keep], b[keep]
    code = np.unique(np.concatenate([a * n + b, b * n + a]))
    src, dst = code // n, code % n  # sorted by src: CSR adjacency
    start = np.searchsorted(src, np.arange(n + 1)).tolist()
    dst = dst.tolist()
    out = [-1] * n
    for i in ids.tolist():  # greedy, over mixed regions (hundreds per frame), in plain Python
        used = {out[j] for j in dst[start[i]:start[i + 1]]}
        c = 0
        while c in used:
            c += 1
        out[i] = c
    return np.asarray(out, np.int64)


def _mixed_clicks(
    gt: np.ndarray,
    rm: np.ndarray,
    n: int,
    mixed: np.ndarray,
    has: np.ndarray,
    values: np.ndarray,
    epsilon: float,
) -> np.ndarray:
    """Clicks of the ``mixed`` regions (bool (n,)); ``has`` (n, k) marks the label columns
    present in each region (ignore already cleared), ``values`` maps columns to labels."""
    import cv2

    colour = _touching_groups(rm, n, mixed)
    border = _region_border(rm)
    class_masks: dict[int, np.ndarray] = {}
    polys: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    pixel_colour = colour[rm]
    for g in range(int(colour.max()) + 1):
        in_group = colour == g
        pixels = pixel_colour == g
        for col in np.flatnonzero(has[in_group].any(axis=0)):
            c = int(values[col])
            if c not in class_masks:
                class_masks[c] = gt == c
            m = (class_masks[c] & pixels).view(np.uint8)
            contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
            if not contours:
                continue
            outer = np.flatnonzero(hierarchy[0][:, 3] == -1)
            firsts = np.array([contours[i][0, 0] for i in outer])  # (x, y) of each start pixel
            owners.append(rm[firsts[:, 1], firsts[:, 0]].astype(np.int64))
            polys.extend(cv2.approxPolyDP(contours[i], epsilon, True).reshape(-1, 2) for i in outer)
    if not polys:
        return np.zeros(n, np.int64)
    owner = np.concatenate(owners)
    verts = np.concatenate(polys)
    vertex_owner = np.repeat(owner, [len(p) for p in polys])
    charged = ~border[verts[:, 1], verts[:, 0]]
    return np.bincount(owner, minlength=n) + np.bincount(vertex_owner[charged], minlength=n)


def frame_clicks(gt: np.ndarray, *, epsilon: float = DEFAULT_EPSILON, ignore_index: int = 255) -> int:
    """Clicks to annotate a whole frame (the ``frame`` granularity)."""
    gt = check_labels(gt, "gt")
    return int(pool_clicks(gt, np.zeros(gt.shape, np.int32), 1, epsilon=epsilon, ignore_index=ignore_index)[0])


def video_clicks(
    labels: Sequence[np.ndarray],
    *,
    epsilon: float = DEFAULT_EPSILON,
    ignore_index: int = 255,
    show_progress: bool = True,
) -> int:
    """Full-video clicks: :func:`frame_clicks` summed over every frame.

    Args:
        labels: the ground truth, indexable by frame with a length (a
            :class:`hvsa.video.LabelSource` or a list of uint8 (H, W) maps).

    This is the denominator of clicks % (DESIGN.md step 3).
    """
    if not hasattr(labels, "__len__") or not hasattr(labels, "__getitem__"):
        raise ShapeError(f"labels: expected a sequence of label maps, got {type(labels).__name__}")
    frames = range(len(labels))
    if show_progress:
        from hvsa.progress import progress

        frames = progress(frames, total=len(labels), desc="full-video clicks", unit="frame")
    return sum(frame_clicks(labels[t], epsilon=epsilon, ignore_index=ignore_index) for t in frames)

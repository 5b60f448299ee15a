"""A person's drawing on one sample -> the sample's labels and their price in clicks.

The click model of :mod:`hvsa.cost` prices what a person draws, exactly as it prices the
simulated annotator's polygons:

* each polygon costs one class click plus one click per vertex, except vertices on the sample's
  own border (:func:`hvsa.cost.sample_border`): there the tile, superpixel or frame edge closes
  the polygon for free;
* filling the whole sample with one class costs 1 (the single-class sample);
* accepting the model's prediction over the sample costs 1.

Labels follow the mimic-annotation rule (:func:`hvsa.cost.rasterize_polygons`): polygons are
painted in the order drawn, restricted to the sample. Without a fill, sample pixels no polygon
covers take the label of the nearest covered pixel, as in the simulator; with a fill, the
polygons are painted over it.
"""

from __future__ import annotations

import numpy as np

from hvsa.annotate.base import SampleLabels, SampleRequest
from hvsa.cost import Polygon, rasterize_polygons, sample_border
from hvsa.errors import InputError
from hvsa.web.payloads import Drawing

__all__ = ["drawing_labels", "mask_runs"]


def drawing_labels(
    drawing: Drawing, request: SampleRequest, prediction: np.ndarray | None, *, ignore_index: int = 255
) -> SampleLabels:
    """Rasterise and price a drawing on the sample of ``request``.

    Args:
        drawing: the parsed request (:func:`hvsa.web.payloads.parse_annotation`).
        request: the sample (its mask and bbox).
        prediction: uint8 (H, W) labels of the sample's frame; needed for a "prediction" fill.
        ignore_index: label of unlabelled pixels.

    Returns:
        :class:`SampleLabels` on the request's bbox, source "accepted" for a prediction taken as
        it stands, else "manual"; the polygons as stored (frame coordinates, with each vertex's
        border flag; a fill is a leading entry ``{"fill": kind, "class_id", "points": []}``).

    Raises:
        InputError: the drawing labels no pixel of the sample.
    """
    mask = request.mask
    border = sample_border(mask)
    polygons = [Polygon(p.class_id, p.points, border[p.points[:, 1], p.points[:, 0]]) for p in drawing.polygons]
    if drawing.fill is None:
        labels = rasterize_polygons(polygons, mask, ignore_index=ignore_index)
    else:
        if drawing.fill == "prediction":
            if prediction is None:
                raise InputError("fill: there is no prediction to accept yet")
            labels = np.where(mask, prediction, ignore_index).astype(np.uint8)
        else:
            labels = np.where(mask, drawing.fill_class, ignore_index).astype(np.uint8)
        painted = rasterize_polygons(polygons, mask, keep_ignore=np.ones_like(mask), ignore_index=ignore_index)
        drawn = painted != ignore_index
        labels[drawn] = painted[drawn]
    x0, y0, x1, y1 = request.bbox
    crop = labels[y0:y1, x0:x1].copy()
    if not (crop != ignore_index).any():
        raise InputError("annotation: the polygons cover no pixel of the sample; draw inside its outline")
    stored = [
        {"class_id": int(p.class_id), "points": p.vertices.tolist(), "on_border": p.on_border.tolist()}
        for p in polygons
    ]
    if drawing.fill is not None:
        stored.insert(0, {"fill": drawing.fill, "class_id": drawing.fill_class, "points": []})
    return SampleLabels(
        labels=crop,
        clicks=(drawing.fill is not None) + sum(p.clicks for p in polygons),
        source="accepted" if drawing.fill == "prediction" and not polygons else "manual",
        polygons=stored,
        click_log=[c.to_dict() for c in drawing.clicks],
    )


def mask_runs(mask: np.ndarray) -> list[int]:
    """Run-length encoding of a bool (h, w) mask in row-major order: lengths of alternating
    runs of False and True, starting with False (so the first run may be 0)."""
    flat = np.asarray(mask, bool).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    return [0, *runs] if flat[0] else runs

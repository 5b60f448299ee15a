"""The simulated annotator: labels a sample from the ground truth as a person would with polygons."""

from __future__ import annotations

from hvsa.annotate.base import SampleLabels, SampleRequest
from hvsa.cost import DEFAULT_EPSILON, annotate_sample
from hvsa.errors import InputError

__all__ = ["SimulatedAnnotator"]


class SimulatedAnnotator:
    """Answers with the *mimic manual annotation* (:func:`hvsa.cost.annotate_sample`): the
    ground truth's components, simplified to polygons (Ramer-Douglas-Peucker, ``epsilon``
    pixels) and rasterised back, and their click cost.

    Args:
        labels: the ground truth, indexable by frame (``labels[t]`` -> uint8 (H, W)), e.g. a
            :class:`hvsa.video.LabelSource`.
        epsilon: polygon simplification tolerance in pixels.
        ignore_index: label value that is never annotated.
    """

    def __init__(self, labels, *, epsilon: float = DEFAULT_EPSILON, ignore_index: int = 255) -> None:  # noqa: ANN001
        if labels is None:
            raise InputError("the simulated annotator needs ground-truth labels (a labels/ folder)")
        self.labels = labels
        self.epsilon = epsilon
        self.ignore_index = ignore_index

    def annotate(self, request: SampleRequest) -> SampleLabels:
        gt = self.labels[request.sid.t]
        ann = annotate_sample(gt, request.mask, epsilon=self.epsilon, ignore_index=self.ignore_index)
        x0, y0, x1, y1 = request.bbox
        polygons = [
            {"class_id": int(p.class_id), "points": p.vertices.tolist(), "on_border": p.on_border.tolist()}
            for p in ann.polygons
        ]
        return SampleLabels(labels=ann.labels[y0:y1, x0:x1].copy(), clicks=ann.clicks, source="simulated", polygons=polygons)

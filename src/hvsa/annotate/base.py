"""What an annotator receives and returns.

An annotator labels one sample at a time. The simulated annotator answers from the ground truth
with the mimic manual annotation of the click-cost model; the web app is the other annotator
(a person answers through the browser, and the app hands the session the same
:class:`SampleLabels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hvsa.types import SampleId

__all__ = ["SampleRequest", "SampleLabels", "Annotator"]


@dataclass(frozen=True)
class SampleRequest:
    """One sample to annotate.

    Attributes:
        sid: the sample id (t, n).
        pool_index: its flat pool index.
        mask: bool (H, W), the sample's pixels.
        bbox: (x0, y0, x1, y1) of the mask, x1 and y1 exclusive.
    """

    sid: SampleId
    pool_index: int
    mask: np.ndarray
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class SampleLabels:
    """An annotator's answer for one sample.

    Attributes:
        labels: uint8 (y1 - y0, x1 - x0) on the request's bbox; the ignore index outside the
            sample and on pixels left unlabelled.
        clicks: clicks the annotation cost.
        source: "simulated", "manual" or "accepted" (a prediction accepted as is).
        polygons: the drawn polygons as [{"class_id", "points": [[x, y], ...]}], frame coordinates.
        click_log: optional individual clicks [{"kind", "x", "y", "class_id", "ts"}].
    """

    labels: np.ndarray
    clicks: int
    source: str
    polygons: list = field(default_factory=list)
    click_log: list = field(default_factory=list)


class Annotator(Protocol):
    """Anything that labels samples on request."""

    def annotate(self, request: SampleRequest) -> SampleLabels: ...

"""Small typed values shared across layers.

ID spaces, named once:

* frame index ``t``: 0-based position of a frame in temporal order;
* sample index ``n``: position of a sample inside frame ``t``'s pool (a region-map value);
* sample id ``SampleId(t, n)``: a sample of the whole video;
* pool index: position of a sample in a flat enumeration of every sample of the video
  (frame-major); :class:`hvsa.pools.Pool` converts between pool indices and sample ids.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SampleId", "Size"]


@dataclass(frozen=True, order=True)
class SampleId:
    """One sample of the video: sample ``n`` of frame ``t``."""

    t: int
    n: int

    def __str__(self) -> str:
        return f"{self.t}:{self.n}"


@dataclass(frozen=True)
class Size:
    """A working resolution in pixels; (width, height) order like DESIGN.md's ``WxH``."""

    width: int
    height: int

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width), the order numpy shapes use."""
        return self.height, self.width

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

"""Optical flow backends, chosen by name, and OpenCV's DIS flow (Kroeger et al., ECCV 2016).

A backend is a callable object ``backend(frame_a, frame_b) -> flow`` with a ``name`` and a
``config()`` dict (everything that changes its output; flow caches are keyed by it). Backends are
built by name from :data:`flow_backends`::

    backend = make_flow_backend("dis", preset="fast")
    flow = backend(frame_a, frame_b)            # float32 (H, W, 2), O_a->b

Flow convention (DESIGN.md): ``flow[y, x] = (dx, dy)`` maps pixel (x, y) of ``frame_a`` to
(x + dx, y + dy) in ``frame_b``, so ``frame_a(x) ~ frame_b(x + flow(x))``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from hvsa.checks import check_array, check_same_hw
from hvsa.errors import InputError, ShapeError
from hvsa.registry import Registry

__all__ = [
    "DIS_PRESETS",
    "DISFlow",
    "MIN_SIDE",
    "FlowBackend",
    "compute_flow",
    "flow_backends",
    "make_flow_backend",
]

#: Frames are padded to at least this many pixels per side before DIS (see :class:`DISFlow`).
MIN_SIDE = 32

#: DIS presets by name -> the OpenCV constant's attribute name.
DIS_PRESETS: dict[str, str] = {
    "ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
    "fast": "DISOPTICAL_FLOW_PRESET_FAST",
    "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM",
}


class FlowBackend(Protocol):
    """What a flow backend offers: a name, its output-defining config, and the flow itself."""

    name: str

    def config(self) -> dict[str, Any]:
        """Everything that changes the output (a flow cache is keyed by it)."""

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """O_a->b as float32 (H, W, 2) for two uint8 frames (H, W, 3) (or grayscale (H, W))."""


flow_backends: Registry[type] = Registry("flow backend")


def make_flow_backend(name: str = "dis", **options: Any) -> FlowBackend:
    """Build the flow backend registered as ``name`` with its keyword ``options``.

    An unknown name raises :class:`hvsa.errors.UnknownNameError` listing the valid ones.
    """
    return flow_backends.get(name)(**options)


def _to_gray(frame: object, name: str) -> np.ndarray:
    """A uint8 RGB (H, W, 3) or grayscale (H, W) frame as contiguous grayscale uint8 (H, W)."""
    import cv2

    a = check_array(frame, name, dtype=np.uint8)
    if a.size == 0:
        raise ShapeError(f"{name}: expected a non-empty frame, got shape {a.shape}")
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    raise ShapeError(f"{name}: expected a uint8 RGB frame (H, W, 3) or grayscale (H, W), got shape {a.shape}")


@flow_backends.register("dis")
class DISFlow:
    """OpenCV's Dense Inverse Search flow on grayscale frames, on the CPU.

    Args:
        preset: "ultrafast", "fast" or "medium" (OpenCV's presets; "medium" is the most
            accurate and about 4x slower than "fast").

    One OpenCV solver is kept per frame size and reused (it keeps its buffers between calls). Not
    one solver for all sizes: OpenCV's DIS rewrites its own finest scale and patch size after a
    small image, which would silently change every later result. An instance is not thread-safe;
    give each thread its own.

    Frames with a side shorter than :data:`MIN_SIDE` pixels are padded (edge pixels repeated) up to
    it and the flow cropped back: OpenCV 5.0's DIS rejects some such sizes and crashes the process
    on others (for example 12x40 or, with "ultrafast", 20x100).
    """

    name = "dis"

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise InputError(f"unknown DIS preset {preset!r}; expected one of: {', '.join(DIS_PRESETS)}")
        self.preset = preset
        self._solvers: dict[tuple[int, int], Any] = {}

    def config(self) -> dict[str, Any]:
        return {"backend": self.name, "preset": self.preset}

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """O_a->b, float32 (H, W, 2) of (dx, dy), for frames of equal size."""
        import cv2

        a = _to_gray(frame_a, "frame_a")
        b = _to_gray(frame_b, "frame_b")
        check_same_hw("frame_a", a, "frame_b", b)
        h, w = a.shape
        pad_y, pad_x = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        if pad_y or pad_x:
            a = cv2.copyMakeBorder(a, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
            b = cv2.copyMakeBorder(b, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        solver = self._solvers.get(a.shape)
        if solver is None:
            solver = self._solvers[a.shape] = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS[self.preset]))
        flow = solver.calc(a, b, None)
        return np.ascontiguousarray(flow[:h, :w], dtype=np.float32)

    def __repr__(self) -> str:
        return f"DISFlow(preset={self.preset!r})"


def compute_flow(frame_a: np.ndarray, frame_b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """DIS optical flow O_a->b between two frames.

    Args:
        frame_a, frame_b: uint8 RGB frames (H, W, 3) (or grayscale (H, W)) of equal size.
        preset: "ultrafast", "fast" or "medium".

    Returns:
        float32 (H, W, 2): ``flow[y, x] = (dx, dy)`` such that ``frame_a(x, y)`` matches
        ``frame_b(x + dx, y + dy)``.
    """
    return DISFlow(preset)(frame_a, frame_b)

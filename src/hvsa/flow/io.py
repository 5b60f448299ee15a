"""Middlebury ``.flo`` files.

Layout (little-endian): float32 magic 202021.25 (the bytes "PIEH"), int32 width, int32 height,
then height x width x 2 float32 (dx, dy), row-major.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hvsa.checks import check_flow, check_path
from hvsa.errors import DataError, ShapeError

__all__ = ["FLO_MAGIC", "read_flo", "write_flo"]

FLO_MAGIC = np.float32(202021.25)
_HEADER = 12
_MAX_SIDE = 1 << 16


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.flo`` file as float32 (H, W, 2) of (dx, dy).

    A missing file raises :class:`hvsa.errors.InputError`; a wrong magic number, implausible
    size, or a file shorter or longer than its header says raises :class:`DataError` naming it.
    """
    p = check_path(path, "flow file", kind="file")
    data = p.read_bytes()
    if len(data) < _HEADER:
        raise DataError(f"{p}: not a .flo file (only {len(data)} bytes; the header alone is {_HEADER})")
    magic = np.frombuffer(data, dtype="<f4", count=1)[0]
    if magic != FLO_MAGIC:
        raise DataError(f"{p}: not a .flo file (magic number {magic!r}, expected {float(FLO_MAGIC)})")
    w, h = (int(v) for v in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
        raise DataError(f"{p}: implausible flow size {w}x{h} in the header")
    want = _HEADER + w * h * 2 * 4
    if len(data) != want:
        what = "truncated" if len(data) < want else "longer than its header says"
        raise DataError(f"{p}: file is {what} ({len(data)} bytes, expected {want} for {w}x{h})")
    flow = np.frombuffer(data, dtype="<f4", offset=_HEADER).reshape(h, w, 2)
    return flow.astype(np.float32)  # native byte order, writable copy


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> Path:
    """Write float (H, W, 2) ``flow`` as a ``.flo`` file (float32); returns the path.

    The file is written to a temporary name and moved into place, so readers never see half a file.
    """
    flow = check_flow(flow)
    h, w = flow.shape[:2]
    if h == 0 or w == 0:
        raise ShapeError(f"flow: expected a non-empty (H, W, 2) array, got shape {flow.shape}")
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(np.asarray([FLO_MAGIC], dtype="<f4").tobytes())
        f.write(np.asarray([w, h], dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(flow, dtype="<f4").tobytes())
    os.replace(tmp, p)
    return p

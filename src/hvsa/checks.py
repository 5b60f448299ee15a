"""Input checks shared by every public boundary.

Each check raises a typed error (:mod:`hvsa.errors`) whose message says what was expected,
what came, and how to fix the call. Nothing here uses ``assert``: the checks must hold under
``python -O`` too.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hvsa.errors import InputError, ShapeError

__all__ = [
    "check_array",
    "check_frame",
    "check_labels",
    "check_flow",
    "check_probs",
    "check_same_hw",
    "check_positive",
    "check_fraction",
    "check_in_range",
    "check_path",
    "check_device",
    "parse_size",
    "working_size",
]


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def check_array(
    a: object,
    name: str,
    *,
    ndim: int | None = None,
    dtype: type | np.dtype | Sequence[type | np.dtype] | None = None,
    shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Check that ``a`` is a numpy array of the given rank, dtype(s) and shape.

    ``shape`` entries that are ``None`` match any length. Returns ``a`` unchanged.
    """
    if not isinstance(a, np.ndarray):
        raise ShapeError(f"{name}: expected a numpy array, got {_describe(a)}")
    if ndim is not None and a.ndim != ndim:
        raise ShapeError(f"{name}: expected {ndim} dimensions, got {_describe(a)}")
    if dtype is not None:
        allowed = [np.dtype(d) for d in (dtype if isinstance(dtype, (list, tuple)) else [dtype])]
        if a.dtype not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ShapeError(f"{name}: expected dtype {want}, got {_describe(a)}")
    if shape is not None:
        if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ShapeError(f"{name}: expected shape {want}, got {_describe(a)}")
    return a


def check_frame(frame: object, name: str = "frame") -> np.ndarray:
    """A frame is a uint8 RGB array of shape (H, W, 3)."""
    return check_array(frame, name, dtype=np.uint8, shape=(None, None, 3))


def check_labels(
    labels: object,
    name: str = "labels",
    *,
    num_classes: int | None = None,
    ignore_index: int = 255,
) -> np.ndarray:
    """A label map is a uint8 array of shape (H, W); values are class ids or ``ignore_index``."""
    a = check_array(labels, name, ndim=2, dtype=np.uint8)
    if num_classes is not None:
        bad = np.unique(a[(a >= num_classes) & (a != ignore_index)])
        if bad.size:
            raise ShapeError(
                f"{name}: values {bad[:10].tolist()} are neither class ids 0..{num_classes - 1}"
                f" nor the ignore index {ignore_index}"
            )
    return a


def check_flow(flow: object, name: str = "flow", hw: tuple[int, int] | None = None) -> np.ndarray:
    """A flow field is a float32 (H, W, 2) array of (dx, dy) in pixels."""
    shape = (None, None, 2) if hw is None else (hw[0], hw[1], 2)
    return check_array(flow, name, dtype=[np.float32, np.float16, np.float64], shape=shape)


def check_probs(probs: object, name: str = "probs") -> np.ndarray:
    """Probabilities are a float (C, H, W) array."""
    return check_array(probs, name, ndim=3, dtype=[np.float16, np.float32, np.float64])


def check_same_hw(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Check that two arrays share height and width (their first two axes, or last two for CHW)."""
    if a.shape[:2] != b.shape[:2]:
        raise ShapeError(
            f"{name_a} and {name_b} must have the same height and width,"
            f" got {a.shape[:2]} and {b.shape[:2]}"
        )


def check_positive(value: object, name: str, *, integer: bool = False) -> float:
    """A strictly positive number (an int when ``integer``)."""
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(
        value, (int, float, np.integer, np.floating)
    )
    if isinstance(value, bool) or not ok or not math.isfinite(float(value)) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise InputError(f"{name}: expected {kind}, got {value!r}")
    return value  # type: ignore[return-value]


def check_in_range(value: object, name: str, lo: float, hi: float) -> float:
    """A finite number in the closed interval [lo, hi]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or not lo <= value <= hi
    ):
        raise InputError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def check_fraction(value: object, name: str) -> float:
    """A number in [0, 1]."""
    return check_in_range(value, name, 0.0, 1.0)


def check_path(path: str | os.PathLike, what: str, *, kind: str = "any") -> Path:
    """Check that ``path`` exists; ``kind`` is "file", "dir" or "any"."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} does not exist")
    if kind == "file" and not p.is_file():
        raise InputError(f"{p}: expected {what} to be a file, found a folder")
    if kind == "dir" and not p.is_dir():
        raise InputError(f"{p}: expected {what} to be a folder, found a file")
    return p


_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def check_device(device: object, name: str = "device") -> str:
    """A torch device this machine can compute on, as given (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"``). Checked before any work starts, so ``--device cuda`` on a machine or a torch
    build without CUDA stops with what to use instead, not with torch's assertion halfway through
    a run. ``"cpu"`` does not import torch. ``name`` prefixes the message (empty: none)."""
    text = str(device).strip()
    if text == "cpu":
        return text
    import torch

    def fail(reason: str) -> InputError:
        return InputError(f"{name}: {reason}" if name else reason)

    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise fail(f"{text!r} is not a device; expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise fail(f"{text}: no CUDA device is available (torch {torch.__version__}, {build}); use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise fail(f"{text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise fail(f"{text}: no MPS device is available; use --device cpu")
    elif dev.type != "cpu":
        raise fail(f"{text!r}: expected cpu, cuda, cuda:N or mps")
    return text


def parse_size(text: str | Sequence[int] | None) -> tuple[int, int] | None:
    """Parse a working size given as ``"WxH"`` or ``(W, H)``; ``None`` passes through."""
    if text is None:
        return None
    if isinstance(text, str):
        m = _SIZE.match(text)
        if not m:
            raise InputError(f"size {text!r}: expected WIDTHxHEIGHT, for example 480x360")
        w, h = int(m.group(1)), int(m.group(2))
    else:
        if len(text) != 2:
            raise InputError(f"size {text!r}: expected (width, height)")
        w, h = int(text[0]), int(text[1])
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise InputError(f"size {w}x{h}: width and height must each be between 8 and 8192 pixels")
    return w, h


def working_size(native: tuple[int, int], size: tuple[int, int] | None, longest: int = 480) -> tuple[int, int]:
    """The working (W, H): ``size`` when given, else ``native`` scaled so its longest side is
    ``longest`` (never upscaled), both rounded to even numbers of pixels."""
    if size is not None:
        return size
    w, h = native
    scale = min(1.0, longest / max(w, h))
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)

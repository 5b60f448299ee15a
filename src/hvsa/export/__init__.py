"""Exporters of a session's labels, chosen by name from :data:`EXPORTERS`.

* ``png``: uint8 index masks ``<frame>.png`` (class ids; readable by any tool);
* ``color``: RGB masks in the classes' colours;
* ``overlay``: the frame with the colour mask blended over it (JPEG, for looking at).

Every exporter also writes ``classes.json`` beside the files, so the folder is self-describing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hvsa.progress import progress
from hvsa.registry import Registry

__all__ = ["EXPORTERS", "export_predictions", "overlay"]

EXPORTERS: Registry[Callable] = Registry("export format")


def overlay(frame: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an RGB colour mask over an RGB frame (both uint8 (H, W, 3))."""
    return (frame.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha).round().astype(np.uint8)


def _write(path: Path, image: np.ndarray, quality: int | None = None) -> None:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"{path}: cannot write image")


@EXPORTERS.register("png")
def _png(session, t: int, name: str, out: Path) -> None:  # noqa: ANN001
    labels, _ = session.prediction(t)
    _write(out / f"{name}.png", labels)


@EXPORTERS.register("color")
def _color(session, t: int, name: str, out: Path) -> None:  # noqa: ANN001
    labels, _ = session.prediction(t)
    _write(out / f"{name}.png", session.classes.colorize(labels))


@EXPORTERS.register("overlay")
def _overlay(session, t: int, name: str, out: Path) -> None:  # noqa: ANN001
    labels, _ = session.prediction(t)
    _write(out / f"{name}.jpg", overlay(session.frames.read(t), session.classes.colorize(labels)), quality=90)


def export_predictions(session, out: str | os.PathLike, format: str = "png") -> Path:  # noqa: ANN001
    """Write the latest prediction of every frame of ``session`` to folder ``out``."""
    writer = EXPORTERS.get(format)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for t in progress(range(session.num_frames), desc=f"exporting {format}", unit="frame"):
        writer(session, t, session.names[t], out)
    session.classes.to_json(out / "classes.json")
    return out

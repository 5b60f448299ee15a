"""Views of frames: rescaled and mirrored copies, re-encoded, for fine-tuning and prediction.

Test-time fine-tuning learns from a handful of annotated frames, while the object it must find
grows, shrinks and turns over the video. A :class:`View` is a geometric copy of a frame (a
scale and an optional left-right mirror) and of its annotation; the frozen encoder sees the
copy as a new image, so its taps are not a resampling of the original's. Fine-tuning trains on
views of the annotated frames; a method may also read views of every frame when it predicts
(:attr:`hvsa.methods.Method.views`). :class:`ViewCache`
computes a view's taps on first use and keeps them on disk beside the frame's own taps, keyed
like :class:`hvsa.model.taps.TapCache` by the video and the encoder, so every session of a
video (the runs of a bench, say) shares them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from hvsa.errors import InputError
from hvsa.model.taps import encoder_digest
from hvsa.progress import progress
from hvsa.video.sources import VideoSource

__all__ = ["View", "views_for", "ViewCache"]


@dataclass(frozen=True)
class View:
    """A frame rescaled by ``scale`` (each side rounded to whole pixels), then mirrored left to
    right when ``flip``."""

    scale: float
    flip: bool = False

    def __post_init__(self) -> None:
        if not 0.1 <= self.scale <= 4:
            raise InputError(f"view scale: expected a factor in [0.1, 4], got {self.scale}")

    @property
    def name(self) -> str:
        return f"s{self.scale:g}" + ("f" if self.flip else "")

    def size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the view of an (H, W) frame."""
        return max(1, round(hw[0] * self.scale)), max(1, round(hw[1] * self.scale))

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> the view (h, w, 3)."""
        h, w = self.size(frame.shape[:2])
        out = frame if (h, w) == frame.shape[:2] else cv2.resize(
            frame, (w, h), interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)
        return np.ascontiguousarray(out[:, ::-1] if self.flip else out)

    def labels(self, labels: np.ndarray) -> np.ndarray:
        """uint8 (H, W) index mask -> the view (h, w), nearest-neighbour."""
        h, w = self.size(labels.shape)
        out = labels if (h, w) == labels.shape else cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        return np.ascontiguousarray(out[:, ::-1] if self.flip else out)


def views_for(scales: tuple[float, ...]) -> tuple[View, ...]:
    """The views of a fine-tuning configuration: the mirror image at scale 1, and every other
    scale of ``scales`` plain and mirrored (the frame itself, scale 1 unmirrored, is not a view)."""
    out = [View(1.0, True)]
    for s in scales:
        if s != 1.0:
            out += [View(s), View(s, True)]
    return tuple(out)


class ViewCache:
    """Encoder taps of views of ``video``'s frames, computed on demand, kept in ``cache_dir``.

    Args:
        model: a :class:`hvsa.model.SegNet` (its encoder runs in eval mode, without gradients).
        video: the frames.
        cache_dir: folder of the cache (one float16 ``.npz`` per frame and view).
        device: where the encoder runs.
    """

    def __init__(self, model: torch.nn.Module, video: VideoSource, cache_dir: str | os.PathLike,
                 device: str | torch.device = "cpu") -> None:
        self.model = model
        self.video = video
        self.device = torch.device(device)
        key = hashlib.sha1(f"{video.identity()}:{encoder_digest(model)}".encode()).hexdigest()[:16]
        self.folder = Path(cache_dir) / f"views-{key}"

    def get(self, t: int, view: View, device: str | torch.device = "cpu") -> list[torch.Tensor]:
        """Taps of ``view`` of frame ``t``: float32 tensors (1, C_i, h_i, w_i), finest first."""
        path = self._path(t, view)
        if path.is_file():
            with np.load(path) as z:
                arrays = [z[f"tap{i}"] for i in range(len(z.files))]
        else:
            arrays = self._encode_and_keep(t, view)
        return [torch.from_numpy(a).to(device=device, dtype=torch.float32)[None] for a in arrays]

    def fill(self, views: Sequence[View]) -> None:
        """Encode each of ``views`` of every frame not cached yet (progress bar on a terminal)."""
        todo = [(t, v) for t in range(len(self.video)) for v in views if not self._path(t, v).is_file()]
        for t, view in progress(todo, desc="encoding views", unit="view"):
            self._encode_and_keep(t, view)

    def _path(self, t: int, view: View) -> Path:
        return self.folder / f"{t:06d}-{view.name}.npz"

    def _encode_and_keep(self, t: int, view: View) -> list[np.ndarray]:
        arrays = self._encode(t, view)
        path = self._path(t, view)
        self.folder.mkdir(parents=True, exist_ok=True)
        # a crash leaves no half-written view; nor do two processes encoding the same one
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"tap{i}": a for i, a in enumerate(arrays)})
        os.replace(tmp, path)
        return arrays

    def _encode(self, t: int, view: View) -> list[np.ndarray]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                x = self.model.normalize(torch.from_numpy(view.frame(self.video.read(t)))[None]).to(self.device)
                return [tap[0].to("cpu", torch.float16).numpy() for tap in self.model.encode(x)]
        finally:
            self.model.train(was_training)

    def close(self) -> None:
        """Nothing to release (each view is read and written whole); for symmetry with the other caches."""

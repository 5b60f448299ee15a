"""Opening videos and data folders, with validation.

Data folder format (DESIGN.md)::

    <video>/frames/<name>.jpg|png    sorted by name = temporal order (or pass a video file)
    <video>/labels/<name>.png        optional ground truth, uint8 index masks, 255 = ignore
    <video>/classes.json             {"classes": [{"id", "name", "color"}], "ignore_index": 255}

Every failure raises :class:`hvsa.errors.DataError` (or :class:`InputError` for a missing path)
with a one-line message naming the file and the offending values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hvsa.checks import check_path, parse_size
from hvsa.diskarray import DiskArray
from hvsa.errors import DataError, InputError
from hvsa.progress import progress
from hvsa.video.cache import FrameCache, default_cache_dir
from hvsa.video.classes import Classes
from hvsa.video.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    ImageFolderSource,
    VideoFileSource,
    VideoSource,
    files_digest,
    image_size,
    read_image,
)

__all__ = ["open_video", "open_data", "VideoData", "LabelSource", "resize_labels"]


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an index mask to ``size`` = (W, H) with nearest-neighbour sampling."""
    import cv2

    h, w = labels.shape
    if (w, h) == tuple(size):
        return labels
    return cv2.resize(labels, tuple(size), interpolation=cv2.INTER_NEAREST)


def open_video(
    path: str | os.PathLike,
    size: tuple[int, int] | str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
) -> VideoSource:
    """Open a video file, a folder of frames, or a data folder (its ``frames/``).

    Args:
        path: video file, image folder, or data folder.
        size: working (W, H) or "WxH"; default: longest side 480.
        cache_dir: where decoded frames are cached (default :func:`default_cache_dir`).
        cache: decode every frame once into the disk cache (fast random access).
    """
    p = check_path(path, "video")
    wh = parse_size(size) if not isinstance(size, tuple) else parse_size(size)
    if p.is_dir():
        folder = p / "frames" if (p / "frames").is_dir() else p
        src: VideoSource = ImageFolderSource(folder, wh)
    elif p.suffix.lower() in VIDEO_SUFFIXES:
        src = VideoFileSource(p, wh)
    elif p.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{p}: a single image is not a video; pass its folder")
    else:
        raise InputError(
            f"{p}: unsupported video type {p.suffix!r}; expected a folder of frames or one of"
            f" {', '.join(VIDEO_SUFFIXES)}"
        )
    return FrameCache(src, cache_dir) if cache else src


class LabelSource:
    """Ground-truth index masks of a data folder at the video's working size.

    Validated and cached on open: every label decodes, is single-channel, has the native size of
    the frames, and holds only class ids or the ignore index. Reads are nearest-neighbour resized.
    """

    def __init__(
        self,
        folder: Path,
        frames: VideoSource,
        frame_paths: list[Path] | None,
        classes: Classes,
        cache_dir: Path,
    ) -> None:
        self.folder = folder
        self.classes = classes
        self.size = frames.size
        self.names = list(frames.names)
        by_stem: dict[str, Path] = {}
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                if p.stem in by_stem:
                    raise DataError(f"{p}: two label files share the name {p.stem!r}")
                by_stem[p.stem] = p
        missing = [n for n in self.names if n not in by_stem]
        extra = sorted(set(by_stem) - set(self.names))
        if missing:
            raise DataError(
                f"{folder}: no label for frame(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}"
                f" ({len(missing)} of {len(self.names)}); labels must pair with frames by name"
            )
        if extra:
            raise DataError(
                f"{folder}: label(s) {extra[:5]}{' ...' if len(extra) > 5 else ''} have no frame of the"
                " same name"
            )
        self.paths = [by_stem[n] for n in self.names]
        native = frames.native_size
        for p, fp in zip(self.paths, frame_paths or [None] * len(self.paths)):
            s = image_size(p)
            if s != native:
                other = f" of frame {fp.name}" if fp is not None else " of the frames"
                raise DataError(f"{p}: label size {s[0]}x{s[1]} differs from {native[0]}x{native[1]}{other}")
        key = files_digest(self.paths, self.size, classes.to_dict())
        self._array = DiskArray.open_or_create(
            cache_dir / f"labels-{key[:16]}.u8",
            len(self.names),
            (self.size[1], self.size[0]),
            np.uint8,
            meta={"labels": key},
        )
        for t in progress(self._array.missing(), desc="checking labels", unit="frame"):
            self._array[t] = self._load(t)

    def _load(self, t: int) -> np.ndarray:
        p = self.paths[t]
        labels = read_image(p, mode="index")
        bad = self.classes.unknown_values(labels)
        if bad:
            raise DataError(
                f"{p}: label values {bad[:10]} are not class ids 0..{len(self.classes) - 1}"
                f" or the ignore index {self.classes.ignore_index}"
            )
        return resize_labels(labels, self.size)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, t: int) -> np.ndarray:
        """Labels of frame ``t``: uint8 (H, W), class ids or the ignore index."""
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} out of range for {len(self)} labels")
        return self._array[t]

    def __getitem__(self, t: int) -> np.ndarray:
        return self.read(t)

    def close(self) -> None:
        self._array.close()


@dataclass
class VideoData:
    """A video with its classes and, when present, its ground truth."""

    path: Path
    frames: VideoSource
    classes: Classes | None
    labels: LabelSource | None

    def close(self) -> None:
        if self.labels is not None:
            self.labels.close()
        self.frames.close()

    def __enter__(self) -> "VideoData":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_data(
    path: str | os.PathLike,
    size: tuple[int, int] | str | None = None,
    *,
    classes: Classes | str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> VideoData:
    """Open a data folder (or a bare video) and validate it.

    ``classes`` overrides or supplies ``classes.json``. Labels need classes: a ``labels/`` folder
    without any classes is an error.
    """
    p = check_path(path, "data folder or video")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    frames = open_video(p, size, cache_dir=cache_root / "frames")
    try:
        if isinstance(classes, (str, os.PathLike)):
            classes = Classes.from_json(classes)
        if classes is None and p.is_dir() and (p / "classes.json").is_file():
            classes = Classes.from_json(p / "classes.json")
        labels = None
        if p.is_dir() and (p / "labels").is_dir():
            if classes is None:
                raise DataError(f"{p}: has labels/ but no classes.json; add one or pass --classes")
            src = frames.source if isinstance(frames, FrameCache) else frames
            frame_paths = src.paths if isinstance(src, ImageFolderSource) else None
            labels = LabelSource(p / "labels", frames, frame_paths, classes, cache_root / "labels")
    except BaseException:
        frames.close()
        raise
    return VideoData(path=p, frames=frames, classes=classes, labels=labels)

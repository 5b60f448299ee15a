"""Video sources: one interface, two backends (an image folder and a video file).

Conventions: frames are uint8 RGB arrays of shape (H, W, 3) at the source's *working size*
(``--size WxH``; default: the native size scaled so its longest side is 480, never upscaled).
Frame index ``t`` is 0-based in temporal order.
"""

from __future__ import annotations

import functools
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from hvsa.checks import check_path, working_size
from hvsa.errors import DataError, InputError

__all__ = [
    "VideoSource",
    "ImageFolderSource",
    "VideoFileSource",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "resize_frame",
    "read_image",
    "list_images",
    "file_digest",
    "files_digest",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def file_digest(path: Path) -> str:
    """SHA-1 of the bytes of the file at ``path``.

    Caches are keyed by what a file holds, not by where it lies or when it was written: a video
    copied, moved or checked out anew finds its frames, taps and flows already computed. A file
    is read once per process while its size and modification time stand.
    """
    st = path.stat()
    return _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1 << 16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def files_digest(paths: Sequence[Path], *extra: object) -> str:
    """SHA-1 of the names and contents of ``paths`` in order, and of ``extra`` (e.g. a size)."""
    h = hashlib.sha1()
    for p in paths:
        h.update(f"{p.name}:{file_digest(p)};".encode())
    h.update(repr(extra).encode())
    return h.hexdigest()


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB frame to ``size`` = (W, H): area averaging down, bilinear up."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == tuple(size):
        return frame
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR
    return cv2.resize(frame, tuple(size), interpolation=interp)


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Decode an image file; a corrupt or unreadable file raises :class:`DataError` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if mode == "RGB":
                return np.asarray(im.convert("RGB"))
            if im.mode not in ("L", "P"):
                raise DataError(
                    f"{path}: expected a single-channel index mask (PNG mode L or P), got mode {im.mode}"
                )
            return np.asarray(im)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file disappeared while reading") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) of an image from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot read image header ({e})") from None


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` sorted by name (= temporal order)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class VideoSource(ABC):
    """A finite sequence of RGB frames at a working size.

    Attributes:
        names: one name per frame (file stem, or the zero-padded index for a video file).
        native_size: (W, H) of the stored frames.
        size: working (W, H); every frame returned has shape (size[1], size[0], 3).
        fps: frames per second when known, else None.
    """

    names: list[str]
    native_size: tuple[int, int]
    size: tuple[int, int]
    fps: float | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of the working size."""
        return self.size[1], self.size[0]

    @abstractmethod
    def read(self, t: int) -> np.ndarray:
        """Frame ``t`` at the working size, uint8 (H, W, 3)."""

    def __getitem__(self, t: int) -> np.ndarray:
        return self.read(t)

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start..stop-1`` in order (backends override this with a faster stream)."""
        stop = len(self) if stop is None else stop
        for t in range(start, stop):
            yield self.read(t)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_frames()

    @abstractmethod
    def identity(self) -> str:
        """A string that changes when the frames or the working size change (and only then:
        it does not depend on where the files lie or on their modification times)."""

    def _check_index(self, t: int) -> int:
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} out of range for a video of {len(self)} frames")
        return int(t)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or decoders held by the source."""

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} frames, {self.size[0]}x{self.size[1]})"


class ImageFolderSource(VideoSource):
    """Frames stored as image files in one folder, sorted by name.

    Every frame must have the native size of the first; a frame that differs or does not decode
    raises :class:`DataError` naming the file.
    """

    def __init__(self, folder: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
        self.folder = check_path(folder, "frames folder", kind="dir")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise InputError(
                f"{self.folder}: no frames found; expected image files ({', '.join(IMAGE_SUFFIXES)})"
            )
        self.names = [p.stem for p in self.paths]
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise DataError(f"{self.folder}: several frames share the name(s) {dup[:5]} with different suffixes")
        self.native_size = image_size(self.paths[0])
        for p in self.paths[1:]:
            s = image_size(p)
            if s != self.native_size:
                raise DataError(
                    f"{p}: frame size {s[0]}x{s[1]} differs from {self.native_size[0]}x{self.native_size[1]}"
                    f" of {self.paths[0].name}; all frames of a video must share one size"
                )
        self.size = working_size(self.native_size, size)

    def read(self, t: int) -> np.ndarray:
        return resize_frame(read_image(self.paths[self._check_index(t)]), self.size)

    def identity(self) -> str:
        return files_digest(self.paths, self.size)


class VideoFileSource(VideoSource):
    """Frames decoded from a video file (mp4, avi, mov, ... through OpenCV's FFmpeg backend).

    The frame count is established by one decoding pass at open time (container headers are often
    wrong). Streaming with :meth:`iter_frames` decodes sequentially; :meth:`read` seeks, which is
    slow: wrap the source in a :class:`hvsa.video.cache.FrameCache` for random access.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
        import cv2

        self.path = check_path(path, "video file", kind="file")
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise DataError(f"{self.path}: cannot open video (unsupported or corrupt file)")
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and fps > 0 else None
            ok, first = cap.read()
            if not ok or first is None:
                raise DataError(f"{self.path}: cannot decode any frame (corrupt or empty video)")
            count = 1
            while cap.grab():
                count += 1
        finally:
            cap.release()
        self.native_size = (first.shape[1], first.shape[0])
        self.size = working_size(self.native_size, size)
        self.names = [f"{t:06d}" for t in range(count)]
        self._cap = None
        self._next = 0

    def _open(self):
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise DataError(f"{self.path}: cannot open video")
        return cap

    def _decode(self, cap, t: int) -> np.ndarray:
        import cv2

        ok, bgr = cap.read()
        if not ok or bgr is None:
            raise DataError(f"{self.path}: frame {t} cannot be decoded")
        return resize_frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.size)

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        stop = len(self) if stop is None else stop
        cap = self._open()
        try:
            for _ in range(start):
                cap.grab()
            for t in range(start, stop):
                yield self._decode(cap, t)
        finally:
            cap.release()

    def read(self, t: int) -> np.ndarray:
        import cv2

        t = self._check_index(t)
        if self._cap is None or t != self._next:
            if self._cap is None:
                self._cap = self._open()
            if t < self._next or t > self._next + 32:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, t)
            else:
                for _ in range(t - self._next):
                    self._cap.grab()
        frame = self._decode(self._cap, t)
        self._next = t + 1
        return frame

    def identity(self) -> str:
        return hashlib.sha1(f"{file_digest(self.path)}:{self.size}".encode()).hexdigest()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

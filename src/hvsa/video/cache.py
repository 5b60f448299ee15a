"""On-disk frame and label caches: decode once, then read any frame in about a millisecond."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hvsa.diskarray import DiskArray
from hvsa.progress import progress
from hvsa.video.sources import VideoSource

__all__ = ["FrameCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$HVSA_CACHE_DIR``, else ``$XDG_CACHE_HOME/hvsa``, else ``~/.cache/hvsa``."""
    if os.environ.get("HVSA_CACHE_DIR"):
        return Path(os.environ["HVSA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hvsa"


class FrameCache(VideoSource):
    """A :class:`VideoSource` served from a uint8 (T, H, W, 3) disk array.

    The wrapped source is decoded once, sequentially, the first time the cache is built; a
    rebuilt source (other files, other working size) gets a fresh cache because the cache file is
    keyed by :meth:`VideoSource.identity`. Nothing holds more than one frame in memory.
    """

    def __init__(self, source: VideoSource, cache_dir: str | os.PathLike | None = None) -> None:
        self.source = source
        self.names = list(source.names)
        self.native_size = source.native_size
        self.size = source.size
        self.fps = source.fps
        key = source.identity()
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "frames"
        h, w = self.hw
        self._array = DiskArray.open_or_create(
            folder / f"frames-{key[:16]}.u8", len(self.names), (h, w, 3), np.uint8, meta={"source": key}
        )
        self._fill()

    def _fill(self) -> None:
        missing = self._array.missing()
        if not missing:
            return
        start = missing[0]
        frames = self.source.iter_frames(start, len(self))
        for t, frame in progress(
            zip(range(start, len(self)), frames), total=len(self) - start, desc="decoding frames", unit="frame"
        ):
            if not self._array.is_filled(t):
                self._array[t] = frame

    def read(self, t: int) -> np.ndarray:
        return self._array[self._check_index(t)]

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        stop = len(self) if stop is None else stop
        for t in range(start, stop):
            yield self._array[t]

    def identity(self) -> str:
        return self.source.identity()

    def close(self) -> None:
        self._array.close()
        self.source.close()

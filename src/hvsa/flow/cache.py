"""An on-disk cache of the optical flows between nearby frames of one video.

HVSA's temporal-consistency loss and the TC metric need O_t->t' and O_t'->t for every pair of
frames with 1 <= |t - t'| <= 2. For a long video these do not fit in memory (1000 frames at
480x360 are 2.7 GB of float16 over the four offsets), so :class:`FlowCache` keeps one
:class:`hvsa.diskarray.DiskArray` per offset ``d = t' - t`` (record ``t`` holds O_t->t+d),
computes each flow the first time it is asked for, and reads it back in about a millisecond after
that. Flows are stored as float16 (about 0.03 px resolution at 60 px of motion).

The forward-backward consistency masks at the default threshold (1 px) are cached beside the
flows, bit-packed (an eighth of a byte per pixel), because fine-tuning asks for one at every step
and recomputing it costs more than the step's decoder pass.

The files are named by a hash of :meth:`VideoSource.identity` and the flow backend's config, so
a changed video, working size, backend or preset gets a fresh cache and never a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hvsa.checks import check_positive
from hvsa.diskarray import DiskArray
from hvsa.errors import InputError
from hvsa.flow.consistency import fb_consistency
from hvsa.flow.dis import FlowBackend, make_flow_backend
from hvsa.progress import progress
from hvsa.video.sources import VideoSource

__all__ = ["FlowCache", "default_flow_dir", "DEFAULT_THRESHOLD"]

DEFAULT_THRESHOLD = 1.0  # px, the forward-backward threshold of DESIGN.md (cached masks)


def default_flow_dir() -> Path:
    """``<hvsa cache dir>/flows`` (see :func:`hvsa.video.cache.default_cache_dir`)."""
    from hvsa.video.cache import default_cache_dir

    return default_cache_dir() / "flows"


class FlowCache:
    """Flows O_t->t' for all frames t, t' of ``video`` with 1 <= |t - t'| <= ``max_distance``.

    Args:
        video: the frames (uint8 (H, W, 3) at the video's working size).
        cache_dir: folder for the cache files (default :func:`default_flow_dir`).
        preset: DIS preset ("ultrafast", "fast", "medium"), passed to a backend given by name.
        max_distance: largest frame distance |t' - t| served (HVSA uses 2).
        backend: a registered backend name (see :data:`hvsa.flow.flow_backends`) or a backend
            object (then ``preset`` is unused).

    The cache does not own ``video``: :meth:`close` closes the cache files, not the video.

    Example:
        >>> with FlowCache(video, "cache/") as flows:                  # doctest: +SKIP
        ...     flows.fill()                                          # optional: all at once
        ...     o = flows.get(10, 12)                                 # float32 (H, W, 2)
        ...     ok = flows.reliable(10, 12)                           # bool (H, W)
    """

    def __init__(
        self,
        video: VideoSource,
        cache_dir: str | os.PathLike | None = None,
        preset: str = "medium",
        max_distance: int = 2,
        backend: str | FlowBackend = "dis",
    ) -> None:
        if not isinstance(video, VideoSource):
            raise InputError(f"video: expected a hvsa.video.VideoSource, got {type(video).__name__}")
        self.video = video
        self.max_distance = int(check_positive(max_distance, "max_distance", integer=True))
        self.backend: FlowBackend = make_flow_backend(backend, preset=preset) if isinstance(backend, str) else backend
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_flow_dir()
        self.hw = tuple(video.hw)
        self.length = len(video)
        identity = video.identity()
        config = self.backend.config()
        key_text = json.dumps({"video": identity, "flow": config}, sort_keys=True)
        self.key = hashlib.sha1(key_text.encode()).hexdigest()[:16]
        self.offsets = tuple(d for d in range(-self.max_distance, self.max_distance + 1) if d != 0)
        h, w = self.hw
        self._arrays: dict[int, DiskArray] | None = {}
        self._masks: dict[int, DiskArray] = {}
        try:
            for d in self.offsets:
                self._arrays[d] = DiskArray.open_or_create(
                    self.cache_dir / f"flow-{self.key}-d{d:+d}.f16",
                    self.length,
                    (h, w, 2),
                    np.float16,
                    meta={"video": identity, "flow": config, "offset": d},
                )
                self._masks[d] = DiskArray.open_or_create(
                    self.cache_dir / f"fbmask-{self.key}-d{d:+d}.u8",
                    self.length,
                    (h, -(-w // 8)),
                    np.uint8,
                    meta={"video": identity, "flow": config, "offset": d, "threshold": DEFAULT_THRESHOLD,
                          "what": "forward-backward consistency, np.packbits along rows"},
                )
        except BaseException:
            self.close()
            raise

    # -- pairs -----------------------------------------------------------------------------

    def _check_pair(self, t: int, t2: int) -> int:
        for name, v in (("t", t), ("t2", t2)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise InputError(f"{name}: expected a frame index (int), got {v!r}")
            if not 0 <= v < self.length:
                raise IndexError(f"frame {v} out of range for a video of {self.length} frames")
        d = int(t2) - int(t)
        if not 1 <= abs(d) <= self.max_distance:
            raise InputError(
                f"frame pair ({t}, {t2}): flows are cached only between frames 1 to {self.max_distance}"
                f" apart, these are {abs(d)} apart"
            )
        return d

    def pairs(self) -> Iterator[tuple[int, int]]:
        """Every pair (t, t2) the cache serves, in frame order."""
        for t in range(self.length):
            for d in self.offsets:
                if 0 <= t + d < self.length:
                    yield t, t + d

    def _array(self, d: int) -> DiskArray:
        if self._arrays is None:
            raise InputError("this FlowCache is closed")
        return self._arrays[d]

    def is_cached(self, t: int, t2: int) -> bool:
        """Whether O_t->t2 is already on disk."""
        d = self._check_pair(t, t2)
        return self._array(d).is_filled(t)

    def missing(self) -> list[tuple[int, int]]:
        """Pairs whose flow has not been computed yet."""
        return [(t, t2) for t, t2 in self.pairs() if not self._array(t2 - t).is_filled(t)]

    # -- flows -----------------------------------------------------------------------------

    def _compute(self, t: int, t2: int, frame_t: np.ndarray, frame_t2: np.ndarray) -> np.ndarray:
        stored = np.asarray(self.backend(frame_t, frame_t2)).astype(np.float16)
        self._array(t2 - t)[t] = stored
        return stored.astype(np.float32)

    def get(self, t: int, t2: int) -> np.ndarray:
        """O_t->t2 as float32 (H, W, 2), for 1 <= |t - t2| <= max_distance (either direction).

        Computed and stored on first request; the value returned is always the stored float16
        one, so a later read gives exactly the same array.
        """
        d = self._check_pair(t, t2)
        arr = self._array(d)
        if arr.is_filled(t):
            return arr[t].astype(np.float32)
        return self._compute(int(t), int(t2), self.video.read(int(t)), self.video.read(int(t2)))

    def reliable(self, t: int, t2: int, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """Forward-backward consistent pixels of frame t for the pair (t, t2): bool (H, W).

        See :func:`hvsa.flow.consistency.fb_consistency`; uses the cached O_t->t2 and O_t2->t.
        At the default threshold the mask is computed once and read back from the cache.
        """
        d = self._check_pair(t, t2)
        if threshold != DEFAULT_THRESHOLD:
            return fb_consistency(self.get(t, t2), self.get(t2, t), threshold)
        masks = self._mask_array(d)
        w = self.hw[1]
        if masks.is_filled(t):
            return np.unpackbits(masks[t], axis=1, count=w).view(np.bool_)
        mask = fb_consistency(self.get(t, t2), self.get(t2, t), threshold)
        masks[t] = np.packbits(mask, axis=1)
        return mask

    def _mask_array(self, d: int) -> DiskArray:
        self._array(d)  # raises when closed
        return self._masks[d]

    def fill(self) -> int:
        """Compute every missing flow (with a progress bar); returns how many were computed.

        Frames are read once each, through a sliding window of ``2 * max_distance + 1`` frames.
        """
        todo = self.missing()
        window: dict[int, np.ndarray] = {}
        for t, t2 in progress(todo, total=len(todo), desc="optical flow", unit="field"):
            for s in [s for s in window if s < t - self.max_distance]:
                del window[s]
            for s in (t, t2):
                if s not in window:
                    window[s] = self.video.read(s)
            self._compute(t, t2, window[t], window[t2])
        masks = [(t, t2) for t, t2 in self.pairs() if not self._masks[t2 - t].is_filled(t)]
        for t, t2 in progress(masks, total=len(masks), desc="flow consistency", unit="field"):
            self.reliable(t, t2)
        if todo or masks:
            for arr in [*self._arrays.values(), *self._masks.values()]:
                arr.flush()
        return len(todo)

    # -- resource --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the cache files (not the video)."""
        arrays, self._arrays = self._arrays, None
        masks, self._masks = getattr(self, "_masks", {}), {}
        for arr in [*(arrays or {}).values(), *masks.values()]:
            arr.close()

    def __enter__(self) -> "FlowCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._arrays is None else f"{len(self.missing())} of {sum(1 for _ in self.pairs())} missing"
        return f"FlowCache({self.length} frames, {self.hw[1]}x{self.hw[0]}, max_distance={self.max_distance}, {state})"

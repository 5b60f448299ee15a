"""Sample pools: every frame of a video cut into samples of one granularity (DESIGN.md step 1).

Granularities (text form, :func:`parse_granularity`):

* ``frame``: the whole frame is one sample;
* ``rec<N>``: non-overlapping N x N pixel tiles in raster order; tiles at the right and bottom
  edges are truncated when N does not divide the width or height (N >= 2);
* ``sp<N>``: about N superpixels per frame (OpenCV SLICO on the blurred CIELAB frame), each
  made one 4-connected component (N >= 2).

A frame's pool is a **region map**: int32 (H, W) with values ``0..n_t-1``, one value per sample,
so any per-sample sum or mean is one :func:`numpy.bincount` (:func:`sample_sums`,
:func:`sample_means`). ID spaces (see :mod:`hvsa.types`): frame index ``t``; sample index ``n``
(a region-map value of frame ``t``); sample id ``SampleId(t, n)``; pool index (frame-major flat
position of a sample in the whole video). :class:`Pool` converts between them.

``frame`` and ``rec`` maps are arithmetic (the same for every frame, never stored). Superpixel
maps depend on the pixels: :class:`Pool` computes them lazily (or all at once with
:meth:`Pool.fill`) and caches them on disk keyed by the video's identity and the granularity.
Pool kinds live in the :data:`POOL_KINDS` registry; a new kind declares whether it needs the
frame's pixels and how to build a region map.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hvsa.checks import check_array, check_frame
from hvsa.errors import InputError, ShapeError
from hvsa.registry import Registry
from hvsa.types import SampleId

__all__ = [
    "Granularity",
    "PoolKind",
    "POOL_KINDS",
    "Pool",
    "parse_granularity",
    "frame_region_map",
    "rec_region_map",
    "superpixel_region_map",
    "connected_regions",
    "check_region_map",
    "region_bboxes",
    "sample_areas",
    "sample_sums",
    "sample_means",
]

# Bump when the superpixel algorithm changes: cached maps of older versions are then rebuilt.
_SP_VERSION = 1
# Connected pieces of a superpixel smaller than this fraction of the nominal superpixel area
# (H * W / N) are merged into a neighbour; larger pieces become samples of their own.
_SP_MIN_FRACTION = 0.25
# Cap on the size of one bincount index array in sample_sums (elements).
_SUMS_CHUNK = 1 << 22


# --------------------------------------------------------------------------- granularities


@dataclass(frozen=True)
class PoolKind:
    """One kind of pool, as registered in :data:`POOL_KINDS`.

    Attributes:
        name: registry key and text prefix ("frame", "rec", "sp").
        form: how the text form reads in messages, e.g. ``"rec<N>"``.
        takes_n: whether the granularity carries a number N (then N >= ``min_n``).
        min_n: smallest valid N.
        needs_frames: region maps depend on the frame's pixels (computed per frame and cached
            on disk) instead of only on the frame size (computed once, arithmetically).
        build: ``build(hw, n, frame) -> (region_map int32 (H, W), count)``; ``frame`` is the
            uint8 (H, W, 3) frame when ``needs_frames``, else None.
        meaning: what N means, for messages.
    """

    name: str
    form: str
    takes_n: bool
    min_n: int
    needs_frames: bool
    build: Callable[[tuple[int, int], int | None, np.ndarray | None], tuple[np.ndarray, int]]
    meaning: str = ""


POOL_KINDS: Registry[PoolKind] = Registry("pool granularity")


def _valid_forms() -> str:
    parts = []
    for name in ("frame", "rec", "sp", *[k for k in POOL_KINDS.names() if k not in ("frame", "rec", "sp")]):
        if name not in POOL_KINDS:
            continue
        kind = POOL_KINDS.get(name)
        if kind.takes_n:
            parts.append(f"{kind.form} (N >= {kind.min_n}, {kind.meaning})")
        else:
            parts.append(kind.form)
    return ", ".join(parts)


@dataclass(frozen=True)
class Granularity:
    """A pool granularity: ``kind`` (a :data:`POOL_KINDS` name) and its number ``n``.

    ``str(g)`` gives the text form (``"frame"``, ``"rec40"``, ``"sp200"``) and
    ``parse_granularity(str(g)) == g``.
    """

    kind: str
    n: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in POOL_KINDS:
            raise InputError(f"granularity kind {self.kind!r}: expected one of {_valid_forms()}")
        spec = POOL_KINDS.get(self.kind)
        if spec.takes_n:
            if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < spec.min_n:
                shown = f"{self.kind}{self.n}" if self.n is not None else self.kind
                raise InputError(
                    f"granularity {shown!r}: {spec.form} needs an integer N >= {spec.min_n};"
                    f" expected one of {_valid_forms()}"
                )
            object.__setattr__(self, "n", int(self.n))
        elif self.n is not None:
            raise InputError(
                f"granularity {self.kind}{self.n!r}: {spec.form} takes no number;"
                f" expected one of {_valid_forms()}"
            )

    @property
    def spec(self) -> PoolKind:
        return POOL_KINDS.get(self.kind)

    def __str__(self) -> str:
        return self.kind if self.n is None else f"{self.kind}{self.n}"


_GRANULARITY = re.compile(r"^([a-z]+)(\d*)$")


def parse_granularity(text: str | Granularity) -> Granularity:
    """Parse ``"frame"``, ``"rec<N>"`` or ``"sp<N>"`` (case-insensitive) into a :class:`Granularity`.

    Raises:
        InputError: the text is not one of the valid forms (the message lists them).
    """
    if isinstance(text, Granularity):
        return text
    if not isinstance(text, str):
        raise InputError(f"granularity {text!r}: expected text such as frame, rec40 or sp200")
    m = _GRANULARITY.match(text.strip().lower())
    if not m or m.group(1) not in POOL_KINDS:
        raise InputError(f"granularity {text!r}: expected one of {_valid_forms()}; for example rec40 or sp200")
    kind, digits = m.group(1), m.group(2)
    spec = POOL_KINDS.get(kind)
    if spec.takes_n != bool(digits):
        need = f"needs a number N >= {spec.min_n}" if spec.takes_n else "takes no number"
        raise InputError(f"granularity {text!r}: {spec.form} {need}; expected one of {_valid_forms()}")
    return Granularity(kind, int(digits) if digits else None)


# --------------------------------------------------------------------------- region maps


def frame_region_map(hw: tuple[int, int]) -> np.ndarray:
    """The ``frame`` pool of an (H, W) frame: int32 (H, W) zeros (one sample)."""
    h, w = _check_hw(hw)
    return np.zeros((h, w), np.int32)


def rec_region_map(hw: tuple[int, int], side: int) -> np.ndarray:
    """The ``rec<side>`` pool: int32 (H, W) tile ids in raster order.

    Tile ``(i, j)`` (row ``i``, column ``j``) covers rows ``i*side..`` and columns ``j*side..``;
    its id is ``i * ceil(W / side) + j``. Edge tiles are truncated.
    """
    h, w = _check_hw(hw)
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
        raise InputError(f"tile side: expected a positive integer, got {side!r}")
    cols = -(-w // side)
    rows = np.arange(h, dtype=np.int32) // side
    xs = np.arange(w, dtype=np.int32) // side
    return rows[:, None] * np.int32(cols) + xs[None, :]


def connected_regions(labels: np.ndarray, min_size: int = 1) -> tuple[np.ndarray, int]:
    """Make every region of a label map one 4-connected component.

    Each 4-connected piece of each label value becomes a region of its own; pieces of fewer than
    ``min_size`` pixels are then merged into the neighbouring region with which they share the
    longest border (ties: the smaller region id), repeatedly, so every output region is
    connected. Regions are numbered in raster order of their first pixel. Deterministic.

    Args:
        labels: integer (H, W) label map (any values).
        min_size: pieces smaller than this are merged into a neighbour.

    Returns:
        (region_map int32 (H, W) with values 0..count-1, count)
    """
    import cv2

    labels = check_array(labels, "labels", ndim=2)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ShapeError(f"labels: expected an integer label map, got dtype {labels.dtype}")
    h, w = labels.shape
    if h == 0 or w == 0:
        raise ShapeError(f"labels: expected a non-empty map, got shape {labels.shape}")
    # Components on a doubled grid: even cells are pixels, odd cells between two pixels are 1
    # when both pixels share a label; one 4-connected labelling then respects label borders.
    grid = np.zeros((2 * h - 1, 2 * w - 1), np.uint8)
    grid[::2, ::2] = 1
    grid[::2, 1::2] = labels[:, :-1] == labels[:, 1:]
    grid[1::2, ::2] = labels[:-1, :] == labels[1:, :]
    num, cc = cv2.connectedComponents(grid, connectivity=4, ltype=cv2.CV_32S)
    comp = cc[::2, ::2].astype(np.int64) - 1  # 0..n-1
    n = num - 1
    sizes = np.bincount(comp.ravel(), minlength=n)
    kept = sizes >= min_size
    if not kept.any():
        kept[int(np.argmax(sizes))] = True
    target = np.arange(n)
    if not kept.all():
        a = np.concatenate([comp[:, :-1].ravel(), comp[:-1, :].ravel()])
        b = np.concatenate([comp[:, 1:].ravel(), comp[1:, :].ravel()])
        diff = a != b
        a, b = a[diff], b[diff]
        a, b = np.concatenate([a, b]), np.concatenate([b, a])
        while not kept.all():
            sel = ~kept[a] & kept[b]
            if not sel.any():  # cannot happen on a grid (it is connected); keep the rest as is
                break
            code, length = np.unique(a[sel] * n + target[b[sel]], return_counts=True)
            frag, group = code // n, code % n
            order = np.lexsort((group, -length, frag))
            frag, group = frag[order], group[order]
            first = np.ones(frag.size, bool)
            first[1:] = frag[1:] != frag[:-1]
            target[frag[first]] = group[first]
            kept[frag[first]] = True
    final = target[comp].ravel()
    used, first_at = np.unique(final, return_index=True)
    remap = np.zeros(n, np.int32)
    remap[used[np.argsort(first_at)]] = np.arange(used.size, dtype=np.int32)
    return remap[final].reshape(h, w), int(used.size)


def superpixel_region_map(frame: np.ndarray, n: int, *, iterations: int = 10) -> tuple[np.ndarray, int]:
    """About ``n`` connected superpixels of an RGB frame.

    SLICO (OpenCV ximgproc, adaptive compactness) on the 3x3-blurred CIELAB frame with region
    size ``round(sqrt(H * W / n))``, then :func:`connected_regions` so each superpixel is one
    4-connected component (pieces under a quarter of the nominal area are merged into a
    neighbour). Deterministic.

    Args:
        frame: uint8 (H, W, 3) RGB.
        n: wanted number of superpixels (>= 2); the result has about that many.

    Returns:
        (region_map int32 (H, W) with values 0..count-1, count)
    """
    import cv2

    frame = check_frame(frame)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"superpixels per frame: expected an integer >= 2, got {n!r}")
    h, w = frame.shape[:2]
    size = max(2, int(round(math.sqrt(h * w / n))))
    lab = cv2.cvtColor(cv2.GaussianBlur(frame, (3, 3), 0), cv2.COLOR_RGB2Lab)
    slic = cv2.ximgproc.createSuperpixelSLIC(lab, algorithm=cv2.ximgproc.SLICO, region_size=size, ruler=10.0)
    slic.iterate(iterations)
    slic.enforceLabelConnectivity(25)
    return connected_regions(slic.getLabels(), min_size=max(1, int(_SP_MIN_FRACTION * h * w / n)))


def _check_hw(hw: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in hw)
    except (TypeError, ValueError):
        raise InputError(f"frame size: expected (height, width), got {hw!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"frame size: expected a positive (height, width), got {hw!r}")
    return h, w


def _build_frame(hw: tuple[int, int], n: int | None, frame: np.ndarray | None) -> tuple[np.ndarray, int]:
    return frame_region_map(hw), 1


def _build_rec(hw: tuple[int, int], n: int | None, frame: np.ndarray | None) -> tuple[np.ndarray, int]:
    h, w = _check_hw(hw)
    return rec_region_map(hw, int(n)), (-(-h // int(n))) * (-(-w // int(n)))


def _build_sp(hw: tuple[int, int], n: int | None, frame: np.ndarray | None) -> tuple[np.ndarray, int]:
    if frame is None or frame.shape[:2] != tuple(hw):
        raise InputError(f"sp{n}: superpixels need the frame at the pool's size {tuple(hw)}")
    return superpixel_region_map(frame, int(n))


POOL_KINDS.register("frame")(PoolKind("frame", "frame", False, 0, False, _build_frame))
POOL_KINDS.register("rec")(PoolKind("rec", "rec<N>", True, 2, False, _build_rec, "tile side in pixels"))
POOL_KINDS.register("sp")(PoolKind("sp", "sp<N>", True, 2, True, _build_sp, "superpixels per frame"))


# --------------------------------------------------------------------------- per-sample maths


def check_region_map(
    region_map: object, n: int, name: str = "region_map", hw: tuple[int, int] | None = None
) -> np.ndarray:
    """Check an integer (H, W) region map with values in ``0..n-1``; returns it unchanged."""
    a = check_array(region_map, name, ndim=2)
    if not np.issubdtype(a.dtype, np.integer):
        raise ShapeError(f"{name}: expected an integer region map, got dtype {a.dtype}")
    if hw is not None and a.shape != tuple(hw):
        raise ShapeError(f"{name}: expected shape {tuple(hw)}, got {a.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"{name}: number of samples must be a positive integer, got {n!r}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
        raise ShapeError(f"{name}: values must lie in 0..{n - 1}, got {int(a.min())}..{int(a.max())}")
    return a


def sample_areas(region_map: np.ndarray, n: int) -> np.ndarray:
    """Pixels per sample: int64 (n,)."""
    rm = check_region_map(region_map, n)
    return np.bincount(rm.ravel(), minlength=n)


def sample_sums(region_map: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum ``values`` over each sample's pixels.

    Args:
        region_map: integer (H, W), values 0..n-1.
        values: (H, W) -> result (n,); or (C, H, W) -> result (n, C). Any real dtype (bool too).
        n: number of samples.

    Returns:
        float64 (n,) or (n, C). Samples without pixels sum to 0.
    """
    rm = check_region_map(region_map, n)
    v = np.asarray(values)
    if v.ndim not in (2, 3) or v.shape[-2:] != rm.shape:
        raise ShapeError(
            f"values: expected shape {rm.shape} or (C, {rm.shape[0]}, {rm.shape[1]}) to match region_map,"
            f" got {v.shape}"
        )
    idx = rm.ravel().astype(np.intp, copy=False)
    if v.ndim == 2:
        return np.bincount(idx, weights=v.ravel().astype(np.float64, copy=False), minlength=n)
    c, p = v.shape[0], idx.size
    flat = v.reshape(c, p)
    out = np.empty((n, c), np.float64)
    step = max(1, _SUMS_CHUNK // max(p, 1))
    for c0 in range(0, c, step):  # a loop over channel chunks, bounding the index array's size
        c1 = min(c, c0 + step)
        big = (idx[None, :] + (np.arange(c1 - c0, dtype=np.intp) * n)[:, None]).ravel()
        weights = flat[c0:c1].ravel().astype(np.float64, copy=False)
        s = np.bincount(big, weights=weights, minlength=n * (c1 - c0))
        out[:, c0:c1] = s.reshape(c1 - c0, n).T
    return out


def sample_means(region_map: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``values`` over each sample's pixels: float64 (n,) or (n, C) (see
    :func:`sample_sums`). Samples without pixels get NaN. The caller resizes ``values`` (for
    example a feature map) or the region map so both share (H, W)."""
    sums = sample_sums(region_map, values, n)
    areas = np.bincount(region_map.ravel(), minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / (areas if sums.ndim == 1 else areas[:, None])


def region_bboxes(region_map: np.ndarray, n: int) -> np.ndarray:
    """Bounding box of every sample: int64 (n, 4) rows ``(x0, y0, x1, y1)``, x1 and y1 exclusive
    (``region_map[y0:y1, x0:x1]`` holds the whole sample). Samples without pixels get (0, 0, 0, 0)."""
    rm = check_region_map(region_map, n)
    h, w = rm.shape
    idx = rm.ravel()
    xs = np.tile(np.arange(w, dtype=np.int64), h)
    ys = np.repeat(np.arange(h, dtype=np.int64), w)
    x0 = np.full(n, w, np.int64)
    y0 = np.full(n, h, np.int64)
    x1 = np.full(n, -1, np.int64)
    y1 = np.full(n, -1, np.int64)
    np.minimum.at(x0, idx, xs)
    np.minimum.at(y0, idx, ys)
    np.maximum.at(x1, idx, xs)
    np.maximum.at(y1, idx, ys)
    out = np.stack([x0, y0, x1 + 1, y1 + 1], axis=1)
    out[x1 < 0] = 0
    return out


# --------------------------------------------------------------------------- the pool object


class Pool:
    """The samples of a video at one granularity.

    Args:
        granularity: a :class:`Granularity` or its text ("frame", "rec40", "sp200").
        video: a :class:`hvsa.video.VideoSource` (its ``len``, ``hw``, ``read(t)`` and
            ``identity()`` are used; frames are read only for superpixel pools).
        cache_dir: folder of the superpixel map cache (default: ``<hvsa cache>/pools``).

    Region maps of ``frame`` and ``rec`` pools are computed once, arithmetically. Superpixel maps
    are computed when first asked for (or all at once by :meth:`fill`) and kept in a
    :class:`hvsa.diskarray.DiskArray` keyed by ``video.identity()`` and the granularity, so a
    reopened pool does not recompute them. Anything that needs every frame's sample count
    (:attr:`counts`, ``len``, pool-index conversions) fills the cache first.
    """

    def __init__(
        self, granularity: str | Granularity, video, *, cache_dir: str | os.PathLike | None = None
    ) -> None:
        self.granularity = parse_granularity(granularity)
        self.kind = self.granularity.spec
        self.video = video
        self.num_frames = len(video)
        self.hw: tuple[int, int] = _check_hw(video.hw)
        self._maps = None
        self._count_store = None
        self._fixed: np.ndarray | None = None
        self._counts = np.full(self.num_frames, -1, np.int64)
        if not self.kind.needs_frames:
            fixed, count = self.kind.build(self.hw, self.granularity.n, None)
            fixed.setflags(write=False)
            self._fixed = fixed
            self._counts[:] = count
            return
        from hvsa.diskarray import DiskArray
        from hvsa.video.cache import default_cache_dir

        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "pools"
        key = video.identity()
        meta = {"source": key, "granularity": str(self.granularity), "version": _SP_VERSION}
        stem = f"{self.granularity}-{key[:16]}"
        self._maps = DiskArray.open_or_create(
            folder / f"{stem}.i32", self.num_frames, self.hw, np.int32, meta=meta
        )
        self._count_store = DiskArray.open_or_create(
            folder / f"{stem}.counts.i32", self.num_frames, (1,), np.int32, meta=meta
        )
        for t in range(self.num_frames):
            if self._count_store.is_filled(t) and self._maps.is_filled(t):
                self._counts[t] = int(self._count_store[t][0])

    # ---- region maps

    def _frame_index(self, t: int) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t!r} out of range for a pool of {self.num_frames} frames")
        return int(t)

    def region_map(self, t: int) -> np.ndarray:
        """Region map of frame ``t``: int32 (H, W), values ``0..num_samples(t)-1``.

        For ``frame`` and ``rec`` pools this is one shared read-only array.
        """
        t = self._frame_index(t)
        if self._fixed is not None:
            return self._fixed
        if self._maps.is_filled(t):
            rm = self._maps[t]
            if self._counts[t] < 0:
                self._counts[t] = int(rm.max()) + 1
                self._count_store[t] = np.array([self._counts[t]], np.int32)
            return rm
        rm, count = self.kind.build(self.hw, self.granularity.n, self.video.read(t))
        self._maps[t] = rm
        self._count_store[t] = np.array([count], np.int32)
        self._counts[t] = count
        return rm

    def fill(self) -> None:
        """Compute every missing region map now (with a progress bar)."""
        if self._fixed is not None:
            return
        from hvsa.progress import progress

        missing = [t for t in range(self.num_frames) if self._counts[t] < 0]
        for t in progress(missing, desc=f"{self.granularity} pool", unit="frame"):
            self.region_map(t)

    def num_samples(self, t: int) -> int:
        """Number of samples of frame ``t`` (computes its region map if needed)."""
        t = self._frame_index(t)
        if self._counts[t] < 0:
            self.region_map(t)
        return int(self._counts[t])

    @property
    def counts(self) -> np.ndarray:
        """Samples per frame: int64 (T,)."""
        if (self._counts < 0).any():
            self.fill()
        return self._counts.copy()

    @property
    def offsets(self) -> np.ndarray:
        """Pool index of each frame's first sample, plus the total: int64 (T + 1,)."""
        c = self.counts
        out = np.zeros(self.num_frames + 1, np.int64)
        np.cumsum(c, out=out[1:])
        return out

    def __len__(self) -> int:
        """Number of samples in the whole video (the size of the pool-index space)."""
        return int(self.counts.sum())

    # ---- id conversions

    def pool_index(self, sid: SampleId) -> int:
        """Pool index of sample id ``sid``."""
        return int(self.pool_indices(np.array([sid.t]), np.array([sid.n]))[0])

    def sample_id(self, i: int) -> SampleId:
        """Sample id of pool index ``i``."""
        t, n = self.sample_indices(np.array([i]))
        return SampleId(int(t[0]), int(n[0]))

    def pool_indices(self, t: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`pool_index`: int arrays ``t``, ``n`` (same shape) -> int64 pool indices."""
        t = np.asarray(t, dtype=np.int64)
        n = np.asarray(n, dtype=np.int64)
        if t.shape != n.shape:
            raise ShapeError(f"t and n must share a shape, got {t.shape} and {n.shape}")
        if t.size and (t.min() < 0 or t.max() >= self.num_frames):
            raise IndexError(f"frame index out of range 0..{self.num_frames - 1}")
        counts = self.counts
        if n.size and (n.min() < 0 or (n >= counts[t]).any()):
            bad = np.flatnonzero((n < 0) | (n >= counts[t]))[0]
            raise IndexError(
                f"sample {int(n.flat[bad])} out of range for frame {int(t.flat[bad])}"
                f" of {int(counts[t.flat[bad]])} samples"
            )
        return self.offsets[t] + n

    def sample_indices(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`sample_id`: pool indices -> (t, n) int64 arrays."""
        i = np.asarray(i, dtype=np.int64)
        offsets = self.offsets
        if i.size and (i.min() < 0 or i.max() >= offsets[-1]):
            raise IndexError(f"pool index out of range 0..{int(offsets[-1]) - 1}")
        t = np.searchsorted(offsets, i, side="right") - 1
        return t, i - offsets[t]

    # ---- samples

    def _check_sid(self, sid: SampleId) -> np.ndarray:
        rm = self.region_map(sid.t)
        if not 0 <= sid.n < self.num_samples(sid.t):
            raise IndexError(f"sample {sid} out of range: frame {sid.t} has {self.num_samples(sid.t)} samples")
        return rm

    def sample_mask(self, sid: SampleId) -> np.ndarray:
        """bool (H, W), True on the pixels of sample ``sid``."""
        return self._check_sid(sid) == sid.n

    def sample_bbox(self, sid: SampleId) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of sample ``sid``, x1 and y1 exclusive."""
        mask = self.sample_mask(sid)
        cols = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1

    def bboxes(self, t: int) -> np.ndarray:
        """Bounding boxes of every sample of frame ``t``: int64 (n_t, 4) (see :func:`region_bboxes`)."""
        return region_bboxes(self.region_map(t), self.num_samples(t))

    def areas(self, t: int) -> np.ndarray:
        """Pixels per sample of frame ``t``: int64 (n_t,)."""
        return np.bincount(self.region_map(t).ravel(), minlength=self.num_samples(t))

    # ---- resources

    def close(self) -> None:
        for store in (self._maps, self._count_store):
            if store is not None:
                store.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pool({self.granularity}, {self.num_frames} frames, {self.hw[1]}x{self.hw[0]})"

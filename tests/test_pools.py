"""Sample pools: granularity parsing, region maps, per-sample sums and the Pool object."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hvsa.errors import InputError, ShapeError
from hvsa.pools import (
    POOL_KINDS,
    Granularity,
    Pool,
    connected_regions,
    frame_region_map,
    parse_granularity,
    rec_region_map,
    region_bboxes,
    sample_means,
    sample_sums,
    superpixel_region_map,
)
from hvsa.types import SampleId
from hvsa.video.sources import VideoSource


class ArraySource(VideoSource):
    """An in-memory video for tests; counts reads."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.names = [f"{t:03d}" for t in range(len(frames))]
        h, w = frames[0].shape[:2]
        self.native_size = self.size = (w, h)
        self.reads = 0

    def read(self, t: int) -> np.ndarray:
        self.reads += 1
        return self.frames[self._check_index(t)]

    def identity(self) -> str:
        h = hashlib.sha1()
        for f in self.frames:
            h.update(f.tobytes())
        return h.hexdigest()


def blobs_frame(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour image with a few flat rectangles: superpixels have edges to follow."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    frame = np.stack([xs * 255 // w, ys * 255 // h, (xs + ys) * 127 // (h + w)], axis=-1).astype(np.uint8)
    for _ in range(4):
        y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 10)
        frame[y0 : y0 + rng.integers(5, h // 2), x0 : x0 + rng.integers(5, w // 2)] = rng.integers(0, 256, 3)
    return frame


def is_connected(mask: np.ndarray) -> bool:
    import cv2

    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)[0] == 2


# --------------------------------------------------------------------------- granularities


@pytest.mark.parametrize("text", ["frame", "rec2", "rec16", "rec40", "rec100", "sp2", "sp200"])
def test_granularity_round_trip(text):
    g = parse_granularity(text)
    assert str(g) == text
    assert parse_granularity(str(g)) == g
    assert parse_granularity(g) is g


def test_granularity_fields_and_case():
    assert parse_granularity("REC40") == Granularity("rec", 40)
    assert parse_granularity(" sp200 ") == Granularity("sp", 200)
    assert parse_granularity("frame") == Granularity("frame")
    assert set(POOL_KINDS.names()) == {"frame", "rec", "sp"}


@pytest.mark.parametrize("text", ["", "rec", "rec1", "rec0", "sp1", "sp", "frame2", "tile16", "rec-4", "rec 4", "4"])
def test_bad_granularity_lists_valid_forms(text):
    with pytest.raises(InputError) as e:
        parse_granularity(text)
    msg = str(e.value)
    assert "frame" in msg and "rec<N>" in msg and "sp<N>" in msg and "N >= 2" in msg


def test_bad_granularity_objects():
    with pytest.raises(InputError):
        Granularity("rec", 1)
    with pytest.raises(InputError):
        Granularity("frame", 3)
    with pytest.raises(InputError):
        Granularity("hex", 3)
    with pytest.raises(InputError):
        parse_granularity(40)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- region maps


def test_rec_tiles_and_truncated_edges():
    rm = rec_region_map((10, 7), 4)  # 3 rows x 2 columns of tiles
    assert rm.dtype == np.int32 and rm.shape == (10, 7)
    assert rm.max() + 1 == 6
    # full 4x4, right edge 4x3, ..., bottom row 2x4 and 2x3
    assert np.bincount(rm.ravel()).tolist() == [16, 12, 16, 12, 8, 6]
    assert (rm[0:4, 0:4] == 0).all() and (rm[0:4, 4:7] == 1).all() and (rm[8:10, 4:7] == 5).all()
    assert region_bboxes(rm, 6).tolist() == [
        [0, 0, 4, 4], [4, 0, 7, 4], [0, 4, 4, 8], [4, 4, 7, 8], [0, 8, 4, 10], [4, 8, 7, 10],
    ]


def test_rec_exact_multiple_and_big_tiles():
    assert np.bincount(rec_region_map((32, 48), 16).ravel()).tolist() == [256] * 6
    assert (rec_region_map((5, 5), 100) == 0).all()
    assert (frame_region_map((3, 4)) == 0).all()


def test_connected_regions_splits_and_merges():
    labels = np.zeros((6, 8), np.int64)
    labels[:, 3:5] = 1  # column of 1s splits label 0 into two pieces
    labels[0, 0] = 2  # a one-pixel piece
    rm, n = connected_regions(labels)
    assert n == 4 and rm[0, 0] == 0 and rm[0, 1] == 1 and rm[0, 3] == 2 and rm[0, 7] == 3  # raster order
    rm, n = connected_regions(labels, min_size=2)  # the single pixel joins its neighbour
    assert n == 3 and rm[0, 0] == rm[1, 0]
    for i in range(n):
        assert is_connected(rm == i)


def test_superpixels_connected_about_n_and_deterministic():
    frame = blobs_frame(72, 96, seed=3)
    for n in (8, 30, 60):
        rm, count = superpixel_region_map(frame, n)
        assert rm.dtype == np.int32 and rm.shape == (72, 96)
        assert rm.min() == 0 and rm.max() == count - 1
        assert 0.5 * n <= count <= 1.5 * n
        assert all(is_connected(rm == i) for i in range(count))
        again, _ = superpixel_region_map(frame, n)
        assert np.array_equal(rm, again)


# --------------------------------------------------------------------------- per-sample maths


def naive_sums(rm, values, n):
    out = np.zeros((n,) + values.shape[:-2])
    for i in range(n):
        for y, x in zip(*np.nonzero(rm == i)):
            out[i] += values[..., y, x]
    return out


def test_sample_sums_equal_naive_loop():
    rng = np.random.default_rng(0)
    rm = rec_region_map((9, 11), 4)
    n = int(rm.max()) + 1
    v2 = rng.random((9, 11))
    v3 = rng.random((5, 9, 11)).astype(np.float32)
    assert np.allclose(sample_sums(rm, v2, n), naive_sums(rm, v2, n))
    assert sample_sums(rm, v3, n).shape == (n, 5)
    assert np.allclose(sample_sums(rm, v3, n), naive_sums(rm, v3, n))
    areas = np.bincount(rm.ravel())
    assert np.allclose(sample_means(rm, v3, n), naive_sums(rm, v3, n) / areas[:, None])
    assert np.allclose(sample_means(rm, v2, n), naive_sums(rm, v2, n) / areas)
    assert np.array_equal(sample_sums(rm, np.ones((9, 11), bool), n), areas)


def test_sample_sums_chunked_equals_whole(monkeypatch):
    import hvsa.pools as pools

    rng = np.random.default_rng(1)
    rm = rec_region_map((8, 8), 3)
    v = rng.random((7, 8, 8))
    whole = sample_sums(rm, v, 9)
    monkeypatch.setattr(pools, "_SUMS_CHUNK", 100)  # one or two channels per bincount
    assert np.allclose(sample_sums(rm, v, 9), whole)


def test_sample_means_empty_sample_is_nan():
    rm = np.zeros((2, 2), np.int32)
    out = sample_means(rm, np.ones((2, 2)), 2)
    assert out[0] == 1 and np.isnan(out[1])


def test_sample_sums_errors():
    rm = rec_region_map((4, 4), 2)
    with pytest.raises(ShapeError):
        sample_sums(rm, np.ones((4, 5)), 4)
    with pytest.raises(ShapeError):
        sample_sums(rm, np.ones((4, 4)), 3)  # values 0..3 do not fit 3 samples
    with pytest.raises(ShapeError):
        sample_sums(rm.astype(np.float32), np.ones((4, 4)), 4)


def test_region_bboxes_match_masks():
    rm, n = superpixel_region_map(blobs_frame(40, 50, seed=2), 12)
    boxes = region_bboxes(rm, n)
    for i in range(n):
        ys, xs = np.nonzero(rm == i)
        assert boxes[i].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert region_bboxes(np.zeros((3, 3), np.int32), 2)[1].tolist() == [0, 0, 0, 0]


# --------------------------------------------------------------------------- the Pool object


def test_rec_pool_counts_and_ids(tmp_path):
    video = ArraySource([np.zeros((10, 7, 3), np.uint8)] * 3)
    with Pool("rec4", video, cache_dir=tmp_path) as pool:
        assert pool.hw == (10, 7) and pool.num_frames == 3
        assert pool.counts.tolist() == [6, 6, 6] and len(pool) == 18
        assert pool.offsets.tolist() == [0, 6, 12, 18]
        rm = pool.region_map(1)
        assert not rm.flags.writeable
        assert np.array_equal(pool.areas(0), [16, 12, 16, 12, 8, 6])
        assert pool.sample_bbox(SampleId(2, 5)) == (4, 8, 7, 10)  # truncated corner tile
        assert pool.sample_mask(SampleId(0, 1)).sum() == 12
        assert pool.pool_index(SampleId(1, 2)) == 8
        assert pool.sample_id(8) == SampleId(1, 2)
        assert video.reads == 0  # rec maps never read frames
        with pytest.raises(IndexError):
            pool.pool_index(SampleId(1, 6))
        with pytest.raises(IndexError):
            pool.sample_id(18)
        with pytest.raises(IndexError):
            pool.region_map(3)
    assert not list(tmp_path.iterdir())  # nothing stored for arithmetic pools


def test_frame_pool(tmp_path):
    video = ArraySource([np.zeros((6, 8, 3), np.uint8)] * 4)
    pool = Pool(Granularity("frame"), video, cache_dir=tmp_path)
    assert len(pool) == 4 and pool.num_samples(3) == 1
    assert pool.sample_bbox(SampleId(3, 0)) == (0, 0, 8, 6)
    assert pool.sample_id(2) == SampleId(2, 0)


def test_sp_pool_cached_on_disk_and_round_trip(tmp_path):
    frames = [blobs_frame(48, 64, seed=s) for s in range(3)]
    video = ArraySource(frames)
    pool = Pool("sp20", video, cache_dir=tmp_path)
    first = pool.region_map(1)  # lazily computed
    assert video.reads == 1
    pool.fill()
    assert video.reads == 3
    counts = pool.counts
    assert all(10 <= c <= 30 for c in counts)
    for t in range(3):
        rm = pool.region_map(t)
        assert rm.max() + 1 == counts[t]
        assert all(is_connected(rm == i) for i in range(counts[t]))
    pool.close()

    again = ArraySource(frames)
    with Pool("sp20", again, cache_dir=tmp_path) as pool2:
        assert np.array_equal(pool2.region_map(1), first)
        assert pool2.counts.tolist() == counts.tolist()
        assert again.reads == 0  # served from the disk cache
        # pool index <-> sample id, scalar and vectorised
        total = len(pool2)
        t, n = pool2.sample_indices(np.arange(total))
        assert np.array_equal(pool2.pool_indices(t, n), np.arange(total))
        for i in (0, 7, total - 1):
            sid = pool2.sample_id(i)
            assert pool2.pool_index(sid) == i
            assert sid == SampleId(int(t[i]), int(n[i]))
        assert t.tolist() == sorted(t.tolist())  # frame-major

    with Pool("sp21", ArraySource(frames), cache_dir=tmp_path) as other:  # another N, another cache
        other.region_map(0)
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".i32"]) == 4  # maps + counts, twice

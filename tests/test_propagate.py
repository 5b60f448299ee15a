"""Label propagation and nearest-frame copying on tiny clips with exact flow and exact answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hvsa.errors import InputError
from hvsa.flow.consistency import fb_consistency
from hvsa.propagate import PropagationConfig, carry, fill_unreached, fuse, propagate

G = 0.98  # PropagationConfig().decay
B = 0.3  # PropagationConfig().broken


class _Clip:
    """A :class:`hvsa.propagate.PropagationInputs` over in-memory arrays.

    ``flow(t, s)`` comes from ``flow_fn``; ``reliable`` is the real forward-backward check of
    those flows unless masks are given explicitly.
    """

    def __init__(self, gt: np.ndarray, annotated: dict[int, np.ndarray], flow_fn, reliable=None) -> None:  # noqa: ANN001
        self.gt = gt
        self.num_frames = len(gt)
        self.frame_hw = gt.shape[1:]
        self._annotated = annotated
        self._flow = flow_fn
        self._reliable = reliable
        self.flow_calls = 0

    def annotation(self, t: int) -> np.ndarray | None:
        return self._annotated.get(t)

    def flow(self, t: int, s: int) -> np.ndarray:
        assert 1 <= abs(t - s) <= 2
        self.flow_calls += 1
        return self._flow(t, s)

    def reliable(self, t: int, s: int) -> np.ndarray:
        if self._reliable is not None:
            return self._reliable(t, s)
        return fb_consistency(self._flow(t, s), self._flow(s, t))


def _square_clip(frames: int = 6, hw: tuple[int, int] = (12, 24)) -> tuple[np.ndarray, callable]:
    """A 4x4 square of class 1 moving 2 px right per frame over a static background of class 0
    (left half) and 2 (right half). Exact flow: the square's pixels move (2 (s - t), 0), the
    background's do not move."""
    h, w = hw
    gt = np.zeros((frames, h, w), np.uint8)
    gt[:, :, w // 2 :] = 2
    inside = np.zeros((frames, h, w), bool)
    for t in range(frames):
        inside[t, 4:8, 2 + 2 * t : 6 + 2 * t] = True
    gt[inside] = 1

    def flow(t: int, s: int) -> np.ndarray:
        f = np.zeros((h, w, 2), np.float32)
        f[inside[t], 0] = 2.0 * (s - t)
        return f

    return gt, flow, inside


def _run(clip: _Clip, **kw) -> tuple[np.ndarray, np.ndarray]:
    out = list(propagate(clip, PropagationConfig(**kw)))
    assert [t for t, _, _ in out] == list(range(clip.num_frames))
    return np.stack([o[1] for o in out]), np.stack([o[2] for o in out])


def test_annotating_both_ends_labels_every_frame_exactly() -> None:
    gt, flow, _ = _square_clip()
    labels, conf = _run(_Clip(gt, {0: gt[0], 5: gt[5]}, flow))
    np.testing.assert_array_equal(labels, gt)
    assert (conf[0] == 1).all() and (conf[5] == 1).all()
    assert ((conf > 0) & (conf <= 1)).all()


def test_one_annotated_frame_carries_the_square_and_smears_what_it_uncovers() -> None:
    """Forward only: the square and the untouched background are exact with confidence
    decay**t; the background the square uncovers has no reliable chain, so it keeps the square's
    label, discounted once by ``broken``. That smear is what a second annotation removes."""
    gt, flow, inside = _square_clip()
    labels, conf = _run(_Clip(gt, {0: gt[0]}, flow))
    for t in range(6):
        swept = inside[: t + 1].any(0) & ~inside[t]
        np.testing.assert_array_equal(labels[t][~swept], gt[t][~swept])
        assert (labels[t][swept] == 1).all()
        np.testing.assert_allclose(conf[t][~swept], G**t, rtol=1e-3)  # float16 precision
        np.testing.assert_allclose(conf[t][swept], B * G**t, rtol=1e-3)  # float16 precision


def test_a_chain_skips_a_frame_where_it_is_occluded() -> None:
    """Static scene; region R is hidden in frame 1 (unreliable to and from frame 1). Frame 2
    takes R from frame 0 over the distance-2 flow, confidence decay**2 (not decay**2 * broken**2
    through frame 1). With max_distance 1 it must go through frame 1."""
    gt = np.zeros((4, 6, 8), np.uint8)
    gt[:, :, 4:] = 3
    hidden = np.zeros((6, 8), bool)
    hidden[2:4, 3:6] = True

    def reliable(t: int, s: int) -> np.ndarray:
        return ~hidden if 1 in (t, s) else np.ones((6, 8), bool)

    clip = _Clip(gt, {0: gt[0]}, lambda t, s: np.zeros((6, 8, 2), np.float32), reliable)
    labels, conf = _run(clip)
    np.testing.assert_array_equal(labels, gt)
    np.testing.assert_allclose(conf[1][hidden], G * B, rtol=1e-3)  # float16 precision
    np.testing.assert_allclose(conf[2][hidden], G**2, rtol=1e-3)  # float16 precision
    np.testing.assert_allclose(conf[3][hidden], G**3, rtol=1e-3)  # float16 precision
    _, conf1 = _run(clip, max_distance=1)
    np.testing.assert_allclose(conf1[2][hidden], G**2 * B**2, rtol=1e-3)  # float16 precision


def test_copy_takes_the_nearest_annotated_frame_per_pixel() -> None:
    """Frame 1 annotated 3 everywhere, frame 5 annotated 4 except a patch: every pixel takes the
    nearest-in-time annotation covering it (ties: the earlier frame); no flow is read."""
    h, w = 5, 6
    gt = np.zeros((7, h, w), np.uint8)
    a1 = np.full((h, w), 3, np.uint8)
    a5 = np.full((h, w), 4, np.uint8)
    patch = np.zeros((h, w), bool)
    patch[1:3, 2:5] = True
    a5[patch] = 255
    clip = _Clip(gt, {1: a1, 5: a5}, lambda t, s: pytest.fail("copy must not read flows"))
    labels, conf = _run(clip, follow_flow=False)
    expect = [3, 3, 3, 3, 4, 4, 4]  # frame 3 is 2 from both: the earlier wins
    for t, value in enumerate(expect):
        np.testing.assert_array_equal(labels[t][~patch], value)
    for t in range(7):  # under the patch only frame 1 ever annotated
        np.testing.assert_array_equal(labels[t][patch], 3)
    assert conf[3][~patch] == pytest.approx(0.0, abs=1e-3)  # a tie: no margin
    assert conf[0][~patch] == pytest.approx(G, abs=1e-3)  # only the backward chain reaches frame 0
    assert conf[4][~patch] == pytest.approx(G - G**3, abs=1e-3)  # they disagree: the margin
    assert clip.flow_calls == 0


def test_disk_scratch_gives_the_same_labels(tmp_path: Path) -> None:
    gt, flow, _ = _square_clip(frames=7)
    clip = _Clip(gt, {1: gt[1], 6: gt[6]}, flow)
    mem = list(propagate(clip))
    disk = []
    for item in propagate(clip, scratch=tmp_path):
        disk.append(item)
        assert len(list(tmp_path.iterdir())) == 6  # the scratch lives on disk meanwhile
    for (t, la, ca), (u, lb, cb) in zip(mem, disk):
        assert t == u
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ca, cb)
    assert not list(tmp_path.iterdir())  # and is gone once the last frame is out

    stopped = propagate(clip, scratch=tmp_path)
    next(stopped)
    stopped.close()  # a consumer that stops early (or raises) leaves nothing behind either
    assert not list(tmp_path.iterdir())


def test_carry_moves_labels_along_the_flow_and_discounts_broken_steps() -> None:
    labels = np.array([[0, 1, 2, 3]], np.uint8)
    conf = np.array([[1.0, 1.0, 0.5, 1.0]], np.float32)
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, :3, 0] = 1  # x takes the state of x + 1; the last pixel stays
    reliable = np.array([[True, True, False, True]])
    out_labels, out_conf = carry(labels, conf, flow, reliable, factor=0.5, broken=0.2)
    np.testing.assert_array_equal(out_labels, [[1, 2, 3, 3]])
    np.testing.assert_allclose(out_conf, [[0.5, 0.25, 0.1, 0.5]])
    # broken = 0 ends a chain at its first unreliable step: the pixel becomes unknown
    out_labels, out_conf = carry(labels, conf, flow, reliable, factor=0.5, broken=0.0)
    np.testing.assert_array_equal(out_labels, [[1, 2, 255, 3]])
    assert out_conf[0, 2] == 0


def test_fuse_keeps_the_more_confident_label_with_a_margin() -> None:
    la = np.array([1, 1, 2, 255, 4], np.uint8)
    ca = np.array([0.5, 0.9, 0.3, 0.0, 0.6], np.float32)
    lb = np.array([1, 2, 3, 5, 6], np.uint8)
    cb = np.array([0.5, 0.4, 0.7, 0.8, 0.6], np.float32)
    labels, conf = fuse(la, ca, lb, cb)
    np.testing.assert_array_equal(labels, [1, 1, 3, 5, 4])  # a tie goes to the first
    np.testing.assert_allclose(conf, [0.75, 0.5, 0.4, 0.8, 0.0], atol=1e-6)


def test_fill_unreached_takes_the_nearest_labelled_pixel() -> None:
    labels = np.full((3, 6), 255, np.uint8)
    labels[1, 0] = 1
    labels[:, 5] = 2
    labels[2, 2] = 0
    np.testing.assert_array_equal(
        fill_unreached(labels),
        [[1, 1, 0, 2, 2, 2],
         [1, 1, 0, 0, 2, 2],
         [1, 0, 0, 0, 2, 2]],
    )  # fmt: skip
    np.testing.assert_array_equal(fill_unreached(np.full((2, 2), 255, np.uint8), default=7), 7)


def test_no_annotation_gives_the_default_with_zero_confidence() -> None:
    gt, flow, _ = _square_clip(frames=3)
    labels, conf = _run(_Clip(gt, {}, flow), default=2)
    assert (labels == 2).all() and (conf == 0).all()


@pytest.mark.parametrize(
    ("kw", "needle"),
    [({"decay": 0.0}, "decay"), ({"broken": 1.5}, "broken"), ({"max_distance": 3}, "max_distance")],
)
def test_bad_settings_are_rejected(kw: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        PropagationConfig(**kw)


@pytest.mark.slow
def test_a_long_video_streams_in_bounded_memory(tmp_path: Path) -> None:
    """1000 frames at 480x360 with flows made on the fly: resident memory grows by far less
    than one frame's probabilities for every frame would take (1000 * 480 * 360 * 4 bytes = 0.7
    GB per class)."""
    import psutil

    h, w, n = 360, 480, 1000
    ann = np.zeros((h, w), np.uint8)
    ann[:, w // 2 :] = 1

    class _Long:
        num_frames = n
        frame_hw = (h, w)

        def annotation(self, t: int) -> np.ndarray | None:
            return ann if t % 100 == 0 else None

        def flow(self, t: int, s: int) -> np.ndarray:
            f = np.zeros((h, w, 2), np.float32)
            f[..., 0] = 0.5 * (s - t)
            return f

        def reliable(self, t: int, s: int) -> np.ndarray:
            return np.ones((h, w), bool)

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    count = 0
    for _t, labels, _conf in propagate(_Long(), scratch=tmp_path):
        count += 1
        peak = max(peak, proc.memory_info().rss)
        assert labels.shape == (h, w)
    assert count == n
    print(f"resident memory grew by {(peak - base) / 2**20:.0f} MiB")
    assert peak - base < 400 * 2**20, f"grew by {(peak - base) / 2**20:.0f} MiB"

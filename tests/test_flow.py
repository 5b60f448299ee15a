"""Optical flow: DIS backend, warping, forward-backward consistency, .flo files, flow cache, evaluation."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hvsa.flow
from hvsa.errors import DataError, InputError, ShapeError, UnknownNameError
from hvsa.flow import (
    DISFlow,
    FlowCache,
    compute_flow,
    endpoint_error,
    evaluate_folder,
    fb_consistency,
    fb_residual,
    flow_backends,
    make_flow_backend,
    occlusion_recall,
    read_flo,
    summarize,
    target_in_frame,
    visible_reliability,
    warp,
    warp_torch,
    write_flo,
)
from hvsa.video import VideoSource

FLOW_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flow"


# -- helpers -----------------------------------------------------------------------------------


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, uint8 (H, W, 3): DIS needs gradients at every scale."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 1.5)
    coarse = cv2.GaussianBlur(noise, (0, 0), 5.0)
    img = 0.6 * (fine - fine.min()) / np.ptp(fine) + 0.4 * (coarse - coarse.min()) / np.ptp(coarse)
    return (img * 255).astype(np.uint8)


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``img`` moved by (dx, dy): out[y + dy, x + dx] = img[y, x] (wrapping at the edges)."""
    return np.roll(img, (dy, dx), axis=(0, 1))


class ArrayVideo(VideoSource):
    """An in-memory video over a (T, H, W, 3) uint8 array."""

    def __init__(self, frames: np.ndarray, tag: str = "") -> None:
        self.frames = frames
        self.names = [f"{t:03d}" for t in range(len(frames))]
        self.native_size = self.size = (frames.shape[2], frames.shape[1])
        self.tag = tag
        self.reads = 0

    def read(self, t: int) -> np.ndarray:
        self.reads += 1
        return self.frames[self._check_index(t)].copy()

    def identity(self) -> str:
        return hashlib.sha1(self.frames.tobytes() + self.tag.encode()).hexdigest()


def moving_video(n: int = 6, h: int = 48, w: int = 64, step: tuple[int, int] = (2, 1)) -> ArrayVideo:
    base = texture(h, w)
    return ArrayVideo(np.stack([shifted(base, step[0] * t, step[1] * t) for t in range(n)]))


@pytest.fixture
def count_dis(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the DIS backend."""
    calls = [0]
    original = DISFlow.__call__

    def counting(self: DISFlow, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return original(self, a, b)

    monkeypatch.setattr(DISFlow, "__call__", counting)
    return calls


# -- public names, import cost -------------------------------------------------------------------


def test_public_names() -> None:
    for name in [
        "compute_flow", "DISFlow", "flow_backends", "make_flow_backend", "warp", "warp_torch",
        "target_in_frame", "fb_consistency", "fb_residual", "read_flo", "write_flo", "FlowCache",
        "endpoint_error", "occlusion_recall", "visible_reliability", "evaluate_folder", "summarize",
    ]:
        assert name in hvsa.flow.__all__
        assert hasattr(hvsa.flow, name)


def test_import_loads_neither_cv2_nor_torch() -> None:
    code = "import sys, hvsa.flow; print(sorted(m for m in ('cv2', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- DIS ---------------------------------------------------------------------------------------


# "fast" and "ultrafast" stop at a quarter of the resolution and are ~0.1 px off on this texture
@pytest.mark.parametrize("preset, tol", [("ultrafast", 0.2), ("fast", 0.2), ("medium", 0.03)])
def test_dis_recovers_a_known_shift(preset: str, tol: float) -> None:
    a = texture(96, 128)
    b = shifted(a, 2, 1)  # a(x, y) == b(x + 2, y + 1)
    flow = compute_flow(a, b, preset)
    assert flow.dtype == np.float32 and flow.shape == (96, 128, 2)
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [2.0, 1.0], atol=tol)
    assert np.mean(np.linalg.norm(inner - [2.0, 1.0], axis=1)) < 2 * tol


def test_dis_accepts_grayscale_and_is_reusable_across_sizes() -> None:
    import cv2

    a = texture(64, 80)
    b = shifted(a, 1, 0)
    gray = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b)]
    np.testing.assert_array_equal(compute_flow(*gray), compute_flow(a, b))
    backend = DISFlow("medium")
    before = backend(a, b)
    backend(texture(16, 16), texture(16, 16, seed=1))  # OpenCV's DIS would rewrite its scales here
    np.testing.assert_array_equal(backend(a, b), before)
    np.testing.assert_array_equal(before, compute_flow(a, b))


@pytest.mark.parametrize("preset", ["ultrafast", "medium"])
@pytest.mark.parametrize("hw", [(1, 1), (12, 40), (20, 100), (40, 12), (31, 300)])
def test_dis_small_frames_do_not_crash(preset: str, hw: tuple[int, int]) -> None:
    # OpenCV 5.0's DIS segfaults on some of these sizes unless the frames are padded
    a = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    assert compute_flow(a, a, preset).shape == (*hw, 2)


def test_dis_input_errors() -> None:
    a = texture(32, 32)
    with pytest.raises(InputError, match="ultrafast, fast, medium"):
        compute_flow(a, a, preset="slow")
    with pytest.raises(ShapeError, match="dtype uint8"):
        compute_flow(a.astype(np.float32), a)
    with pytest.raises(ShapeError, match="same height and width"):
        compute_flow(a, texture(32, 40))
    with pytest.raises(ShapeError, match=r"\(H, W, 3\)"):
        compute_flow(a[..., :2].copy(), a[..., :2].copy())
    with pytest.raises(ShapeError, match="non-empty"):
        compute_flow(a[:0], a[:0])


def test_backend_registry() -> None:
    assert "dis" in flow_backends
    backend = make_flow_backend("dis", preset="fast")
    assert isinstance(backend, DISFlow)
    assert backend.config() == {"backend": "dis", "preset": "fast"}
    with pytest.raises(UnknownNameError, match="unknown flow backend 'raft'; expected one of: dis"):
        make_flow_backend("raft")


# -- warping -----------------------------------------------------------------------------------


def test_warp_integer_translation_recovers_image_exactly() -> None:
    a = texture(24, 32)
    b = shifted(a, 2, 1)  # frame t' = frame t moved by (2, 1)
    flow = np.zeros((24, 32, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2, 1  # O_t->t'
    for mode in ("bilinear", "nearest"):
        back = warp(b, flow, mode=mode)
        # interior: every target x + (2, 1) is inside the frame
        np.testing.assert_array_equal(back[:-1, :-2], a[:-1, :-2])
    assert warp(b, flow).dtype == np.float32
    assert warp(b, flow, mode="nearest").dtype == np.uint8


def test_warp_bilinear_half_pixel_and_padding() -> None:
    img = np.arange(12, dtype=np.float64).reshape(3, 4)  # value = 4 * y + x
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0] = 0.5
    out = warp(img, flow)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[:, :3], img[:, :3] + 0.5)
    np.testing.assert_allclose(out[:, 3], img[:, 3])  # border: clamped to the last column
    np.testing.assert_allclose(warp(img, flow, padding="zeros")[:, 3], img[:, 3] * 0.5)
    flow[..., 0] = -10
    np.testing.assert_array_equal(warp(img, flow, padding="zeros"), 0)
    np.testing.assert_array_equal(warp(img, flow * 1e25, padding="zeros"), 0)
    np.testing.assert_allclose(warp(img, flow), np.repeat(img[:, :1], 4, axis=1))


def test_warp_nearest_keeps_label_maps() -> None:
    labels = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
    flow = np.zeros((2, 3, 2), np.float32)
    flow[..., 0] = 0.6
    np.testing.assert_array_equal(warp(labels, flow, mode="nearest"), [[1, 2, 2], [4, 255, 255]])
    np.testing.assert_array_equal(warp(labels, flow, mode="nearest", padding="zeros"), [[1, 2, 0], [4, 255, 0]])


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_warp_numpy_and_torch_agree(mode: str, padding: str) -> None:
    import torch

    rng = np.random.default_rng(1)
    b, c, h, w = 2, 3, 17, 23
    x = rng.random((b, c, h, w)).astype(np.float32)
    flow = (rng.standard_normal((b, h, w, 2)) * 4).astype(np.float32)  # some targets leave the frame
    out_t = warp_torch(torch.from_numpy(x), torch.from_numpy(flow).permute(0, 3, 1, 2), mode=mode, padding=padding)
    out_t2 = warp_torch(torch.from_numpy(x), torch.from_numpy(flow), mode=mode, padding=padding)
    torch.testing.assert_close(out_t, out_t2, rtol=0, atol=0)
    for i in range(b):
        out_np = warp(x[i].transpose(1, 2, 0), flow[i], mode=mode, padding=padding)
        np.testing.assert_allclose(out_t[i].numpy().transpose(1, 2, 0), out_np, rtol=0, atol=1e-5)


def test_warp_torch_is_differentiable_and_keeps_dtype() -> None:
    import torch

    x = torch.rand(1, 2, 8, 9, dtype=torch.float64, requires_grad=True)
    flow = torch.full((1, 2, 8, 9), 0.25, dtype=torch.float32)
    out = warp_torch(x, flow)
    assert out.dtype == torch.float64 and out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_warp_input_errors() -> None:
    import torch

    img = np.zeros((4, 5), np.float32)
    flow = np.zeros((4, 5, 2), np.float32)
    with pytest.raises(InputError, match="bilinear, nearest"):
        warp(img, flow, mode="cubic")
    with pytest.raises(InputError, match="border, zeros"):
        warp(img, flow, padding="reflect")
    with pytest.raises(ShapeError, match=r"\(4, 5, 2\)"):
        warp(img, np.zeros((4, 6, 2), np.float32))
    with pytest.raises(ShapeError, match="NaN"):
        warp(img, np.full((4, 5, 2), np.nan, np.float32))
    with pytest.raises(ShapeError, match=r"\(H, W\) or \(H, W, C\)"):
        warp(np.zeros(5), flow)
    with pytest.raises(ShapeError, match="float tensor"):
        warp_torch(torch.zeros(1, 1, 4, 5, dtype=torch.long), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ShapeError, match=r"\(1, 2, 4, 5\) or \(1, 4, 5, 2\)"):
        warp_torch(torch.zeros(1, 1, 4, 5), torch.zeros(1, 2, 5, 4))


def test_target_in_frame() -> None:
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0] = 1.0
    flow[0, 0] = (np.nan, 0)
    expected = np.ones((3, 4), bool)
    expected[:, 3] = False
    expected[0, 0] = False
    np.testing.assert_array_equal(target_in_frame(flow), expected)


# -- forward-backward consistency ---------------------------------------------------------------


def test_fb_consistency_hand_built() -> None:
    h, w = 5, 7
    fw = np.zeros((h, w, 2), np.float32)
    fw[..., 0] = 1.0  # everything moves one pixel right
    bw = np.zeros((h, w, 2), np.float32)
    bw[..., 0] = -1.0
    expected = np.ones((h, w), bool)
    expected[:, -1] = False  # targets leave the frame
    bw[2, 5] = (0.0, 3.0)  # target of pixel (x=4, y=2): round trip misses by ~3.16 px
    expected[2, 4] = False
    bw[1, 3] = (-1.0, 0.99)  # target of (x=2, y=1): misses by 0.99 px, still reliable at 1 px
    bw[3, 3] = (-1.0, 1.0)  # target of (x=2, y=3): misses by exactly 1 px: not < 1, unreliable
    expected[3, 2] = False
    fw[0, 0] = (np.nan, 0.0)
    expected[0, 0] = False
    rel = fb_consistency(fw, bw)
    assert rel.dtype == np.bool_ and rel.shape == (h, w)
    np.testing.assert_array_equal(rel, expected)
    np.testing.assert_array_equal(fb_consistency(fw, bw, threshold=5.0), expected | ~np.isinf(fb_residual(fw, bw)))
    res = fb_residual(fw, bw)
    assert res[2, 4] == pytest.approx(np.hypot(1.0, 3.0))
    assert np.isinf(res[:, -1]).all() and np.isinf(res[0, 0])


def test_fb_consistency_of_a_translation_and_its_inverse() -> None:
    fw = np.zeros((10, 12, 2), np.float32)
    fw[..., 0], fw[..., 1] = 1.5, -0.5
    rel = fb_consistency(fw, -fw)
    assert rel[1:, :-2].all()  # targets inside the frame
    assert not rel[0].any() and not rel[:, -2:].any()  # targets above or right of the frame


def test_fb_consistency_input_errors() -> None:
    f = np.zeros((4, 5, 2), np.float32)
    with pytest.raises(InputError, match="threshold"):
        fb_consistency(f, f, threshold=0)
    with pytest.raises(ShapeError, match="same shape"):
        fb_consistency(f, np.zeros((4, 6, 2), np.float32))
    with pytest.raises(ShapeError, match="flow_bw"):
        fb_consistency(f, np.zeros((4, 5, 3), np.float32))


# -- .flo files --------------------------------------------------------------------------------


def test_flo_round_trip_and_layout(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).standard_normal((5, 7, 2)).astype(np.float32)
    p = write_flo(tmp_path / "a.flo", flow)
    data = p.read_bytes()
    assert data[:4] == b"PIEH" and len(data) == 12 + 5 * 7 * 2 * 4
    assert np.frombuffer(data, "<i4", 2, 4).tolist() == [7, 5]  # width, then height
    assert np.frombuffer(data, "<f4", 2, 12).tolist() == flow[0, 0].tolist()  # (dx, dy) of pixel (0, 0)
    back = read_flo(p)
    assert back.dtype == np.float32 and back.flags.writeable
    np.testing.assert_array_equal(back, flow)
    write_flo(tmp_path / "b.flo", flow.astype(np.float64))
    np.testing.assert_array_equal(read_flo(tmp_path / "b.flo"), flow)


def test_flo_errors(tmp_path: Path) -> None:
    good = write_flo(tmp_path / "good.flo", np.zeros((3, 4, 2), np.float32)).read_bytes()
    cases = {
        "magic.flo": (b"XXXX" + good[4:], "magic number"),
        "short.flo": (good[:-4], "truncated"),
        "long.flo": (good + b"\0" * 8, "longer than its header"),
        "tiny.flo": (good[:6], "header"),
        "size.flo": (good[:4] + np.array([-1, 4], "<i4").tobytes() + good[12:], "implausible"),
    }
    for name, (data, msg) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=msg) as e:
            read_flo(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(InputError, match="does not exist"):
        read_flo(tmp_path / "missing.flo")
    with pytest.raises(ShapeError):
        write_flo(tmp_path / "bad.flo", np.zeros((3, 4), np.float32))


# -- flow cache --------------------------------------------------------------------------------


def test_flow_cache_matches_compute_flow_and_survives_reopen(tmp_path: Path, count_dis: list[int]) -> None:
    video = moving_video()
    with FlowCache(video, tmp_path, preset="fast") as cache:
        for t, t2 in [(2, 3), (3, 2), (2, 4), (4, 2), (0, 1), (5, 3)]:
            got = cache.get(t, t2)
            assert got.dtype == np.float32 and got.shape == (48, 64, 2)
            want = compute_flow(video.read(t), video.read(t2), "fast")
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)  # float16 storage
        inner = cache.get(1, 3)[10:-10, 10:-10].reshape(-1, 2)
        np.testing.assert_allclose(np.median(inner, axis=0), [4.0, 2.0], atol=0.2)
        calls = count_dis[0]
        again = cache.get(2, 3)
        assert count_dis[0] == calls  # served from disk
        assert cache.is_cached(2, 3) and not cache.is_cached(1, 2)
    count_dis[0] = 0
    with FlowCache(video, tmp_path, preset="fast") as cache:
        np.testing.assert_array_equal(cache.get(2, 3), again)
        assert count_dis[0] == 0
        assert len(cache.missing()) == 18 - 7


def test_flow_cache_fill_and_reliable(tmp_path: Path, count_dis: list[int]) -> None:
    video = moving_video(n=5)
    cache = FlowCache(video, tmp_path, preset="ultrafast")
    pairs = list(cache.pairs())
    assert len(pairs) == 2 * 4 + 2 * 3 and (0, 2) in pairs and (4, 2) in pairs and (0, 3) not in pairs
    reads = video.reads
    assert cache.fill() == len(pairs)
    assert count_dis[0] == len(pairs)
    assert video.reads - reads == 5  # each frame read once
    assert cache.missing() == [] and cache.fill() == 0
    rel = cache.reliable(1, 3)
    np.testing.assert_array_equal(rel, fb_consistency(cache.get(1, 3), cache.get(3, 1)))
    assert rel.dtype == np.bool_ and rel[8:-8, 8:-8].mean() > 0.9
    assert count_dis[0] == len(pairs)
    cache.close()
    cache.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        cache.reliable(1, 3)
    with pytest.raises(InputError, match="closed"):
        cache.get(1, 2)


def test_consistency_masks_are_cached_and_equal_the_computed_ones(tmp_path: Path, count_dis: list[int], monkeypatch) -> None:  # noqa: ANN001
    import hvsa.flow.cache as cache_module

    video = moving_video(n=4, w=61)  # a width that is not a multiple of 8: packed bits are padded
    with FlowCache(video, tmp_path, preset="ultrafast") as cache:
        cache.fill()  # flows and masks
        want = {p: fb_consistency(cache.get(*p), cache.get(p[1], p[0])) for p in cache.pairs()}
        loose = fb_consistency(cache.get(0, 2), cache.get(2, 0), threshold=3.0)
    calls = []
    monkeypatch.setattr(cache_module, "fb_consistency", lambda *a, **k: calls.append(a) or fb_consistency(*a, **k))
    with FlowCache(video, tmp_path, preset="ultrafast") as cache:  # reopened: read from disk
        for p, mask in want.items():
            got = cache.reliable(*p)
            assert got.dtype == np.bool_ and got.shape == (48, 61)
            np.testing.assert_array_equal(got, mask)
        assert calls == []
        np.testing.assert_array_equal(cache.reliable(0, 2, threshold=3.0), loose)  # other thresholds: computed
        assert len(calls) == 1


def test_flow_cache_is_keyed_by_video_and_parameters(tmp_path: Path, count_dis: list[int]) -> None:
    video = moving_video(n=3)
    with FlowCache(video, tmp_path, preset="fast") as c:
        c.get(0, 1)
    assert count_dis[0] == 1
    with FlowCache(video, tmp_path, preset="ultrafast") as c:
        assert not c.is_cached(0, 1)
    changed = ArrayVideo(video.frames, tag="re-encoded")
    with FlowCache(changed, tmp_path, preset="fast") as c:
        assert not c.is_cached(0, 1)
    with FlowCache(video, tmp_path, preset="fast", max_distance=1) as c:
        assert c.is_cached(0, 1) and c.offsets == (-1, 1)
        with pytest.raises(InputError, match="1 to 1 apart"):
            c.get(0, 2)


def test_flow_cache_rejects_bad_pairs(tmp_path: Path) -> None:
    with FlowCache(moving_video(n=4), tmp_path) as cache:
        with pytest.raises(InputError, match="1 to 2 apart, these are 0 apart"):
            cache.get(1, 1)
        with pytest.raises(InputError, match="these are 3 apart"):
            cache.get(0, 3)
        with pytest.raises(IndexError, match="frame 4 out of range for a video of 4 frames"):
            cache.get(3, 4)
        with pytest.raises(IndexError, match="frame -1"):
            cache.reliable(-1, 0)
        with pytest.raises(InputError, match="frame index"):
            cache.get(1.0, 2)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="VideoSource"):
        FlowCache(np.zeros((3, 8, 8, 3), np.uint8), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_distance"):
        FlowCache(moving_video(n=2), tmp_path, max_distance=0)
    with pytest.raises(InputError, match="preset"):
        FlowCache(moving_video(n=2), tmp_path, preset="slow")


def test_flow_cache_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVSA_CACHE_DIR", str(tmp_path / "c"))
    with FlowCache(moving_video(n=2)) as cache:
        cache.get(0, 1)
    names = sorted(p.name.split("-d")[-1] for p in (tmp_path / "c" / "flows").glob("*.f16"))
    assert names == ["+1.f16", "+2.f16", "-1.f16", "-2.f16"]


# -- evaluation --------------------------------------------------------------------------------


def test_endpoint_error() -> None:
    gt = np.zeros((4, 5, 2), np.float32)
    pred = gt.copy()
    pred[..., 0], pred[..., 1] = 3, 4
    assert endpoint_error(pred, gt) == pytest.approx(5.0)
    pred[0, 0] = (0, 0)
    valid = np.ones((4, 5), bool)
    valid[0, 0] = False
    assert endpoint_error(pred, gt, valid) == pytest.approx(5.0)
    assert endpoint_error(pred, gt) == pytest.approx(5.0 * 19 / 20)
    gt[0, 0] = (1e10, 0)  # Middlebury "unknown"
    assert endpoint_error(pred, gt) == pytest.approx(5.0)
    assert np.isnan(endpoint_error(pred, gt, np.zeros((4, 5), bool)))
    with pytest.raises(ShapeError, match="bool"):
        endpoint_error(pred, gt, valid.astype(np.uint8))
    with pytest.raises(ShapeError):
        endpoint_error(pred, gt[:3])


def test_occlusion_recall_and_visible_reliability() -> None:
    occluded = np.zeros((2, 4), bool)
    occluded[0] = True
    reliable = np.array([[False, False, False, True], [True, True, False, True]])
    assert occlusion_recall(reliable, occluded) == pytest.approx(3 / 4)
    assert visible_reliability(reliable, occluded) == pytest.approx(3 / 4)
    valid = np.ones((2, 4), bool)
    valid[:, 3] = False
    assert occlusion_recall(reliable, occluded, valid) == pytest.approx(1.0)
    assert visible_reliability(reliable, occluded, valid) == pytest.approx(2 / 3)
    assert np.isnan(occlusion_recall(reliable, np.zeros((2, 4), bool)))
    with pytest.raises(ShapeError, match="occluded_gt"):
        occlusion_recall(reliable, occluded[:, :3])


def make_benchmark(root: Path) -> Path:
    """A tiny benchmark folder in the Sintel and FlyingChairs layouts with exact ground truth.

    Sintel-like: a textured 24x24 square moves 6 px right over a static textured background;
    the background pixels it covers in frame 3 are the occluded pixels of frame 2.
    """
    from PIL import Image

    h, w = 64, 96
    bg = texture(h, w, seed=1)
    fg = texture(24, 24, seed=2)
    y0, x0, step = 20, 30, 6
    f2, f3 = bg.copy(), bg.copy()
    f2[y0:y0 + 24, x0:x0 + 24] = fg
    f3[y0:y0 + 24, x0 + step:x0 + step + 24] = fg
    gt = np.zeros((h, w, 2), np.float32)
    gt[y0:y0 + 24, x0:x0 + 24, 0] = step
    occ = np.zeros((h, w), np.uint8)
    occ[y0:y0 + 24, x0 + 24:x0 + 24 + step] = 255
    seq = root / "sintel" / "clean-toy"
    seq.mkdir(parents=True)
    for t, f in [(1, f2), (2, f2), (3, f3), (4, f3)]:
        Image.fromarray(f).save(seq / f"frame_{t:04d}.png")
    write_flo(seq / "flow_0002_0003.flo", gt)
    Image.fromarray(occ).save(seq / "occlusions_0002.png")
    Image.fromarray(np.zeros((h, w), np.uint8)).save(seq / "invalid_0002.png")
    chairs = root / "flyingchairs"
    chairs.mkdir()
    for i, (dx, dy) in enumerate([(2, 1), (-3, 2)]):
        a = texture(48, 64, seed=10 + i)
        Image.fromarray(a).save(chairs / f"{i:07d}-img0.png")
        Image.fromarray(shifted(a, dx, dy)).save(chairs / f"{i:07d}-img1.png")
        g = np.zeros((48, 64, 2), np.float32)
        g[..., 0], g[..., 1] = dx, dy
        write_flo(chairs / f"{i:07d}-gt.flo", g)
    return root


def test_evaluate_folder_on_a_toy_benchmark(tmp_path: Path) -> None:
    root = make_benchmark(tmp_path / "flow")
    results = evaluate_folder(root, preset="medium")
    assert [(r.dataset, r.name) for r in results] == [
        ("sintel", "clean-toy/0002"), ("flyingchairs", "0000000"), ("flyingchairs", "0000001"),
    ]
    sintel, *chairs = results
    assert sintel.size == (96, 64) and sintel.occluded == 24 * 6
    assert sintel.occlusion_recall > 0.8 and sintel.visible_reliable > 0.8  # measured 0.97, 0.97
    assert sintel.occlusion_recall == pytest.approx(sintel.occluded_flagged / sintel.occluded)
    assert sintel.epe < 1.0 and sintel.seconds_per_field > 0
    for r in chairs:
        assert r.occlusion_recall is None and r.visible_reliable is None
        assert r.epe < 0.5  # measured 0.03 and 0.05
    summary = {s.dataset: s for s in summarize(results)}
    assert summary["flyingchairs"].pairs == 2 and summary["flyingchairs"].occlusion_recall is None
    assert summary["flyingchairs"].epe == pytest.approx((chairs[0].epe + chairs[1].epe) / 2)
    assert summary["sintel"].pooled_occlusion_recall == pytest.approx(sintel.occlusion_recall)
    half = evaluate_folder(root, preset="fast", longest=48)
    assert half[0].size == (48, 32) and half[0].occluded == 12 * 3


def test_evaluate_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        evaluate_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no flow benchmark pairs"):
        evaluate_folder(tmp_path / "empty")
    root = make_benchmark(tmp_path / "flow")
    (root / "sintel" / "clean-toy" / "occlusions_0002.png").unlink()
    with pytest.raises(DataError, match="occlusions_0002.png: occlusion mask is missing"):
        evaluate_folder(root)
    shutil.rmtree(root / "sintel")
    (root / "flyingchairs" / "0000001-gt.flo").write_bytes(b"nonsense")
    with pytest.raises(DataError, match="0000001-gt.flo"):
        evaluate_folder(root)
    (root / "flyingchairs" / "0000001-img1.png").unlink()
    with pytest.raises(DataError, match="0000001-img1.png: frame is missing"):
        evaluate_folder(root)


@pytest.mark.data
def test_evaluate_shared_flow_data() -> None:
    if not FLOW_DATA.is_dir():
        pytest.skip(f"{FLOW_DATA} is absent")
    results = evaluate_folder(FLOW_DATA)
    summary = {s.dataset: s for s in summarize(results)}
    assert summary["sintel"].pairs == 6 and summary["flyingchairs"].pairs == 9
    # DIS medium at native size, 1 px check (measured: mean recall 0.59, pooled 0.74, EPE 7.4 / 3.7)
    assert summary["sintel"].occlusion_recall >= 0.5
    assert summary["sintel"].pooled_occlusion_recall >= 0.5
    assert summary["sintel"].visible_reliable >= 0.7
    assert summary["flyingchairs"].epe < 6.0
    for r in results:
        assert np.isfinite(r.epe)

"""The segmentation network, its config registry, checkpoints and the tap cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hvsa.errors import InputError, UnknownNameError
from hvsa.model import MODELS, ModelConfig, SegNet, build_model, load_checkpoint, save_checkpoint
from hvsa.model.taps import TapCache
from hvsa.video import Classes


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(num_classes=3)).eval()


def test_imagenet_weights_load_and_shapes_follow_any_input_size(net: torch.nn.Module) -> None:
    assert net.encoder.loaded_imagenet
    x = torch.zeros(2, 3, 37, 53)
    assert net(x).shape == (2, 3, 37, 53)
    taps = net.encode(x)
    assert [tuple(t.shape[1:]) for t in taps] == [(24, 10, 14), (40, 5, 7), (112, 3, 4), (320, 2, 2)]
    assert net.features(taps).shape == (2, 64, 10, 14)


def test_batchnorm_stays_frozen_in_training_mode(net: torch.nn.Module) -> None:
    net.train()
    try:
        bns = [m for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bns and not any(m.training for m in bns)
        before = bns[0].running_mean.clone()
        net(torch.randn(2, 3, 32, 32) * 5)
        torch.testing.assert_close(bns[0].running_mean, before)
    finally:
        net.eval()


def test_a_new_network_and_a_tap_cache_move_no_batchnorm_statistics(tmp_path: Path) -> None:
    """A freshly built network already has its encoder's BatchNorm frozen, and opening a tap
    cache (its shape probe) on a network in any mode changes no running statistic: the cache key
    is the encoder's digest, and pre-trained checkpoints share the ImageNet taps."""
    from hvsa.model.taps import encoder_digest

    fresh = build_model(ModelConfig(num_classes=3))
    assert fresh.training and not any(m.training for m in fresh.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    digest = encoder_digest(fresh)
    fresh(torch.randn(2, 3, 32, 32) * 5)
    for mode in (True, False):
        TapCache(fresh.train(mode), _Frames(np.zeros((1, 32, 48, 3), np.uint8)), tmp_path).close()
        assert fresh.training == mode
    assert encoder_digest(fresh) == digest


def test_normalize_accepts_hwc_uint8() -> None:
    frames = torch.full((1, 4, 5, 3), 255, dtype=torch.uint8)
    x = SegNet.normalize(frames)
    assert x.shape == (1, 3, 4, 5)
    assert float(x.max()) == pytest.approx(1.0)


def test_checkpoint_round_trip_rebuilds_from_the_file_alone(net: torch.nn.Module, tmp_path: Path) -> None:
    classes = Classes.from_names(["a", "b", "c"])
    path = save_checkpoint(tmp_path / "m.pt", net, classes, meta={"note": 1})
    model, got_classes, meta = load_checkpoint(path)
    assert got_classes == classes and meta == {"note": 1}
    assert model.config == net.config
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))


def test_bad_checkpoints_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable hvsa checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an hvsa checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_model_registry_and_config_checks() -> None:
    assert MODELS.names() == ["lite0-fpn"]
    with pytest.raises(UnknownNameError, match="expected one of: lite0-fpn"):
        build_model(ModelConfig(name="unet", num_classes=2))
    with pytest.raises(InputError, match="taps"):
        ModelConfig(num_classes=2, taps=(8, 4))


class _Frames:
    """A tiny in-memory VideoSource stand-in."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.hw = frames.shape[1:3]

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, t: int) -> np.ndarray:
        return self.frames[t]

    def identity(self) -> str:
        return "frames-%d" % int(self.frames.sum())


def test_tap_cache_equals_direct_encoding_and_survives_reopen(net: torch.nn.Module, tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
    video = _Frames(frames)
    with TapCache(net, video, tmp_path) as cache:
        cache.fill(batch=2)
        got = cache.get(1)
    with torch.no_grad():
        direct = net.encode(net.normalize(torch.from_numpy(frames[1:2])))
    for a, b in zip(got, direct):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=1e-2)  # float16 storage
    with TapCache(net, video, tmp_path) as again:
        assert not any(a.missing() for a in again._arrays)


def test_views_rescale_and_mirror_frames_and_labels_exactly() -> None:
    from hvsa.model.views import View, views_for

    labels = np.arange(24, dtype=np.uint8).reshape(4, 6)
    np.testing.assert_array_equal(View(1.0, True).labels(labels), labels[:, ::-1])
    np.testing.assert_array_equal(View(0.5).labels(labels), labels[1::2, 1::2])  # nearest to the pixel centres
    assert View(1.25).size((270, 480)) == (338, 600) and View(0.75, True).frame(np.zeros((8, 12, 3), np.uint8)).shape == (6, 9, 3)
    assert [v.name for v in views_for((0.75, 1.25))] == ["s1f", "s0.75", "s0.75f", "s1.25", "s1.25f"]
    assert views_for(()) == (View(1.0, True),)
    with pytest.raises(InputError, match=r"view scale: expected a factor in \[0.1, 4\]"):
        View(0.0)


def test_view_cache_equals_encoding_the_view_and_is_kept_on_disk(net: torch.nn.Module, tmp_path: Path) -> None:
    from hvsa.model.views import View, ViewCache

    frames = np.random.default_rng(1).integers(0, 255, (2, 32, 48, 3), dtype=np.uint8)
    view = View(1.5, True)
    cache = ViewCache(net, _Frames(frames), tmp_path)
    got = cache.get(1, view)
    with torch.no_grad():
        direct = net.encode(net.normalize(torch.from_numpy(view.frame(frames[1]))[None]))
    assert [tuple(t.shape[-2:]) for t in got] == [(12, 18), (6, 9), (3, 5), (2, 3)]  # 48 x 72, "same" padding
    for a, b in zip(got, direct):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=1e-2)  # float16 storage
    files = sorted(p.name for p in cache.folder.iterdir())
    assert files == ["000001-s1.5f.npz"]
    again = ViewCache(net, _Frames(frames), tmp_path).get(1, view)  # read back, not recomputed
    for a, b in zip(got, again):
        assert torch.equal(a, b)
    kept = (cache.folder / "000001-s1.5f.npz").stat().st_mtime_ns
    cache.fill([view, View(1.0, True)])  # the missing three only; the kept one is not rewritten
    files = sorted(p.name for p in cache.folder.iterdir())
    assert files == ["000000-s1.5f.npz", "000000-s1f.npz", "000001-s1.5f.npz", "000001-s1f.npz"]
    assert (cache.folder / "000001-s1.5f.npz").stat().st_mtime_ns == kept

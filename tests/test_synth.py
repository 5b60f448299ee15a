"""The synthetic clip generator: determinism, guarantees, exact flow, the folder format, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hvsa.errors import InputError
from hvsa.synth import SynthClip, SynthScene, frame_names, generate, make_clip, make_scene, write_clip
from hvsa.video import Classes, open_data

SIZE = (64, 48)


@pytest.fixture(scope="module")
def clip() -> SynthClip:
    return make_clip(frames=8, size=SIZE, classes=5, seed=7)


@pytest.fixture(scope="module")
def integer_clip() -> SynthClip:
    return make_clip(frames=8, size=SIZE, classes=5, seed=11, subpixel=False)


def _read_flo(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic = np.frombuffer(raw[:4], "<f4")[0]
    w, h = np.frombuffer(raw[4:12], "<i4")
    assert magic == np.float32(202021.25)
    assert len(raw) == 12 + int(w) * int(h) * 8
    return np.frombuffer(raw[12:], "<f4").reshape(int(h), int(w), 2)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample img (H, W, 3) at float points (x, y) lying inside [0, W-1] x [0, H-1]."""
    h, w = img.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    f = img.astype(np.float64)
    top = f[y0, x0] * (1 - fx) + f[y0, x0 + 1] * fx
    bot = f[y0 + 1, x0] * (1 - fx) + f[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def _targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel grid (xs, ys) and forward targets (tx, ty), all (H, W)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    return xs, ys, xs + flow[..., 0].astype(np.float64), ys + flow[..., 1].astype(np.float64)


# --- shapes, determinism ------------------------------------------------------------------------


def test_clip_arrays_have_the_documented_shapes_and_dtypes(clip: SynthClip) -> None:
    w, h = SIZE
    assert clip.frames.shape == (8, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.labels.shape == (8, h, w) and clip.labels.dtype == np.uint8
    assert clip.instances.shape == (8, h, w) and clip.instances.dtype == np.uint8
    assert clip.flows.shape == (7, h, w, 2) and clip.flows.dtype == np.float32
    assert clip.names == frame_names(8) == [f"{t:05d}" for t in range(8)]
    assert clip.size == SIZE and len(clip) == 8
    assert clip.classes.names == ["sky", "ground", "car", "person", "tree"]
    assert clip.classes.ignore_index == 255 and clip.labels.max() < 5


def test_same_seed_gives_the_same_clip_and_another_seed_a_different_one(clip: SynthClip) -> None:
    again = make_clip(frames=8, size=SIZE, classes=5, seed=7)
    for name in ("frames", "labels", "flows", "instances"):
        np.testing.assert_array_equal(getattr(again, name), getattr(clip, name))
    other = make_clip(frames=8, size=SIZE, classes=5, seed=8)
    assert not np.array_equal(other.frames, clip.frames)
    assert not np.array_equal(other.labels, clip.labels)


def test_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", frames=4, size=SIZE, classes=3, seed=5)
    b = generate(tmp_path / "b", frames=4, size=SIZE, classes=3, seed=5)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_streamed_frames_equal_the_in_memory_clip(clip: SynthClip) -> None:
    scene = make_scene(frames=8, size="64x48", classes=5, seed=7)
    assert isinstance(scene, SynthScene) and len(scene) == 8 and scene.size == SIZE
    for t, f in enumerate(scene):
        np.testing.assert_array_equal(f.frame, clip.frames[t])
        np.testing.assert_array_equal(f.labels, clip.labels[t])
        np.testing.assert_array_equal(f.labels, scene.layer_classes[f.instances])
        if t < 7:
            np.testing.assert_array_equal(f.flow, clip.flows[t])
        else:
            assert f.flow is None
    with pytest.raises(IndexError):
        scene.render(8)


# --- guarantees ----------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 3, 4, 5, 20])
def test_every_class_is_visible_and_objects_enter_and_leave(classes: int) -> None:
    c = make_clip(frames=8, size=SIZE, classes=classes, seed=classes)
    assert np.unique(c.labels).tolist() == list(range(classes))
    # per object (layer ids 2..): one absent from frame 0 that appears later, one present in
    # frame 0 and absent from the last frame
    n_layers = int(c.instances.max()) + 1
    counts = np.stack([np.bincount(c.instances[t].ravel(), minlength=n_layers) for t in range(8)])
    objects = counts[:, 2:]
    assert ((objects[0] == 0) & (objects[1:].max(axis=0) > 0)).any()
    assert ((objects[0] > 0) & (objects[-1] == 0)).any()
    # per class: with two object classes one class enters; with three one also leaves
    present = np.stack([np.isin(np.arange(classes), np.unique(c.labels[t])) for t in range(8)])
    enters = ~present[0] & present[1:].any(axis=0)
    leaves = present[0] & ~present[-1]
    if classes >= 4:
        assert enters.any()
    if classes >= 5:
        assert leaves.any()


def test_two_classes_are_background_and_object() -> None:
    c = make_clip(frames=4, size=SIZE, classes=2, seed=0)
    assert c.classes.names == ["background", "object"]
    # sky and ground are both background, yet still two layers with their own motion
    assert set(np.unique(c.instances[0]).tolist()) >= {0, 1}
    assert set(np.unique(c.labels).tolist()) == {0, 1}


def test_background_layers_show_parallax(clip: SynthClip) -> None:
    for t in range(len(clip) - 1):
        flow, inst = clip.flows[t], clip.instances[t]
        steps = {}
        for k in np.unique(inst):
            v = flow[inst == k]
            assert (v == v[0]).all(), "a layer moves by one translation"
            steps[int(k)] = np.hypot(*v[0])
        assert steps[1] > 2 * steps[0], "the ground (nearer) pans faster than the sky"


# --- exact flow ------------------------------------------------------------------------------


def test_integer_motion_flow_is_exact_and_occluders_are_nearer(integer_clip: SynthClip) -> None:
    c = integer_clip
    assert np.array_equal(c.flows, np.round(c.flows)), "whole-pixel steps"
    same_total = inside_total = 0
    for t in range(len(c) - 1):
        xs, ys, tx, ty = _targets(c.flows[t])
        h, w = xs.shape
        inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
        tx, ty = tx[inside].astype(int), ty[inside].astype(int)
        src_inst = c.instances[t][inside]
        dst_inst = c.instances[t + 1][ty, tx]
        # the surface seen at x in frame t is at x + flow in frame t+1, visible or hidden by a
        # nearer layer (layer ids grow towards the camera)
        assert (dst_inst >= src_inst).all()
        same = dst_inst == src_inst
        np.testing.assert_array_equal(c.frames[t][inside][same], c.frames[t + 1][ty, tx][same])
        np.testing.assert_array_equal(c.labels[t][inside][same], c.labels[t + 1][ty, tx][same])
        same_total += int(same.sum())
        inside_total += int(inside.sum())
    assert same_total > 0.8 * inside_total


def test_subpixel_flow_warps_frames_with_small_error(clip: SynthClip) -> None:
    assert not np.array_equal(clip.flows, np.round(clip.flows)), "some steps are sub-pixel"
    errors, baseline, shifted = [], [], []
    for t in range(len(clip) - 1):
        xs, ys, tx, ty = _targets(clip.flows[t])
        h, w = xs.shape
        inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
        # keep pixels whose four bilinear neighbours in frame t+1 show the same layer
        x0 = np.clip(np.floor(tx).astype(int), 0, w - 2)
        y0 = np.clip(np.floor(ty).astype(int), 0, h - 2)
        nxt = clip.instances[t + 1]
        same = inside.copy()
        for dy in (0, 1):
            for dx in (0, 1):
                same &= nxt[y0 + dy, x0 + dx] == clip.instances[t]
        assert same.mean() > 0.7
        warped = _bilinear(clip.frames[t + 1], tx[same], ty[same])
        src = clip.frames[t][same].astype(np.float64)
        errors.append(np.abs(warped - src).ravel())
        baseline.append(np.abs(clip.frames[t + 1][same].astype(np.float64) - src).ravel())
        off = _bilinear(clip.frames[t + 1], np.clip(tx[same] + 0.5, 0, w - 1), ty[same])
        shifted.append(np.abs(off - src).ravel())
        # nearest-neighbour label warp agrees wherever the same layer is visible
        rx = np.clip(np.round(tx[same]).astype(int), 0, w - 1)
        ry = np.clip(np.round(ty[same]).astype(int), 0, h - 1)
        np.testing.assert_array_equal(clip.labels[t + 1][ry, rx], clip.labels[t][same])
    err, base, off = np.concatenate(errors), np.concatenate(baseline), np.concatenate(shifted)
    assert err.mean() < 1.5 and np.percentile(err, 99) < 12
    assert err.mean() < 0.5 * base.mean(), "warping with the flow beats not warping at all"
    assert err.mean() < 0.5 * off.mean(), "the flow beats a flow half a pixel off"


# --- folder format ---------------------------------------------------------------------------


def test_written_folder_loads_back_through_the_validating_loader(tmp_path: Path, clip: SynthClip) -> None:
    out = write_clip(clip, tmp_path / "clip")
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{n}.png" for n in clip.names]
    assert sorted(p.name for p in (out / "flow").iterdir()) == [f"{n}.flo" for n in clip.names[:-1]]
    d = json.loads((out / "classes.json").read_text())
    assert d["ignore_index"] == 255 and [c["id"] for c in d["classes"]] == list(range(5))
    assert json.loads((out / "synth.json").read_text())["complete"] is True
    with open_data(out, cache_dir=tmp_path / "cache") as data:
        assert data.classes == clip.classes == Classes.from_json(out / "classes.json")
        assert data.frames.names == clip.names and data.frames.size == SIZE
        for t in range(len(clip)):
            np.testing.assert_array_equal(data.frames.read(t), clip.frames[t])
            np.testing.assert_array_equal(data.labels.read(t), clip.labels[t])
    for t, name in enumerate(clip.names[:-1]):
        np.testing.assert_array_equal(_read_flo(out / "flow" / f"{name}.flo"), clip.flows[t])


def test_generate_streams_the_same_clip_as_make_clip(tmp_path: Path, clip: SynthClip) -> None:
    out = generate(tmp_path / "g", frames=8, size=SIZE, classes=5, seed=7)
    from PIL import Image

    for t, name in enumerate(clip.names):
        np.testing.assert_array_equal(np.asarray(Image.open(out / "frames" / f"{name}.png")), clip.frames[t])
        with Image.open(out / "labels" / f"{name}.png") as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), clip.labels[t])


def test_refuses_a_foreign_folder_but_replaces_a_previous_synth_output(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="foreign.*not empty"):
        generate(foreign, frames=3, size=SIZE)
    generate(foreign, frames=3, size=SIZE, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    # a previous synth output is replaced without asking, stale frames removed
    out = generate(tmp_path / "s", frames=6, size=SIZE)
    generate(out, frames=3, size=SIZE)
    assert len(list((out / "frames").iterdir())) == 3 and len(list((out / "flow").iterdir())) == 2
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        generate(a_file, frames=3, size=SIZE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 1}, "frames: expected an integer from 2"),
        ({"frames": True}, "frames"),
        ({"frames": 2.5}, "frames"),
        ({"classes": 1}, "classes: expected an integer from 2 to 20"),
        ({"classes": 21}, "classes"),
        ({"size": "10"}, "WIDTHxHEIGHT"),
        ({"size": (4, 4)}, "between 8 and 8192"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_input_errors(kwargs: dict, match: str) -> None:
    args = {"frames": 3, "size": SIZE, "classes": 3, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=match):
        make_scene(**args)


def test_a_clip_too_small_for_its_classes_is_refused_with_a_fix() -> None:
    with pytest.raises(InputError, match="cannot lay out 20 classes.*larger --size"):
        make_scene(frames=2, size=(8, 8), classes=20)


def test_make_clip_refuses_clips_too_large_for_memory() -> None:
    with pytest.raises(InputError, match="generate"):
        make_clip(frames=100_000, size=(480, 360))


# --- command line ----------------------------------------------------------------------------


def test_cli_writes_a_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hvsa.cli.main import main

    out = tmp_path / "cli"
    assert main(["synth", str(out), "--frames", "6", "--size", "64x48"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "6 frames" in printed and "64x48" in printed and "5 classes" in printed
    assert len(list((out / "frames").glob("*.png"))) == 6
    assert len(list((out / "flow").glob("*.flo"))) == 5


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--classes", "1"], "classes"),
        (["--size", "10"], "10"),
        (["--frames", "1"], "frames"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expect: str
) -> None:
    from hvsa.cli.main import main

    assert main(["synth", str(tmp_path / "bad"), "--frames", "3", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hvsa: error:") and expect in err
    assert len(err.strip().splitlines()) == 1

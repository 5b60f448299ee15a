"""Video sources, frame caches, classes and the validating data-folder loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hvsa.diskarray import DiskArray
from hvsa.errors import DataError, InputError
from hvsa.video import Classes, FrameCache, ImageFolderSource, VideoFileSource, open_data, open_video


def _frames(n: int, w: int, h: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def make_folder(root: Path, n: int = 4, w: int = 32, h: int = 24, classes: int = 3, labels: bool = True) -> Path:
    (root / "frames").mkdir(parents=True)
    for t, f in enumerate(_frames(n, w, h)):
        Image.fromarray(f).save(root / "frames" / f"{t:03d}.png")
    if labels:
        (root / "labels").mkdir()
        for t in range(n):
            lab = (np.arange(w)[None, :] * classes // w).repeat(h, 0).astype(np.uint8)
            lab[0, 0] = 255
            Image.fromarray(lab).save(root / "labels" / f"{t:03d}.png")
    Classes.from_names([f"c{i}" for i in range(classes)]).to_json(root / "classes.json")
    return root


def test_image_folder_reads_sorted_frames_at_native_size(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3)
    with open_video(root, cache=False) as src:
        assert isinstance(src, ImageFolderSource)
        assert len(src) == 3 and src.names == ["000", "001", "002"]
        assert src.size == (32, 24) and src.hw == (24, 32)
        expected = np.asarray(Image.open(root / "frames" / "001.png"))
        np.testing.assert_array_equal(src.read(1), expected)
        assert [f.shape for f in src] == [(24, 32, 3)] * 3


def test_default_working_size_has_longest_side_480_and_never_upscales(tmp_path: Path) -> None:
    root = tmp_path / "big"
    (root / "frames").mkdir(parents=True)
    Image.fromarray(np.zeros((500, 1000, 3), np.uint8)).save(root / "frames" / "a.png")
    with open_video(root, cache=False) as src:
        assert src.size == (480, 240)
        assert src.read(0).shape == (240, 480, 3)
    with open_video(root, size="200x100", cache=False) as src:
        assert src.read(0).shape == (100, 200, 3)
    small = make_folder(tmp_path / "small")
    with open_video(small, cache=False) as src:
        assert src.size == (32, 24)


def test_frame_cache_serves_identical_frames_and_decodes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_folder(tmp_path / "v", n=5)
    direct = ImageFolderSource(root / "frames")
    with FrameCache(ImageFolderSource(root / "frames"), tmp_path / "cache") as cached:
        for t in range(5):
            np.testing.assert_array_equal(cached.read(t), direct.read(t))
    calls = []
    original = ImageFolderSource.read
    monkeypatch.setattr(ImageFolderSource, "read", lambda self, t: calls.append(t) or original(self, t))
    with FrameCache(ImageFolderSource(root / "frames"), tmp_path / "cache") as cached:
        np.testing.assert_array_equal(cached.read(4), direct.read(4))
    assert calls == [4]  # only the direct read above; the cache did not decode again


def test_caches_follow_the_files_contents_not_their_place_or_times(tmp_path: Path) -> None:
    import os
    import shutil

    root = make_folder(tmp_path / "v", n=4)
    with open_data(root, cache_dir=tmp_path / "cache") as data:
        frames_key = data.frames.identity()
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*"))
    copy = tmp_path / "elsewhere" / "v"
    shutil.copytree(root, copy, copy_function=shutil.copyfile)  # new files, new times
    for p in copy.rglob("*.png"):
        os.utime(p, ns=(1, 1))
    with open_data(copy, cache_dir=tmp_path / "cache") as data:
        assert data.frames.identity() == frames_key
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*")) == cached  # frames and labels reused

    with ImageFolderSource(copy / "frames", size=(16, 12)) as smaller:
        assert smaller.identity() != frames_key
    Image.fromarray(_frames(1, 32, 24, seed=9)[0]).save(copy / "frames" / "002.png")
    changed = ImageFolderSource(copy / "frames").identity()
    assert changed != frames_key
    (copy / "frames" / "002.png").rename(copy / "frames" / "009.png")  # the same files, in another order
    assert ImageFolderSource(copy / "frames").identity() not in (frames_key, changed)


def test_video_file_source_counts_and_decodes_frames(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for t in range(7):
        frame = np.full((48, 64, 3), 30 * t, np.uint8)
        writer.write(frame)
    writer.release()
    with VideoFileSource(path) as src:
        assert len(src) == 7 and src.size == (64, 48) and src.fps == pytest.approx(10.0)
        means = [f.mean() for f in src.iter_frames()]
        assert means == pytest.approx([30 * t for t in range(7)], abs=3)
        assert src.read(5).mean() == pytest.approx(150, abs=3)
        assert src.read(2).mean() == pytest.approx(60, abs=3)
    with open_video(path, cache_dir=tmp_path / "cache") as cached:
        assert cached.read(6).mean() == pytest.approx(180, abs=3)
    copy = tmp_path / "copy.avi"
    copy.write_bytes(path.read_bytes())
    with VideoFileSource(path) as src, VideoFileSource(copy) as same:
        assert same.identity() == src.identity()  # keyed by the bytes, so the copy shares the cache


def test_unreadable_video_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(DataError, match="broken.mp4"):
        open_video(path)


def test_missing_and_unsupported_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_video(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported video type"):
        open_video(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frames found"):
        open_video(tmp_path / "empty")


def test_open_data_loads_frames_labels_and_classes(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3, classes=3)
    with open_data(root) as data:
        assert data.classes.names == ["c0", "c1", "c2"]
        lab = data.labels.read(2)
        assert lab.dtype == np.uint8 and lab.shape == (24, 32)
        assert set(np.unique(lab).tolist()) == {0, 1, 2, 255}


def test_labels_resize_with_nearest_neighbour(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=2, w=64, h=48, classes=4)
    with open_data(root, size="32x24") as data:
        lab = data.labels.read(0)
        assert lab.shape == (24, 32)
        assert set(np.unique(lab).tolist()) <= {0, 1, 2, 3, 255}


def test_missing_label_names_the_frame(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3)
    (root / "labels" / "001.png").unlink()
    with pytest.raises(DataError, match=r"no label for frame\(s\) \['001'\]"):
        open_data(root)


def test_label_without_frame_is_reported(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3)
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "labels" / "zzz.png")
    with pytest.raises(DataError, match=r"\['zzz'\] have no frame"):
        open_data(root)


def test_unknown_class_id_names_file_and_values(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3, classes=3)
    lab = np.zeros((24, 32), np.uint8)
    lab[3, 3] = 7
    lab[4, 4] = 9
    Image.fromarray(lab).save(root / "labels" / "002.png")
    with pytest.raises(DataError, match=r"002\.png: label values \[7, 9\] are not class ids 0\.\.2"):
        open_data(root)


def test_label_size_mismatch(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=2)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "labels" / "001.png")
    with pytest.raises(DataError, match=r"001\.png: label size 10x10 differs from 32x24"):
        open_data(root)


def test_frame_size_mismatch(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=2, labels=False)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "frames" / "001.png")
    with pytest.raises(DataError, match=r"001\.png: frame size 10x10 differs"):
        open_data(root)


def test_rgb_label_image_is_rejected(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=2)
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(root / "labels" / "000.png")
    with pytest.raises(DataError, match=r"000\.png: expected a single-channel index mask"):
        open_data(root)


def test_corrupt_frame_names_the_file(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3, labels=False)
    (root / "frames" / "001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"001\.png: cannot"):
        open_data(root)


def test_truncated_frame_fails_when_decoded(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=3, labels=False)
    good = (root / "frames" / "002.png").read_bytes()
    (root / "frames" / "002.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"002\.png: cannot decode image"):
        open_data(root)


def test_labels_without_classes_are_rejected(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "v", n=2)
    (root / "classes.json").unlink()
    with pytest.raises(DataError, match="no classes.json"):
        open_data(root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"classes": []}', "at least one class"),
        ('{"classes": [{"id": 0, "name": "a"}, {"id": 2, "name": "b"}]}', "no gaps"),
        ('{"classes": [{"id": 0, "name": "a", "color": [1, 2]}]}', "colour must be"),
        ('{"classes": [{"id": 0, "name": "a"}], "ignore_index": 0}', "ignore_index"),
        ('{"classes": [{"name": "a"}]}', "needs an integer 'id'"),
    ],
)
def test_bad_classes_json(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "classes.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        Classes.from_json(path)
    assert str(path) in str(info.value)


def test_classes_round_trip_and_colorize(tmp_path: Path) -> None:
    classes = Classes.from_names(["road", "car"])
    classes.to_json(tmp_path / "c.json")
    again = Classes.from_json(tmp_path / "c.json")
    assert again == classes
    rgb = again.colorize(np.array([[0, 1, 255]], np.uint8))
    assert rgb.shape == (1, 3, 3)
    assert tuple(rgb[0, 1]) == again[1].color and tuple(rgb[0, 2]) == (0, 0, 0)
    assert json.loads((tmp_path / "c.json").read_text())["ignore_index"] == 255


def test_disk_array_round_trip_reopen_and_layout_change(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    with DiskArray.open_or_create(path, 3, (2, 2), np.float32, meta={"k": 1}) as a:
        assert a.missing() == [0, 1, 2]
        a[1] = np.eye(2)
        with pytest.raises(KeyError):
            a[0]
        with pytest.raises(IndexError):
            a[3]
    with DiskArray.open_or_create(path, 3, (2, 2), np.float32, meta={"k": 1}) as a:
        np.testing.assert_array_equal(a[1], np.eye(2))
        assert a.missing() == [0, 2]
    with DiskArray.open_or_create(path, 3, (2, 2), np.float32, meta={"k": 2}) as a:
        assert a.missing() == [0, 1, 2]  # other parameters: stale records dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.bin.filled", "a.bin.json"]
    DiskArray.open_or_create(path, 3, (2, 2), np.float32, meta={"k": 2}).remove()
    assert not list(tmp_path.iterdir())

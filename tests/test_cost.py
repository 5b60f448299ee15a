"""Click costs and mimic annotation on tiny synthetic label maps with exact answers, and
``hvsa cost``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hvsa.cli.main import main
from hvsa.cost import (
    DEFAULT_EPSILON,
    annotate_region,
    annotate_sample,
    frame_clicks,
    pool_clicks,
    rasterize_polygons,
    sample_border,
    sample_clicks,
    sample_polygons,
    video_clicks,
)
from hvsa.errors import InputError, ShapeError
from hvsa.pools import rec_region_map, superpixel_region_map

from conftest import shared_data


def square_frame(h=40, w=40, x0=5, y0=5, side=10, cls=1, bg=0) -> np.ndarray:
    gt = np.full((h, w), bg, np.uint8)
    gt[y0 : y0 + side, x0 : x0 + side] = cls
    return gt


def full(gt: np.ndarray) -> np.ndarray:
    return np.ones(gt.shape, bool)


# --------------------------------------------------------------------------- exact click counts


def test_square_in_frame_costs_4_plus_1_and_frame_6():
    gt = square_frame()
    ann = annotate_sample(gt, full(gt))
    by_class = {p.class_id: p for p in ann.polygons}
    square = by_class[1]
    assert sorted(map(tuple, square.vertices.tolist())) == [(5, 5), (5, 14), (14, 5), (14, 14)]
    assert not square.on_border.any() and square.clicks == 4 + 1
    # the background's outline is the frame border: its vertices are free, only its class click
    assert by_class[0].on_border.all() and by_class[0].clicks == 1
    assert ann.clicks == 6 == frame_clicks(gt) == sample_clicks(gt, full(gt))
    assert ann.polygons[0].class_id == 0  # painting order: larger first, the square on top


def test_single_class_sample_costs_1():
    gt = square_frame()
    mask = np.zeros(gt.shape, bool)
    mask[20:35, 3:38] = True  # a rectangle of background only
    assert sample_clicks(gt, mask) == 1
    square = gt == 1  # the square itself as the sample
    assert sample_clicks(gt, square) == 1
    rm = rec_region_map(gt.shape, 20)
    assert pool_clicks(gt, rm, 4)[2:].tolist() == [1, 1]  # bottom tiles: background only


def test_tile_border_closes_the_polygon_for_free():
    gt = square_frame(x0=10, side=20)  # square x 10..29, y 5..24, cut by the tile border x = 20
    gt[5:15, 10:30] = 1
    gt[15:25, 10:30] = 0
    # the object is x 10..29, y 5..14: rec20 tile 0 holds its left half, tile 1 its right half
    rm = rec_region_map(gt.shape, 20)
    ann = annotate_region(gt, rm, 0)
    obj = next(p for p in ann.polygons if p.class_id == 1)
    assert sorted(map(tuple, obj.vertices.tolist())) == [(10, 5), (10, 14), (19, 5), (19, 14)]
    assert obj.on_border.tolist() == [x == 19 for x, _ in obj.vertices.tolist()]
    assert obj.clicks == 2 + 1
    bg = next(p for p in ann.polygons if p.class_id == 0)
    assert bg.clicks == 2 + 1  # the notch's two inner corners (x = 9) are charged
    assert ann.clicks == 6
    assert pool_clicks(gt, rm, 4).tolist() == [6, 6, 1, 1]


def test_enclosed_components_are_their_own_polygons():
    gt = np.zeros((30, 30), np.uint8)
    gt[5:25, 5:25] = 1  # a square of 1 ...
    gt[10:20, 10:20] = 2  # ... holding a square of 2 ...
    gt[13:17, 13:17] = 1  # ... holding a square of 1 (a second component of class 1)
    ann = annotate_sample(gt, full(gt))
    assert sorted(p.class_id for p in ann.polygons) == [0, 1, 1, 2]
    assert ann.clicks == 1 + 3 * (4 + 1)  # holes are not charged to their enclosing polygon
    assert np.array_equal(ann.labels, gt)  # enclosed polygons land on top


def test_ignore_pixels_cost_nothing():
    gt = square_frame(cls=255)  # an ignore square inside background
    assert frame_clicks(gt) == 1  # no polygon for the ignore square
    all_ignore = np.full((10, 10), 255, np.uint8)
    ann = annotate_sample(all_ignore, full(all_ignore))
    assert ann.clicks == 0 and ann.polygons == () and (ann.labels == 255).all()
    rm = rec_region_map(gt.shape, 5)  # tile (1, 1) is rows 5..9, cols 5..9: all ignore
    assert pool_clicks(gt, rm, 64)[9] == 0
    # left half ignore, right half one class: the rectangle's four vertices all lie on the
    # frame border (free), and the uncovered ignore half stays ignore
    half = np.full((20, 20), 255, np.uint8)
    half[:, 10:] = 3
    ann = annotate_sample(half, full(half))
    assert ann.clicks == 1
    assert (ann.labels[:, :10] == 255).all() and (ann.labels[:, 10:] == 3).all()
    # an ignore hole costs nothing; the enclosing polygon (no holes) paints over it
    hole = square_frame(cls=255, bg=3)
    ann = annotate_sample(hole, full(hole))
    assert ann.clicks == 1 and (ann.labels == 3).all()


def test_pool_clicks_equal_per_sample_annotation():
    import cv2

    rng = np.random.default_rng(0)
    for trial in range(4):
        h, w = 48 + 4 * trial, 64 - 3 * trial
        noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0 + trial)
        gt = np.digitize(noise, np.quantile(noise, [0.3, 0.6, 0.85])).astype(np.uint8)
        gt[rng.random((h, w)) < 0.02] = 4  # speckle: many one-pixel components
        gt[rng.random((h, w)) < 0.02] = 255
        gt[5:12, 30:45] = 255
        frame = np.dstack([(noise * 255).astype(np.uint8)] * 3)
        rm_rec = rec_region_map((h, w), 7 + trial)
        maps = [
            (rm_rec, int(rm_rec.max()) + 1),
            superpixel_region_map(frame, 25),
            (np.zeros((h, w), np.int32), 1),
        ]
        for rm, n in maps:
            expected = [annotate_region(gt, rm, i).clicks for i in range(n)]
            assert pool_clicks(gt, rm, n).tolist() == expected
        assert pool_clicks(gt, maps[2][0], 1)[0] == frame_clicks(gt)


def test_pool_clicks_nested_samples():
    # concentric samples 0 (outer ring), 1 (middle ring), 2 (centre): 0 and 2 do not touch, so
    # pool_clicks traces them in one call, with sample 2's components inside sample 0's hole
    rm = np.zeros((40, 40), np.int32)
    rm[8:32, 8:32] = 1
    rm[14:26, 14:26] = 2
    gt = np.ones((40, 40), np.uint8)
    gt[:, :20] = 0
    gt[2:5, 2:5] = 2
    gt[17:20, 17:20] = 2
    expected = [annotate_region(gt, rm, i).clicks for i in range(3)]
    assert pool_clicks(gt, rm, 3).tolist() == expected


def test_epsilon_simplifies_more_when_larger():
    yy, xx = np.mgrid[0:60, 0:60]
    gt = (((yy - 30) ** 2 + (xx - 30) ** 2) < 20**2).astype(np.uint8)  # a disc
    costs = [frame_clicks(gt, epsilon=e) for e in (0.3, 0.5, DEFAULT_EPSILON, 4.0)]
    assert costs[0] > costs[1] > costs[2] >= costs[3] > 2


def test_video_clicks_sums_frames():
    frames = [square_frame(), square_frame(x0=0, y0=0), np.zeros((40, 40), np.uint8)]
    # a square in the corner: two of its vertices lie on the frame border (free)
    assert [frame_clicks(f) for f in frames] == [6, 1 + 1 + 1 + 1 + 1 - 2 + 1, 1]
    assert video_clicks(frames, show_progress=False) == 6 + 4 + 1


# --------------------------------------------------------------------------- mimic annotation


def test_mimic_of_clean_square_is_exact():
    gt = square_frame()
    ann = annotate_sample(gt, full(gt))
    assert ann.labels.dtype == np.uint8 and np.array_equal(ann.labels, gt)
    assert ann.bbox == (0, 0, 40, 40)
    tile = rec_region_map(gt.shape, 12) == 0  # rows/cols 0..11 hold the square's corner
    ann = annotate_sample(gt, tile)
    assert np.array_equal(ann.labels[tile], gt[tile]) and (ann.labels[~tile] == 255).all()
    assert ann.bbox == (0, 0, 12, 12)


def test_mimic_fills_uncovered_pixels_from_nearest_and_keeps_ignore():
    yy, xx = np.mgrid[0:50, 0:50]
    gt = (((yy - 25) ** 2 + (xx - 25) ** 2) < 15**2).astype(np.uint8) + 1  # a disc of 2 on 1
    gt[:3, :3] = 255
    ann = annotate_sample(gt, full(gt), epsilon=3.0)
    assert ann.labels[:3, :3].tolist() == gt[:3, :3].tolist()  # uncovered ignore stays ignore
    valid = gt != 255
    assert (ann.labels[valid] != 255).all()  # every labelled pixel gets a label
    agreement = (ann.labels[valid] == gt[valid]).mean()
    assert 0.97 < agreement < 1.0  # close to, not equal to, the ground truth


def test_rasterize_polygons_reuses_polygons():
    gt = square_frame()
    mask = full(gt)
    polys = sample_polygons(gt, mask)
    assert np.array_equal(rasterize_polygons(polys, mask), gt)
    half = np.zeros(gt.shape, bool)
    half[:, :10] = True
    out = rasterize_polygons(polys, half)
    assert np.array_equal(out[half], gt[half]) and (out[~half] == 255).all()


def test_sample_border_prices_drawn_vertices_like_the_simulator():
    mask = np.zeros((6, 7), bool)
    mask[1:4, 0:3] = True  # a 3x3 sample touching the image's left edge
    expected = np.zeros((6, 7), bool)
    expected[1:4, 0:3] = True
    expected[2, 1] = False  # the only pixel with all four neighbours inside
    assert np.array_equal(sample_border(mask), expected)
    gt = np.zeros((40, 40), np.uint8)
    gt[2:12, 16:30] = 1  # cut by the rec20 tile border at x = 20
    rm = rec_region_map(gt.shape, 20)
    tile = rm == 0
    for poly in annotate_region(gt, rm, 0).polygons:
        v = poly.vertices
        assert sample_border(tile)[v[:, 1], v[:, 0]].tolist() == poly.on_border.tolist()


# --------------------------------------------------------------------------- input errors


def test_cost_input_errors():
    gt = square_frame()
    with pytest.raises(ShapeError):
        annotate_sample(gt, np.ones(gt.shape, np.uint8))  # mask must be bool
    with pytest.raises(ShapeError):
        annotate_sample(gt.astype(np.int32), full(gt))
    with pytest.raises(ShapeError):
        annotate_sample(gt, np.ones((4, 4), bool))
    with pytest.raises(InputError):
        sample_clicks(gt, full(gt), epsilon=-1.0)
    with pytest.raises(InputError):
        sample_clicks(gt, full(gt), ignore_index=300)
    with pytest.raises(ShapeError):
        pool_clicks(gt, rec_region_map(gt.shape, 20), 3)  # region values 0..3 need n >= 4
    with pytest.raises(ShapeError):
        video_clicks(42)  # type: ignore[arg-type]
    empty = annotate_sample(gt, np.zeros(gt.shape, bool))
    assert empty.clicks == 0 and (empty.labels == 255).all()


# --------------------------------------------------------------------------- hvsa cost


def write_sequence(folder, frames: int = 3, shift: int = 2):
    from PIL import Image

    (folder / "frames").mkdir(parents=True)
    (folder / "labels").mkdir()
    for t in range(frames):
        gt = square_frame(h=48, w=64, x0=20 + shift * t, y0=10, side=16)
        rgb = np.dstack([gt * 200, gt * 50 + 30, 100 - gt * 60]).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "frames" / f"{t:03d}.png")
        Image.fromarray(gt).save(folder / "labels" / f"{t:03d}.png")
    classes = {
        "classes": [{"id": 0, "name": "bg", "color": [0, 0, 0]}, {"id": 1, "name": "obj", "color": [255, 0, 0]}]
    }
    (folder / "classes.json").write_text(json.dumps(classes))
    return folder


def test_cli_cost_one_sequence(tmp_path, capsys):
    seq = write_sequence(tmp_path / "clip")
    assert main(["cost", str(seq), "--granularities", "frame,rec16,sp8"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("clip") and "64x48" in line)
    assert row[:5] == ["clip", "3", "64x48", "18", "6.0"]  # 6 clicks per frame: square 5 + background 1
    rec = next(line.split() for line in out.splitlines() if line.startswith("clip") and "rec16" in line)
    assert rec[2:4] == ["12.0", "256.0"]  # 4 x 3 tiles of 16 x 16 pixels
    assert any("sp8" in line for line in out.splitlines())


def test_cli_cost_several_sequences(tmp_path, capsys):
    write_sequence(tmp_path / "a", frames=2)
    write_sequence(tmp_path / "b", frames=3)
    assert main(["cost", str(tmp_path), "--granularities", "frame,rec20", "--epsilon", "1"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line.split() and "rec20" in line]
    assert names == ["a", "b", "all"]
    total = next(line.split() for line in out.splitlines() if line.startswith("all ") and "rec20" not in line and "frame" not in line)
    assert total[1:3] == ["5", "30"]


def test_cli_cost_errors(tmp_path, capsys):
    seq = write_sequence(tmp_path / "clip")
    assert main(["cost", str(seq), "--granularities", "rec1"]) == 2
    assert "rec<N>" in capsys.readouterr().err
    no_labels = tmp_path / "nolabels"
    (no_labels / "frames").mkdir(parents=True)
    for f in (seq / "frames").iterdir():
        (no_labels / "frames" / f.name).write_bytes(f.read_bytes())
    assert main(["cost", str(no_labels)]) == 2
    assert "labels/" in capsys.readouterr().err
    assert main(["cost", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cost", str(empty)]) == 2


@pytest.mark.data
def test_cli_cost_labelme_clip(capsys):
    data = shared_data("labelme-clip")
    assert main(["cost", str(data), "--granularities", "frame,rec40"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("labelme-clip") and "x" in line.split()[2])
    assert row[1] == "5" and int(row[3]) > 5  # several polygons per frame

"""The annotation app's HTTP API, in process (Starlette's test client) on a tiny synthetic clip:
every endpoint, rejected requests, the batch cycle, export, safety checks; and ``hvsa serve``
killed between an acknowledged save and the next request."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hvsa.cli.main import main
from hvsa.cost import rasterize_polygons, sample_border
from hvsa.errors import InputError
from hvsa.finetune import FinetuneConfig
from hvsa.types import SampleId
from hvsa.web.app import create_app
from hvsa.web.drawing import drawing_labels, mask_runs
from hvsa.web.payloads import Limits, parse_annotation
from hvsa.web.project import Project, open_session
from hvsa.web.server import is_loopback, listen

with warnings.catch_warnings():  # starlette asks for the httpx2 fork; httpx does the same job here
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

FAST = FinetuneConfig(epochs=1, min_steps=3, max_steps=3, lr=0.01)
B = 2  # samples per batch
W, H = 96, 64


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hvsa.synth import generate

    return generate(tmp_path_factory.mktemp("clip") / "data", frames=6, size=(W, H), classes=3, seed=1)


@pytest.fixture(scope="module")
def template(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared project (caches filled, first prediction made), copied by each test."""
    folder = tmp_path_factory.mktemp("template") / "project"
    session, _ = open_session(folder, clip, granularity="rec32", per_iteration=B, finetune=FAST)
    with session:
        session.prepare()
    return folder


def wait_for(client: TestClient, phase: str = "annotating", iteration: int | None = None, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get("/api/state").json()
        if state["activity"]["phase"] == "failed":
            raise AssertionError(state["activity"]["error"])
        at = state["batch"]["iteration"] if state["batch"] else None
        if state["activity"]["phase"] == phase and (iteration is None or at == iteration):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"still {state['activity']} after {timeout} s")
        time.sleep(0.1)


class Served:
    """A copy of the template project served in process."""

    def __init__(self, folder: Path, token: str | None = None, allowed_hosts: object = "loopback") -> None:
        self.session, b = open_session(folder)
        self.project = Project(self.session, b)
        self.project.start()
        kw = {} if allowed_hosts == "loopback" else {"allowed_hosts": allowed_hosts}
        self.client = TestClient(create_app(self.project, token=token, **kw), base_url="http://127.0.0.1")
        self.state = wait_for(self.client) if token is None else None

    @property
    def samples(self) -> list[dict]:
        return self.state["batch"]["samples"]

    def close(self) -> None:
        self.client.close()
        self.project.close()
        self.session.close()


@pytest.fixture
def served(template: Path, tmp_path: Path):
    s = Served(shutil.copytree(template, tmp_path / "project"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared(template: Path, tmp_path_factory: pytest.TempPathFactory):
    """One project for the tests that change nothing (reads and rejected requests)."""
    s = Served(shutil.copytree(template, tmp_path_factory.mktemp("shared") / "project"))
    yield s
    s.close()


def bbox_of(client: TestClient, sample: dict) -> tuple[int, int, int, int]:
    return tuple(client.get(f"/api/samples/{sample['pool_index']}").json()["bbox"])


def decode(response) -> np.ndarray:  # noqa: ANN001
    return np.asarray(Image.open(io.BytesIO(response.content)))


# --------------------------------------------------------------------------- pure parts


def _request(mask: np.ndarray):  # noqa: ANN202
    from hvsa.annotate.base import SampleRequest

    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return SampleRequest(SampleId(0, 0), 0, mask, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def _draw(body: dict, mask: np.ndarray, prediction: np.ndarray | None = None):  # noqa: ANN202
    drawing = parse_annotation(body, hw=mask.shape, num_classes=3)
    return drawing_labels(drawing, _request(mask), prediction)


def test_fill_and_polygon_price_and_labels_follow_the_click_model() -> None:
    mask = np.zeros((20, 30), bool)
    mask[0:10, 10:20] = True  # a 10x10 tile
    square = [[12, 2], [16, 2], [16, 6], [12, 6]]  # inside: every vertex charged
    answer = _draw({"fill": {"kind": "class", "class_id": 0}, "polygons": [{"class_id": 2, "points": square}]}, mask)
    expected = np.zeros((10, 10), np.uint8)
    expected[2:7, 2:7] = 2
    assert np.array_equal(answer.labels, expected)
    assert answer.clicks == 1 + (1 + 4)  # the fill, then a class click and four vertices
    assert answer.source == "manual"
    assert answer.polygons[0] == {"fill": "class", "class_id": 0, "points": []}
    assert answer.polygons[1]["on_border"] == [False] * 4


def test_vertices_on_the_sample_border_are_free() -> None:
    mask = np.zeros((20, 30), bool)
    mask[0:10, 10:20] = True
    # the tile's right part: two vertices on its top and bottom rows, two on its right column
    part = [[15, 0], [19, 0], [19, 9], [15, 9]]
    other = [[10, 0], [14, 0], [14, 9], [10, 9]]
    answer = _draw({"polygons": [{"class_id": 1, "points": part}, {"class_id": 0, "points": other}]}, mask)
    assert answer.clicks == (1 + 0) + (1 + 0)  # every vertex lies on the tile's border
    assert (answer.labels[:, 5:] == 1).all() and (answer.labels[:, :5] == 0).all()
    inner = [[12, 2], [16, 2], [14, 9]]  # the last on the border, the first two charged
    assert _draw({"polygons": [{"class_id": 1, "points": inner}]}, mask).clicks == 1 + 2
    border = sample_border(mask)
    assert [bool(border[y, x]) for x, y in inner] == [False, False, True]


def test_without_fill_uncovered_pixels_take_the_nearest_polygon_like_the_simulator() -> None:
    from hvsa.cost import Polygon

    mask = np.zeros((12, 12), bool)
    mask[1:11, 1:11] = True
    pts = [[1, 1], [10, 1], [10, 4], [1, 4]]
    answer = _draw({"polygons": [{"class_id": 2, "points": pts}]}, mask)
    poly = Polygon(2, np.array(pts, np.int32), np.ones(4, bool))
    assert np.array_equal(answer.labels, rasterize_polygons([poly], mask)[1:11, 1:11])
    assert (answer.labels == 2).all()  # one class everywhere: the nearest covered pixel


def test_accepting_the_prediction_costs_one_click() -> None:
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    prediction = np.arange(64, dtype=np.uint8).reshape(8, 8) % 3
    answer = _draw({"fill": {"kind": "prediction"}, "polygons": []}, mask, prediction)
    assert answer.clicks == 1 and answer.source == "accepted"
    assert np.array_equal(answer.labels, prediction[2:6, 2:6])
    corrected = _draw({"fill": {"kind": "prediction"}, "polygons": [{"class_id": 0, "points": [[2, 2], [5, 2], [5, 5]]}]},
                      mask, prediction)
    assert corrected.source == "manual" and corrected.clicks == 1 + 1  # all three vertices on the border


def test_a_drawing_that_covers_nothing_is_refused() -> None:
    mask = np.zeros((20, 20), bool)
    mask[0:5, 0:5] = True
    with pytest.raises(InputError, match="cover no pixel"):
        _draw({"polygons": [{"class_id": 1, "points": [[12, 12], [18, 12], [18, 18]]}]}, mask)


def test_mask_runs_round_trip() -> None:
    rng = np.random.default_rng(0)
    for mask in (rng.random((7, 9)) > 0.5, np.ones((3, 4), bool), np.zeros((2, 2), bool)):
        runs = mask_runs(mask)
        flat = np.zeros(mask.size, bool)
        at = 0
        for i, n in enumerate(runs):
            flat[at:at + n] = i % 2 == 1
            at += n
        assert at == mask.size and np.array_equal(flat.reshape(mask.shape), mask)


def test_loopback_detection_and_a_taken_port() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    sock = listen("127.0.0.1", 0)
    try:
        with pytest.raises(InputError, match="cannot listen"):
            listen("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


# --------------------------------------------------------------------------- reads


def test_page_and_its_files_ship_in_the_package(shared: Served) -> None:
    c = shared.client
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "/static/app.css" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = c.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert "http://" not in r.text and "https://" not in r.text  # nothing from elsewhere
    assert "https://" not in page.text and "http://" not in page.text
    for path in ("/static/index.html", "/static/../project.py", "/static/%2e%2e%2fapp.py", "/static/hvsa.sqlite",
                 "/hvsa.sqlite", "/api/nothing"):
        r = c.get(path)
        assert r.status_code == 404 and "error" in r.json(), path


def test_state_describes_the_project_and_the_batch(shared: Served) -> None:
    st = shared.client.get("/api/state").json()
    p = st["project"]
    assert (p["frames"], p["width"], p["height"], p["granularity"], p["per_iteration"]) == (6, W, H, "rec32", B)
    assert [c["id"] for c in p["classes"]] == [0, 1, 2] and p["ground_truth"] is True
    assert st["activity"] == {"phase": "annotating", "done": 0, "total": 0, "error": None}
    assert st["batch"]["iteration"] == 1 and len(st["batch"]["samples"]) == B
    assert all(not s["annotated"] for s in st["batch"]["samples"])
    assert st["completed"] == 0 and st["clicks"] == 0 and st["iterations"] == []


def test_frames_and_their_images(shared: Served) -> None:
    c, session = shared.client, shared.session
    frames = c.get("/api/frames").json()
    assert [f["t"] for f in frames["frames"]] == list(range(6))
    assert len(frames["confidence"]) == 6 and all(0 <= v <= 1 for v in frames["confidence"])
    jpeg = decode(c.get("/api/frames/2/image.jpg"))
    assert jpeg.shape == (H, W, 3) and np.abs(jpeg.astype(int) - session.frames.read(2)).mean() < 6
    rgba = decode(c.get("/api/frames/2/prediction.png"))
    labels, _ = session.prediction(2)
    assert rgba.shape == (H, W, 4) and (rgba[..., 3] == 255).all()
    assert np.array_equal(rgba[..., :3], session.classes.palette()[labels])
    empty = decode(c.get("/api/frames/2/annotations.png"))
    assert (empty[..., 3] == 0).all()  # nothing annotated yet: transparent
    for path in ("/api/frames/6/image.jpg", "/api/frames/-1/image.jpg", "/api/frames/x/prediction.png",
                 "/api/frames/99/annotations.png"):
        assert c.get(path).status_code == 404, path


def test_a_sample_view_gives_its_exact_mask(shared: Served) -> None:
    c, session = shared.client, shared.session
    first = shared.samples[0]
    view = c.get(f"/api/samples/{first['pool_index']}").json()
    mask = session.pool.sample_mask(SampleId(first["t"], first["n"]))
    x0, y0, x1, y1 = view["bbox"]
    assert view["t"] == first["t"] and view["mask_runs"] == mask_runs(mask[y0:y1, x0:x1])
    assert view["annotation"] is None
    unselected = next(i for i in range(len(session.pool)) if i not in [s["pool_index"] for s in shared.samples])
    r = c.get(f"/api/samples/{unselected}")
    assert r.status_code == 404 and "not a selected sample" in r.json()["error"]


# --------------------------------------------------------------------------- rejected writes

GOOD_POLYGON = {"class_id": 1, "points": [[1, 1], [20, 1], [20, 20]]}
BAD_BODIES = [
    ([1, 2], "expected a JSON object"),
    ({"polygons": [], "extra": 1}, "unknown field"),
    ({"polygons": []}, "empty"),
    ({"polygons": {}}, "expected a list"),
    ({"polygons": [{"class_id": 3, "points": [[1, 1], [5, 1], [5, 5]]}]}, "class id 0..2"),
    ({"polygons": [{"class_id": True, "points": [[1, 1], [5, 1], [5, 5]]}]}, "class id 0..2"),
    ({"polygons": [{"class_id": 1, "points": [[1, 1], [5, 1]]}]}, "3..1000"),
    ({"polygons": [{"class_id": 1, "points": [[i % 50, 1] for i in range(1001)]}]}, "3..1000"),
    ({"polygons": [{"class_id": 1, "points": [[1, 1], [W, 1], [5, 5]]}]}, "outside the 96x64 frame"),
    ({"polygons": [{"class_id": 1, "points": [[1, -1], [5, 1], [5, 5]]}]}, "outside the 96x64 frame"),
    ({"polygons": [{"class_id": 1, "points": [[1.5, 1], [5, 1], [5, 5]]}]}, "integer pixel coordinates"),
    ({"polygons": [{"class_id": 1, "points": [[1, 1, 1], [5, 1], [5, 5]]}]}, "integer pixel coordinates"),
    ({"polygons": [{"class_id": 1}]}, "missing points"),
    ({"polygons": [GOOD_POLYGON] * 257}, "at most 256 polygons"),
    ({"polygons": [{"class_id": 1, "points": [[1, 1]] * 1000}] * 21}, "more than 20000 vertices"),
    ({"fill": {"kind": "paint"}, "polygons": []}, "'class' or 'prediction'"),
    ({"fill": {"kind": "class"}, "polygons": []}, "fill.class_id"),
    ({"fill": {"kind": "prediction", "class_id": 1}, "polygons": []}, "takes no class_id"),
    ({"polygons": [GOOD_POLYGON], "click_log": [{"kind": "hack", "ts": 1}]}, "click_log[0].kind"),
    ({"polygons": [GOOD_POLYGON], "click_log": [{"kind": "vertex", "ts": 1, "x": 500, "y": 1}]}, "is not a point"),
    ({"polygons": [GOOD_POLYGON], "click_log": [{"kind": "vertex", "ts": 1, "x": 5}]}, "both x and y"),
    ({"polygons": [GOOD_POLYGON], "click_log": [{"kind": "vertex", "ts": "now"}]}, "time in seconds"),
    ({"polygons": [GOOD_POLYGON], "click_log": [{"kind": "class", "ts": 1, "class_id": 7}]}, "class id 0..2"),
    ({"polygons": [GOOD_POLYGON], "click_log": [{"kind": "undo", "ts": 1}] * 20001}, "at most 20000 clicks"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_BODIES, ids=[n for _, n in BAD_BODIES])
def test_bad_annotations_are_rejected(shared: Served, body: object, needle: str) -> None:
    p = shared.samples[0]["pool_index"]
    r = shared.client.put(f"/api/samples/{p}/annotation", json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert shared.session.store.annotations() == []


def test_bad_requests_fail_before_reading_the_body(shared: Served) -> None:
    c = shared.client
    p = shared.samples[0]["pool_index"]
    url = f"/api/samples/{p}/annotation"
    assert c.put(url, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    r = c.put(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    big = b'{"polygons": [], "pad": "' + b"x" * Limits().max_body_bytes + b'"}'
    assert c.put(url, content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: the limit applies while reading
        yield b'{"polygons": [], "pad": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    assert c.put(url, content=chunks(), headers={"content-type": "application/json"}).status_code == 413
    for path in ("/api/batch/complete", "/api/export"):
        assert c.post(path, content=b"", headers={"content-type": "text/plain"}).status_code == 415
        assert c.get(path).status_code == 405
    assert c.get(url).status_code == 405
    assert shared.session.store.annotations() == []


def test_wrong_sample_or_phase_conflicts(shared: Served) -> None:
    c = shared.client
    r = c.put("/api/samples/999999/annotation", json={"polygons": [GOOD_POLYGON]})
    assert r.status_code == 404
    r = c.post("/api/batch/complete", json={})
    assert r.status_code == 409 and f"{B} sample(s) of the batch are not annotated" in r.json()["error"]


def test_token_guards_a_server_beyond_loopback(template: Path, tmp_path: Path) -> None:
    s = Served(shutil.copytree(template, tmp_path / "project"), token="s3cret", allowed_hosts=None)
    try:
        c = s.client
        assert c.get("/api/state").status_code == 401
        assert c.get("/api/state", headers={"x-hvsa-token": "wrong"}).status_code == 401
        assert c.get("/api/state", headers={"x-hvsa-token": "s3cret"}).status_code == 200
        r = c.get("/?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "hvsa_token=s3cret" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        assert c.get("/api/frames").status_code == 200  # the cookie now rides along
        c.cookies.clear()
        assert c.get("/api/frames", headers={"host": "evil.example"}).status_code == 401
    finally:
        s.close()
    with pytest.raises(InputError, match="needs a token"):
        create_app(s.project, token=None, allowed_hosts=None)


def test_loopback_server_refuses_foreign_hosts_and_origins(shared: Served) -> None:
    c = shared.client
    assert c.get("/api/state", headers={"host": "evil.example:8765"}).status_code == 400
    assert c.get("/api/state", headers={"host": "localhost:8765"}).status_code == 200
    p = shared.samples[0]["pool_index"]
    r = c.put(f"/api/samples/{p}/annotation", json={"polygons": [GOOD_POLYGON]},
              headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert shared.session.store.annotations() == []


# --------------------------------------------------------------------------- writes and the cycle


def test_a_save_is_committed_and_priced_before_the_answer(served: Served) -> None:
    c, session = served.client, served.session
    first = served.samples[0]
    x0, y0, x1, y1 = bbox_of(c, first)
    triangle = [[x0 + 4, y0 + 4], [x0 + 12, y0 + 4], [x0 + 12, y0 + 12]]
    log = [{"kind": "class", "class_id": 0, "ts": 1.0}, {"kind": "fill", "class_id": 0, "ts": 1.5}]
    log += [{"kind": "vertex", "x": x, "y": y, "ts": 2.0 + i} for i, (x, y) in enumerate(triangle)]
    log += [{"kind": "close", "class_id": 2, "ts": 6.0}]
    body = {"fill": {"kind": "class", "class_id": 0}, "polygons": [{"class_id": 2, "points": triangle}], "click_log": log}
    ack = c.put(f"/api/samples/{first['pool_index']}/annotation", json=body).json()
    assert ack == {"saved": True, "pool_index": first["pool_index"], "clicks": 1 + 1 + 3, "source": "manual",
                   "pixels": (x1 - x0) * (y1 - y0), "batch_annotated": 1, "batch_size": B}
    with sqlite3.connect(session.folder / "hvsa.sqlite") as db:  # another connection sees the commit
        rows = db.execute("SELECT pool_index, clicks, source FROM annotations").fetchall()
        kinds = [r[0] for r in db.execute("SELECT kind FROM click_log ORDER BY id")]
    assert rows == [(first["pool_index"], 5, "manual")]
    assert kinds == ["class", "fill", "vertex", "vertex", "vertex", "close"]
    (row,) = session.store.annotations()
    assert (row.labels == 2).sum() == 45 and (row.labels == 0).sum() == (x1 - x0) * (y1 - y0) - 45
    view = c.get(f"/api/samples/{first['pool_index']}").json()
    assert view["annotation"]["clicks"] == 5 and view["annotation"]["polygons"][1]["points"] == triangle
    overlay = decode(c.get(f"/api/frames/{first['t']}/annotations.png"))
    assert (overlay[y0:y1, x0:x1, 3] == 255).all() and overlay[..., 3].sum() == 255 * (x1 - x0) * (y1 - y0)
    # saving again replaces the labels and appends to the click log
    again = c.put(f"/api/samples/{first['pool_index']}/annotation", json={"fill": {"kind": "prediction"}, "polygons": []})
    assert again.json()["clicks"] == 1 and again.json()["source"] == "accepted"
    assert len(session.store.annotations()) == 1 and len(session.store.click_log()) == 6
    labels, _ = session.prediction(first["t"])
    assert np.array_equal(session.store.annotations()[0].labels, labels[y0:y1, x0:x1])


def _annotate_batch(served: Served) -> None:
    for i, s in enumerate(served.samples):
        body = {"fill": {"kind": "class", "class_id": i % 3}, "polygons": []}
        assert served.client.put(f"/api/samples/{s['pool_index']}/annotation", json=body).status_code == 200


def test_completing_the_batch_trains_predicts_and_selects_the_next(served: Served) -> None:
    c, session = served.client, served.session
    _annotate_batch(served)
    r = c.post("/api/batch/complete", json={})
    assert r.status_code == 202
    assert session.store.iteration(1).stage in ("annotated", "finetuned", "done")  # recorded before the answer
    late = c.put(f"/api/samples/{served.samples[0]['pool_index']}/annotation", json={"polygons": [GOOD_POLYGON]})
    assert late.status_code == 409  # training, or the batch is closed
    state = wait_for(c, iteration=2)
    assert state["completed"] == 1 and state["prediction_iteration"] == 1
    (row,) = state["iterations"]
    assert row["iteration"] == 1 and row["samples"] == B and row["clicks"] == B
    assert set(row["seconds"]) == {"select", "annotate", "finetune", "predict", "total"}
    assert {"miou", "tc"} <= set(row)
    second = [s["pool_index"] for s in state["batch"]["samples"]]
    assert len(second) == B and not set(second) & {s["pool_index"] for s in served.samples}
    assert json.loads((session.folder / "report.json").read_text())["iterations"][0]["clicks"] == B
    assert (session.folder / "checkpoints" / "iter-1.pt").is_file()


def test_export_writes_a_png_index_mask_per_frame(served: Served) -> None:
    c, session = served.client, served.session
    r = c.post("/api/export", json={})
    assert r.status_code == 202 and r.json()["export"]["state"] in ("queued", "running", "done")
    deadline = time.monotonic() + 60
    while (st := c.get("/api/state").json()["export"])["state"] != "done":
        assert st["state"] != "failed" and time.monotonic() < deadline, st
        time.sleep(0.1)
    folder = Path(st["folder"])
    assert folder == session.folder / "export" / "png" and st["frames"] == 6
    for t, name in enumerate(session.names):
        written = np.asarray(Image.open(folder / f"{name}.png"))
        assert np.array_equal(written, session.prediction(t)[0])
    assert (folder / "classes.json").is_file()


def test_a_plain_video_without_ground_truth_runs_an_iteration(clip: Path, tmp_path: Path) -> None:
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for f in sorted((clip / "frames").iterdir()):
        writer.write(cv2.imread(str(f)))
    writer.release()
    with pytest.raises(InputError, match="--classes"):
        open_session(tmp_path / "none", video)
    session, b = open_session(tmp_path / "p", video, classes=clip / "classes.json", granularity="rec48",
                              per_iteration=1, finetune=FAST)
    project = Project(session, b)
    project.start()
    try:
        with TestClient(create_app(project), base_url="http://127.0.0.1") as c:
            state = wait_for(c)
            assert state["project"]["ground_truth"] is False and session.gt is None
            (s,) = state["batch"]["samples"]
            assert c.put(f"/api/samples/{s['pool_index']}/annotation",
                         json={"fill": {"kind": "class", "class_id": 1}, "polygons": []}).status_code == 200
            assert c.post("/api/batch/complete", json={}).status_code == 202
            state = wait_for(c, iteration=2)
            (row,) = state["iterations"]
            assert row["clicks"] == 1 and row["clicks_pct"] is None and "miou" not in row and 0 <= row["tc"] <= 1
    finally:
        project.close()
        session.close()


def test_reopening_keeps_the_settings(template: Path, clip: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(template, tmp_path / "project")
    session, b = open_session(folder, clip, granularity="rec32", per_iteration=5)
    with session:
        assert b == 5 and session.store.get_meta("serve") == {"per_iteration": 5}
    session, b = open_session(folder)
    with session:
        assert b == 5
    with pytest.raises(InputError, match="granularity is rec32"):
        open_session(folder, granularity="rec16")
    with pytest.raises(InputError, match="the project labels"):
        open_session(folder, tmp_path)


def test_cli_serve_errors(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", "--out", str(tmp_path / "none"), "--port", "0"]) == 2
    assert "no project there yet" in capsys.readouterr().err
    assert main(["serve", str(clip), "--out", str(tmp_path / "p"), "--granularity", "hex3", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "granularity" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        main(["serve", str(clip), "--out", str(tmp_path / "p"), "--port", "70000"])
    assert info.value.code == 2 and "port in 0..65535" in capsys.readouterr().err


# --------------------------------------------------------------------------- killed and restarted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HVSA_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "hvsa", "serve", "--out", str(folder), "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_http(proc: subprocess.Popen, base: str, phase: str = "annotating", iteration: int | None = None) -> dict:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hvsa serve exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            state = httpx.get(f"{base}/api/state", timeout=5).json()
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        at = state["batch"]["iteration"] if state["batch"] else None
        if state["activity"]["phase"] == phase and (iteration is None or at == iteration):
            return state
        assert state["activity"]["phase"] != "failed", state["activity"]
        time.sleep(0.2)
    raise AssertionError(f"hvsa serve not {phase} after 120 s")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()


def test_a_killed_server_loses_no_acknowledged_annotation_and_resumes(template: Path, tmp_path: Path) -> None:
    import httpx

    folder = shutil.copytree(template, tmp_path / "project")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(folder, port)
    try:
        state = _wait_http(proc, base)
        first, second = state["batch"]["samples"]
        body = {"fill": {"kind": "class", "class_id": 1}, "polygons": [{"class_id": 2, "points": [[0, 0], [9, 0], [0, 9]]}],
                "click_log": [{"kind": "vertex", "x": 0, "y": 0, "ts": 1.0}]}
        ack = httpx.put(f"{base}/api/samples/{first['pool_index']}/annotation", json=body, timeout=30)
        assert ack.status_code == 200
        _kill(proc)  # between the acknowledged save and the next request
    finally:
        if proc.poll() is None:
            _kill(proc)
    with sqlite3.connect(folder / "hvsa.sqlite") as db:
        assert db.execute("SELECT pool_index, clicks FROM annotations").fetchall() == [(first["pool_index"], ack.json()["clicks"])]
        assert db.execute("SELECT kind, x, y FROM click_log").fetchall() == [("vertex", 0.0, 0.0)]

    proc = _start(folder, port)
    try:
        state = _wait_http(proc, base)
        assert state["batch"]["iteration"] == 1  # the same iteration, the same batch, the save kept
        assert [s["pool_index"] for s in state["batch"]["samples"]] == [first["pool_index"], second["pool_index"]]
        assert [s["annotated"] for s in state["batch"]["samples"]] == [True, False]
        view = httpx.get(f"{base}/api/samples/{first['pool_index']}", timeout=30).json()
        assert view["annotation"]["polygons"][1]["points"] == [[0, 0], [9, 0], [0, 9]]
        ok = httpx.put(f"{base}/api/samples/{second['pool_index']}/annotation",
                       json={"fill": {"kind": "prediction"}, "polygons": []}, timeout=30)
        assert ok.status_code == 200
        assert httpx.post(f"{base}/api/batch/complete", json={}, timeout=30).status_code == 202
        state = _wait_http(proc, base, iteration=2)  # the resumed iteration runs to its end
        assert state["completed"] == 1 and state["iterations"][0]["clicks"] == ack.json()["clicks"] + 1
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a normal stop
        assert proc.wait(timeout=60) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            _kill(proc)
        proc.stdout.close()


def test_a_project_stopped_during_fine_tuning_resumes_it(template: Path, tmp_path: Path) -> None:
    served = Served(shutil.copytree(template, tmp_path / "project"))
    _annotate_batch(served)
    assert served.client.post("/api/batch/complete", json={}).status_code == 202
    assert served.session.store.iteration(1).stage == "annotated"
    folder = served.session.folder
    served.close()  # the worker stops at its next step (or after the step it is in)
    restarted = Served(folder)
    try:
        assert restarted.session.completed == 1 and restarted.state["batch"]["iteration"] == 2
        assert restarted.session.store.iteration(1).stage == "done"
    finally:
        restarted.close()

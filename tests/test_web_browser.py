"""The annotation app end to end in a real browser: Debian's chromium driven by Playwright opens a
project on a synthetic clip, draws a polygon on one selected sample, accepts the pre-filled
prediction on another, completes the batch, waits for the next iteration, and checks the
database. Skipped when chromium or playwright is missing (``.ci/run`` installs chromium)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hvsa.cost import sample_border
from hvsa.finetune import FinetuneConfig
from hvsa.web.project import Project, open_session
from hvsa.web.server import BackgroundServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]


def launch_chromium(playwright):  # noqa: ANN001, ANN201 - a playwright Browser
    """Debian's chromium, headless, offline (Playwright's own browser download is not used)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def playwright():  # noqa: ANN201
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent (.ci/run installs it)")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Project, BackgroundServer]]:
    from hvsa.synth import generate

    clip = generate(tmp_path / "clip", frames=6, size=(128, 96), classes=3, seed=4)
    session, b = open_session(tmp_path / "project", clip, granularity="rec48", per_iteration=2,
                              finetune=FinetuneConfig(epochs=1, min_steps=3, max_steps=3))
    project = Project(session, b)
    project.start()
    server = BackgroundServer(project)
    try:
        yield project, server
    finally:
        server.close()
        project.close()
        session.close()


def _open(page, sample: dict) -> None:  # noqa: ANN001
    page.click(f'#batch-list button[data-pool="{sample["pool_index"]}"]')
    page.wait_for_function(f"window.hvsaApp.sample() && window.hvsaApp.sample().pool_index === {sample['pool_index']}")


def test_annotate_a_batch_in_the_browser(playwright, served) -> None:  # noqa: ANN001
    project, server = served
    browser = launch_chromium(playwright)
    try:
        # the page's CSP forbids eval; Playwright's wait_for_function needs it, the app does not
        page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.on("request", lambda r: None if r.url.startswith((server.url, "data:")) else errors.append(f"left the server: {r.url}"))
        page.goto(server.url)
        page.wait_for_function("window.hvsaApp && window.hvsaApp.phase() === 'annotating' && window.hvsaApp.sample()",
                               timeout=120_000)
        first, second = project.batch.samples
        first = {"pool_index": int(project.batch.pool_indices[0]), "sid": first}
        second = {"pool_index": int(project.batch.pool_indices[1]), "sid": second}

        # 1. a polygon of class 2 on the first sample: three vertices inside, one on its border
        _open(page, first)
        x0, y0, x1, y1 = page.evaluate("window.hvsaApp.sample().bbox")
        vertices = [(x0 + 6, y0 + 6), (x0 + 24, y0 + 8), (x0 + 20, y0 + 30), (x0 + 8, y1 - 1)]
        page.keyboard.press("3")  # classes are numbered from 1 on the keyboard
        for x, y in vertices:
            at = page.evaluate(f"window.hvsaApp.toClient({x}, {y})")
            page.mouse.click(at["x"], at["y"])
        page.keyboard.press("Enter")
        assert page.evaluate("window.hvsaApp.clicks()") == 1 + 3  # the class click, three charged vertices
        page.keyboard.press("s")
        page.wait_for_selector(f'#batch-list li.done button[data-pool="{first["pool_index"]}"]')

        # 2. the pre-filled prediction accepted on the second sample, one click
        _open(page, second)
        page.click("#accept")
        assert page.evaluate("window.hvsaApp.clicks()") == 1
        page.click("#save")
        page.wait_for_selector(f'#batch-list li.done button[data-pool="{second["pool_index"]}"]')
        prediction_then = project.session.prediction(second["sid"].t)[0]

        # 3. the batch completed: fine-tuning in the background, then the next batch
        page.click("#complete:not([disabled])")
        page.wait_for_selector("#view-review:not([hidden])", timeout=120_000)
        page.wait_for_function("window.hvsaApp.phase() === 'annotating'")
        assert "iteration 2" in page.text_content("#status")
        assert page.locator("#iterations tbody tr").count() == 1
        assert not errors, errors
    finally:
        browser.close()

    session = project.session
    with sqlite3.connect(session.folder / "hvsa.sqlite") as db:
        rows = db.execute("SELECT pool_index, iteration, clicks, source FROM annotations ORDER BY pool_index").fetchall()
        log = db.execute("SELECT pool_index, kind, x, y, class_id FROM click_log ORDER BY id").fetchall()
        stages = db.execute("SELECT iteration, stage FROM iterations ORDER BY iteration").fetchall()
    assert sorted(rows) == sorted([(first["pool_index"], 1, 4, "manual"), (second["pool_index"], 1, 1, "accepted")])
    assert stages == [(1, "done"), (2, "selected")]
    assert [k for p, k, *_ in log if p == first["pool_index"]] == ["class", "vertex", "vertex", "vertex", "vertex", "close"]
    assert [(x, y) for p, k, x, y, _ in log if k == "vertex"] == [tuple(map(float, v)) for v in vertices]
    assert [k for p, k, *_ in log if p == second["pool_index"]] == ["accept"]

    (manual,) = [r for r in session.store.annotations() if r.source == "manual"]
    border = sample_border(session.pool.sample_mask(first["sid"]))
    assert [bool(border[y, x]) for x, y in vertices] == [False, False, False, True]
    polygon = manual.polygons[0]
    assert polygon["class_id"] == 2 and polygon["points"] == [list(v) for v in vertices]
    assert (manual.labels == 2).all()  # no fill: the one polygon's class reaches every pixel
    (accepted,) = [r for r in session.store.annotations() if r.source == "accepted"]
    bx0, by0, bx1, by1 = accepted.bbox
    assert np.array_equal(accepted.labels, prediction_then[by0:by1, bx0:bx1])  # the prediction shown then
    assert session.completed == 1 and project.batch.iteration == 2

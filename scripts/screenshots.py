"""Regenerate the README's screenshots of the annotation app: docs/annotate.png, docs/review.png.

A synthetic clip gets two simulated iterations (so the model has something to show), then the
project is served and Debian's chromium, driven by Playwright, draws on the third batch and
opens the review. Needs /usr/bin/chromium; takes a minute or two on a laptop CPU::

    .venv/bin/python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

VIEWPORT = {"width": 1400, "height": 860}
CHROMIUM = "/usr/bin/chromium"


def _pick_sample(session, batch):  # noqa: ANN001, ANN202
    """The batch sample whose ground truth shows the largest second class, with its polygons."""
    from hvsa.cost import sample_polygons

    best = None
    for sid, p in zip(batch.samples, batch.pool_indices.tolist()):
        mask = session.pool.sample_mask(sid)
        polygons = sample_polygons(session.gt[sid.t], mask)
        counts = np.bincount(session.gt[sid.t][mask], minlength=256)[: len(session.classes)]
        second = np.sort(counts)[-2] if len(counts) > 1 else 0
        if len(polygons) >= 2 and (best is None or second > best[0]):
            best = (second, p, polygons)
    if best is None:
        raise SystemExit("no batch sample holds two classes; try another --seed")
    return best[1], best[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"), help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=7, help="synthetic clip seed (default 7)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from hvsa.annotate import SimulatedAnnotator
    from hvsa.session import LoopSettings, Session, run_loop
    from hvsa.synth import generate
    from hvsa.web.project import Project, open_session
    from hvsa.web.server import BackgroundServer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip = generate(Path(tmp) / "clip", frames=30, size=(320, 240), classes=4, seed=args.seed)
        folder = Path(tmp) / "project"
        with Session.create(folder, clip, granularity="sp80") as s:
            run_loop(s, LoopSettings(iterations=2, per_iteration=8), SimulatedAnnotator(s.gt))
        session, b = open_session(folder, per_iteration=8)
        project = Project(session, b)
        project.start()
        server = BackgroundServer(project)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-background-networking"])
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1, bypass_csp=True)
                page.goto(server.url)
                page.wait_for_function("window.hvsaApp && window.hvsaApp.phase() === 'annotating'"
                                       " && window.hvsaApp.sample()", timeout=300_000)
                pool_index, polygons = _pick_sample(session, project.batch)
                page.click(f'#batch-list button[data-pool="{pool_index}"]')
                page.wait_for_function(f"window.hvsaApp.sample().pool_index === {pool_index}")
                background, obj = polygons[0], polygons[1]
                page.keyboard.press(str(background.class_id + 1))
                page.keyboard.press("f")
                page.keyboard.press(str(obj.class_id + 1))
                vertices = obj.vertices.tolist()
                for x, y in vertices[:-1]:
                    at = page.evaluate(f"window.hvsaApp.toClient({x}, {y})")
                    page.mouse.click(at["x"], at["y"])
                x, y = vertices[-1]
                at = page.evaluate(f"window.hvsaApp.toClient({x}, {y})")
                page.mouse.move(at["x"] + 3, at["y"] + 2)
                page.wait_for_timeout(800)
                page.screenshot(path=str(out / "annotate.png"))
                page.keyboard.press("Escape")
                page.click("#tab-review")
                strip = page.locator("#strip").bounding_box()
                page.mouse.click(strip["x"] + strip["width"] * 12.5 / session.num_frames, strip["y"] + strip["height"] / 2)
                page.mouse.move(VIEWPORT["width"] - 20, VIEWPORT["height"] - 20)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / "review.png"))
                browser.close()
        finally:
            server.close()
            project.close()
            session.close()
    print(f"wrote {out / 'annotate.png'} and {out / 'review.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The HVSA loop end to end on tiny synthetic clips: schema, selection rules, resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hvsa.annotate import SimulatedAnnotator
from hvsa.errors import InputError, StoreError
from hvsa.finetune import FinetuneConfig
from hvsa.session import LoopSettings, Session, run_loop
from hvsa.store import AnnotationRow
from hvsa.synth import generate
from hvsa.types import SampleId

FAST = FinetuneConfig(epochs=4, min_steps=30, lr=0.01)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("clip") / "data", frames=10, size=(96, 64), classes=3, seed=1)


def _run(folder: Path, clip: Path, settings: LoopSettings, **kw) -> dict:
    with Session.create(folder, clip, finetune=FAST, **kw) as s:
        return run_loop(s, settings, SimulatedAnnotator(s.gt))


REPORT_KEYS = {"data", "frames", "size", "classes", "granularity", "selector", "method", "seed", "full_video_clicks", "iterations"}
ROW_KEYS = {"iteration", "samples", "clicks", "clicks_pct", "pixels_pct", "miou", "pixel_acc", "boundary_iou", "tc", "seconds",
            "peak_rss_mb"}


def test_loop_writes_a_report_in_the_design_schema(tmp_path: Path, clip: Path) -> None:
    report = _run(tmp_path / "s", clip, LoopSettings(iterations=3, per_iteration=1))
    on_disk = json.loads((tmp_path / "s" / "report.json").read_text())
    assert on_disk == report
    assert set(report) == REPORT_KEYS
    assert report["frames"] == 10 and report["size"] == [96, 64] and report["classes"] == 3
    rows = report["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r) == ROW_KEYS
        assert set(r["seconds"]) == {"select", "annotate", "finetune", "predict", "total"}
        assert all(0.0 <= r[k] <= 1.0 for k in ("miou", "pixel_acc", "boundary_iou", "tc"))
    clicks = [r["clicks"] for r in rows]
    assert clicks == sorted(clicks) and clicks[0] > 0  # cumulative
    peaks = [r["peak_rss_mb"] for r in rows]  # the process's peak so far: torch alone takes more than 50 MiB
    assert peaks[0] > 50 and all(b >= a - 1 for a, b in zip(peaks, peaks[1:]))  # 1 MiB: the kernel's lazy counters
    assert rows[-1]["pixels_pct"] == pytest.approx(30.0)  # 3 of 10 frames
    assert rows[-1]["clicks_pct"] == pytest.approx(100 * clicks[-1] / report["full_video_clicks"])


def test_quality_rises_with_annotation(tmp_path: Path, clip: Path) -> None:
    rows = _run(tmp_path / "s", clip, LoopSettings(iterations=3, per_iteration=1))["iterations"]
    assert rows[-1]["miou"] > rows[0]["miou"]
    assert rows[-1]["miou"] > 0.5


def test_annotated_samples_never_return(tmp_path: Path, clip: Path) -> None:
    folder = tmp_path / "s"
    _run(folder, clip, LoopSettings(iterations=3, per_iteration=6), granularity="rec32", selector="uncertainty")
    with Session.open(folder) as s:
        selected = [r.pool_index for r in s.store.selections()]
        annotated = s.store.annotated_pool_indices().tolist()
        assert len(selected) == 18 and len(set(selected)) == 18
        assert sorted(selected) == annotated
        assert [r.iteration for r in s.store.selections()] == [1] * 6 + [2] * 6 + [3] * 6
        # every annotation map pixel outside annotated samples is ignore
        covered = sum(int((s.annotation_map(t) != 255).sum()) for t in range(s.num_frames))
        assert covered == sum(r.pixels for r in s.store.annotations())


def test_class_balanced_selection_reads_the_uncertainty_per_predicted_class(tmp_path: Path, clip: Path) -> None:
    """hvsa-balanced runs the loop on statistics that split each sample's uncertainty between
    the pixels' predicted and runner-up classes (rows summing to the sample's uncertainty) and
    count the predicted pixels per class; statistics without them (written for another
    selector) are made again."""
    folder = tmp_path / "s"
    _run(folder, clip, LoopSettings(iterations=2, per_iteration=4), granularity="rec32", selector="hvsa-balanced")
    stats = folder / "state" / "pred-2.npz"
    with np.load(stats) as z:
        saved = {k: z[k] for k in z.files}
    assert saved["class_uncertainty"].shape == (len(saved["uncertainty"]), 3)
    np.testing.assert_allclose(saved["class_uncertainty"].sum(1), saved["uncertainty"], rtol=1e-4, atol=1e-3)
    with Session.open(folder) as s:
        predicted = np.stack([s.prediction(t)[0] for t in range(s.num_frames)])
        np.testing.assert_array_equal(saved["class_pixels"], np.bincount(predicted.ravel(), minlength=3))
        # the runner-up's half lands on classes a sample has no predicted pixel of
        from hvsa.select import sums_per_class

        present = np.concatenate([
            sums_per_class(s.pool.region_map(t), predicted[t], np.ones(predicted[t].shape), s.pool.num_samples(t), 3) > 0
            for t in range(s.num_frames)
        ])
        assert float(saved["class_uncertainty"][~present].sum()) > 0.01 * float(saved["uncertainty"].sum())
        np.savez(stats, **{k: v for k, v in saved.items() if not k.startswith("class_")})
        batch = s.select(per_iteration=4)
        assert len(batch.samples) == 4
    with np.load(stats) as z:
        np.testing.assert_allclose(z["class_uncertainty"], saved["class_uncertainty"], rtol=1e-4, atol=1e-3)


def test_network_labels_carry_their_runner_up_class_and_their_own_uncertainty_as_doubt(tmp_path: Path, clip: Path) -> None:
    """Without fusion (method hvsa) the selection statistics come from the network alone: the
    runner-up is the softmax's second class (never the first, with three classes) and the doubt
    hvsa-disagree ranks is the network's own uncertainty, so that selector runs the loop too."""
    import torch

    folder = tmp_path / "s"
    _run(folder, clip, LoopSettings(iterations=2, per_iteration=4), granularity="rec32", selector="hvsa-disagree")
    with np.load(folder / "state" / "pred-2.npz") as z:
        np.testing.assert_allclose(z["disagreement"], z["uncertainty"], rtol=1e-6)
    with Session.open(folder) as s, torch.inference_mode():
        for out in s._frame_outputs(runner_up=True):
            assert out.select_runner_up.dtype == np.uint8
            assert (out.select_runner_up != out.select_labels).all()
            np.testing.assert_array_equal(out.select_doubt, out.select_uncertainty)


class _Interrupt(Exception):
    pass


class _DiesAfter:
    """A simulated annotator that is 'killed' after ``n`` answers."""

    def __init__(self, inner: SimulatedAnnotator, n: int) -> None:
        self.inner, self.n = inner, n

    def annotate(self, request):  # noqa: ANN001, ANN201
        if self.n == 0:
            raise _Interrupt
        self.n -= 1
        return self.inner.annotate(request)


def test_resume_after_an_interruption_gives_the_same_run(tmp_path: Path, clip: Path) -> None:
    settings = LoopSettings(iterations=2, per_iteration=2)
    whole = _run(tmp_path / "whole", clip, settings, granularity="rec48")
    folder = tmp_path / "cut"
    with Session.create(folder, clip, finetune=FAST, granularity="rec48") as s:
        with pytest.raises(_Interrupt):
            run_loop(s, settings, _DiesAfter(SimulatedAnnotator(s.gt), 3))  # dies inside iteration 2
        assert s.completed == 1 and s.current.stage == "selected"
    with Session.open(folder) as s:
        resumed = run_loop(s, settings, SimulatedAnnotator(s.gt))
        cut_annotations = [(r.pool_index, r.clicks) for r in s.store.annotations()]
    with Session.open(tmp_path / "whole") as s:
        whole_annotations = [(r.pool_index, r.clicks) for r in s.store.annotations()]
    assert cut_annotations == whole_annotations
    for a, b in zip(whole["iterations"], resumed["iterations"]):
        assert a["clicks"] == b["clicks"]
        assert a["miou"] == pytest.approx(b["miou"], abs=1e-6)


def test_budget_mode_keeps_estimates_within_the_allowance(tmp_path: Path, clip: Path) -> None:
    folder = tmp_path / "s"
    report = _run(folder, clip, LoopSettings(iterations=2, budget_pct=25.0), granularity="frame")
    with Session.open(folder) as s:
        for it in s.store.iterations():
            est = sum(r.est_clicks for r in s.store.selections(it.iteration))
            assert est <= it.budget + 1e-6
    assert report["iterations"][-1]["clicks"] > 0


def test_a_budget_batch_is_chosen_among_the_samples_that_fit(tmp_path: Path, clip: Path) -> None:
    """The selector is asked only about candidates that fit the allowance on their own, so a
    batch is empty only when none does (not because the selector's favourite is too dear)."""
    from hvsa.select import Candidates

    with Session.create(tmp_path / "s", clip, finetune=FAST, granularity="rec32", selector="random") as s:
        n = 40
        est = np.full(n, 100.0)
        est[[7, 23]] = 4.0
        candidates = Candidates(index=np.arange(100, 100 + n), clicks=est)
        for seed in range(5):
            picks = s._fit_budget(candidates, 10.0, 1, np.random.default_rng(seed))  # noqa: SLF001
            assert sorted(picks.tolist()) == [7, 23]
        picks = s._fit_budget(candidates, 5.0, 1, np.random.default_rng(0))  # noqa: SLF001
        assert len(picks) == 1 and picks[0] in (7, 23)
        assert len(s._fit_budget(candidates, 3.0, 1, np.random.default_rng(0))) == 0  # noqa: SLF001


def test_a_budget_batch_ranks_by_uncertainty_per_click(tmp_path: Path, clip: Path) -> None:
    """Under a click allowance the selector is given every fitting candidate's estimate: the
    most uncertain sample is passed over when a cheaper one is more uncertain per click."""
    from hvsa.select import Candidates

    with Session.create(tmp_path / "s", clip, finetune=FAST, granularity="rec32", selector="uncertainty") as s:
        unc = np.array([9.0, 4.0, 3.0, 8.0])
        est = np.array([9.0, 2.0, 2.0, 50.0])  # sample 3 does not fit at all
        candidates = Candidates(index=np.arange(10, 14), uncertainty=unc, clicks=est)
        picks = s._fit_budget(candidates, 10.0, 2, np.random.default_rng(0))  # noqa: SLF001
        assert picks.tolist() == [1, 2]  # 2 and 1.5 per click; sample 0 (1 per click) no longer fits


def _start_batch(s: Session, picks: list[int], estimates: list[float], allowance: float) -> None:
    """Start iteration 1 with the samples ``picks`` in that rank order, with these estimated clicks."""
    t, n = s.pool.sample_indices(np.array(picks))
    s.store.start_iteration(1, len(picks), allowance)
    s.store.add_selections(1, list(zip(picks, t, n, estimates)))


def _underestimated_batch(s: Session, allowance: float) -> None:
    """Start iteration 1 with every rec sample of frames 0-4, each estimated at 0.1 clicks."""
    s.prepare()
    picks = [p for p in range(len(s.pool)) if s.pool.sample_indices(np.array([p]))[0][0] < 5]
    _start_batch(s, picks, [0.1] * len(picks), allowance)


def _annotated_after_a_resume(
    folder: Path, clip: Path, start_batch: Callable[[Session], object], dies_after: int
) -> list[AnnotationRow]:
    """Start iteration 1 with ``start_batch``, let the annotator die after ``dies_after`` samples,
    reopen the session and finish annotating; the iteration's annotations."""
    with Session.create(folder, clip, finetune=FAST, granularity="rec32", selector="random") as s:
        start_batch(s)
        with pytest.raises(_Interrupt):
            s.annotate(s.select(), _DiesAfter(SimulatedAnnotator(s.gt), dies_after))
    with Session.open(folder) as s:
        s.annotate(s.select(), SimulatedAnnotator(s.gt))
        return s.store.annotations(iteration=1)


def test_the_annotator_stops_when_the_allowance_is_spent(tmp_path: Path, clip: Path) -> None:
    """Estimates far too low do not let an iteration overspend: samples are annotated in rank
    order until the allowance is reached, the rest are withdrawn and free again; an interrupted
    iteration stops at the same sample when resumed."""
    allowance = 30.0
    with Session.create(tmp_path / "s", clip, finetune=FAST, granularity="rec32", selector="random") as s:
        _underestimated_batch(s, allowance)
        picked = [r.pool_index for r in s.store.selections(1)]
        charged = s.annotate(s.select(), SimulatedAnnotator(s.gt))
        rows = s.store.annotations(iteration=1)
        assert [r.pool_index for r in rows] == picked[: len(rows)] and 3 <= len(rows) < len(picked)
        assert charged == sum(r.clicks for r in rows)
        assert charged >= allowance > charged - rows[-1].clicks  # stopped at the first sample reaching it
        assert [r.pool_index for r in s.store.selections(1)] == picked[: len(rows)]
        assert s.store.iteration(1).samples == len(rows)
        assert set(picked[len(rows):]).isdisjoint(s.store.selected_pool_indices().tolist())
    resumed = _annotated_after_a_resume(tmp_path / "cut", clip, lambda s: _underestimated_batch(s, allowance), 2)
    assert [(r.pool_index, r.clicks) for r in resumed] == [(r.pool_index, r.clicks) for r in rows]


def _dear_sample_batch(s: Session, allowance: float) -> tuple[int, int, int]:
    """Start iteration 1 with three rec samples (a, b, c), in that rank order: a estimated at
    0.1 clicks but dearer, b estimated to fill the allowance with a's estimate (so the batch
    fits), c cheap enough to fit after a. Returns their pool indices."""
    s.prepare()
    annotator = SimulatedAnnotator(s.gt)
    ts, ns = s.pool.sample_indices(np.arange(len(s.pool)))
    cost = {p: annotator.annotate(s.request(SampleId(int(t), int(n)))).clicks for p, (t, n) in enumerate(zip(ts, ns))}
    a = max(cost, key=cost.get)
    c = next(p for p in cost if p != a and 1 <= cost[p] <= allowance - cost[a])
    b = next(p for p in cost if p not in (a, c))
    assert 0.1 < cost[a] < allowance
    _start_batch(s, [a, b, c], [0.1, allowance - 0.1, 0.1], allowance)
    return a, b, c


def test_a_sample_whose_estimate_no_longer_fits_is_withdrawn(tmp_path: Path, clip: Path) -> None:
    """Once the samples before it cost more than estimated, a sample estimated above what is
    left of the allowance is not annotated (it is free again) and a cheaper one after it still
    is; a resumed iteration withdraws the same one."""
    allowance = 40.0
    with Session.create(tmp_path / "s", clip, finetune=FAST, granularity="rec32", selector="random") as s:
        a, b, c = _dear_sample_batch(s, allowance)
        charged = s.annotate(s.select(), SimulatedAnnotator(s.gt))
        rows = s.store.annotations(iteration=1)
        assert sorted(r.pool_index for r in rows) == sorted([a, c])
        assert charged == sum(r.clicks for r in rows) <= allowance
        assert [r.pool_index for r in s.store.selections(1)] == [a, c] and s.store.iteration(1).samples == 2
        assert b not in s.store.selected_pool_indices().tolist()
    resumed = _annotated_after_a_resume(tmp_path / "cut", clip, lambda s: _dear_sample_batch(s, allowance), 1)
    assert sorted(r.pool_index for r in resumed) == sorted([a, c])


def test_create_and_open_errors(tmp_path: Path, clip: Path) -> None:
    with Session.create(tmp_path / "s", clip, finetune=FAST):
        pass
    with pytest.raises(StoreError, match="already holds a session"):
        Session.create(tmp_path / "s", clip)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not an hvsa session folder"):
        Session.open(tmp_path / "empty")
    with pytest.raises(InputError, match="unknown selector 'best'"):
        Session.create(tmp_path / "x", clip, selector="best")
    with pytest.raises(InputError, match="granularity"):
        Session.create(tmp_path / "y", clip, granularity="hex9")
    with pytest.raises(InputError, match="'gpu' is not a device"):
        Session.create(tmp_path / "z", clip, device="gpu")
    with pytest.raises(InputError, match="'gpu' is not a device"):
        Session.open(tmp_path / "s", device="gpu")
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()  # refused before any file
    with pytest.raises(InputError, match="exactly one of"):
        LoopSettings(iterations=2, per_iteration=3, budget_pct=2.0)


def test_exports_and_predictions(tmp_path: Path, clip: Path) -> None:
    folder = tmp_path / "s"
    _run(folder, clip, LoopSettings(iterations=1, per_iteration=2))
    with Session.open(folder) as s:
        out = s.export(tmp_path / "masks", "png")
        files = sorted(p.name for p in out.glob("*.png"))
        assert files == [f"{n}.png" for n in s.names]
        from PIL import Image

        t, labels, conf = next(s.predictions())
        np.testing.assert_array_equal(np.asarray(Image.open(out / files[0])), labels)
        assert conf.dtype == np.float32 and 0 <= conf.min() and conf.max() <= 1
        assert s.frame_confidence().shape == (10,)


def test_click_estimates_are_calibrated_on_samples_estimated_from_a_prediction(tmp_path: Path, clip: Path) -> None:
    """Before any annotation every sample is priced at the prior (the pool's mean clicks per
    sample); afterwards at the click model on the prediction rescaled to the pool's total,
    times charged / estimated over the samples whose estimate came from a prediction, and
    never below 1 click."""
    from dataclasses import replace

    class Costly(SimulatedAnnotator):
        def annotate(self, request):  # noqa: ANN001, ANN201
            return replace(super().annotate(request), clicks=400)

    with Session.create(tmp_path / "s", clip, finetune=FAST, granularity="rec32") as s:
        s.prepare()
        from hvsa.cost import pool_clicks

        total = sum(int(pool_clicks(s.gt[t], s.pool.region_map(t), s.pool.num_samples(t)).sum()) for t in range(len(s.gt)))
        assert s.pool_clicks == total > len(s.pool)  # rec32: every sample costs 1 at least
        prior = total / len(s.pool)
        est, source = s._estimated_clicks({"est_clicks": np.zeros(len(s.pool))})  # noqa: SLF001
        assert source == "prior" and np.allclose(est, max(prior, 1.0))
        first = s.select(2)
        s.annotate(first, Costly(s.gt))
        s.finetune(show_progress=False)
        s.predict()
        # the first batch was priced by the prior: it says nothing of the prediction's estimates
        assert s._click_calibration() == 1.0  # noqa: SLF001
        second = s.select(3)
        s.annotate(second, Costly(s.gt))
        rows = {it.iteration: it.info["estimates"] for it in s.iterations}
        assert rows == {1: "prior", 2: "prediction"}
        ratio = 3 * 400 / float(np.sum(second.est_clicks))
        assert s._click_calibration() == pytest.approx(ratio)  # noqa: SLF001
        raw = np.linspace(0.0, 50.0, len(s.pool))
        est, source = s._estimated_clicks({"est_clicks": raw})  # noqa: SLF001
        assert source == "prediction"
        scaled = raw * (total / raw.sum())
        np.testing.assert_allclose(est, np.maximum(scaled * ratio, 1.0))


def test_iterations_without_annotations_neither_train_nor_advance_the_selector(tmp_path: Path, clip: Path) -> None:
    """An iteration that annotated nothing (a budget too small for any sample) leaves the new
    decoder untrained, so the next selection is still the selector's first round."""
    told: list[int] = []

    with Session.create(tmp_path / "s", clip, finetune=FAST, granularity="frame") as s:
        real = s.selector.select

        def record(candidates, b, *, iteration, rng):  # noqa: ANN001, ANN202
            told.append(iteration)
            return real(candidates, b, iteration=iteration, rng=rng)

        s.selector.select = record
        annotator = SimulatedAnnotator(s.gt)
        s.prepare()
        stats = []
        for b in (0, 1, 0, 1):
            s.annotate(s.select(b), annotator)
            stats.append(s.finetune(show_progress=False))
            s.predict()
        checkpoints = [it.checkpoint for it in s.iterations]
    assert told == [1, 1, 2, 2]
    # iterations that annotated nothing keep the weights they had: no steps, no new checkpoint
    assert [st["steps"] > 0 for st in stats] == [False, True, False, True]
    assert stats[0]["skipped"] == stats[2]["skipped"] == "no new annotations"
    assert checkpoints[0] is None and checkpoints[2] is None and None not in (checkpoints[1], checkpoints[3])


class _TwoFramePool:
    """Frame 0 (4x4) in two samples, its left and right halves; frame 1 one sample."""

    offsets = np.array([0, 2, 3])

    def __len__(self) -> int:
        return 3

    def region_map(self, t: int) -> np.ndarray:
        return np.repeat([[0, 0, 1, 1]], 4, axis=0).astype(np.int32) if t == 0 else np.zeros((4, 4), np.int32)

    def num_samples(self, t: int) -> int:
        return 2 if t == 0 else 1


def test_selection_statistics_sum_each_samples_pixels_and_split_their_doubt_between_two_classes(tmp_path: Path) -> None:
    import torch

    from hvsa.session import _FrameOutput, _SelectionStats

    left = np.repeat([[True, True, False, False]], 4, axis=0)
    unc = np.where(left, 0.2, 0.5).astype(np.float32)  # 8 pixels each: sums 1.6 and 4.0
    labels = np.where(left, 0, 1).astype(np.uint8)
    runner_up = (1 - labels).astype(np.uint8)
    # (1, D=2, 2, 2): a feature cell's column lies in one half of frame 0
    features = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[0.0, 2.0], [4.0, 6.0]]]])
    stats = _SelectionStats(_TwoFramePool(), 3, 2, {"class_uncertainty", "class_pixels", "disagreement"},
                            estimate_clicks=False, epsilon=2.0, ignore_index=255)  # fmt: skip
    assert stats.by_class
    stats.add(_FrameOutput(0, features, labels, unc / 2, labels, unc, runner_up, unc + 0.25))
    ones = np.ones((4, 4), np.float32)
    stats.add(_FrameOutput(1, features, labels * 0 + 2, ones * 0.1, labels * 0 + 2, ones * 0.1, labels * 0, ones * 0.1))

    np.testing.assert_allclose(stats.uncertainty, [1.6, 4.0, 1.6])
    np.testing.assert_allclose(stats.disagreement, [3.6, 6.0, 1.6])
    # half of each pixel's doubt to its label's class, half to its runner-up's
    np.testing.assert_allclose(stats.class_uncertainty, [[0.8, 0.8, 0.0], [2.0, 2.0, 0.0], [0.8, 0.0, 0.8]], rtol=1e-6)
    assert stats.class_pixels.tolist() == [8, 8, 16]
    np.testing.assert_allclose(stats.features.astype(np.float32), [[3.0, 2.0], [5.0, 4.0], [4.0, 3.0]])
    np.testing.assert_allclose(stats.frame_confidence, [1 - 0.35 / 2, 0.9], rtol=1e-6)
    assert stats.est_clicks.tolist() == [1.0, 1.0, 1.0]  # not estimated: every sample one click

    path = tmp_path / "state" / "pred-1.npz"
    stats.save(path)
    with np.load(path) as z:
        assert sorted(z.files) == ["class_pixels", "class_uncertainty", "disagreement", "est_clicks", "features",
                                   "frame_confidence", "uncertainty"]  # fmt: skip
        np.testing.assert_array_equal(z["class_uncertainty"], stats.class_uncertainty)
    assert [p.name for p in path.parent.iterdir()] == ["pred-1.npz"]  # no temporary file left
    plain = _SelectionStats(_TwoFramePool(), 3, 2, set(), estimate_clicks=True, epsilon=2.0, ignore_index=255)
    assert not plain.by_class and plain.disagreement is None

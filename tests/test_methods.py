"""Labelling methods in a session: the registry, finetune-only, hvsa-fused, and the lp and copy baselines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hvsa.annotate import SimulatedAnnotator
from hvsa.errors import InputError, UnknownNameError
from hvsa.finetune import FinetuneConfig
from hvsa.pools import sample_areas
from hvsa.methods import METHODS, disagreement_margin, fuse_labels, get_method
from hvsa.session import LoopSettings, Session, SessionConfig, run_loop
from hvsa.synth import generate

FAST = FinetuneConfig(epochs=1, min_steps=10, lr=0.01)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("clip") / "data", frames=8, size=(80, 56), classes=3, seed=4)


def test_registry_lists_the_methods_and_rejects_unknown_names(tmp_path: Path, clip: Path) -> None:
    assert METHODS.names() == ["copy", "finetune-only", "hvsa", "hvsa-crf", "hvsa-fused", "lp"]
    assert get_method("hvsa").trains and get_method("hvsa-fused").trains and not get_method("lp").trains
    with pytest.raises(UnknownNameError, match="unknown method 'best'; expected one of: copy, finetune-only, hvsa, hvsa-crf, hvsa-fused, lp"):
        Session.create(tmp_path / "s", clip, method="best")


def test_finetune_only_saves_lambda_zero_and_old_configs_default_to_hvsa(tmp_path: Path, clip: Path) -> None:
    with Session.create(tmp_path / "s", clip, method="finetune-only", finetune=FinetuneConfig(lambda_tc=1.0)) as s:
        assert s.config.finetune.lambda_tc == 0.0
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    assert saved["method"] == "finetune-only" and saved["finetune"]["lambda_tc"] == 0.0
    old = {k: v for k, v in saved.items() if k not in ("method", "cache_dir", "classes")}
    assert SessionConfig.from_dict(old).method == "hvsa"


@pytest.mark.parametrize(("method", "hold"), [("hvsa", 0.0), ("finetune-only", 0.0), ("hvsa-fused", 0.7), ("hvsa-crf", 0.7)])
def test_the_papers_methods_never_hold(tmp_path: Path, clip: Path, method: str, hold: float) -> None:
    assert FinetuneConfig().hold_unseen == 0.5
    with Session.create(tmp_path / "s", clip, method=method, finetune=FinetuneConfig(hold_unseen=0.7)) as s:
        assert s.config.finetune.hold_unseen == hold
    old = json.loads((tmp_path / "s" / "config.json").read_text())
    del old["finetune"]["hold_unseen"]  # saved before the hold existed: trained without it
    assert SessionConfig.from_dict(old).finetune.hold_unseen == 0.0


@pytest.mark.parametrize(("method", "threshold"), [("hvsa", 0.0), ("finetune-only", 0.0), ("hvsa-fused", 0.9)])
def test_fine_tuning_reads_the_labels_propagated_from_the_annotations(tmp_path: Path, clip: Path, method: str,
                                                                       threshold: float) -> None:
    from hvsa.propagate import propagate
    from hvsa.session import _SessionTrainingData

    finetune = dataclasses.replace(FAST, propagated_targets=0.9)
    with Session.create(tmp_path / "s", clip, method=method, finetune=finetune, granularity="rec32", seed=1) as s:
        assert s.config.finetune.propagated_targets == threshold  # the paper's methods never do
        run_loop(s, LoopSettings(iterations=1, per_iteration=4), SimulatedAnnotator(s.gt))
        assert s.store.iteration(1).info["finetune"]["propagated_targets"] == (threshold > 0)
        cached = s.folder / "cache" / "propagated.u8"
        assert cached.exists() == (threshold > 0)
        if threshold > 0:  # what fine-tuning read: the propagation of the annotations, to the byte
            for t, labels, conf in propagate(_SessionTrainingData(s), s.method.propagation):
                got_labels, got_conf = s._propagated[0][t], s._propagated[1][t]  # noqa: SLF001
                np.testing.assert_array_equal(got_labels, labels)
                np.testing.assert_array_equal(got_conf, conf.astype(np.float16))
            assert (s._propagated[1][0] > 0).any()  # noqa: SLF001


@pytest.mark.parametrize("method", ["lp", "copy"])
def test_baselines_label_from_annotations_without_training(tmp_path: Path, clip: Path, method: str) -> None:
    folder = tmp_path / method
    with Session.create(folder, clip, method=method, finetune=FAST, selector="random") as s:
        report = run_loop(s, LoopSettings(iterations=2, per_iteration=2), SimulatedAnnotator(s.gt))
        annotated = s.store.annotated_frames()
        assert len(annotated) == 4
        for t in annotated:  # annotated frames come back as annotated, with confidence 1
            labels, conf = s.prediction(t)
            np.testing.assert_array_equal(labels, s.annotation_map(t))
            assert (conf == 1).all()
        for it in s.iterations:
            assert it.checkpoint is None and it.info["finetune"]["steps"] == 0
        with np.load(s.folder / "state" / "pred-2.npz") as z:  # the network still gives features
            assert np.isfinite(z["features"].astype(np.float32)).all()
            assert z["features"].shape[0] == s.num_frames
    rows = report["iterations"]
    assert report["method"] == method
    assert rows[-1]["miou"] > 0.6
    assert rows[-1]["seconds"]["finetune"] < 1.0


def test_shared_cache_dir_serves_two_sessions(tmp_path: Path, clip: Path) -> None:
    shared = tmp_path / "video-cache"
    for name in ("a", "b"):
        with Session.create(tmp_path / name, clip, method="copy", cache_dir=shared) as s:
            s.prepare()
    flows = sorted(p.name for p in (shared / "flows").glob("*.f16"))
    assert len(flows) == 4  # one file per frame offset, written once, used by both sessions
    assert not (tmp_path / "b" / "cache" / "flows").exists()


def test_a_session_can_annotate_the_samples_of_another(tmp_path: Path, clip: Path) -> None:
    settings = LoopSettings(iterations=2, per_iteration=2)
    with Session.create(tmp_path / "ref", clip, method="copy", selector="random", granularity="rec32") as ref:
        run_loop(ref, settings, SimulatedAnnotator(ref.gt))
        picked = [(r.iteration, r.pool_index) for r in ref.store.selections()]
        charged = ref.store.clicks_total()
    with Session.create(tmp_path / "lp", clip, method="lp", selector="hvsa", granularity="rec32",
                        samples_from=tmp_path / "ref") as s:
        report = run_loop(s, settings, SimulatedAnnotator(s.gt))
        assert [(r.iteration, r.pool_index) for r in s.store.selections()] == picked
        assert s.store.clicks_total() == charged
        assert s.config.samples_from == str((tmp_path / "ref").resolve())
    assert len(report["iterations"]) == 2
    with Session.create(tmp_path / "more", clip, method="lp", granularity="rec32", samples_from=tmp_path / "ref") as s:
        with pytest.raises(InputError, match="has no iteration 3 yet"):
            run_loop(s, LoopSettings(iterations=3, per_iteration=2), SimulatedAnnotator(s.gt))
    with pytest.raises(InputError, match="same video, size and granularity"):
        Session.create(tmp_path / "other", clip, granularity="frame", samples_from=tmp_path / "ref")


def test_fuse_labels_takes_the_more_confident_source_per_pixel() -> None:
    net = np.array([[0, 0, 1]], np.uint8)
    prop = np.array([[2, 2, 2]], np.uint8)
    labels, conf = fuse_labels(net, np.array([[0.9, 0.4, 0.5]]), prop, np.array([[0.3, 0.6, 0.5]]))
    np.testing.assert_array_equal(labels, [[0, 2, 1]])  # a tie keeps the network's label
    np.testing.assert_allclose(conf, [[0.9, 0.6, 0.5]])
    assert conf.dtype == np.float32


def test_disagreement_margin_is_the_winners_where_the_sources_agree_and_their_difference_where_not() -> None:
    net = np.array([[0, 0, 1, 1, 1]], np.uint8)
    prop = np.array([[0, 2, 2, 2, 1]], np.uint8)
    net_conf = np.array([[0.9, 0.4, 0.8, 0.7, 0.2]])
    prop_conf = np.array([[0.3, 0.6, 0.0, 0.7, 0.5]])
    margin = disagreement_margin(net, net_conf, prop, prop_conf)
    # agree: the larger; disagree: the gap; no chain (0): the network's; equally sure and opposed: 0
    np.testing.assert_allclose(margin, [[0.9, 0.2, 0.8, 0.0, 0.5]], atol=1e-6)
    assert margin.dtype == np.float32
    _, winner = fuse_labels(net, net_conf, prop, prop_conf)
    assert (margin <= winner + 1e-6).all()  # disagreement only ever adds doubt


def test_hvsa_disagree_reads_the_fused_labels_doubt_and_leaves_the_labels_alone(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hvsa.methods

    with Session.create(tmp_path / "s", clip, method="hvsa-fused", finetune=FAST, granularity="rec32",
                        selector="hvsa-disagree") as s:
        run_loop(s, LoopSettings(iterations=1, per_iteration=4), SimulatedAnnotator(s.gt))
        before = [s.prediction(t) for t in range(s.num_frames)]
        with np.load(s.folder / "state" / "pred-1.npz") as z:
            uncertainty, doubt = z["uncertainty"], z["disagreement"]
        assert (doubt >= uncertainty - 1e-3).all() and (doubt > uncertainty + 1e-3).any()  # disagreement adds doubt
        # every pixel in full doubt: each sample's summed doubt becomes its area
        monkeypatch.setattr(hvsa.methods, "disagreement_margin", lambda net, *_: np.zeros(net.shape, np.float32))
        s.predict(iteration=1)
        with np.load(s.folder / "state" / "pred-1.npz") as z:
            np.testing.assert_allclose(z["uncertainty"], uncertainty)  # the winner's, unchanged
            np.testing.assert_allclose(z["disagreement"], np.concatenate(
                [sample_areas(s.pool.region_map(t), s.pool.num_samples(t)) for t in range(s.num_frames)]))
        for t, (labels, conf) in enumerate(before):  # the labels and their confidence are the winner's
            np.testing.assert_array_equal(s.prediction(t)[0], labels)
            np.testing.assert_array_equal(s.prediction(t)[1], conf)
        batch = s.select(per_iteration=3)  # selection reads the doubt
        assert len(batch.samples) == 3


@pytest.mark.parametrize("method", ["hvsa-fused", "hvsa-crf"])
def test_fused_methods_train_and_keep_annotated_pixels(tmp_path: Path, clip: Path, method: str) -> None:
    with Session.create(tmp_path / "s", clip, method=method, finetune=FAST, granularity="rec32") as s:
        report = run_loop(s, LoopSettings(iterations=2, per_iteration=6), SimulatedAnnotator(s.gt))
        assert all(it.info["finetune"]["steps"] > 0 for it in s.iterations)
        for t in s.store.annotated_frames():  # annotated pixels come back as annotated, confidence 1
            labels, conf = s.prediction(t)
            known = s.annotation_map(t) != 255
            np.testing.assert_array_equal(labels[known], s.annotation_map(t)[known])
            assert (conf[known] == 1).all()
    assert report["method"] == method and report["iterations"][-1]["miou"] > 0.5


def test_hvsa_crf_selects_from_the_unrefined_labels(tmp_path: Path, clip: Path) -> None:
    stats, labels = {}, {}
    # without the hold: the hold trains on the reported labels, which the CRF refines
    finetune = dataclasses.replace(FAST, hold_unseen=0.0)
    for method in ("hvsa-fused", "hvsa-crf"):
        with Session.create(tmp_path / method, clip, method=method, finetune=finetune, granularity="rec32", seed=3) as s:
            run_loop(s, LoopSettings(iterations=2, per_iteration=4), SimulatedAnnotator(s.gt))
            with np.load(s.folder / "state" / "pred-2.npz") as z:
                stats[method] = {k: z[k] for k in ("uncertainty", "est_clicks")}
            labels[method] = np.stack([s.prediction(t)[0] for t in range(s.num_frames)])
            chosen = [r.pool_index for r in s.store.annotations()]
        stats[method]["chosen"] = np.array(chosen)
    for key in ("uncertainty", "est_clicks", "chosen"):  # the same network, the same choices
        np.testing.assert_array_equal(stats["hvsa-fused"][key], stats["hvsa-crf"][key])
    assert (labels["hvsa-fused"] != labels["hvsa-crf"]).any()  # the CRF moved some outlines


def test_hvsa_crf_averages_the_network_over_views_of_the_frame(tmp_path: Path, clip: Path) -> None:
    import torch
    import torch.nn.functional as F

    from hvsa.model.views import View

    assert get_method("hvsa-crf").views == (View(1.0, True), View(1.25), View(1.25, True))
    assert get_method("hvsa").views == get_method("finetune-only").views == ()  # the paper's, as they were
    assert get_method("hvsa-fused").views == ()  # the faster of the two
    with pytest.raises(ValueError, match="views are read by the network"):
        dataclasses.replace(get_method("lp"), views=(View(1.0, True),))
    with Session.create(tmp_path / "s", clip, method="hvsa-crf", finetune=FAST) as s:
        assert "encode_views" in s.prepare()  # every frame's views, encoded up front
        assert len(list(s.views.folder.glob("*.npz"))) == 3 * s.num_frames
        model, t = s.model, 5
        with torch.inference_mode():
            own, got = s._network_probs(t, model.features(s.taps.get(t)))
            # by hand: encode each view, read it, mirror it back, resize it to the frame
            expected = []
            for view in (View(1.0), *s.method.views):
                x = model.normalize(torch.from_numpy(view.frame(s.frames.read(t)))[None])
                taps = [tap.half().float() for tap in model.encode(x)]  # the caches keep float16
                logits = model.decoder.head(model.features(taps))
                logits = logits.flip(-1) if view.flip else logits
                expected.append(F.interpolate(logits, size=s.hw, mode="bilinear", align_corners=False).softmax(1))
        assert got.shape == (1, len(s.classes), *s.hw)
        torch.testing.assert_close(got, torch.stack(expected).mean(0), atol=1e-5, rtol=0)
        torch.testing.assert_close(own, expected[0], atol=1e-5, rtol=0)
        assert not torch.allclose(got, own, atol=1e-3)  # the views changed the frame's own


def test_views_change_the_labels_not_what_selection_reads(tmp_path: Path, clip: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import hvsa.methods

    finetune = dataclasses.replace(FAST, hold_unseen=0.0)  # the hold trains on the labels
    runs = {}
    for name in ("views", "none"):
        if name == "none":
            monkeypatch.setattr(hvsa.methods, "get_method",
                                lambda method: dataclasses.replace(METHODS.get(method), views=()))
        with Session.create(tmp_path / name, clip, method="hvsa-crf", finetune=finetune, granularity="rec32",
                            seed=3) as s:
            assert bool(s.method.views) == (name == "views")
            run_loop(s, LoopSettings(iterations=2, per_iteration=4), SimulatedAnnotator(s.gt))
            with np.load(s.folder / "state" / "pred-2.npz") as z:
                runs[name] = {k: z[k] for k in ("uncertainty", "est_clicks", "features")}
            runs[name]["chosen"] = np.array([r.pool_index for r in s.store.annotations()])
            runs[name]["labels"] = np.stack([s.prediction(t)[0] for t in range(s.num_frames)])
    for key in ("uncertainty", "est_clicks", "features", "chosen"):  # the same samples, the same statistics
        np.testing.assert_array_equal(runs["views"][key], runs["none"][key])
    assert (runs["views"]["labels"] != runs["none"]["labels"]).any()

"""`hvsa pretrain`: a network trained on other labelled clips is a better start than a new decoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hvsa.cli.main import main
from hvsa.errors import InputError
from hvsa.model import load_checkpoint
from hvsa.pretrain import PretrainConfig, pretrain
from hvsa.session import Session


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hvsa.synth import generate

    root = tmp_path_factory.mktemp("pretrain") / "synth"
    for seed in (1, 2, 3):  # class appearance is a function of the class id: the clips share it
        generate(root / f"s{seed}", frames=5, size=(64, 48), classes=3, seed=seed)
    return root


def test_pretrained_start_beats_a_new_decoder_on_a_held_out_clip(clips: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    model = tmp_path / "model.pt"
    assert main(["pretrain", str(clips / "s1"), str(clips / "s2"), "--out", str(model), "--steps", "40"]) == 0
    assert "pretraining on 2 sequence(s): synth/s1, synth/s2" in capsys.readouterr().out
    net, classes, meta = load_checkpoint(model)
    assert classes.names == ["sky", "ground", "car"]
    info = meta["pretrain"]
    assert info["frames"] == 10 and info["size"] == [64, 48] and info["stats"]["steps"] == 40
    assert [Path(p).name for p in info["data"]] == ["s1", "s2"]
    scores = {}
    for name, start in (("new", None), ("pretrained", model)):
        with Session.create(tmp_path / name, clips / "s3", model=start) as s:
            s.taps.fill()
            scores[name] = s.predict(iteration=0)["miou"]  # before any annotation
    assert scores["pretrained"] > scores["new"] + 0.2, scores


def test_pretrain_errors(clips: Path, tmp_path: Path) -> None:
    from hvsa.synth import generate

    other_classes = generate(tmp_path / "c4", frames=5, size=(64, 48), classes=4, seed=1)
    other_size = generate(tmp_path / "big", frames=5, size=(80, 48), classes=3, seed=1)
    with pytest.raises(InputError, match="differ from"):
        pretrain([clips / "s1", other_classes], tmp_path / "m.pt", config=PretrainConfig(steps=1))
    with pytest.raises(InputError, match="pass one --size WxH"):
        pretrain([clips / "s1", other_size], tmp_path / "m.pt", config=PretrainConfig(steps=1))
    with pytest.raises(InputError, match="at least one"):
        pretrain([], tmp_path / "m.pt")
    with pytest.raises(InputError, match="steps"):
        PretrainConfig(steps=0)


def test_bench_starts_every_run_from_the_model(clips: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    pretrain([clips / "s1"], model, config=PretrainConfig(steps=2))
    out = tmp_path / "bench"
    argv = ["bench", str(clips / "s3"), "--out", str(out), "--method", "lp", "--budget-pct", "50",
            "--iterations", "1", "--model", str(model), "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    run = out / "runs" / "synth" / "s3" / "frame-hvsa-lp-b50-s0"
    assert json.loads((run / "config.json").read_text())["model"] == str(model.resolve())
    assert load_checkpoint(run / "checkpoints" / "iter-0.pt")[2]["from"] == str(model.resolve())
    assert json.loads((out / "bench.json").read_text())["settings"]["model"] == str(model.resolve())


def test_pretraining_leaves_the_encoder_and_so_its_tap_cache_key_unchanged(clips: Path, tmp_path: Path) -> None:
    """The bench fills a sequence's tap cache once, with the ImageNet encoder, and the runs that
    start from a pre-trained checkpoint read the same files: that holds while pre-training
    leaves the encoder as it was."""
    from hvsa.model import ModelConfig, build_model
    from hvsa.model.taps import encoder_digest

    net, _, _ = load_checkpoint(pretrain([clips / "s1"], tmp_path / "m.pt", config=PretrainConfig(steps=3))[0])
    assert encoder_digest(net) == encoder_digest(build_model(ModelConfig(num_classes=3)))


def test_bench_cross_validates_the_pretrained_start(clips: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """--pretrain-folds: every run starts from the network of its fold, trained on the other
    folds' sequences only; finished folds are not trained again on resume."""
    out = tmp_path / "bench"
    argv = ["bench", str(clips), "--out", str(out), "--method", "lp", "--budget-pct", "50", "--iterations", "1",
            "--pretrain-folds", "3", "--pretrain-epochs", "1", "--jobs", "2"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "pre-trained synth/fold0 on 2 sequence(s)" in text and text.count("pre-trained synth/fold") == 3
    for i, name in enumerate(("s1", "s2", "s3")):
        model = out / "models" / "synth" / f"fold{i}.pt"
        trained_on = load_checkpoint(model)[2]["pretrain"]["data"]
        assert sorted(Path(p).name for p in trained_on) == sorted({"s1", "s2", "s3"} - {name})
        run = out / "runs" / "synth" / name / "frame-hvsa-lp-b50-s0"
        assert json.loads((run / "run.json").read_text())["model"] == str(model)
        assert load_checkpoint(run / "checkpoints" / "iter-0.pt")[2]["from"] == str(model)
    settings = json.loads((out / "bench.json").read_text())["settings"]
    assert settings["pretrain_folds"] == 3 and settings["pretrain"]["epochs"] == 1.0 and settings["model"] is None
    stamps = [p.stat().st_mtime_ns for p in sorted((out / "models").rglob("*.pt"))]
    assert main([*argv[:4], "--budget-pct", "50,60", *argv[6:]]) == 0  # extend the grid: 3 new runs
    assert "pre-trained" not in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in sorted((out / "models").rglob("*.pt"))] == stamps
    assert main([*argv, "--model", str(out / "models" / "synth" / "fold0.pt")]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["bench", str(clips), "--out", str(tmp_path / "other"), "--pretrain-folds", "4"]) == 2
    assert "synth has 3 sequence(s), fewer than 4 folds" in capsys.readouterr().err


def test_pretrain_taps_give_a_decoder_that_reads_the_stride_2_tap(clips: Path, tmp_path: Path) -> None:
    """--taps 2,4,8,16,32: the checkpoint's decoder reads five taps, a session caches all five and
    labels at full size; bad strides are refused before any training."""
    model = tmp_path / "t2.pt"
    assert main(["pretrain", str(clips / "s1"), "--out", str(model), "--steps", "5", "--taps", "2,4,8,16,32"]) == 0
    net, _, meta = load_checkpoint(model)
    assert net.config.taps == (2, 4, 8, 16, 32) and list(meta["pretrain"]["taps"]) == [2, 4, 8, 16, 32]
    with Session.create(tmp_path / "s", clips / "s3", model=model) as s:
        s.taps.fill()
        assert [shape[1:] for shape in s.taps.shapes] == [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
        assert 0 <= s.predict(iteration=0)["miou"] <= 1
    with pytest.raises(InputError, match="taps must be increasing strides"):
        PretrainConfig(taps=(4, 3))

"""The command line, in process: exit codes, one-line errors, the main commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hvsa.cli.main import COMMANDS, main


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hvsa.synth import generate

    return generate(tmp_path_factory.mktemp("clip") / "data", frames=6, size=(64, 48), classes=3, seed=2)


def _one_line_error(capsys: pytest.CaptureFixture, needle: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert needle in err, err
    assert "Traceback" not in err


def test_every_command_is_registered() -> None:
    from hvsa.cli.main import build_parser

    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    assert set(choices) == {name.replace("_", "-") for name in COMMANDS}


def test_fine_tuning_help_states_the_library_defaults() -> None:
    """The CLI does not import torch to print its help, so its defaults are written out; they
    must stay those of FinetuneConfig."""
    import argparse

    from hvsa.cli._common import add_model_arguments, finetune_config
    from hvsa.finetune import FinetuneConfig

    p = argparse.ArgumentParser()
    add_model_arguments(p)
    helps = {a.dest: a.help for a in p._actions}  # noqa: SLF001
    defaults = FinetuneConfig()
    for dest in ("epochs", "lr", "crop", "lambda_tc", "class_balance", "view_share", "hold_unseen",
                 "propagated_targets"):
        assert f"(default {getattr(defaults, dest):g}" in helps[dest], (dest, helps[dest])
    assert finetune_config(p.parse_args([])) == defaults
    assert finetune_config(p.parse_args(["--crop", "1", "--epochs", "3"])) == FinetuneConfig(crop=1.0, epochs=3.0)
    assert finetune_config(p.parse_args(["--hold-unseen", "0.7"])) == FinetuneConfig(hold_unseen=0.7)
    assert finetune_config(p.parse_args(["--propagated-targets", "0.9"])) == FinetuneConfig(propagated_targets=0.9)
    assert f"(default {'on' if defaults.anchor_windows else 'off'};" in helps["anchor_windows"]
    assert finetune_config(p.parse_args(["--anchor-windows"])) == FinetuneConfig(anchor_windows=True)
    assert finetune_config(p.parse_args(["--no-anchor-windows"])) == FinetuneConfig(anchor_windows=False)


def test_help_and_no_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert main([]) == 2


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "/no/such/folder", "--out", "{tmp}/o", "--per-iteration", "1"], "does not exist"),
        (["simulate", "{clip}", "--out", "{tmp}/o", "--granularity", "hex7", "--per-iteration", "1"], "granularity"),
        (["simulate", "{clip}", "--out", "{tmp}/o", "--selector", "best", "--per-iteration", "1"], "unknown selector 'best'"),
        (["simulate", "{clip}", "--out", "{tmp}/none", "--resume", "--per-iteration", "1"], "does not exist"),
        (["simulate", "{clip}", "--out", "{tmp}/o", "--size", "9x", "--per-iteration", "1"], "expected WIDTHxHEIGHT"),
        (["export", "{tmp}", "--to", "{tmp}/x"], "not an hvsa session folder"),
        (["export", "{tmp}", "--to", "{tmp}/x", "--format", "gif"], "unknown export format 'gif'"),
        (["cost", "{tmp}/missing"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], needle: str, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [a.format(tmp=tmp_path, clip=clip) for a in argv]
    assert main(argv) == 2
    _one_line_error(capsys, needle)


def test_bad_flag_values_are_usage_errors(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", str(clip), "--out", str(tmp_path / "o"), "--iterations", "0"])
    assert info.value.code == 2
    _one_line_error(capsys, "expected a positive integer")


def test_check_device() -> None:
    import torch

    from hvsa.checks import check_device
    from hvsa.errors import InputError

    assert check_device("cpu") == "cpu" and check_device("cpu:0") == "cpu:0"
    for bad, needle in [("gpu", "'gpu' is not a device"), ("meta", "expected cpu, cuda, cuda:N or mps"),
                        ("cuda:99", "cuda:99:")]:
        with pytest.raises(InputError, match=needle):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device is available .*; use --device cpu"):
            check_device("cuda")


@pytest.mark.parametrize("command", ["demo", "simulate", "bench", "pretrain"])
def test_unusable_device_is_a_usage_error_before_any_work(
    command: str, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / ("o.pt" if command == "pretrain" else "o")
    argv = [command, "--out", str(out), "--device", "gpu"] + ([] if command == "demo" else [str(clip)])
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    _one_line_error(capsys, "argument --device: 'gpu' is not a device")
    assert not out.exists()


@pytest.mark.parametrize("command", ["demo", "simulate", "serve", "pretrain"])
def test_threads_flag_limits_torch_opencv_and_child_processes(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import cv2
    import torch

    from hvsa.threads import THREAD_VARIABLES

    before = torch.get_num_threads(), cv2.getNumThreads()
    n = 1 if before[0] != 1 else 2  # differs from what this process runs
    for var in THREAD_VARIABLES:
        monkeypatch.setenv(var, "7")
    missing = str(tmp_path / "missing")
    argv = {
        "demo": ["demo", "--out", missing, "--size", "0x0"],
        "simulate": ["simulate", missing, "--out", str(tmp_path / "o")],
        "serve": ["serve", missing, "--out", str(tmp_path / "o")],
        "pretrain": ["pretrain", missing, "--out", str(tmp_path / "m.pt")],
    }[command]
    try:
        assert main([*argv, "--threads", str(n)]) == 2  # bad input, found after the limit is set
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (n, n)
        assert {os.environ[var] for var in THREAD_VARIABLES} == {str(n)}
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
    capsys.readouterr()


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hvsa.errors import InputError

    monkeypatch.setenv("HVSA_DEBUG", "1")
    with pytest.raises(InputError):
        main(["export", str(tmp_path), "--to", str(tmp_path / "x")])


def test_simulate_resume_and_export(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    base = ["simulate", str(clip), "--out", str(out), "--per-iteration", "1", "--epochs", "3"]
    assert main(base + ["--iterations", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["iteration"] for r in report["iterations"]] == [1]
    assert len(list((out / "pred").glob("*.png"))) == 6 and len(list((out / "overlay").glob("*.jpg"))) == 6
    assert main(base + ["--iterations", "2", "--resume"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["iteration"] for r in report["iterations"]] == [1, 2]
    stdout = capsys.readouterr().out
    assert "iteration samples" in stdout
    assert main(["export", str(out), "--to", str(tmp_path / "colour"), "--format", "color"]) == 0
    assert (tmp_path / "colour" / "classes.json").is_file()
    assert main(base + ["--iterations", "2"]) == 2  # the folder holds a session already
    _one_line_error(capsys, "already holds a session")

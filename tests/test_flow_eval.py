"""The ``hvsa flow-eval`` command, run in-process on a tiny synthetic benchmark folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvsa.cli.main import main
from test_flow import make_benchmark


def test_flow_eval_prints_rows_and_means(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_benchmark(tmp_path / "flow")
    assert main(["flow-eval", str(root), "--preset", "fast", "--threshold", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "preset fast" in out and "threshold 1.5 px" in out
    lines = out.splitlines()
    sintel = next(line for line in lines if line.startswith("sintel") and "clean-toy/0002" in line)
    assert "96x64" in sintel and len(sintel.split()) == 7  # dataset pair size EPE recall visible s/field
    chairs = [line for line in lines if line.startswith("flyingchairs") and "00000" in line]
    assert len(chairs) == 2 and all(line.split()[4:6] == ["-", "-"] for line in chairs)
    assert any(line.startswith("sintel") and "mean (1 pair)" in line for line in lines)
    assert any(line.startswith("flyingchairs") and "mean (2 pairs)" in line for line in lines)
    assert any("pooled pixels" in line for line in lines)


def test_flow_eval_default_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["flow-eval"]) == 2
    assert "no ROOT given" in capsys.readouterr().err
    make_benchmark(tmp_path / "shared" / "data" / "flow")
    assert main(["flow-eval", "--longest", "48", "--preset", "ultrafast"]) == 0
    assert "48x32" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["flow-eval", "{missing}"], "does not exist"),
        (["flow-eval", "{empty}"], "no flow benchmark pairs found"),
        (
            ["flow-eval", "{root}", "--preset", "slow"],
            "unknown DIS preset 'slow'; expected one of: ultrafast, fast, medium",
        ),
        (["flow-eval", "{root}", "--backend", "raft"], "unknown flow backend 'raft'; expected one of: dis"),
        (["flow-eval", "{root}", "--threshold", "0"], "threshold"),
        (["flow-eval", "{root}", "--longest", "-3"], "longest"),
    ],
)
def test_flow_eval_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    root = make_benchmark(tmp_path / "flow")
    (tmp_path / "empty").mkdir()
    argv = [a.format(root=root, missing=tmp_path / "missing", empty=tmp_path / "empty") for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("hvsa: error:") and message in err and len(err.strip().splitlines()) == 1
    assert captured.out == ""  # refused before the table's header

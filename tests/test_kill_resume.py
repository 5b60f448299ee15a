"""``hvsa simulate`` killed (SIGKILL) in the middle of an iteration, then ``--resume``d, ends
with the same annotations and report as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvsa.threads import THREAD_VARIABLES

from conftest import shared_data


def _simulate(data: Path, out: Path, flags: list[str], *, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hvsa", "simulate", str(data), "--out", str(out), *flags]
    if resume:
        cmd.append("--resume")
    # One thread each (the variables hvsa bench's workers set): the reference and the run to be
    # killed share the machine, and two processes each spinning a thread per core slow each
    # other down many times over.
    threads = {var: "1" for var in THREAD_VARIABLES}
    env = {**os.environ, "HVSA_PROGRESS": "0", **threads}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stage(out: Path, iteration: int) -> str | None:
    db = out / "hvsa.sqlite"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            row = con.execute("SELECT stage FROM iterations WHERE iteration = ?", (iteration,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _annotations(out: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(out / "hvsa.sqlite") as con:
        return con.execute("SELECT pool_index, iteration, clicks FROM annotations ORDER BY pool_index").fetchall()


def _kill_in_iteration_2_then_resume(data: Path, tmp_path: Path, flags: list[str], timeout: float) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    reference = _simulate(data, whole, flags)
    proc = _simulate(data, cut, flags)
    deadline = time.monotonic() + timeout
    # Iteration 2 annotated and fine-tuning: the batch is stored, the checkpoint is not.
    while _stage(cut, 2) != "annotated":
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "iteration 2 never reached fine-tuning"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "report.json").exists() or len(json.loads((cut / "report.json").read_text())["iterations"]) == 1
    resumed = _simulate(data, cut, flags, resume=True)
    out, err = resumed.communicate(timeout=timeout)
    assert resumed.returncode == 0, err
    out_ref, err_ref = reference.communicate(timeout=timeout)
    assert reference.returncode == 0, err_ref

    assert _annotations(cut) == _annotations(whole)
    a, b = (json.loads((p / "report.json").read_text()) for p in (whole, cut))
    assert [r["iteration"] for r in b["iterations"]] == [1, 2, 3]
    for x, y in zip(a["iterations"], b["iterations"]):
        assert (x["samples"], x["clicks"]) == (y["samples"], y["clicks"])
        assert x["miou"] == pytest.approx(y["miou"], abs=1e-3)
    frames = sorted(p.name for p in (data / "frames").iterdir())
    masks = sorted(p.name for p in (cut / "pred").glob("*.png"))
    assert [Path(f).stem for f in frames] == [Path(m).stem for m in masks]


def test_kill_and_resume_on_a_synthetic_clip(tmp_path: Path) -> None:
    from hvsa.synth import generate

    data = generate(tmp_path / "data", frames=8, size=(96, 64), classes=3, seed=1)
    # Many epochs so fine-tuning lasts long enough to be killed in the middle of it.
    _kill_in_iteration_2_then_resume(
        data, tmp_path, ["--per-iteration", "1", "--iterations", "3", "--epochs", "60", "--lr", "0.01"], timeout=240
    )


@pytest.mark.slow
@pytest.mark.data
def test_kill_and_resume_on_davis(tmp_path: Path) -> None:
    data = shared_data("davis2016", "blackswan")
    _kill_in_iteration_2_then_resume(
        data, tmp_path, ["--per-iteration", "1", "--iterations", "3", "--size", "240x135"], timeout=900
    )

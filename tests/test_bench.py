"""The benchmark harness: grid specs, pure scoring and tables on hand-made rows, and `hvsa bench`
end to end on a tiny synthetic folder (parallel runs, resume, report from results.csv alone)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hvsa.bench.grid import Grid, RunSpec, SequenceRef, find_sequences, folds, parse_list
from hvsa.bench.report import (
    budget_table,
    comparison_table,
    markdown_table,
    reach_table,
    render_report,
    run_by_run,
    timing_table,
)
from hvsa.bench.results import (
    COLUMNS,
    Point,
    ResultRow,
    aggregate,
    compare,
    complete_runs,
    fewest_clicks,
    fixed_budget_rows,
    merge_results,
    read_results,
    rows_from_report,
    sign_flip_p,
    timings,
    write_results,
)
from hvsa.cli.main import main
from hvsa.errors import InputError
from hvsa.store import Store

SEQ = SequenceRef("davis", "cows", "/data/davis/cows")


def _report(miou: tuple[float, ...], clicks_pct: tuple[float, ...], method: str = "hvsa") -> dict:
    its = [
        {"iteration": i + 1, "samples": 2, "clicks": 10 * (i + 1), "clicks_pct": c, "pixels_pct": 2.0 * c,
         "miou": m, "pixel_acc": 0.9, "boundary_iou": m / 2, "tc": 0.8,
         "seconds": {"select": 1.0, "annotate": 0.5, "finetune": 10.0 * (i + 1), "predict": 2.0, "total": 13.5 + 10 * i},
         "peak_rss_mb": 500.0 + 100 * i}
        for i, (m, c) in enumerate(zip(miou, clicks_pct))
    ]  # fmt: skip
    return {"data": "/data/davis/cows", "frames": 40, "size": [480, 270], "classes": 2, "granularity": "frame",
            "selector": "hvsa", "method": method, "seed": 0, "full_video_clicks": 1000, "iterations": its}  # fmt: skip


def _rows(method: str = "hvsa", sequence: SequenceRef = SEQ, budget: float = 2.0, miou=(0.5, 0.7), clicks=(1.0, 2.0)):  # noqa: ANN001, ANN202
    spec = RunSpec(sequence, "frame", "hvsa", method, budget, 0)
    return rows_from_report({**spec.params(), "iterations": 2}, _report(miou, clicks, method))


def _point(granularity: str, budget: float, clicks: float, miou: float, method: str = "hvsa") -> Point:
    return Point("davis", granularity, "hvsa", method, budget, 1, clicks, clicks, miou, 0.9, miou / 2, 0.8)


# ---------------------------------------------------------------------------------- grid


def test_grid_runs_and_run_ids() -> None:
    grid = Grid(granularities=("frame", "rec40"), selectors=("hvsa", "random"), methods=("lp",), budgets=(1.0, 2.5), seeds=(0,))
    runs = grid.runs([SEQ])
    assert len(runs) == 8
    assert runs[0].run_id == "davis/cows/frame-hvsa-lp-b1-s0"
    assert {r.run_id for r in runs} >= {"davis/cows/rec40-random-lp-b2.5-s0"}
    assert runs[0].params() == {"run": "davis/cows/frame-hvsa-lp-b1-s0", "dataset": "davis", "sequence": "cows",
                                "granularity": "frame", "selector": "hvsa", "method": "lp", "budget_pct": 1.0, "seed": 0}


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"selectors": ("best",)}, "unknown selector 'best'; expected one of: diversity, hvsa, hvsa-balanced, hvsa-disagree, random, uncertainty"),
        ({"methods": ("magic",)}, "unknown method 'magic'; expected one of: copy, finetune-only, hvsa, hvsa-crf, hvsa-fused, lp"),
        ({"granularities": ("hex5",)}, "granularity"),
        ({"budgets": (0.0,)}, "budget-pct"),
        ({"seeds": ()}, "seeds must not be empty"),
    ],
)
def test_grid_rejects_bad_values(kw: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        Grid(**kw)


def test_parse_list() -> None:
    assert parse_list("1, 2,2,3", "budget-pct", float) == (1.0, 2.0, 3.0)
    with pytest.raises(InputError, match="seeds: 'x' is not an integer"):
        parse_list("1,x", "seeds", int)
    with pytest.raises(InputError, match="budget-pct: '2%' is not a number"):
        parse_list("1,2%", "budget-pct", float)
    with pytest.raises(InputError, match="comma-separated"):
        parse_list(" , ", "method")


def test_find_sequences_names_datasets(tmp_path: Path) -> None:
    for rel in ("davis/cows", "davis/dog", "camvid/part/0001TP"):
        for sub in ("frames", "labels"):
            (tmp_path / rel / sub).mkdir(parents=True)
        (tmp_path / rel / "classes.json").write_text("{}")
    (tmp_path / "flow" / "sintel").mkdir(parents=True)  # not a sequence
    found = find_sequences([tmp_path])
    assert [s.key for s in found] == [f"{tmp_path.name}/camvid/part/0001TP", f"{tmp_path.name}/davis/cows",
                                      f"{tmp_path.name}/davis/dog"]  # fmt: skip
    assert [s.key for s in find_sequences([tmp_path / "davis"])] == ["davis/cows", "davis/dog"]
    assert [s.key for s in find_sequences([tmp_path / "davis" / "dog"])] == ["davis/dog"]
    with pytest.raises(InputError, match="no labelled sequence"):
        find_sequences([tmp_path / "flow"])
    with pytest.raises(InputError, match="given twice"):
        find_sequences([tmp_path / "davis", tmp_path / "davis" / "dog"])


def test_folds_split_each_dataset_round_robin_and_train_on_the_rest() -> None:
    seqs = [SequenceRef("davis", n, f"/d/{n}") for n in ("e", "a", "d", "b", "c")]
    seqs.append(SequenceRef("camvid", "x", "/c/x"))
    seqs.append(SequenceRef("camvid", "y", "/c/y"))
    got = {f.name: ([s.name for s in f.test], [s.name for s in f.train]) for f in folds(seqs, 2)}
    assert got == {
        "camvid/fold0": (["x"], ["y"]), "camvid/fold1": (["y"], ["x"]),
        "davis/fold0": (["a", "c", "e"], ["b", "d"]), "davis/fold1": (["b", "d"], ["a", "c", "e"]),
    }  # fmt: skip
    loo = folds(seqs[:5], 5)
    assert [[s.name for s in f.test] for f in loo] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert all(len(f.train) == 4 for f in loo)
    with pytest.raises(InputError, match="camvid has 2 sequence"):
        folds(seqs, 3)
    with pytest.raises(InputError, match="at least 2 folds"):
        folds(seqs, 1)


# ---------------------------------------------------------------------------------- results and scoring


def test_results_csv_round_trip(tmp_path: Path) -> None:
    rows = _rows() + _rows("lp")
    rows[0] = replace(rows[0], miou=None, model="/m.pt")
    path = write_results(tmp_path / "results.csv", rows)
    with open(path, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert read_results(path) == rows
    assert rows[1].final and not rows[0].final
    assert rows[1].seconds_finetune == 20.0 and rows[1].width == 480 and rows[1].height == 270


def test_read_results_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no results file"):
        read_results(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing columns"):
        read_results(tmp_path / "bad.csv")


def test_results_written_before_peak_memory_read_it_as_unmeasured(tmp_path: Path) -> None:
    rows = _rows()
    path = write_results(tmp_path / "results.csv", rows)
    assert COLUMNS[-1] == "peak_rss_mb"
    with open(path, newline="") as f:
        old = [line[:-1] for line in csv.reader(f)]
    with open(tmp_path / "old.csv", "w", newline="") as f:
        csv.writer(f).writerows(old)
    assert read_results(tmp_path / "old.csv") == [replace(r, peak_rss_mb=None) for r in rows]
    assert [r.peak_rss_mb for r in read_results(path)] == [500.0, 600.0]


def test_merge_results_keeps_each_run_once_and_refuses_a_run_that_differs() -> None:
    a = _rows(miou=(0.5, float("nan")))  # NaN equals itself here: a copy of a folder is the same run
    b = _rows(sequence=SequenceRef("davis", "dog", "/data/davis/dog"))
    c = _rows("lp")
    merged = merge_results([("one", a + c), ("two", b), ("copy of one", list(a))])
    assert [(r.run, r.iteration) for r in merged] == [(r.run, r.iteration) for r in a + c + b]
    other = [replace(r, miou=0.9) if r.final else r for r in a]  # the same run made again elsewhere
    with pytest.raises(InputError, match=f"run {a[0].run} is in one and in two with other results"):
        merge_results([("one", a), ("two", other)])
    with pytest.raises(InputError, match="with other results"):  # one iteration more is another result too
        merge_results([("one", a[:1]), ("two", a)])
    assert merge_results([]) == []


def test_settings_differences_name_the_nested_settings_that_differ() -> None:
    from hvsa.bench.runner import settings_differences

    base = {"iterations": 3, "finetune": {"crop": 0.5, "lr": 0.004, "view_share": 0.5}, "size": None}
    wider = {**base, "finetune": {**base["finetune"], "crop": 0.75}}
    assert settings_differences([{"settings": base}, {"settings": wider}, {}]) == ["finetune.crop"]  # {}: no bench.json
    assert settings_differences([{"settings": base}, {"settings": base}]) == []
    # a folder from before view_share existed ran with 0.0, the value an added field reads as
    older = {**base, "finetune": {"crop": 0.5, "lr": 0.004}}
    assert settings_differences([{"settings": base}, {"settings": older}]) == ["finetune.view_share"]
    assert settings_differences([{"settings": {**base, "finetune": {**base["finetune"], "view_share": 0.0}}},
                                 {"settings": older}]) == []  # fmt: skip
    assert settings_differences([{"settings": base}, {"settings": {**base, "iterations": 5}}]) == ["iterations"]


def test_aggregate_averages_final_iterations_over_sequences() -> None:
    other = SequenceRef("davis", "dog", "/data/davis/dog")
    rows = _rows(miou=(0.1, 0.6), clicks=(1.0, 2.0)) + _rows(sequence=other, miou=(0.2, 0.8), clicks=(1.0, 3.0))
    rows[-1] = replace(rows[-1], tc=None)
    (p,) = aggregate(rows)
    assert (p.dataset, p.granularity, p.selector, p.method, p.budget_pct, p.runs) == ("davis", "frame", "hvsa", "hvsa", 2.0, 2)
    assert p.miou == pytest.approx(0.7)
    assert p.clicks_pct == pytest.approx(2.5)
    assert p.pixels_pct == pytest.approx(5.0)
    assert p.tc == pytest.approx(0.8)  # the missing figure is left out of the mean


def test_seeds_are_averaged_and_their_spread_is_reported(tmp_path: Path) -> None:
    from hvsa.bench.plots import curves_figure

    other = SequenceRef("davis", "dog", "/data/davis/dog")
    rows = []
    for seed, (a, b) in {0: (0.6, 0.8), 1: (0.9, 0.9), 2: (0.7, 0.7)}.items():
        for seq, m in ((SEQ, a), (other, b)):
            rows += [replace(r, seed=seed) for r in _rows(sequence=seq, miou=(0.1, m))]
    (p,) = aggregate(rows)
    assert p.runs == 6 and p.miou == pytest.approx(0.7667, abs=1e-4)
    assert p.miou_per_seed == pytest.approx((0.7, 0.9, 0.7))
    assert budget_table([p]).splitlines()[2] == "| hvsa | frame | hvsa | 76.7 / 90.0 / 80.0 (2.00 %), seeds 70.0-90.0 |"
    (one,) = aggregate([r for r in rows if r.seed == 1])
    assert one.miou_per_seed == pytest.approx((0.9,)) and "seeds" not in budget_table([one])
    figure = curves_figure(tmp_path / "seeds.png", [p, replace(p, budget_pct=3.0, clicks_pct=3.0)])
    assert figure.stat().st_size > 0


def test_the_report_quotes_every_command_that_filled_the_folder() -> None:
    rows = _rows()
    one = {"command": "hvsa bench d --out o -s hvsa", "machine": {"cores": 2}}  # a folder from before the list
    assert "Command:\n\n```\nhvsa bench d --out o -s hvsa\n```" in render_report(rows, {}, one)
    a, b = "hvsa bench d --out o -s hvsa", "hvsa bench d --out o -s random"
    listed = {"command": a, "commands": [{"command": a}, {"command": None}, {"command": b}, {"command": a}]}
    text = render_report(rows, {}, listed)
    assert f"Commands, in the order they first ran:\n\n```\n{a}\n{b}\n```" in text
    in_process = render_report(rows, {}, {"command": None, "commands": [{"command": None}], "machine": {"cores": 2}})
    assert "Command" not in in_process and ".\n\nMachine: cores 2\n" in in_process


def test_sign_flip_p_is_exact_for_few_pairs_and_estimated_for_many() -> None:
    # all three pairs positive: only the all-plus and all-minus patterns are as extreme, 2 of 8
    assert sign_flip_p([0.01, 0.02, 0.03]) == pytest.approx(0.25)
    assert sign_flip_p([0.01] * 6) == pytest.approx(2 / 64)  # six pairs the smallest to decide at 0.05
    assert sign_flip_p([0.02, -0.02]) == 1.0 and sign_flip_p([0.0, 0.0]) == 1.0
    # observed 4 + 2 - 1 = 5; the patterns' sums are +-7, +-5, +-3, +-1: |sum| >= 5 in 4 of 8
    assert sign_flip_p([4.0, 2.0, -1.0]) == pytest.approx(0.5)
    diffs = [0.3, -0.1, 0.5, 0.2, -0.4, 0.6, 0.1, 0.25, -0.05, 0.35, 0.15, 0.45]
    exact, drawn = sign_flip_p(diffs), sign_flip_p(diffs, exact_up_to=0)
    assert 0.01 < exact < 0.2 and drawn == pytest.approx(exact, abs=0.01)
    assert sign_flip_p(diffs, exact_up_to=0) == drawn  # seeded: repeatable
    assert sign_flip_p([0.01] * 24) == 2 / 2**24  # exact beyond what a table of patterns would hold
    # a zero difference takes either sign alike: p as without it, and 30 others among 40 still counted exactly
    assert sign_flip_p([4.0, 2.0, -1.0, 0.0, 0.0]) == pytest.approx(0.5)
    assert sign_flip_p([0.01] * 30 + [0.0] * 10) == 2 / 2**30
    with pytest.raises(InputError, match="non-empty"):
        sign_flip_p([])
    with pytest.raises(InputError, match="expected 0 to 40"):
        sign_flip_p([0.1], exact_up_to=41)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 17])
def test_sign_flip_p_counts_every_sign_pattern(n: int) -> None:
    # one decimal, as tables print them: many patterns tie with the observed sum
    diffs = np.round(np.random.default_rng(n).normal(0.4, 2.0, n), 1)
    patterns = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    observed = abs(diffs.sum())
    by_table = np.mean(np.abs(patterns @ diffs) >= observed - 1e-9)
    assert sign_flip_p(diffs) == pytest.approx(by_table, abs=1e-12)


def _final(sequence: str, seed: int, selector: str, miou: float, clicks: float, method: str = "hvsa-crf") -> ResultRow:
    (_, last) = _rows(method=method, sequence=SequenceRef("davis", sequence, f"/data/davis/{sequence}"),
                      miou=(0.1, miou), clicks=(1.0, clicks))  # fmt: skip
    return replace(last, selector=selector, seed=seed)


def test_selectors_are_compared_with_random_run_by_run() -> None:
    rows = []
    for seed in (0, 1, 2):
        for i, seq in enumerate(("cows", "dog")):
            base = 0.5 + 0.1 * i + 0.01 * seed  # sequences and seeds differ far more than the selectors
            rows += [_final(seq, seed, "random", base, 1.8), _final(seq, seed, "hvsa", base + 0.02 + 0.01 * seed, 1.9)]
    rows.append(_final("cows", 3, "hvsa", 0.9, 2.0))  # no random run to pair with: left out
    rows += [_final("dog", 4, "hvsa", 0.9, 2.0), _final("dog", 4, "random", float("nan"), 2.0)]  # no mIoU: left out
    rows += _rows(method="lp")  # another method: compared with its own random runs only, and it has none
    (c,) = compare(rows, "selector", "random")
    assert (c.contender, c.baseline, c.granularity, c.shared) == ("hvsa", "random", "frame", "hvsa-crf")
    assert c.budget_pct == 2.0
    assert c.pairs == 6 and c.wins == 6 and c.losses == 0
    assert c.miou_diff == pytest.approx(0.03)
    assert c.miou_diff_se == pytest.approx((0.00008 / 6) ** 0.5)  # diffs .02 .02 .03 .03 .04 .04: variance 8e-5
    assert c.clicks_diff == pytest.approx(0.1)
    assert c.p_value == pytest.approx(2 / 64) and c.verdict == "ahead"
    # five pairs cannot decide, however large the difference
    (few,) = compare([r for r in rows if not (r.seed == 2 and r.sequence == "dog")], "selector", "random")
    assert few.pairs == 5 and few.p_value == pytest.approx(2 / 32) and few.verdict == "within chance"
    # the mirror image is behind
    mirror = {"hvsa": "random", "random": "hvsa"}
    swapped = [replace(r, selector=mirror[r.selector]) for r in rows if r.method == "hvsa-crf"]
    (back,) = compare(swapped, "selector", "random")
    assert back.miou_diff == pytest.approx(-0.03) and back.verdict == "behind" and back.losses == 6
    line = comparison_table([c]).splitlines()[2]
    assert line == "| hvsa | random | frame | hvsa-crf | 2 % | 6 | +3.0 ± 0.4 | 6 / 0 | +0.10 | 0.031 | ahead | about 6 | 2 | 0.500 |"
    # over sequences: two, whose mean differences (+3 points each) allow no p below 2 / 4
    assert c.sequences == 2 and c.p_sequences == pytest.approx(0.5)
    # many seeds of one sequence make the runs' test confident, not the sequences' one
    lopsided = [_final("cows", seed, sel, 0.5 + (0.03 if sel == "hvsa" else 0.0), 2.0)
                for seed in range(6) for sel in ("hvsa", "random")]
    lopsided += [_final("dog", 0, "hvsa", 0.59, 2.0), _final("dog", 0, "random", 0.6, 2.0)]
    (side,) = compare(lopsided, "selector", "random")
    # runs: +3 x 6 and -1; only flipping all or dog's alone is as extreme, 4 patterns of 128
    assert side.pairs == 7 and side.p_value == pytest.approx(4 / 128) and side.verdict == "ahead"
    assert side.sequences == 2 and side.p_sequences == 1.0  # +3 and -1: every sign pattern is as far from 0
    # a small lead in a wide spread takes many pairs: mean +1, sd 3 points: 7.85 x 9 = 70.6
    plan = replace(side, miou_diff=0.01, miou_diff_se=0.03 / 16**0.5, pairs=16)
    assert plan.pairs_needed == 71
    assert replace(plan, miou_diff=-0.01).pairs_needed == 71 and replace(plan, miou_diff=0.0).pairs_needed is None
    assert c.pairs_needed == 6  # a lead far larger than its spread still needs the six pairs the test needs
    assert "| more than 1000 |" in comparison_table([replace(plan, miou_diff=0.0005)])  # 7.85 x 3600
    with pytest.raises(InputError, match="expected one of"):
        compare(rows, "budget", "random")


def test_methods_are_compared_with_lp_and_the_report_shows_both() -> None:
    rows = [_final("cows", 0, "hvsa", 0.9, 2.0), _final("cows", 0, "hvsa", 0.6, 2.0, method="lp"),
            _final("cows", 0, "random", 0.8, 1.5)]  # fmt: skip
    (m,) = compare(rows, "method", "lp")
    assert (m.contender, m.shared, m.pairs, m.miou_diff_se) == ("hvsa-crf", "hvsa", 1, None)
    assert m.miou_diff == pytest.approx(0.3) and m.p_value == 1.0 and m.verdict == "within chance"
    text = render_report(rows, {})
    assert "### Against random selection and lp, run by run" in text
    assert "| hvsa-crf | lp | frame | hvsa | 2 % | 1 | +30.0 | 1 / 0 | +0.00 | 1.000 | within chance | - | 1 | 1.000 |" in text
    assert "| hvsa | random | frame | hvsa-crf | 2 % | 1 | +10.0 | 1 / 0 | +0.50 | 1.000 | within chance | - | 1 | 1.000 |" in text
    assert "run by run" not in render_report(_rows(), {})  # nothing to compare with: no section
    # one budget per configuration: Table 1's answers are upper bounds, and the report says so
    assert "| hvsa-crf | hvsa | <= 2.00 % (frame) | <= 2.00 % (frame) | <= 2.00 % (frame) | - |" in text
    assert "<=: the fewest clicks that granularity was run at already reach it" in text
    assert "<=:" not in render_report(_rows(), {})  # nothing reaches 80 %: no bounds to explain


def test_fine_tuning_methods_are_compared_with_finetune_only_the_papers_ablation() -> None:
    rows = [_final("cows", 0, "hvsa", miou, 2.0, method=m)
            for m, miou in (("finetune-only", 0.80), ("hvsa", 0.83), ("hvsa-crf", 0.86), ("lp", 0.60), ("copy", 0.55))]
    rows.append(_final("cows", 0, "hvsa", 0.9, 2.0, method="magic"))  # a method this version lacks: no ablation
    ablation = {c.contender: c.miou_diff for c in run_by_run(rows) if c.baseline == "finetune-only"}
    # lp and copy do not fine-tune: they meet finetune-only only as its baseline (lp) or not at all
    assert ablation == {"hvsa": pytest.approx(0.03), "hvsa-crf": pytest.approx(0.06)}
    against_lp = {c.contender for c in run_by_run(rows) if c.baseline == "lp"}
    assert against_lp == {"finetune-only", "hvsa", "hvsa-crf", "copy", "magic"}
    text = render_report(rows, {})
    assert "### Against lp and finetune-only, run by run" in text
    assert "| hvsa | finetune-only | frame | hvsa | 2 % | 1 | +3.0 | 1 / 0 | +0.00 | 1.000 | within chance |" in text
    rows.append(_final("cows", 0, "random", 0.7, 2.0, method="hvsa"))
    assert "### Against random selection, lp and finetune-only, run by run" in render_report(rows, {})


def test_fewest_clicks_picks_the_cheapest_point_and_its_granularity() -> None:
    points = [
        _point("frame", 1, 1.0, 0.78), _point("frame", 2, 2.1, 0.86), _point("frame", 3, 2.9, 0.91),
        _point("rec40", 1, 1.1, 0.82), _point("rec40", 2, 1.9, 0.88), _point("rec40", 3, 3.2, 0.93),
        _point("rec40", 1, 0.5, 0.99, method="lp"),
    ]  # fmt: skip
    reach = fewest_clicks(points)
    got = {(r.method, r.target): (r.clicks_pct, r.granularity) for r in reach}
    assert got[("hvsa", 0.80)] == (1.1, "rec40")
    assert got[("hvsa", 0.85)] == (1.9, "rec40")
    assert got[("hvsa", 0.90)] == (2.9, "frame")
    assert got[("hvsa", 0.95)] == (None, None)
    assert got[("lp", 0.95)] == (0.5, "rec40")
    # rec40 was run at no fewer clicks than 1.1 %, so 80 % might take fewer; 85 % at 1.9 % is
    # bracketed by rec40's 1.1 % point below it, 90 % at 2.9 % by frame's 1.0 and 2.1 % points
    cheapest = {(r.method, r.target): r.cheapest for r in reach if r.clicks_pct is not None}
    assert cheapest == {("hvsa", 0.80): True, ("hvsa", 0.85): False, ("hvsa", 0.90): False,
                        ("lp", 0.80): True, ("lp", 0.85): True, ("lp", 0.90): True, ("lp", 0.95): True}
    table = reach_table([r for r in reach if r.method == "hvsa"])
    assert table.splitlines()[2] == "| hvsa | hvsa | <= 1.10 % (rec40) | 1.90 % (rec40) | 2.90 % (frame) | - |"


def test_fixed_budget_rows_keep_table_2_methods_in_order() -> None:
    points = [_point("frame", 1, 1.0, 0.8, "hvsa"), _point("frame", 1, 1.0, 0.7, "lp"),
              _point("frame", 1, 1.0, 0.75, "copy"), _point("frame", 1, 1.0, 0.6, "finetune-only")]  # fmt: skip
    assert [p.method for p in fixed_budget_rows(points)] == ["finetune-only", "lp", "hvsa"]
    table = budget_table(fixed_budget_rows(points)).splitlines()
    assert table[0] == "| method | granularity | selector | budget 1 % |"
    assert table[2] == "| finetune-only | frame | hvsa | 60.0 / 90.0 / 80.0 (1.00 %) |"


def test_partial_points_are_counted_and_marked() -> None:
    full, partial = replace(_point("frame", 1, 1.0, 0.8), runs=10), replace(_point("frame", 2, 1.9, 0.9), runs=3)
    other = replace(_point("frame", 1, 1.0, 0.5), dataset="camvid", runs=3)
    assert complete_runs([full, partial, other]) == {"davis": 10, "camvid": 3}
    table = budget_table([full, partial], complete=10).splitlines()
    assert table[2] == "| hvsa | frame | hvsa | 80.0 / 90.0 / 80.0 (1.00 %) | 90.0 / 90.0 / 80.0 (1.90 %) [3 of 10 runs] |"


def test_timings_average_every_iteration() -> None:
    (t,) = timings(_rows())
    assert (t.method, t.iterations, t.frames) == ("hvsa", 2, 40)
    assert t.finetune == pytest.approx(15.0) and t.total == pytest.approx(18.5)
    assert t.peak_rss_mb == 600.0  # the largest peak, not the mean
    assert timing_table([t]).splitlines()[2] == "| hvsa | frame | 40 | 2 | 1.0 | 0.5 | 15.0 | 2.0 | 18.5 | 600 |"
    (unmeasured,) = timings([replace(r, peak_rss_mb=None) for r in _rows()])
    assert unmeasured.peak_rss_mb is None and timing_table([unmeasured]).endswith("| 18.5 | - |")


def test_markdown_table_escapes_pipes() -> None:
    assert markdown_table(["a", "b"], [["1|2", "3"]]) == "| a | b |\n| --- | --- |\n| 1\\|2 | 3 |"


# ---------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hvsa.synth import generate

    root = tmp_path_factory.mktemp("bench") / "synth"
    generate(root / "a", frames=5, size=(48, 32), classes=3, seed=1)
    generate(root / "b", frames=5, size=(48, 32), classes=3, seed=2)
    return root


def test_bench_runs_a_grid_resumes_and_reports_from_the_csv_alone(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvsa.bench import runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 2)  # two workers, also on one core or under taskset
    out = tmp_path / "out"
    argv = ["bench", str(data), "--out", str(out), "--selector", "random", "--method", "hvsa,lp",
            "--budget-pct", "40", "--iterations", "2", "--epochs", "1", "--jobs", "2"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 runs on 2 sequences; 0 already done, 4 to run with 2 worker(s) x 1 thread(s)" in text
    progress = [line for line in text.splitlines() if line.startswith("[")]
    assert len(progress) == 4 and all(re.search(r"; about \d+ (s|min) left$", line) for line in progress[:3])
    assert progress[3].startswith("[4/4] ") and "left" not in progress[3]
    rows = read_results(out / "results.csv")
    assert len(rows) == 8  # 4 runs x 2 iterations
    assert {(r.sequence, r.method) for r in rows} == {(s, m) for s in "ab" for m in ("hvsa", "lp")}
    assert all(r.miou is not None and r.clicks_pct is not None for r in rows if r.final)
    assert all(r.peak_rss_mb is not None and r.peak_rss_mb > 50 for r in rows)  # torch alone takes more
    assert "runs of lp annotate the samples of the hvsa runs" in text
    for r in rows:  # lp is given the very samples hvsa selected
        if r.method == "lp":
            twin = next(h for h in rows if h.method == "hvsa" and (h.sequence, h.iteration) == (r.sequence, r.iteration))
            assert r.samples_from == twin.run and (r.samples, r.clicks) == (twin.samples, twin.clicks)
        else:
            assert r.samples_from is None
    for run in (out / "runs" / "synth").glob("*/*"):  # finished runs keep their final network only
        kept = [p.name for p in (run / "checkpoints").glob("*.pt")]
        assert kept == (["iter-2.pt"] if "-hvsa-b" in run.name else ["iter-0.pt"]), (run, kept)
    bench = json.loads((out / "bench.json").read_text())
    assert bench["command"] is None and bench["machine"]["cores"] >= 1  # in-process: argv unknown

    # a finished run is skipped; one whose report.json lags behind its store is completed; one
    # killed while its session was being created starts again
    lagging = out / "runs" / "synth" / "a" / "frame-random-hvsa-b40-s0" / "report.json"
    report = json.loads(lagging.read_text())
    lagging.write_text(json.dumps({**report, "iterations": report["iterations"][:1]}))
    half = out / "runs" / "synth" / "b" / "frame-random-lp-b40-s0"
    shutil.rmtree(half)
    Store(half, create=True).close()
    resume = [*argv[:-2], "--jobs", "1"]  # resumed with another worker count
    monkeypatch.setattr(sys, "argv", ["hvsa", *resume])  # what the command line records
    assert main(resume) == 0
    assert "2 already done, 2 to run" in capsys.readouterr().out
    bench = json.loads((out / "bench.json").read_text())
    first, second = (c["command"] for c in bench["commands"])  # the first ran in process: argv unknown
    assert first is None and second == "hvsa " + " ".join(resume)
    assert "```\nhvsa bench " in (out / "report.md").read_text()
    assert json.loads(lagging.read_text()) == report
    again = read_results(out / "results.csv")
    assert [(r.run, r.iteration, r.miou) for r in again] == [(r.run, r.iteration, r.miou) for r in rows]

    # the report comes from results.csv alone
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "results.csv", alone / "results.csv")
    assert main(["bench", "report", str(alone)]) == 0
    md = (alone / "report.md").read_text()
    assert "![synth: quality against annotation cost](figures/synth.png)" in md
    assert (alone / "figures" / "synth.png").stat().st_size > 10_000
    (p_hvsa, p_lp) = sorted(aggregate(rows), key=lambda p: p.method)
    assert f"| hvsa | frame | random | {100 * p_hvsa.miou:.1f} / " in md
    assert f"| lp | frame | random | {100 * p_lp.miou:.1f} / " in md
    assert (out / "report.md").read_text().replace("\n", "").count("| lp | frame |") >= 2  # budget + timing tables

    # the grid flags choose the runs reported; a value no run holds is named
    assert main(["bench", "report", str(alone), "--method", "lp", "--seeds", "0", "--out", str(tmp_path / "lp")]) == 0
    md = (tmp_path / "lp" / "report.md").read_text()
    assert "Only the runs with method lp; seed 0:" in md and "4 runs" not in md and "2 runs (2 finished)" in md
    assert f"| lp | frame | random | {100 * p_lp.miou:.1f} / " in md and "| hvsa | frame |" not in md
    assert main(["bench", "report", str(alone), "--budget-pct", "40", "--out", str(tmp_path / "b40")]) == 0
    assert "Only the runs with budget 40 %:" in (tmp_path / "b40" / "report.md").read_text()
    assert main(["bench", "report", str(alone), "--selector", "hvsa,random", "--out", str(tmp_path / "x")]) == 2
    assert "no run has selector hvsa; the runs hold random" in capsys.readouterr().err
    assert main(["bench", "report", str(alone), "--method", "lp", "--seeds", "3", "--out", str(tmp_path / "x")]) == 2
    assert "no run of those has seed 3; the runs hold 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

    # the runs of two folders in one report: here one folder per sequence, one of them with a wider crop
    halves = {}
    for seq in "ab":
        halves[seq] = tmp_path / f"half-{seq}"
        halves[seq].mkdir()
        write_results(halves[seq] / "results.csv", [r for r in rows if r.sequence == seq])
        settings = json.loads(json.dumps(bench["settings"]))
        settings["finetune"]["crop"] = 0.75 if seq == "b" else settings["finetune"]["crop"]
        (halves[seq] / "bench.json").write_text(json.dumps({**bench, "settings": settings}))
    merged = tmp_path / "merged"
    assert main(["bench", "report", str(halves["a"]), str(halves["b"]), "--out", str(merged)]) == 0
    text = (merged / "report.md").read_text()
    assert f"Merged from 2 folders: `{halves['a']}`, `{halves['b']}`. **Their settings differ** in `finetune.crop`" in text
    assert f"| hvsa | frame | random | {100 * p_hvsa.miou:.1f} / " in text  # both sequences' runs, as in one folder
    assert text.count("```\nhvsa bench ") == 1 and (merged / "figures" / "synth.png").is_file()
    assert not (halves["a"] / "report.md").exists()  # the folders read are left as they were
    assert main(["bench", "report", str(halves["a"]), str(out), "--out", str(tmp_path / "m2")]) == 0  # a's runs twice
    assert "Merged from 2 folders" in (text := (tmp_path / "m2" / "report.md").read_text()) and "settings differ" not in text
    write_results(halves["b"] / "results.csv", [replace(r, miou=0.0) for r in rows if r.sequence == "b"])
    assert main(["bench", "report", str(halves["b"]), str(out), "--out", str(tmp_path / "m3")]) == 2
    assert "frame-random-hvsa-b40-s0 is in" in capsys.readouterr().err  # a run made twice, with other results
    assert main(["bench", "report", str(halves["a"]), str(halves["b"]), "--out", str(out)]) == 2
    assert "holds the results.csv of another grid" in capsys.readouterr().err


def test_a_sequence_or_run_that_fails_fails_only_what_depends_on_it(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence whose frames cannot be read fails its own runs; a run that raises fails the
    runs replaying its samples; a fold pre-trained on an unreadable sequence is not trained, and
    its sequence's runs fail. The other runs finish and keep their rows."""
    from hvsa.bench import runner

    folder = tmp_path / "synth"
    shutil.copytree(data, folder)
    shutil.copytree(data / "b", folder / "c")
    (folder / "c" / "frames" / "00002.png").write_bytes(b"not a png")
    real_run = runner.execute_run

    def failing_run(spec: RunSpec, *args: object) -> dict:
        if (spec.sequence.name, spec.method) == ("b", "hvsa"):
            raise RuntimeError("out of memory")
        return real_run(spec, *args)

    monkeypatch.setattr(runner, "execute_run", failing_run)  # --jobs 1 runs in this process
    out = tmp_path / "out"
    argv = ["bench", str(folder), "--out", str(out), "--selector", "random", "--method", "hvsa,lp",
            "--budget-pct", "40", "--iterations", "1", "--epochs", "1", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert "failed to prepare synth/c: DataError: " in text and "prepared synth/a in" in text
    assert "2 runs finished, 0 skipped (done before), 4 failed" in text
    prepared = "its sequence (or the network of its fold) could not be prepared"
    assert f"failed: synth/c/frame-random-hvsa-b40-s0: {prepared}" in text
    assert f"failed: synth/c/frame-random-lp-b40-s0: {prepared}" in text
    assert "failed: synth/b/frame-random-hvsa-b40-s0: RuntimeError: out of memory" in text
    assert ("failed: synth/b/frame-random-lp-b40-s0: the run whose samples it replays,"
            " synth/b/frame-random-hvsa-b40-s0, did not finish") in text  # fmt: skip
    assert sorted({(r.sequence, r.method) for r in read_results(out / "results.csv")}) == [("a", "hvsa"), ("a", "lp")]

    monkeypatch.setattr(runner, "execute_run", real_run)
    assert main([*argv, "--pretrain-folds", "3", "--out", str(tmp_path / "folds")]) == 1
    text = capsys.readouterr().out
    # c trains the folds of a and b; c's own fold trains on a and b but c cannot be prepared
    assert "cannot pre-train synth/fold0: synth/c could not be prepared" in text
    assert "cannot pre-train synth/fold1: synth/c could not be prepared" in text
    assert "pre-trained synth/fold2 on 2 sequence(s)" in text and "for c" in text
    assert "failed to prepare synth/a" not in text  # a prepared as c's training data; its runs are blocked
    assert "0 runs finished, 0 skipped (done before), 6 failed" in text
    assert [p.name for p in (tmp_path / "folds" / "models" / "synth").iterdir()] == ["fold2.pt"]


def test_time_left_goes_at_the_pace_of_the_runs_done() -> None:
    from hvsa.bench.runner import _time_left

    assert _time_left(60.0, 2, 2) == "; about 60 s left"
    assert _time_left(60.0, 2, 3) == "; about 2 min left"  # 90 s
    assert _time_left(600.0, 1, 8) == "; about 80 min left"
    assert _time_left(600.0, 1, 9) == "; about 1.5 h left"
    assert _time_left(60.0, 2, 0) == "" and _time_left(0.0, 0, 5) == ""  # nothing left; no pace yet


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench", "{data}"], "--out DIR is required"),
        (["bench", "report"], "expected a bench folder"),
        (["bench", "report", "{tmp}", "{tmp}"], "several folders need --out"),
        (["bench", "report", "{tmp}"], "no results file"),
        (["bench", "report", "{tmp}", "--iterations", "5", "--jobs", "1"], "--iterations, --jobs belong to running a grid"),
        (["bench", "report", "{tmp}", "--crop", "0.75"], "--crop belongs to running a grid"),
        (["bench", "report", "{tmp}", "--iterations", "3"], "--iterations belongs to running a grid"),  # the default
        (["bench", "report", "{tmp}", "--samples-from", "hvsa", "--device", "cpu", "--lambda-tc", "1"],
         "--device, --lambda-tc, --samples-from belong to running a grid"),
        (["bench", "report", "{tmp}", "--budget-pct", "2,x"], "'x' is not a number"),
        (["bench", "{data}", "--out", "{tmp}/o", "--method", "magic"], "unknown method 'magic'"),
        (["bench", "{data}", "--out", "{tmp}/o", "--budget-pct", "1,x"], "'x' is not a number"),
        (["bench", "{tmp}", "--out", "{tmp}/o"], "no labelled sequence"),
    ],
)
def test_bench_bad_input_exits_2(argv: list[str], needle: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([a.format(data=data, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err, err


def test_bench_runs_no_more_workers_than_the_cores_it_may_use(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hvsa.bench.runner as runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 1)  # a taskset of one core on a bigger machine
    argv = ["bench", str(data), "--out", str(tmp_path / "o"), "--selector", "random", "--method", "lp",
            "--budget-pct", "40", "--iterations", "1", "--jobs", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "2 runs on 2 sequences; 0 already done, 2 to run with 1 worker(s) x 1 thread(s)" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "bench.json").read_text())["machine"]["cores"] == 1


def test_bench_refuses_to_resume_with_other_settings(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "bench.json").write_text(json.dumps({"settings": {"iterations": 5}}))
    assert main(["bench", str(data), "--out", str(out), "--iterations", "2"]) == 2
    assert "holds a bench run with other settings" in capsys.readouterr().err


def test_bench_checks_the_folds_before_it_writes_anything(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o"
    assert main(["bench", str(data), "--out", str(out), "--pretrain-folds", "3"]) == 2
    assert "pretrain-folds: synth has 2 sequence(s), fewer than 3 folds" in capsys.readouterr().err
    assert not out.exists()


def test_bench_settings_refuse_what_cannot_run() -> None:
    from hvsa.bench.runner import BenchSettings

    with pytest.raises(InputError, match="'gpu' is not a device"):
        BenchSettings(device="gpu")
    with pytest.raises(InputError, match="pretrain-folds: expected 0 \\(off\\) or at least 2"):
        BenchSettings(pretrain_folds=1)
    with pytest.raises(InputError, match="exclude each other"):
        BenchSettings(pretrain_folds=2, model="m.pt")


def test_bench_settings_from_before_a_new_field_match_only_where_it_changes_nothing() -> None:
    from hvsa.bench.runner import BenchSettings, _with_added_fields

    current = BenchSettings(iterations=2, pretrain_folds=2).identity()
    older = json.loads(json.dumps(current))
    del older["pretrain"]["taps"]  # saved before pre-training could read other taps: the same network
    del older["finetune"]["propagated_targets"]  # saved before fine-tuning could read propagated labels
    assert older != current and _with_added_fields(older) == current
    other = json.loads(json.dumps(current))
    del other["pretrain"]["taps"]
    other["pretrain"]["epochs"] = 8.0  # the filled-in field does not hide a real difference
    assert _with_added_fields(other) != current
    before_crop = json.loads(json.dumps(current))
    del before_crop["finetune"]["crop"]  # crop's default changed the results: still a different folder
    assert _with_added_fields(before_crop) != current
    before_anchoring = json.loads(json.dumps(current))
    del before_anchoring["finetune"]["anchor_windows"]  # placed its windows anywhere: a different folder
    assert current["finetune"]["anchor_windows"] and _with_added_fields(before_anchoring) != current
    assert _with_added_fields({"iterations": 5}) == {"iterations": 5}


_ORPHAN_SCRIPT = """
import os, sys, time
from hvsa.bench.runner import _Workers

def pid_then_sleep(seconds):
    time.sleep(seconds)
    return os.getpid()

if __name__ == "__main__":
    workers = _Workers(2, 1)
    for _, pid, _ in workers.run(pid_then_sleep, [(0.0,), (0.0,)]):
        print(pid, flush=True)
    list(workers.run(pid_then_sleep, [(600.0,), (600.0,)]))  # killed in here
"""


def test_workers_end_when_the_bench_process_is_killed(tmp_path: Path) -> None:
    """A killed ``hvsa bench`` (SIGKILL: no clean-up runs) leaves no worker behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "bench_parent.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = {int(proc.stdout.readline()), int(proc.stdout.readline())}
    time.sleep(0.5)  # both workers are now sleeping in their second call
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie of an exited worker counts as gone
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "workers outlived the killed bench process"


def test_a_narrow_log_axis_is_labelled_at_its_points() -> None:
    from hvsa.bench.plots import _narrow_axis_ticks, _narrow_label

    ticks = _narrow_axis_ticks([1.963, 1.681, None, 1.681, 1.6812], 1.6, 2.05)
    assert ticks == [1.681, 1.963] and [_narrow_label(t) for t in ticks] == ["1.68", "1.96"]
    assert _narrow_axis_ticks([0.6246, 0.6716], 0.6226, 0.6736) == [0.6246, 0.6716]  # 0.62 is off the axis
    assert _narrow_axis_ticks([0.9, 1.9, 2.9], 0.8, 3.2) is None
    assert _narrow_axis_ticks([None], 1.0, 1.1) is None


def test_each_panel_labels_a_narrow_axis_at_the_points_it_draws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvsa.bench import plots

    seen: list[list[float]] = []
    original = plots._narrow_axis_ticks
    monkeypatch.setattr(plots, "_narrow_axis_ticks", lambda xs, lo, hi: seen.append(sorted(xs)) or original(xs, lo, hi))
    a, b = _point("frame", 2, 1.7, 0.8), _point("rec40", 2, 1.9, 0.85)
    lp = replace(_point("rec40", 2, 1.8, 0.6, method="lp"), boundary_iou=None)  # no boundary IoU to draw
    plots.curves_figure(tmp_path / "narrow.png", [a, b, lp])
    clicks_miou, clicks_boundary, pixels_miou = seen
    assert clicks_miou == pixels_miou == [1.7, 1.8, 1.9]
    assert clicks_boundary == [1.7, 1.9]  # lp's 1.8 is not drawn there, so it gets no label


def test_log_axis_minor_labels_only_at_2_3_and_5() -> None:
    from hvsa.bench.plots import _minor_label

    labels = [_minor_label(v) for v in (0.09, 0.2, 0.3, 0.4, 0.5, 2.0, 3.0, 7.0, 20.0, 0.0)]
    assert labels == ["", "0.2", "0.3", "", "0.5", "2", "3", "", "20", ""]

"""The benchmark report: figures and Markdown tables regenerated from ``results.csv`` alone.

``hvsa bench report DIR`` reads ``DIR/results.csv`` and writes ``DIR/report.md`` with, per
dataset, a Figure-7-style plot (``DIR/figures/<dataset>.png``), a Table-1-style table (fewest
clicks % reaching 80/85/90/95 % mIoU, and at which granularity), a Table-2-style table (mIoU,
pixel accuracy and TC at each budget for finetune-only, lp, hvsa, hvsa-fused and hvsa-crf), a
run-by-run comparison of every selector with random selection, of every method with ``lp`` and
of every fine-tuning method with ``finetune-only`` (the mean mIoU difference of runs on the same
sequence with the same seed, and whether it is more than chance) and the seconds per iteration
with the runs' peak memory. When ``DIR/bench.json`` exists (written by ``hvsa bench``) the
commands that filled the folder and the machine are quoted too; nothing else is read.

``hvsa bench report DIR... --out OUT`` does the same for the runs of several folders together
(an experiment whose seeds or selectors ran into separate folders, one per core, say), written
to ``OUT``; the report names the folders and any setting their ``bench.json`` files disagree on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from hvsa.bench.results import (
    SIGNIFICANCE,
    TABLE1_TARGETS,
    Comparison,
    Point,
    Reach,
    ResultRow,
    Timing,
    aggregate,
    compare,
    complete_runs,
    fewest_clicks,
    fixed_budget_rows,
    merge_results,
    read_results,
    select_rows,
    timings,
)
from hvsa.errors import InputError

__all__ = [
    "markdown_table",
    "reach_table",
    "budget_table",
    "comparison_table",
    "run_by_run",
    "timing_table",
    "render_report",
    "write_report",
]


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(header), row(["---"] * len(header)), *(row(r) for r in body)])


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}"


def _seed_range(p: Point) -> str:
    """", seeds LO-HI": the lowest and highest mean mIoU of a point's seeds ("" for one seed)."""
    ms = p.miou_per_seed
    return f", seeds {_pct(min(ms))}-{_pct(max(ms))}" if len(ms) > 1 else ""


def reach_table(reaches: Sequence[Reach]) -> str:
    """Table 1 style, one dataset: rows (method, selector), a column per target mIoU, cells
    "clicks % (granularity)", "<= clicks % (granularity)" when that granularity was run at no
    fewer clicks (:attr:`Reach.cheapest`), or "-" when no configuration reaches the target."""
    targets = sorted({r.target for r in reaches})
    rows: dict[tuple[str, str], dict[float, Reach]] = {}
    for r in reaches:
        rows.setdefault((r.method, r.selector), {})[r.target] = r
    body = []
    for (method, selector), cells in sorted(rows.items()):
        line = [method, selector]
        for t in targets:
            c = cells.get(t)
            if c is None or c.clicks_pct is None:
                line.append("-")
            else:
                line.append(f"{'<= ' if c.cheapest else ''}{c.clicks_pct:.2f} % ({c.granularity})")
        body.append(line)
    return markdown_table(["method", "selector", *(f"mIoU >= {100 * t:g} %" for t in targets)], body)


def budget_table(points: Sequence[Point], complete: int | None = None) -> str:
    """Table 2 style, one dataset: rows (method, granularity, selector), a column per budget,
    cells "mIoU / pixel acc. / TC" in percent (and the clicks % actually spent); a point of
    several seeds gives the range of their mean mIoUs; with ``complete``, a point of fewer runs
    says how many it averages."""
    budgets = sorted({p.budget_pct for p in points})
    rows: dict[tuple[str, str, str], dict[float, Point]] = {}
    for p in points:
        rows.setdefault((p.method, p.granularity, p.selector), {})[p.budget_pct] = p
    body = []
    for key, cells in rows.items():  # keeps fixed_budget_rows' method order
        line = list(key)
        for b in budgets:
            p = cells.get(b)
            line.append(
                "-" if p is None
                else f"{_pct(p.miou)} / {_pct(p.pixel_acc)} / {_pct(p.tc)}"
                + ("" if p.clicks_pct is None else f" ({p.clicks_pct:.2f} %)")
                + _seed_range(p)
                + ("" if complete is None or p.runs >= complete else f" [{p.runs} of {complete} runs]")
            )  # fmt: skip
        body.append(line)
    return markdown_table(["method", "granularity", "selector", *(f"budget {b:g} %" for b in budgets)], body)


def _pairs_needed(n: int | None) -> str:
    if n is None:
        return "-"
    return "more than 1000" if n > 1000 else f"about {n}"  # past that, no difference worth planning for


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    """Run-by-run comparisons, one dataset: rows (contender, baseline, granularity, the shared
    method or selector, budget), cells the pairs, the mean mIoU difference in points with its
    standard error, the pairs won and lost, the mean difference in clicks % charged, the
    sign-flip p-value and the verdict, the pairs a verdict would take, then the sequences and
    the p-value over sequences."""
    body = []
    for c in comparisons:
        se = "" if c.miou_diff_se is None else f" ± {100 * c.miou_diff_se:.1f}"
        body.append([
            c.contender, c.baseline, c.granularity, c.shared, f"{c.budget_pct:g} %", str(c.pairs),
            f"{100 * c.miou_diff:+.1f}{se}", f"{c.wins} / {c.losses}",
            "-" if c.clicks_diff is None else f"{c.clicks_diff:+.2f}", f"{c.p_value:.3f}", c.verdict,
            _pairs_needed(c.pairs_needed), str(c.sequences), f"{c.p_sequences:.3f}",
        ])  # fmt: skip
    return markdown_table(
        ["contender", "against", "granularity", "with", "budget", "pairs", "mIoU difference, points",
         "ahead / behind", "clicks % difference", "p", "verdict", "pairs a verdict takes", "sequences",
         "p over sequences"], body
    )  # fmt: skip


def run_by_run(rows: Sequence[ResultRow]) -> list[Comparison]:
    """The report's run-by-run comparisons (:func:`hvsa.bench.results.compare`): every selector
    against random selection, every method against ``lp``, and every method that fine-tunes
    against ``finetune-only``, the paper's ablation (``hvsa`` differs from it in L_tc alone)."""
    from hvsa.methods import METHODS

    def fine_tunes(method: str) -> bool:  # results.csv may name a method this version lacks
        return method in METHODS and METHODS.get(method).trains

    ablation = [c for c in compare(rows, "method", "finetune-only") if fine_tunes(c.contender)]
    return compare(rows, "selector", "random") + compare(rows, "method", "lp") + ablation


def _against(comparisons: Sequence[Comparison]) -> str:
    """The baselines of ``comparisons`` in words, in the report's order: "random selection, lp
    and finetune-only"."""
    named = {"random": "random selection"}
    baselines = [named.get(b, b) for b in dict.fromkeys(c.baseline for c in comparisons)]
    return baselines[0] if len(baselines) == 1 else ", ".join(baselines[:-1]) + " and " + baselines[-1]


def timing_table(rows: Sequence[Timing]) -> str:
    """Seconds per iteration: rows (method, granularity), columns select ... total, then the
    largest peak resident memory of a run, MiB."""

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    body = [
        [t.method, t.granularity, f"{t.frames:.0f}", str(t.iterations), s(t.select), s(t.annotate),
         s(t.finetune), s(t.predict), s(t.total), "-" if t.peak_rss_mb is None else f"{t.peak_rss_mb:.0f}"]
        for t in rows
    ]  # fmt: skip
    return markdown_table(
        ["method", "granularity", "frames", "iterations", "select", "annotate", "fine-tune", "predict", "total",
         "peak MiB"], body
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "data"


def _bench_commands(bench: dict) -> list[str]:
    """The distinct command lines of ``bench.json``'s content, in the order they first ran (a
    resumed grid runs its command again); commands run in process (None) are left out."""
    listed = [c.get("command") for c in bench.get("commands", [])] or [bench.get("command")]
    return list(dict.fromkeys(c for c in listed if c))


def render_report(
    rows: Sequence[ResultRow], figures: dict[str, str], bench: dict | None = None,
    sources: Sequence[str] = (), differing: Sequence[str] = (), only: Mapping[str, Sequence] | None = None,
) -> str:  # fmt: skip
    """The Markdown report of ``rows``; ``figures`` maps a dataset to its figure's relative path,
    ``bench`` is the content of ``bench.json`` (commands, machine) when known. For rows merged
    from several folders, ``sources`` names the folders and ``differing`` the settings their
    ``bench.json`` files disagree on; ``bench["machines"]`` may then list several machines.
    ``only`` is the selection ``rows`` were kept by, if any (:func:`write_report`)."""
    points = aggregate(rows)
    complete = complete_runs(points)
    # a partial point's mean is over other sequences than the rest: it cannot be Table 1's answer
    reach = fewest_clicks([p for p in points if p.runs >= complete[p.dataset]], TABLE1_TARGETS)
    budget = fixed_budget_rows(points)
    times = timings(rows)
    comparisons = run_by_run(rows)
    out = _report_header(rows, bench, sources, differing, only)
    for dataset in sorted({r.dataset for r in rows}):
        out += ["", f"## {dataset}", ""]
        if dataset in figures:
            out += [f"![{dataset}: quality against annotation cost]({figures[dataset]})", ""]
        partial = sum(p.runs < complete[dataset] for p in points if p.dataset == dataset)
        if partial:
            out += [f"{partial} of the configurations average fewer than {complete[dataset]} runs (a grid still"
                    " running, or failed runs): Table 1 leaves them out, Table 2 marks them.", ""]
        out += ["### Fewest clicks % reaching a quality (Table 1 style)", ""]
        here = [r for r in reach if r.dataset == dataset]
        out += [reach_table(here), ""]
        if any(r.cheapest for r in here):
            out += ["<=: the fewest clicks that granularity was run at already reach it; fewer were not tried.", ""]
        out += ["### Quality at fixed budgets: mIoU / pixel accuracy / TC, % (Table 2 style)", ""]
        sub = [p for p in budget if p.dataset == dataset]
        out += [budget_table(sub, complete[dataset]) if sub else "No finetune-only, lp, hvsa, hvsa-fused or hvsa-crf runs.", ""]
        against = [c for c in comparisons if c.dataset == dataset]
        if against:
            out += [f"### Against {_against(against)}, run by run", "", _RUN_BY_RUN_NOTE, ""]
            out += [comparison_table(against), ""]
        out += ["### Seconds per iteration, and peak memory", ""]
        out += [timing_table([t for t in times if t.dataset == dataset]), ""]
    return "\n".join(out).rstrip() + "\n"


def _report_header(rows: Sequence[ResultRow], bench: dict | None, sources: Sequence[str], differing: Sequence[str],
                   only: Mapping[str, Sequence] | None) -> list[str]:  # fmt: skip
    """The report's lines before the datasets' sections: what the rows are, where they were
    merged from, the runs they were kept by, the commands and the machines (see
    :func:`render_report`)."""
    runs = {r.run for r in rows}
    finished = {r.run for r in rows if r.final}
    out = ["# hvsa benchmark", ""]
    out.append(
        f"{len(runs)} runs ({len(finished)} finished) on {len({(r.dataset, r.sequence) for r in rows})} sequences."
        " A point is the final iteration of a configuration's runs, averaged over the dataset's"
        " sequences and the seeds; clicks % is cumulative, relative to annotating every frame whole."
        " With several seeds, Table 2 gives the lowest and highest of the seeds' mean mIoUs and the"
        " figure draws them as a bar."
    )
    if len(sources) > 1:
        out += ["", f"Merged from {len(sources)} folders: " + ", ".join(f"`{f}`" for f in sources) + "."]
        if differing:
            out[-1] += (
                " **Their settings differ** in " + ", ".join(f"`{k}`" for k in differing) + ": a point or a pair"
                " may mix runs made with different settings."
            )
    if only:
        kept = "; ".join(f"{_ONLY_LABELS.get(k, k)} {', '.join(_ONLY_FORMAT.get(k, str)(v) for v in vs)}"
                         for k, vs in only.items())  # fmt: skip
        out += ["", f"Only the runs with {kept}: the grid's other runs are left out of this report."]
    if bench:
        commands = _bench_commands(bench)
        if commands:  # none when every command ran in process
            out += ["", "Command:" if len(commands) == 1 else "Commands, in the order they first ran:", ""]
            out += ["```", *commands, "```"]
        machines = bench.get("machines") or [bench.get("machine") or {}]
        machines = [m for m in machines if m]
        if machines:
            label = "Machine: " if len(machines) == 1 else "Machines: "
            out += ["", label + "; ".join(", ".join(f"{k} {v}" for k, v in m.items()) for m in machines)]
    return out


_RUN_BY_RUN_NOTE = (
    "Each pair is two runs on the same sequence with the same seed that differ only in the"
    " selector (or only in the method); the difference is the contender's final mIoU minus"
    " the baseline's, its mean over the pairs ± its standard error. Against finetune-only"
    " (lambda = 0), `hvsa`'s difference is what the temporal-consistency loss adds;"
    " `hvsa-fused` and `hvsa-crf` differ in more (how they label, and the hold). p is the two-sided"
    " sign-flip p-value of that mean (how often flipping the pairs' signs at random gives"
    f" a mean as far from zero); below {SIGNIFICANCE:g} the verdict is ahead or behind. With"
    " n pairs p is at least 2 / 2^n, so five pairs or fewer never decide. \"Pairs a verdict"
    " takes\" is about how many pairs a difference this large, spread as these are, needs"
    " to be called 4 times in 5 (a normal approximation, for planning more seeds). That p takes the"
    " pairs as independent: it asks whether the contender is ahead on these sequences."
    " Whether it would be ahead on other videos is asked by the last column, the same test"
    " on the sequences' mean differences (their seeds' pairs averaged first)."
)


_ONLY_LABELS = {"budget_pct": "budget"}
_ONLY_FORMAT = {"budget_pct": lambda v: f"{v:g} %"}


def _merge_benches(benches: Sequence[dict]) -> dict:
    """One ``bench.json``-like content for several folders: every command in folder order
    (:func:`_bench_commands` drops the repeats when the report reads them), and the distinct
    machines."""
    machines = []
    for b in benches:
        if b.get("machine") and b["machine"] not in machines:
            machines.append(b["machine"])
    return {"commands": [{"command": c} for b in benches for c in _bench_commands(b)], "machines": machines}


def write_report(
    folders: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    only: Mapping[str, Sequence] | None = None,
) -> Path:
    """Regenerate ``report.md`` and ``figures/`` from the ``results.csv`` of one bench folder
    (written into it, unless ``out`` names another folder) or of several together (into
    ``out``, required then: a merged report belongs to none of them). ``only`` keeps the runs
    whose columns hold the values given (:func:`hvsa.bench.results.select_rows`), and the
    report says so. Returns the report's path.
    """
    from hvsa.bench.plots import curves_figure

    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    folders = [Path(f) for f in folders]
    if not folders:
        raise InputError("bench report: expected at least one bench folder")
    if out is None:
        if len(folders) > 1:
            raise InputError("bench report: several folders need --out DIR, a folder for the merged report")
        out = folders[0]
    out = Path(out)
    if out.resolve() not in {f.resolve() for f in folders} and (out / "results.csv").is_file():
        raise InputError(f"{out}: holds the results.csv of another grid; write the report into another folder")
    rows = merge_results([(str(f), read_results(f / "results.csv")) for f in folders])
    if only:
        rows = select_rows(rows, only)
    benches = [json.loads((f / "bench.json").read_text()) if (f / "bench.json").is_file() else {} for f in folders]
    if len(folders) == 1:
        bench, differing = benches[0] or None, []
    else:
        from hvsa.bench.runner import settings_differences

        bench, differing = _merge_benches(benches), settings_differences(benches)
    out.mkdir(parents=True, exist_ok=True)
    points = aggregate(rows)
    figures = {}
    for dataset in sorted({p.dataset for p in points}):
        name = f"figures/{_slug(dataset)}.png"
        curves_figure(out / name, [p for p in points if p.dataset == dataset], title=dataset)
        figures[dataset] = name
    path = out / "report.md"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_report(rows, figures, bench, sources=[str(f) for f in folders], differing=differing, only=only))
    os.replace(tmp, path)
    return path

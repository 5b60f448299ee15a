"""Benchmark results: the ``results.csv`` rows, and pure scoring and table functions over them.

``results.csv`` holds one row per run and completed iteration: the run's parameters, every
field of its ``report.json`` (``size`` as ``width`` and ``height``, ``seconds`` as
``seconds_<part>``), cumulative clicks and the quality figures of that iteration. Everything a
report shows is computed from these rows alone.

A *point* (:class:`Point`) averages the final iteration of every run of one configuration
(dataset, granularity, selector, method, budget) over the dataset's sequences and the seeds: it
is one marker of a Figure-7-style curve. A *comparison* (:class:`Comparison`) pairs the runs of
two configurations that differ in one factor (the selector, or the method) run by run, on the
same sequence with the same seed, and says whether the difference is more than chance.
"""

from __future__ import annotations

import csv
import math
import os
import typing
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from statistics import NormalDist

import numpy as np

from hvsa.errors import InputError

__all__ = [
    "COLUMNS",
    "ResultRow",
    "Point",
    "Reach",
    "Timing",
    "rows_from_report",
    "write_results",
    "read_results",
    "merge_results",
    "select_rows",
    "aggregate",
    "fewest_clicks",
    "fixed_budget_rows",
    "complete_runs",
    "timings",
    "Comparison",
    "compare",
    "sign_flip_p",
    "TABLE1_TARGETS",
    "TABLE2_METHODS",
]

TABLE1_TARGETS = (0.80, 0.85, 0.90, 0.95)
TABLE2_METHODS = ("finetune-only", "lp", "hvsa", "hvsa-fused", "hvsa-crf")
_SECONDS = ("select", "annotate", "finetune", "predict", "total")
_QUALITY = ("miou", "pixel_acc", "boundary_iou", "tc")


@dataclass(frozen=True)
class ResultRow:
    """One row of ``results.csv``: one iteration of one run. Quality figures are fractions in
    [0, 1] (None without ground truth); ``clicks_pct`` and ``pixels_pct`` are cumulative;
    ``samples_from`` is the run whose samples this run annotated (None: its own selection);
    ``peak_rss_mb`` is the run's peak resident memory up to the end of the iteration, MiB (None
    where it was not measured, as in results written before it was)."""

    run: str
    dataset: str
    sequence: str
    granularity: str
    selector: str
    method: str
    budget_pct: float
    seed: int
    iterations: int
    model: str | None
    samples_from: str | None
    data: str
    frames: int
    width: int
    height: int
    classes: int
    full_video_clicks: int | None
    iteration: int
    samples: int
    clicks: int
    clicks_pct: float | None
    pixels_pct: float
    miou: float | None
    pixel_acc: float | None
    boundary_iou: float | None
    tc: float | None
    seconds_select: float | None
    seconds_annotate: float | None
    seconds_finetune: float | None
    seconds_predict: float | None
    seconds_total: float | None
    peak_rss_mb: float | None = None

    @property
    def final(self) -> bool:
        """Whether this is the run's last iteration."""
        return self.iteration == self.iterations


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
# columns added after results files existed: a file without them reads them as None
_ADDED_COLUMNS = ("peak_rss_mb",)


def _parser(hint: object):  # noqa: ANN202
    """The text -> value conversion of a column of type ``hint`` ("" is None for optionals)."""
    args = typing.get_args(hint)
    if type(None) not in args:
        return hint
    kind = next(a for a in args if a is not type(None))
    return lambda text: None if text == "" else kind(text)


_PARSE = {name: _parser(hint) for name, hint in typing.get_type_hints(ResultRow).items()}


def rows_from_report(params: dict, report: dict) -> list[ResultRow]:
    """The rows of one run: ``params`` (:meth:`hvsa.bench.grid.RunSpec.params` plus
    ``iterations``, ``model`` and ``samples_from``, as in a run's ``run.json``) joined with each
    iteration of its ``report`` (the report.json dict)."""
    rows = []
    for it in report["iterations"]:
        sec = it.get("seconds", {})
        rows.append(
            ResultRow(
                run=params["run"], dataset=params["dataset"], sequence=params["sequence"],
                granularity=report["granularity"], selector=report["selector"],
                method=report.get("method", params["method"]), budget_pct=float(params["budget_pct"]),
                seed=int(report["seed"]), iterations=int(params["iterations"]), model=params.get("model"),
                samples_from=params.get("samples_from"),
                data=report["data"], frames=int(report["frames"]), width=int(report["size"][0]),
                height=int(report["size"][1]), classes=int(report["classes"]),
                full_video_clicks=report.get("full_video_clicks"), iteration=int(it["iteration"]),
                samples=int(it["samples"]), clicks=int(it["clicks"]), clicks_pct=it.get("clicks_pct"),
                pixels_pct=float(it["pixels_pct"]), miou=it.get("miou"), pixel_acc=it.get("pixel_acc"),
                boundary_iou=it.get("boundary_iou"), tc=it.get("tc"),
                **{f"seconds_{k}": sec.get(k) for k in _SECONDS}, peak_rss_mb=it.get("peak_rss_mb"),
            )
        )  # fmt: skip
    return rows


def write_results(path: str | os.PathLike, rows: Iterable[ResultRow]) -> Path:
    """Write ``rows`` as CSV with the :data:`COLUMNS` header (atomically: temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if v is None else v for v in astuple(r)])
    os.replace(tmp, path)
    return path


def read_results(path: str | os.PathLike) -> list[ResultRow]:
    """Read a ``results.csv``; its header must hold every column of :data:`COLUMNS` (but those
    added since results files first existed, which read as None when absent)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no results file (run `hvsa bench DATA --out DIR` first)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        present = [c for c in COLUMNS if c in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in present and c not in _ADDED_COLUMNS]
        if missing:
            raise InputError(f"{path}: not an hvsa results file (missing columns {missing})")
        try:
            return [ResultRow(**{c: _PARSE[c](rec[c]) for c in present}) for rec in reader]
        except ValueError as e:
            raise InputError(f"{path}: line {reader.line_num}: {e}") from None


def _row_key(r: ResultRow) -> tuple:
    """``r``'s values with NaN made comparable (NaN != NaN would make a run unequal to itself)."""
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in astuple(r))


def merge_results(sources: Sequence[tuple[str, Sequence[ResultRow]]]) -> list[ResultRow]:
    """The rows of several results files as one list: ``sources`` holds (name, rows) pairs,
    one per file (the name only shows in errors), and the rows keep their order.

    A run found in more than one source must have the same rows in each (a folder given twice,
    or a copy of one) and is kept once. A run whose rows differ between two sources is an error:
    the rows cannot tell which to believe (the same configuration run again into another folder,
    perhaps with other settings). Folders to merge hold different runs: other seeds, sequences,
    budgets or selectors of one experiment.
    """
    merged: dict[str, tuple[str, list[ResultRow]]] = {}
    for name, rows in sources:
        runs: dict[str, list[ResultRow]] = defaultdict(list)
        for r in rows:
            runs[r.run].append(r)
        for run, own in runs.items():
            if run not in merged:
                merged[run] = (name, own)
            elif [_row_key(r) for r in merged[run][1]] != [_row_key(r) for r in own]:
                raise InputError(
                    f"run {run} is in {merged[run][0]} and in {name} with other results; merge folders"
                    " that hold different runs (other seeds, sequences, budgets or selectors), or leave one out"
                )
    return [r for _, own in merged.values() for r in own]


def select_rows(rows: Sequence[ResultRow], only: Mapping[str, Sequence]) -> list[ResultRow]:
    """The rows whose value in each column named by ``only`` is one of the values given for it
    (``{"selector": ("hvsa", "random"), "budget_pct": (2.0,)}``), in their order.

    A value no row holds is an error that names the values the rows do hold: a misspelt
    selector would otherwise shrink the report without a word.
    """
    kept = list(rows)
    for column, values in only.items():
        if column not in _PARSE:
            raise InputError(f"bench report: results have no column {column!r}")
        held = {getattr(r, column) for r in kept}
        missing = [v for v in values if v not in held]
        if missing:
            raise InputError(
                f"bench report: no run{' of those' if len(kept) < len(rows) else ''} has {column}"
                f" {', '.join(map(str, missing))}; the runs hold {', '.join(sorted(map(str, held))) or 'none'}"
            )
        kept = [r for r in kept if getattr(r, column) in values]
    return kept


# ---------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Point:
    """The mean final iteration of the runs of one configuration (over sequences and seeds).

    ``runs`` is how many runs were averaged; a quality figure is None when no run has it.
    ``miou_per_seed`` is the mean mIoU of each seed's runs, in seed order: with several seeds,
    its spread says how much of a difference between two points is chance.
    """

    dataset: str
    granularity: str
    selector: str
    method: str
    budget_pct: float
    runs: int
    clicks_pct: float | None
    pixels_pct: float
    miou: float | None
    pixel_acc: float | None
    boundary_iou: float | None
    tc: float | None
    miou_per_seed: tuple[float, ...] = ()

    @property
    def line(self) -> tuple[str, str, str]:
        """(granularity, selector, method): the curve this point belongs to."""
        return self.granularity, self.selector, self.method


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else None


def aggregate(rows: Sequence[ResultRow]) -> list[Point]:
    """One :class:`Point` per (dataset, granularity, selector, method, budget), from each
    run's final iteration; sorted by those keys."""
    groups: dict[tuple, list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.final:
            groups[(r.dataset, r.granularity, r.selector, r.method, r.budget_pct)].append(r)
    points = []
    for key in sorted(groups):
        g = groups[key]
        per_seed = (_mean(r.miou for r in g if r.seed == seed) for seed in sorted({r.seed for r in g}))
        points.append(
            Point(
                *key,
                runs=len(g),
                clicks_pct=_mean(r.clicks_pct for r in g),
                pixels_pct=_mean(r.pixels_pct for r in g),
                **{q: _mean(getattr(r, q) for r in g) for q in _QUALITY},
                miou_per_seed=tuple(m for m in per_seed if m is not None),
            )
        )
    return points


def complete_runs(points: Sequence[Point]) -> dict[str, int]:
    """Per dataset, the runs a finished configuration averages: the most any of its points has
    (sequences x seeds once a grid is done). A point with fewer is partial: a grid still running,
    or a run that failed, and its mean is over other sequences than its neighbours'."""
    full: dict[str, int] = {}
    for p in points:
        full[p.dataset] = max(full.get(p.dataset, 0), p.runs)
    return full


@dataclass(frozen=True)
class Reach:
    """The fewest clicks % at which a (dataset, method, selector) reaches ``target`` mIoU, over
    every granularity and budget, and the granularity and mIoU of that point (None: never).
    ``cheapest`` says that point is the fewest clicks its granularity was run at: nothing below
    it was tried, so fewer clicks might reach the target too (the answer is an upper bound)."""

    dataset: str
    method: str
    selector: str
    target: float
    clicks_pct: float | None
    granularity: str | None
    miou: float | None
    cheapest: bool = False


def fewest_clicks(points: Sequence[Point], targets: Sequence[float] = TABLE1_TARGETS) -> list[Reach]:
    """Table 1 of the paper: for each (dataset, method, selector) and target mIoU, the point of
    fewest clicks % whose mIoU is at least the target (ties: the first granularity in name
    order), and whether its granularity was run at fewer clicks at all. Sorted by dataset,
    method, selector, target."""
    groups: dict[tuple[str, str, str], list[Point]] = defaultdict(list)
    for p in points:
        if p.miou is not None and p.clicks_pct is not None:
            groups[(p.dataset, p.method, p.selector)].append(p)
    out = []
    for key in sorted(groups):
        for target in sorted(targets):
            hits = [p for p in groups[key] if p.miou >= target]
            if not hits:
                out.append(Reach(*key, target=float(target), clicks_pct=None, granularity=None, miou=None))
                continue
            best = min(hits, key=lambda p: (p.clicks_pct, p.granularity))
            cheapest = not any(p.clicks_pct < best.clicks_pct for p in groups[key] if p.granularity == best.granularity)
            out.append(Reach(*key, target=float(target), clicks_pct=best.clicks_pct, granularity=best.granularity,
                             miou=best.miou, cheapest=cheapest))
    return out


def fixed_budget_rows(points: Sequence[Point], methods: Sequence[str] = TABLE2_METHODS) -> list[Point]:
    """Table 2 of the paper: the points of ``methods`` (in that order), then by dataset,
    granularity, selector and budget."""
    rank = {m: i for i, m in enumerate(methods)}
    kept = [p for p in points if p.method in rank]
    return sorted(kept, key=lambda p: (p.dataset, rank[p.method], p.granularity, p.selector, p.budget_pct))


@dataclass(frozen=True)
class Timing:
    """Mean seconds per iteration of one (dataset, method, granularity), over every completed
    iteration of its runs; ``frames`` is the mean video length of those runs; ``peak_rss_mb``
    the largest peak resident memory any of those runs reached, MiB (None: not measured)."""

    dataset: str
    method: str
    granularity: str
    iterations: int
    frames: float
    select: float | None
    annotate: float | None
    finetune: float | None
    predict: float | None
    total: float | None
    peak_rss_mb: float | None = None


def timings(rows: Sequence[ResultRow]) -> list[Timing]:
    """Seconds per iteration and peak memory per (dataset, method, granularity), sorted by those
    keys."""
    groups: dict[tuple[str, str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        groups[(r.dataset, r.method, r.granularity)].append(r)
    return [
        Timing(
            *key,
            iterations=len(g),
            frames=sum(r.frames for r in g) / len(g),
            **{k: _mean(getattr(r, f"seconds_{k}") for r in g) for k in _SECONDS},
            peak_rss_mb=max((r.peak_rss_mb for r in g if r.peak_rss_mb is not None), default=None),
        )
        for key, g in sorted(groups.items())
    ]


# ------------------------------------------------------------------------------ comparisons

# a difference is called more than chance below this two-sided p-value
SIGNIFICANCE = 0.05
_POWER = 0.8  # the chance of a verdict that Comparison.pairs_needed plans for
# the fewest pairs whose sign-flip p-value (at least 2 / 2**n) can fall below SIGNIFICANCE: 6
_FEWEST_DECIDING = math.floor(math.log2(2 / SIGNIFICANCE)) + 1
_FACTORS = ("selector", "method")


@dataclass(frozen=True)
class Comparison:
    """``contender`` against ``baseline`` in one ``factor`` ("selector" or "method"), the other
    settings shared: ``granularity``, ``budget_pct`` and ``shared`` (the method when the factor
    is the selector, the selector when it is the method).

    The runs are paired by sequence and seed, final iterations only. ``miou_diff`` is the mean
    of the pairs' mIoU differences (contender minus baseline, a fraction), ``miou_diff_se`` its
    standard error (None for one pair), ``wins`` and ``losses`` the pairs the contender leads and
    trails, ``clicks_diff`` the mean difference in clicks % charged (a selector that spends less
    of its budget is expected to score less), ``p_value`` the two-sided sign-flip p-value of the
    mean difference (:func:`sign_flip_p`), which the verdict reads.

    ``p_value`` takes every pair as independent, which says whether the contender is ahead on
    these sequences (the seeds vary the runs' random choices). Whether it would be ahead on
    other videos of the kind is a question about sequences: ``sequences`` counts them and
    ``p_sequences`` is the sign-flip p-value of their mean differences (each sequence's pairs
    averaged first). It has fewer units, so it cannot decide with five sequences or fewer, but
    averaging a sequence's seeds also averages away their noise: where single runs swing far
    (one seed collapses), it can decide when the test over runs does not.
    """

    dataset: str
    factor: str
    contender: str
    baseline: str
    granularity: str
    shared: str
    budget_pct: float
    pairs: int
    miou_diff: float
    miou_diff_se: float | None
    wins: int
    losses: int
    clicks_diff: float | None
    p_value: float
    sequences: int
    p_sequences: float

    @property
    def verdict(self) -> str:
        """"ahead", "behind" or "within chance" (p-value at least :data:`SIGNIFICANCE`)."""
        if self.p_value >= SIGNIFICANCE or self.miou_diff == 0:
            return "within chance"
        return "ahead" if self.miou_diff > 0 else "behind"

    @property
    def pairs_needed(self) -> int | None:
        """About how many pairs a difference this large, spread as these pairs are, needs for
        the test to call it 4 times in 5 (power 0.8 at :data:`SIGNIFICANCE`): the normal
        approximation (z(1 - a/2) + z(0.8))^2 (sd / mean)^2, and never fewer than the six pairs
        the sign-flip test needs to decide at all. A plan for more seeds, not a promise: the
        mean and spread of a few pairs are rough. None with one pair or no difference."""
        if self.miou_diff_se is None or self.miou_diff == 0:
            return None
        z = NormalDist().inv_cdf(1 - SIGNIFICANCE / 2) + NormalDist().inv_cdf(_POWER)
        sd = self.miou_diff_se * math.sqrt(self.pairs)
        return max(_FEWEST_DECIDING, math.ceil((z * sd / self.miou_diff) ** 2))


def _signed_sums(d: np.ndarray) -> np.ndarray:
    """Every sum +-d[0] +- d[1] ... (2**len(d) of them; [0.0] for none)."""
    sums = np.zeros(1)
    for x in d:
        sums = np.concatenate((sums + x, sums - x))
    return sums


def sign_flip_p(diffs: Sequence[float], draws: int = 20000, seed: int = 0, exact_up_to: int = 36) -> float:
    """Two-sided p-value of the mean of paired differences ``diffs`` under the null hypothesis
    that each difference is as likely to have had the other sign (a paired randomisation test:
    no assumption about their distribution). Exact, over all 2**n sign patterns, for n <=
    ``exact_up_to``; otherwise estimated from ``draws`` random patterns (seeded, so repeatable).
    A difference of exactly zero (two runs that agree to the last digit, as when both selectors
    pick the same frames) is left out of n: either sign gives the same sum, so it doubles both
    the patterns as extreme and all patterns, and leaves p as it is.

    The exact count meets in the middle: the 2**(n/2) signed sums of one half of the pairs,
    sorted, are searched for each signed sum of the other half: 36 pairs take about 0.05 s and
    2**18 sums of memory on one core, where a table of every pattern would hold 2**36 rows.

    With n pairs no p-value is below 2 / 2**n: five pairs or fewer cannot show a difference at
    0.05.
    """
    if not 0 <= exact_up_to <= 40:
        raise InputError(f"sign_flip_p: exact_up_to {exact_up_to}: expected 0 to 40 (2**(n/2) sums are enumerated)")
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise InputError(f"sign_flip_p: expected a non-empty list of differences, got shape {d.shape}")
    d = d[d != 0.0]
    n = d.size
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, observed)  # the same sum added in another order
    if observed <= tol:
        return 1.0
    if n <= exact_up_to:
        low = np.sort(_signed_sums(d[: n // 2]))
        high = _signed_sums(d[n // 2 :])
        # a pattern is as extreme when low + high >= observed or low + high <= -observed
        above = low.size - np.searchsorted(low, observed - tol - high, side="left")
        below = np.searchsorted(low, tol - observed - high, side="right")
        return float((int(above.sum()) + int(below.sum())) / 2.0**n)
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(draws, n))
    extreme = np.count_nonzero(np.abs(signs @ d) >= observed - tol)
    return float((extreme + 1) / (draws + 1))  # the observed pattern counts as one draw


def compare(rows: Sequence[ResultRow], factor: str, baseline: str) -> list[Comparison]:
    """Every configuration whose ``factor`` ("selector" or "method") is not ``baseline``,
    against the ``baseline`` configuration with the same dataset, granularity, budget and other
    factor, paired run by run (same sequence and seed; final iterations with an mIoU, which
    leaves out None and NaN as :func:`aggregate`'s means do). Sorted by
    dataset, granularity, shared factor, contender and budget; configurations with no pair are
    left out."""
    if factor not in _FACTORS:
        raise InputError(f"compare: factor {factor!r}: expected one of {list(_FACTORS)}")
    other = _FACTORS[1 - _FACTORS.index(factor)]
    finals: dict[tuple, ResultRow] = {}  # (configuration but the factor, factor, sequence, seed) -> final row
    for r in rows:
        if r.final and _mean([r.miou]) is not None:
            config = (r.dataset, r.granularity, getattr(r, other), r.budget_pct)
            finals[(*config, getattr(r, factor), r.sequence, r.seed)] = r
    cells: dict[tuple, list[tuple[ResultRow, ResultRow]]] = defaultdict(list)
    for (dataset, granularity, shared, budget, name, sequence, seed), r in sorted(finals.items()):
        base = finals.get((dataset, granularity, shared, budget, baseline, sequence, seed))
        if name != baseline and base is not None:
            cells[(dataset, granularity, shared, name, budget)].append((r, base))  # by sequence, seed
    out = []
    for (dataset, granularity, shared, name, budget), pairs in sorted(cells.items()):
        diffs = [a.miou - b.miou for a, b in pairs]
        per_sequence: dict[str, list[float]] = defaultdict(list)
        for (a, _), d in zip(pairs, diffs):
            per_sequence[a.sequence].append(d)
        n = len(diffs)
        mean = sum(diffs) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in diffs) / (n - 1) / n) if n > 1 else None
        out.append(
            Comparison(
                dataset, factor, name, baseline, granularity, shared, budget, pairs=n, miou_diff=mean,
                miou_diff_se=se, wins=sum(x > 0 for x in diffs), losses=sum(x < 0 for x in diffs),
                clicks_diff=_mean(None if None in (a.clicks_pct, b.clicks_pct) else a.clicks_pct - b.clicks_pct
                                  for a, b in pairs),
                p_value=sign_flip_p(diffs), sequences=len(per_sequence),
                p_sequences=sign_flip_p([sum(v) / len(v) for v in per_sequence.values()]),
            )
        )  # fmt: skip
    return out

"""Run an experiment grid: one simulated session per run, in parallel processes, resumable.

Layout of a bench folder::

    OUT/bench.json                 settings (fixed for the folder), every command run in it, machine
    OUT/results.csv                one row per run and completed iteration (hvsa.bench.results)
    OUT/report.md, OUT/figures/    the report (hvsa.bench.report), regenerated from results.csv
    OUT/cache/<dataset>/<seq>/     video caches shared by the runs of a sequence (frames, labels,
                                   flows, encoder taps, pools), filled once before its runs
    OUT/models/<dataset>/fold<i>.pt  with ``pretrain_folds``: the network the runs of fold i's
                                   sequences start from, pre-trained on the dataset's other folds
    OUT/runs/<run id>/             one session folder per run (+ run.json, its parameters)

A run whose ``report.json`` lists every iteration is skipped; an interrupted one resumes where
it stopped (:func:`hvsa.session.run_loop`). Workers are separate processes (``spawn``), at most
one per core the process may use (:func:`hvsa.threads.usable_cores`: ``taskset`` and container
cpusets count), each limited to ``cores // workers`` threads for torch and OpenCV, so the grid
never runs more threads than it has cores.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from hvsa.bench.grid import Fold, Grid, RunSpec, SequenceRef, find_sequences, folds
from hvsa.bench.results import ResultRow, rows_from_report, write_results
from hvsa.checks import check_device
from hvsa.errors import InputError
from hvsa.finetune import FinetuneConfig
from hvsa.memory import reset_peak
from hvsa.pretrain import PretrainConfig
from hvsa.threads import limit_threads, usable_cores

__all__ = ["BenchSettings", "BenchOutcome", "run_bench", "collect_results", "machine_info", "settings_differences"]

_BENCH_FILE = "bench.json"
_RUN_FILE = "run.json"


@dataclass(frozen=True)
class BenchSettings:
    """What every run of a bench folder shares (a folder keeps one set of settings).

    Attributes:
        iterations: K, iterations per run (each budget is split over them).
        size: working (W, H), or None for the default (longest side 480).
        model: checkpoint the network starts from (``hvsa pretrain``), or None.
        pretrain_folds: 0, or K >= 2: cross-validated pre-training instead of one ``model``.
            Each dataset's sequences are split into K folds (:func:`hvsa.bench.grid.folds`); the
            runs of a fold's sequences start from a network pre-trained (:func:`hvsa.pretrain.pretrain`)
            on every frame of the dataset's other folds, so no run starts from a network that
            has seen its own sequence's labels.
        pretrain: the settings of that pre-training.
        finetune: fine-tuning settings (a method may fix some, e.g. finetune-only's lambda).
        flow_preset: DIS preset.
        samples_from: a method name: the runs of every other method annotate exactly the samples
            that the run of this method with the same sequence, granularity, selector, budget and
            seed chose (baselines given the same annotated samples); None, or a method not in the
            grid: every run's selector chooses its own samples.
        device: torch device of the runs (not part of the folder's identity).
    """

    iterations: int = 3
    size: tuple[int, int] | None = None
    model: str | None = None
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    flow_preset: str = "medium"
    samples_from: str | None = "hvsa"
    pretrain_folds: int = 0
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InputError(f"iterations: expected >= 1, got {self.iterations}")
        if self.pretrain_folds and self.model:
            raise InputError("--model and --pretrain-folds exclude each other: one checkpoint for every run, or one per fold")
        if self.pretrain_folds == 1 or self.pretrain_folds < 0:
            raise InputError(f"pretrain-folds: expected 0 (off) or at least 2, got {self.pretrain_folds}")
        check_device(self.device)

    def identity(self) -> dict:
        """The settings that change results (bench.json compares them on resume), as JSON reads
        them back (lists, not tuples)."""
        identity = {
            "iterations": self.iterations,
            "size": self.size,
            "model": self.model,
            "finetune": self.finetune.to_dict(),
            "flow_preset": self.flow_preset,
            "samples_from": self.samples_from,
        } | ({"pretrain_folds": self.pretrain_folds, "pretrain": asdict(self.pretrain)} if self.pretrain_folds else {})
        return json.loads(json.dumps(identity))


@dataclass
class BenchOutcome:
    """What :func:`run_bench` did: runs in the grid, skipped (already done), finished now,
    failed (run id -> message), and the files written."""

    runs: int = 0
    skipped: int = 0
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    results: Path | None = None
    report: Path | None = None


def machine_info() -> dict:
    """CPU model, cores, memory, OS and library versions: the "machine it ran on"."""
    import numpy

    info = {"cpu": platform.processor() or platform.machine(), "cores": usable_cores()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    except OSError:
        pass
    from hvsa import __version__

    info.update(os=platform.platform(terse=True), python=platform.python_version(), numpy=numpy.__version__,
                hvsa=__version__)
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


# ---------------------------------------------------------------------------------- workers


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this process as soon as ``parent`` is no longer its parent (killed or gone): a
    killed ``hvsa bench`` must not leave its workers running runs on the machine."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="hvsa-parent-watch", daemon=True).start()


def _init_worker(threads: int, parent: int | None = None) -> None:
    """Limit a worker process to ``threads`` threads (torch, OpenCV, BLAS), silence bars, and
    end it when the ``parent`` process dies."""
    if parent is not None:
        _exit_with_parent(parent)
    os.environ["HVSA_PROGRESS"] = "0"
    limit_threads(threads)


def _sequence_cache(out: Path, seq: SequenceRef) -> Path:
    return out / "cache" / seq.dataset / seq.name


def prepare_sequence(seq: SequenceRef, cache: str, settings: BenchSettings, granularities: Sequence[str]) -> float:
    """Fill a sequence's shared caches (frames, labels, flows, encoder taps, superpixel pools)
    so that its runs, in parallel, only read them. Returns seconds spent."""
    import torch

    from hvsa.flow.cache import FlowCache
    from hvsa.model import ModelConfig, build_model, load_checkpoint
    from hvsa.model.taps import TapCache
    from hvsa.pools import Pool
    from hvsa.video.data import open_data

    start = time.perf_counter()
    cache_dir = Path(cache)
    with open_data(seq.path, settings.size, cache_dir=cache_dir) as data:
        with FlowCache(data.frames, cache_dir / "flows", preset=settings.flow_preset) as flows:
            flows.fill()
        if settings.model:
            model = load_checkpoint(settings.model)[0]
        else:
            model = build_model(ModelConfig(num_classes=len(data.classes)))
        with TapCache(model.eval(), data.frames, cache_dir / "taps", device=torch.device(settings.device)) as taps:
            taps.fill()
        for g in granularities:
            with Pool(g, data.frames, cache_dir=cache_dir / "pools") as pool:
                pool.fill()
    return time.perf_counter() - start


def fold_model(out: Path, fold: Fold) -> Path:
    """Where the checkpoint of ``fold`` lives in the bench folder ``out``."""
    return out / "models" / f"{fold.name}.pt"


def pretrain_fold(fold: Fold, out: str, settings: BenchSettings) -> float:
    """Pre-train the network of ``fold`` on its training sequences (their caches filled) and
    save it at :func:`fold_model` (atomically). Returns seconds spent."""
    from hvsa.pretrain import pretrain

    start = time.perf_counter()
    root = Path(out)
    pretrain([s.path for s in fold.train], fold_model(root, fold), size=settings.size, config=settings.pretrain,
             cache_dir=[_sequence_cache(root, s) for s in fold.train], device=settings.device)
    return time.perf_counter() - start


def execute_run(spec: RunSpec, out: str, settings: BenchSettings, reference: RunSpec | None = None) -> dict:
    """Run (or resume) one run to the end, annotating the samples of the finished run
    ``reference`` when given; returns its report (report.json)."""
    from hvsa.annotate import SimulatedAnnotator
    from hvsa.session import LoopSettings, Session, run_loop
    from hvsa.store import DB_NAME, Store

    reset_peak()  # the run's peak memory, not the worker's since its first run
    root = Path(out)
    folder = root / "runs" / spec.run_id
    if (folder / DB_NAME).exists():
        with Store(folder) as store:
            created = store.get_meta("config") is not None
        if not created:
            shutil.rmtree(folder)  # killed while being created: start it again
    if (folder / DB_NAME).exists():
        session = Session.open(folder, device=settings.device)
    else:
        session = Session.create(
            folder, spec.sequence.path, granularity=spec.granularity, size=settings.size, seed=spec.seed,
            selector=spec.selector, model=settings.model, finetune=settings.finetune,
            flow_preset=settings.flow_preset, method=spec.method,
            cache_dir=_sequence_cache(root, spec.sequence), device=settings.device,
            samples_from=root / "runs" / reference.run_id if reference else None,
        )  # fmt: skip
    with session:
        run_file = folder / _RUN_FILE
        if not run_file.is_file():
            params = {**spec.params(), "iterations": settings.iterations, "model": settings.model,
                      "samples_from": reference.run_id if reference else None}
            run_file.write_text(json.dumps(params, indent=1))
        annotator = SimulatedAnnotator(session.gt, epsilon=session.config.epsilon,
                                       ignore_index=session.classes.ignore_index)
        report = run_loop(session, LoopSettings(iterations=settings.iterations, budget_pct=spec.budget_pct), annotator)
        session.write_report()  # also when the store was done but report.json lagged behind
        session.keep_latest_checkpoint()  # kept per iteration, a 300-run grid's take over 10 GB
        return report


def _is_complete(out: Path, spec: RunSpec, iterations: int) -> bool:
    report = out / "runs" / spec.run_id / "report.json"
    if not report.is_file():
        return False
    try:
        return len(json.loads(report.read_text())["iterations"]) >= iterations
    except (OSError, ValueError, KeyError):
        return False


def collect_results(out: str | os.PathLike) -> list[ResultRow]:
    """Every completed iteration of every run under ``out/runs`` (finished or not), as rows."""
    rows: list[ResultRow] = []
    for run_file in sorted(Path(out).glob(f"runs/**/{_RUN_FILE}")):
        report_file = run_file.with_name("report.json")
        if not report_file.is_file():
            continue
        params = json.loads(run_file.read_text())
        rows += rows_from_report(params, json.loads(report_file.read_text()))
    return rows


def _saved_bench(out: Path) -> dict:
    """The content of ``out``'s ``bench.json``, or {} before the folder's first command."""
    path = out / _BENCH_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _check_settings(out: Path, bench: dict, settings: BenchSettings) -> None:
    """Refuse ``settings`` other than those of ``bench`` (the folder's ``bench.json``)."""
    saved = bench.get("settings")
    if saved is None:
        return
    saved, current = _with_added_fields(saved), settings.identity()
    if saved != current:
        changed = sorted(k for k in saved if saved.get(k) != current.get(k))
        raise InputError(
            f"{out}: holds a bench run with other settings ({', '.join(changed)} differ);"
            " use the same settings to resume or extend it, or choose another --out"
        )


def _commands_run(bench: dict) -> list[dict]:
    """The commands that ran in a folder so far, oldest first, from its ``bench.json`` content
    (a folder from before that list holds its last command only)."""
    if "commands" in bench:
        return list(bench["commands"])
    return [{k: bench.get(k) for k in ("command", "grid", "started")}] if "command" in bench else []


# Settings fields added after bench folders existed, with the value that computes what a folder
# saved without the field computed. Only such fields are filled in on resume: a field whose
# default changed the results (fine-tuning's crop, say) must keep an older folder apart.
_ADDED_FIELDS = {"pretrain": {"taps": [4, 8, 16, 32]}, "finetune": {"view_share": 0.0, "view_scales": [0.75, 1.25],
                                                                     "hold_unseen": 0.0, "propagated_targets": 0.0,
                                                                     "anchor_windows": False}}


def _with_added_fields(saved: dict) -> dict:
    """``saved`` settings with the fields of :data:`_ADDED_FIELDS` they lack filled in, so an
    older bench folder resumes."""
    saved = dict(saved)
    for key, added in _ADDED_FIELDS.items():
        if isinstance(saved.get(key), dict):
            saved[key] = added | saved[key]
    return saved


def _flat(settings: dict, prefix: str = "") -> dict[str, object]:
    """Nested settings as {"finetune.crop": 0.5, ...}."""
    out: dict[str, object] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings_differences(benches: Sequence[dict]) -> list[str]:
    """The settings (dotted, e.g. ``finetune.crop``) that are not the same in every one of
    ``benches`` (``bench.json`` contents) that records its settings; fields added since a folder
    was written count as the value it ran with."""
    flat = [_flat(_with_added_fields(b["settings"])) for b in benches if isinstance(b.get("settings"), dict)]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1]


# ---------------------------------------------------------------------------------- driver


class _Workers:
    """Runs calls in ``jobs`` spawned worker processes of ``threads`` threads each, or, for
    ``jobs = 1``, one after the other in this process."""

    def __init__(self, jobs: int, threads: int) -> None:
        self._pool = None
        if jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(threads, os.getpid()))

    def run(self, fn: Callable, calls: Sequence[tuple]) -> Iterator[tuple[tuple, object, BaseException | None]]:
        """Yield (args, result, error) for each call of ``fn(*args)`` as it completes."""
        if self._pool is None:
            for args in calls:
                try:
                    yield args, fn(*args), None
                except Exception as e:  # noqa: BLE001 - reported per run, the grid goes on
                    yield args, None, e
            return
        from concurrent.futures import as_completed

        futures = {self._pool.submit(fn, *args): args for args in calls}
        for f in as_completed(futures):
            err = f.exception()
            yield futures[f], None if err else f.result(), err

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _references(runs: Sequence[RunSpec], method: str | None) -> dict[RunSpec, RunSpec]:
    """For each run of another method, the run of ``method`` whose samples it replays (same
    sequence, granularity, selector, budget and seed), when the grid has that run."""
    have = set(runs)
    refs = {}
    for r in runs:
        ref = replace(r, method=method)
        if method is not None and r.method != method and ref in have:
            refs[r] = ref
    return refs


def run_bench(
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    grid: Grid,
    settings: BenchSettings,
    *,
    jobs: int | None = None,
    command: str | None = None,
    echo: Callable[[str], None] = print,
) -> BenchOutcome:
    """Run every run of ``grid`` on every sequence under ``data`` that is not done yet, then
    write ``results.csv`` and the report.

    A sequence that cannot be prepared, or whose fold's network cannot be pre-trained, fails its
    own runs only (listed in the outcome); the rest of the grid goes on.

    Args:
        data: data folders (each a sequence, or a folder of sequences).
        out: the bench folder (created; resumed when it holds runs of the same settings).
        grid: the runs per sequence.
        settings: what all runs share.
        jobs: worker processes (default and maximum: the number of cores); 1 runs in this
            process.
        command: the command line, recorded in ``bench.json`` (and quoted by the report).
        echo: where a line per finished run goes.
    """
    out = Path(out)
    sequences = find_sequences(data)
    runs = grid.runs(sequences)
    fold_of: dict[str, Fold] = {}  # each sequence's fold, whose network its runs start from
    if settings.pretrain_folds:
        fold_of = {s.key: f for f in folds(sequences, settings.pretrain_folds) for s in f.test}
    saved = _saved_bench(out)
    _check_settings(out, saved, settings)
    out.mkdir(parents=True, exist_ok=True)
    _record_command(out, saved, settings, grid, command)
    todo = [r for r in runs if not _is_complete(out, r, settings.iterations)]
    outcome = BenchOutcome(runs=len(runs), skipped=len(runs) - len(todo))
    cores = usable_cores()
    jobs = max(1, min(int(jobs or cores), cores, max(len(todo), 1)))
    threads = max(1, cores // jobs)
    echo(f"{len(runs)} runs on {len(sequences)} sequences; {outcome.skipped} already done,"
         f" {len(todo)} to run with {jobs} worker(s) x {threads} thread(s)")
    refs = _references(runs, settings.samples_from)
    if refs:
        others = sorted({r.method for r in refs})
        echo(f"runs of {', '.join(others)} annotate the samples of the {settings.samples_from} runs")
    if todo:
        with _Workers(jobs, threads) as workers:
            _GridRun(out, settings, fold_of, workers, echo, outcome).run(todo, refs)
    rows = collect_results(out)
    outcome.results = write_results(out / "results.csv", rows)
    if rows:
        from hvsa.bench.report import write_report

        outcome.report = write_report(out)
    return outcome


def _record_command(out: Path, saved: dict, settings: BenchSettings, grid: Grid, command: str | None) -> None:
    """Write ``out``'s ``bench.json`` (atomically): the folder's settings, the machine, and this
    command appended to those run in it before (``saved``, the file's content so far)."""
    started, grid_dict = time.strftime("%Y-%m-%d %H:%M:%S"), grid.to_dict()
    bench = {
        "command": command,
        "settings": settings.identity(),
        "grid": grid_dict,
        "machine": machine_info(),
        "started": started,
        # a folder is often filled by several commands (a grid extended by a budget, a selector)
        "commands": [*_commands_run(saved), {"command": command, "grid": grid_dict, "started": started}],
    }
    tmp = out / f"{_BENCH_FILE}.tmp"
    tmp.write_text(json.dumps(bench, indent=1))
    os.replace(tmp, out / _BENCH_FILE)


class _GridRun:
    """The runs still to do in one :func:`run_bench` call, in three steps on ``workers``: the
    folds' networks not saved yet are pre-trained (their training sequences' caches filled
    first), the runs' sequences get their caches, then the runs go (those that replay another
    run's samples after that run). Every task moves one progress bar and echoes a line; a
    failure is recorded in ``outcome`` and blocks only what depends on it.

    Args:
        fold_of: with ``settings.pretrain_folds``, each sequence key's fold; else empty.
    """

    def __init__(self, out: Path, settings: BenchSettings, fold_of: dict[str, Fold], workers: _Workers,
                 echo: Callable[[str], None], outcome: BenchOutcome) -> None:  # fmt: skip
        self.out, self.settings, self.fold_of = out, settings, fold_of
        self.workers, self.echo, self.outcome = workers, echo, outcome
        self.blocked: set[str] = set()  # keys of the sequences whose runs cannot start
        self.bar = None

    def run(self, todo: Sequence[RunSpec], refs: dict[RunSpec, RunSpec]) -> None:
        from hvsa.progress import progress_bar

        seqs = sorted({r.sequence for r in todo})
        folds_needed = {self.fold_of[s.key] for s in seqs if s.key in self.fold_of}
        to_train = sorted((f for f in folds_needed if not fold_model(self.out, f).is_file()), key=lambda f: f.name)
        train_seqs = sorted({s for f in to_train for s in f.train})
        tasks = len(train_seqs) + len(to_train) + len(seqs) + len(todo)
        self.bar = progress_bar(total=tasks, desc="bench", unit="task")
        try:
            if to_train:
                # the folds' training sequences get their caches first (the ImageNet encoder's
                # taps are the pre-trained network's: pre-training leaves the encoder frozen)
                unready = self._prepare(train_seqs, (), lambda s: self.settings)
                self._pretrain(to_train, unready)
            self.blocked |= self._prepare(seqs, sorted({r.granularity for r in todo}), self.settings_for)
            self._execute(todo, refs)
        finally:
            self.bar.close()

    def settings_for(self, seq: SequenceRef) -> BenchSettings:
        """The settings of ``seq``'s runs: with folds, starting from its fold's network."""
        f = self.fold_of.get(seq.key)
        if f is None:
            return self.settings
        return replace(self.settings, model=str(fold_model(self.out.resolve(), f)), pretrain_folds=0)

    def _prepare(self, seqs: Sequence[SequenceRef], granularities: Sequence[str],
                 settings: Callable[[SequenceRef], BenchSettings]) -> set[str]:  # fmt: skip
        """Fill the caches of ``seqs`` for the runs of ``settings(seq)`` (a sequence already
        blocked is skipped); the keys of those that failed."""
        calls = [(s, str(_sequence_cache(self.out, s)), settings(s), tuple(granularities))
                 for s in seqs if s.key not in self.blocked]  # fmt: skip
        self.bar.update(len(seqs) - len(calls))
        failed: set[str] = set()
        for (seq, *_), seconds, err in self.workers.run(prepare_sequence, calls):
            self.bar.update(1)
            if err is not None:
                failed.add(seq.key)
                self.echo(f"failed to prepare {seq.key}: {type(err).__name__}: {err}")
            else:
                self.echo(f"prepared {seq.key} in {seconds:.0f} s")
        return failed

    def _pretrain(self, to_train: Sequence[Fold], unready: set[str]) -> None:
        """Pre-train the networks of ``to_train``; a fold whose training sequences include one
        of ``unready`` (caches not filled), or whose pre-training fails, blocks its sequences."""
        calls = []
        for f in to_train:
            bad = [s.key for s in f.train if s.key in unready]
            if bad:
                self.blocked.update(s.key for s in f.test)
                self.echo(f"cannot pre-train {f.name}: {', '.join(bad)} could not be prepared")
                self.bar.update(1)
            else:
                calls.append((f, str(self.out), self.settings))
        for (f, *_), seconds, err in self.workers.run(pretrain_fold, calls):
            self.bar.update(1)
            if err is not None:
                self.blocked.update(s.key for s in f.test)
                self.echo(f"failed to pre-train {f.name}: {type(err).__name__}: {err}")
            else:
                self.echo(f"pre-trained {f.name} on {len(f.train)} sequence(s) in {seconds:.0f} s"
                          f" for {', '.join(s.name for s in f.test)}")  # fmt: skip

    def _execute(self, todo: Sequence[RunSpec], refs: dict[RunSpec, RunSpec]) -> None:
        """Run ``todo``: first the runs that choose their own samples, then those replaying
        another run's (which fail if that run did not finish); ``results.csv`` is rewritten as
        each run finishes, so a killed grid loses no finished run's rows."""
        out, outcome, iterations = self.out, self.outcome, self.settings.iterations
        for r in todo:
            if r.sequence.key in self.blocked:
                self._failed(r, "its sequence (or the network of its fold) could not be prepared")
        calls = [(r, str(out), self.settings_for(r.sequence), refs.get(r)) for r in todo
                 if r.sequence.key not in self.blocked]  # fmt: skip
        started, before = time.monotonic(), len(outcome.finished) + len(outcome.failed)
        for phase in ([c for c in calls if c[3] is None], [c for c in calls if c[3] is not None]):
            ready = []
            for call in phase:
                ref = call[3]
                if ref is not None and not _is_complete(out, ref, iterations):
                    self._failed(call[0], f"the run whose samples it replays, {ref.run_id}, did not finish")
                else:
                    ready.append(call)
            for (r, *_), report, err in self.workers.run(execute_run, ready):
                self.bar.update(1)
                done = len(outcome.finished) + len(outcome.failed) + 1
                left = _time_left(time.monotonic() - started, done - before, len(todo) - done)
                if err is not None:
                    outcome.failed[r.run_id] = f"{type(err).__name__}: {err}"
                    self.echo(f"[{done}/{len(todo)}] {r.run_id}: FAILED: {err}{left}")
                    continue
                outcome.finished.append(r.run_id)
                its = report["iterations"]
                seconds = sum(it["seconds"].get("total", 0.0) for it in its)
                self.echo(f"[{done}/{len(todo)}] {r.run_id}: mIoU {_fmt(its[-1].get('miou'))} at"
                          f" {_fmt(its[-1].get('clicks_pct'), pct=True)} clicks ({seconds:.0f} s in"
                          f" {len(its)} iterations){left}")  # fmt: skip
                write_results(out / "results.csv", collect_results(out))

    def _failed(self, run: RunSpec, why: str) -> None:
        """``run`` fails before it starts."""
        self.outcome.failed[run.run_id] = why
        self.bar.update(1)


def _time_left(elapsed: float, done: int, left: int) -> str:
    """``"; about 12 min left"``: the runs still to go at the pace of those done so far (a
    progress line's end, for logs, where no progress bar shows), or ``""`` when none is left."""
    if left <= 0 or done <= 0:
        return ""
    seconds = elapsed / done * left
    if seconds < 90:
        return f"; about {seconds:.0f} s left"
    if seconds < 90 * 60:
        return f"; about {seconds / 60:.0f} min left"
    return f"; about {seconds / 3600:.1f} h left"


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.2f} %" if pct else f"{v:.3f}"

"""``hvsa bench``: experiment grids over labelled data, baselines, results.csv, plots and tables.

    hvsa bench DATA... --out DIR [grid flags]     run (or resume) a grid, then write the report
    hvsa bench report DIR [grid flags]            regenerate the report from DIR/results.csv
    hvsa bench report DIR... --out OUT            one report on the runs of several folders

Given to ``report``, the grid flags choose the runs reported (``--selector hvsa,random
--budget-pct 2``); every other flag belongs to running a grid, and ``report`` refuses it
rather than ignore it.
"""

from __future__ import annotations

import argparse

from hvsa.cli._common import add_model_arguments, positive_float, positive_int

# The grid flags: each one's column in results.csv, the type of its values, and its default when
# a grid runs. Their parser defaults are None, so that ``report`` can tell a flag given from one
# left out (``--selector hvsa`` keeps hvsa's runs only).
_GRID_FLAGS = {
    "granularity": ("granularity", str, "frame"),
    "selector": ("selector", str, "hvsa"),
    "method": ("method", str, "hvsa"),
    "budget_pct": ("budget_pct", float, "1,2,3"),
    "seeds": ("seed", int, "0"),
}


def _grid_list(args: argparse.Namespace, flag: str) -> tuple:
    """The values given to a grid flag (its default when it was left out), parsed."""
    from hvsa.bench.grid import parse_list

    _, kind, default = _GRID_FLAGS[flag]
    text = getattr(args, flag)
    return parse_list(default if text is None else text, flag.replace("_", "-"), kind)


EXAMPLE = (
    "hvsa bench ../shared/data/davis2016 ../shared/data/camvid-1hz --out bench-out"
    " --granularity frame,rec40 --selector hvsa,random --method hvsa,lp --budget-pct 1,2,3"
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench",
        help="run an experiment grid (granularity x selector x method x budget x seed) and report",
        description="Run a simulated loop for every combination of the grid on every labelled sequence"
        " under DATA (a sequence is a folder with frames/, labels/, classes.json), in parallel processes"
        " (at most one per core). Finished runs are skipped, interrupted ones resume. Writes"
        " DIR/results.csv (one row per run and iteration), DIR/report.md and DIR/figures/."
        " `hvsa bench report DIR` regenerates the report from DIR/results.csv alone (the grid flags"
        " then choose the runs reported);"
        " `hvsa bench report DIR... --out OUT` reports the runs of several folders together.",
        epilog=f"example: {EXAMPLE}",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="data folders, or: report DIR...")
    p.add_argument("--out", "-o", help="bench folder (created, or resumed with the same settings); with"
                   " report, the folder to write the report into (required for several folders)")
    g = p.add_argument_group("grid (comma-separated lists; with report, the runs reported)")
    g.add_argument("--granularity", "-g", help="frame, rec<N>, sp<N> (default frame)")
    g.add_argument("--selector", "-s", help="hvsa, hvsa-balanced, hvsa-disagree, random, uncertainty, diversity (default hvsa)")
    g.add_argument("--method", help="hvsa, hvsa-fused, hvsa-crf, finetune-only, lp, copy (default hvsa)")
    g.add_argument("--budget-pct", help="total clicks %% of each run (default 1,2,3)")
    g.add_argument("--seeds", help="seeds (default 0)")
    r = p.add_argument_group("runs")
    r.add_argument("--iterations", "-k", type=positive_int, default=3, help="iterations per run (default 3)")
    r.add_argument("--size", help="working size WxH (default: longest side 480)")
    r.add_argument("--jobs", "-j", type=positive_int, help="worker processes (default and maximum: the cores)")
    r.add_argument("--samples-from", default="hvsa", metavar="METHOD",
                   help="runs of the other methods annotate exactly the samples the METHOD run with the same"
                   " sequence, granularity, selector, budget and seed chose (baselines given the same"
                   " annotated samples); 'none': every run selects its own (default hvsa)")
    add_model_arguments(p)
    t = p.add_argument_group("cross-validated pre-training (instead of --model)")
    t.add_argument("--pretrain-folds", type=int, default=0, metavar="K",
                   help="split each data set's sequences into K folds and start the runs of each fold from a"
                   " network pre-trained on the other folds' labelled frames (hvsa pretrain), so no run"
                   " starts from a network that saw its own sequence; K = the number of sequences is"
                   " leave-one-out (default 0: off)")
    t.add_argument("--pretrain-epochs", type=positive_float, default=None,
                   help="training items per frame of that pre-training (default 4)")
    t.add_argument("--pretrain-taps", default=None, metavar="STRIDES",
                   help="encoder strides its decoder reads, e.g. 2,4,8,16,32 (default 4,8,16,32)")
    # So that report also refuses a run flag given at its default (--iterations 3), the parser's
    # default of every flag that has one becomes None, and a grid fills the defaults in.
    run_defaults = {k: v for k, v in vars(p.parse_args(["report"])).items() if k != "data" and v is not None}
    p.set_defaults(**dict.fromkeys(run_defaults), _run_defaults=run_defaults)
    return p


def run(args: argparse.Namespace) -> int:
    from hvsa.errors import InputError

    if args.data[0] == "report":
        if len(args.data) < 2:
            raise InputError("bench report: expected a bench folder, as in `hvsa bench report DIR`")
        from hvsa.bench.report import write_report

        given = {k for k, v in vars(args).items() if not k.startswith("_") and v is not None}
        refused = sorted(given - {"command", "data", "out", *_GRID_FLAGS})  # command: hvsa's, "bench"
        if refused:
            flags = ", ".join("--" + k.replace("_", "-") for k in refused)
            verb = "belongs" if len(refused) == 1 else "belong"
            raise InputError(f"bench report: {flags} {verb} to running a grid; a report reads the runs"
                             " of DIR/results.csv as they are (the grid flags choose which)")  # fmt: skip
        only = {column: _grid_list(args, flag) for flag, (column, _, _) in _GRID_FLAGS.items()
                if getattr(args, flag) is not None}  # fmt: skip
        print(f"wrote {write_report(args.data[1:], out=args.out, only=only)}")
        return 0
    if not args.out:
        raise InputError("bench: --out DIR is required to run a grid")
    for flag, default in args._run_defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, default)
    import shlex
    import sys

    from hvsa.bench.grid import Grid, parse_list
    from hvsa.bench.runner import BenchSettings, run_bench
    from hvsa.checks import check_path, parse_size
    from hvsa.cli._common import finetune_config
    from hvsa.methods import get_method
    from hvsa.pretrain import PretrainConfig

    grid = Grid(
        granularities=_grid_list(args, "granularity"),
        selectors=_grid_list(args, "selector"),
        methods=_grid_list(args, "method"),
        budgets=_grid_list(args, "budget_pct"),
        seeds=_grid_list(args, "seeds"),
    )
    model = str(check_path(args.model, "model checkpoint", kind="file").resolve()) if args.model else None
    pre = PretrainConfig(
        **({} if args.pretrain_epochs is None else {"epochs": args.pretrain_epochs}),
        **({} if args.pretrain_taps is None else {"taps": parse_list(args.pretrain_taps, "pretrain-taps", int)}),
    )
    settings = BenchSettings(
        iterations=args.iterations, size=parse_size(args.size), model=model,
        finetune=finetune_config(args), device=args.device,
        samples_from=None if args.samples_from == "none" else get_method(args.samples_from).name,
        pretrain_folds=args.pretrain_folds, pretrain=pre,
    )  # fmt: skip
    command = "hvsa " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    outcome = run_bench(args.data, args.out, grid, settings, jobs=args.jobs, command=command)
    print(f"{len(outcome.finished)} runs finished, {outcome.skipped} skipped (done before),"
          f" {len(outcome.failed)} failed")
    for run_id, message in outcome.failed.items():
        print(f"  failed: {run_id}: {message}")
    print(f"wrote {outcome.results}" + (f", {outcome.report}" if outcome.report else ""))
    return 1 if outcome.failed else 0

"""``hvsa simulate``: the HVSA loop with a simulated annotator, measured against ground truth."""

from __future__ import annotations

import argparse
import sys

from hvsa.cli._common import add_loop_arguments, add_threads_argument, finetune_config


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "simulate",
        help="run the loop with a simulated annotator on labelled data",
        description="Run K iterations of select -> annotate (simulated from the ground truth) ->"
        " fine-tune -> predict on one labelled video; write OUT/report.json, OUT/pred/<frame>.png and"
        " OUT/overlay/<frame>.jpg. Kill it at any time and rerun with --resume.",
    )
    p.add_argument("data", help="data folder (frames/, labels/, classes.json)")
    p.add_argument("--out", "-o", required=True, help="session folder to create (or resume)")
    p.add_argument("--resume", action="store_true", help="continue the session in --out where it stopped")
    add_loop_arguments(p)
    add_threads_argument(p)
    return p


def print_row(row: dict, file=None) -> None:  # noqa: ANN001
    def pct(v):  # noqa: ANN001, ANN202
        return "   -  " if v is None else f"{v:6.2f}"

    def frac(v):  # noqa: ANN001, ANN202
        return "  -  " if v is None else f"{v:.3f}"

    sec = row.get("seconds", {})
    peak = row.get("peak_rss_mb")
    print(
        f"{row['iteration']:>9} {row['samples']:>7} {row['clicks']:>7} {pct(row.get('clicks_pct'))} "
        f"{frac(row.get('miou')):>6} {frac(row.get('boundary_iou')):>6} {frac(row.get('tc')):>6} "
        f"{sec.get('total', 0):8.1f} {'-' if peak is None else f'{peak:.0f}':>8}",
        file=file or sys.stdout,
        flush=True,
    )


HEADER = "iteration samples  clicks clicks%   mIoU  bIoU     TC  seconds peak MiB"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hvsa.annotate import SimulatedAnnotator
    from hvsa.errors import InputError
    from hvsa.session import LoopSettings, Session, run_loop

    settings = LoopSettings(
        iterations=args.iterations,
        per_iteration=args.per_iteration,
        budget_pct=args.budget_pct if args.per_iteration is None else None,
    ) if (args.per_iteration or args.budget_pct) else LoopSettings(iterations=args.iterations, budget_pct=3.0)
    out = Path(args.out)
    if args.resume:
        session = Session.open(out, device=args.device)
    else:
        session = Session.create(
            out, args.data, granularity=args.granularity, size=args.size, seed=args.seed,
            selector=args.selector, model=args.model, finetune=finetune_config(args), method=args.method,
            device=args.device,
        )
    with session:
        if session.gt is None:
            raise InputError(f"{args.data}: simulate needs ground truth (a labels/ folder)")
        print(f"{out}: {session.num_frames} frames {session.hw[1]}x{session.hw[0]}, {len(session.classes)} classes,"
              f" granularity {session.config.granularity}, selector {session.config.selector},"
              f" method {session.config.method}")
        print(HEADER)
        for row in session.report()["iterations"]:
            print_row(row)
        report = run_loop(session, settings, SimulatedAnnotator(session.gt, epsilon=session.config.epsilon,
                                                                 ignore_index=session.classes.ignore_index),
                          on_iteration=print_row)
        session.export(out / "pred", "png")
        session.export(out / "overlay", "overlay")
        print(f"wrote {out / 'report.json'}, {out / 'pred'}, {out / 'overlay'}")
    return 0 if report["iterations"] else 1

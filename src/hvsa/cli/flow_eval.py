"""``hvsa flow-eval``: score the optical flow and its forward-backward check on benchmark pairs.

Prints one row per pair (mean endpoint error; on Sintel also the share of ground-truth-occluded
pixels that the consistency check marks unreliable, and the share of visible pixels it keeps),
then the means per dataset.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "DEFAULT_ROOT"]

#: Where ``hvsa flow-eval`` looks when no ROOT is given (relative to the working directory).
DEFAULT_ROOT = Path("..") / "shared" / "data" / "flow"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "flow-eval",
        help="score optical flow and the forward-backward check on Sintel / FlyingChairs pairs",
        description="Compute optical flow on benchmark pairs and print the mean endpoint error of each;"
        " on Sintel also the share of ground-truth-occluded pixels the forward-backward check marks"
        " unreliable (occlusion recall) and the share of visible pixels it keeps.",
    )
    p.add_argument(
        "root",
        nargs="?",
        metavar="ROOT",
        help=f"benchmark folder with sintel/ and/or flyingchairs/ (default: {DEFAULT_ROOT} when it exists)",
    )
    p.add_argument("--backend", default="dis", help="flow backend (default: dis)")
    p.add_argument("--preset", default="medium", help="DIS preset: ultrafast, fast or medium (default: medium)")
    p.add_argument(
        "--threshold", type=float, default=1.0, help="forward-backward threshold in pixels (default: 1.0)"
    )
    p.add_argument(
        "--longest",
        type=int,
        default=None,
        metavar="PX",
        help="first resize every pair so its longest side is PX (e.g. 480, hvsa's default working size)",
    )
    return p


def _fmt(value: float | None, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def run(args: argparse.Namespace) -> int:
    from hvsa.errors import InputError

    if args.root is None:
        if not DEFAULT_ROOT.is_dir():
            raise InputError(
                f"{DEFAULT_ROOT}: no ROOT given and the default flow benchmark folder does not exist;"
                " pass the folder holding sintel/ and flyingchairs/"
            )
        root = DEFAULT_ROOT
    else:
        root = Path(args.root)

    from hvsa.flow.evaluate import iter_evaluate_folder, summarize

    scored = iter_evaluate_folder(root, args.preset, args.threshold, backend=args.backend, longest=args.longest)
    out = sys.stdout
    print(
        f"flow backend {args.backend} (preset {args.preset}), forward-backward threshold {args.threshold:g} px,"
        f" {root}",
        file=out,
    )
    head = f"{'dataset':<13} {'pair':<18} {'size':>9} {'EPE':>7} {'occ.recall':>10} {'vis.reliable':>12} {'s/field':>8}"
    print(head, file=out)
    print("-" * len(head), file=out)
    results = []
    for r in scored:
        results.append(r)
        size = f"{r.size[0]}x{r.size[1]}"
        print(
            f"{r.dataset:<13} {r.name:<18} {size:>9} {_fmt(r.epe, '.2f'):>7} {_fmt(r.occlusion_recall):>10}"
            f" {_fmt(r.visible_reliable):>12} {_fmt(r.seconds_per_field):>8}",
            file=out,
            flush=True,
        )
    print("-" * len(head), file=out)
    for s in summarize(results):
        label = f"mean ({s.pairs} pair{'' if s.pairs == 1 else 's'})"
        print(
            f"{s.dataset:<13} {label:<18} {'':>9} {_fmt(s.epe, '.2f'):>7} {_fmt(s.occlusion_recall):>10}"
            f" {_fmt(s.visible_reliable):>12} {_fmt(s.seconds_per_field):>8}",
            file=out,
        )
        if s.pooled_occlusion_recall is not None:
            print(
                f"{s.dataset:<13} {'pooled pixels':<18} {'':>9} {'':>7} {_fmt(s.pooled_occlusion_recall):>10}",
                file=out,
            )
    print(
        "EPE: mean endpoint error in pixels over valid pixels. occ.recall: share of ground-truth-occluded"
        " pixels the check marks unreliable (pooled: over all occluded pixels of the dataset)."
        " vis.reliable: share of visible pixels it keeps.",
        file=out,
    )
    return 0

"""``hvsa export``: write a session's latest labels for every frame."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="write a session's labels (index masks, colour masks or overlays)",
        description="Write the latest labels of every frame of a session folder (from hvsa simulate,"
        " serve or bench) to DIR, with classes.json beside them.",
    )
    p.add_argument("session", help="session folder")
    p.add_argument("--format", "-f", default="png", help="png (index masks), color or overlay (default png)")
    p.add_argument("--to", required=True, help="output folder")
    return p


def run(args: argparse.Namespace) -> int:
    from hvsa.export import EXPORTERS
    from hvsa.session import Session

    EXPORTERS.get(args.format)  # fail on a bad format before opening anything
    with Session.open(args.session) as s:
        if not s.store.iterations() and not s.store.get_meta("prediction_iteration"):
            print(f"{args.session}: no iteration has run yet; exporting the starting network's labels")
        out = s.export(args.to, args.format)
        print(f"wrote {s.num_frames} frames ({args.format}) to {out}")
    return 0

"""``hvsa cost DATA``: click costs of a labelled video at several pool granularities.

Prints, per sequence, the full-video clicks (every frame annotated whole: the denominator of
clicks %) and, per granularity, samples per frame, pixels per sample, mean clicks per sample
and the clicks to annotate every sample as a percentage of the full-video clicks. DATA is a
data folder with frames/ and labels/, or a folder of such sequences (one row per sequence and
a total row).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["add_parser", "run", "find_sequences", "DEFAULT_GRANULARITIES"]

DEFAULT_GRANULARITIES = "frame,rec16,rec40,rec100,sp200"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "cost",
        help="click costs of a labelled video per pool granularity",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("data", metavar="DATA", help="data folder with frames/ and labels/, or a folder of them")
    p.add_argument("--size", metavar="WxH", default=None, help="working size (default: longest side 480)")
    p.add_argument(
        "--granularities",
        metavar="LIST",
        default=DEFAULT_GRANULARITIES,
        help=f"comma-separated pool granularities (default: {DEFAULT_GRANULARITIES})",
    )
    p.add_argument(
        "--epsilon", type=float, default=None, help="polygon simplification tolerance in pixels (default: 1.5)"
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", default=None, help="cache folder (default: $HVSA_CACHE_DIR or ~/.cache/hvsa)"
    )
    return p


def find_sequences(path: Path) -> list[Path]:
    """``path`` itself when it is a data folder (has ``frames/``) or a file, else its sub-folders
    that are data folders, sorted by name."""
    from hvsa.checks import check_path
    from hvsa.errors import InputError

    p = check_path(path, "data folder")
    if p.is_file() or (p / "frames").is_dir():
        return [p]
    seqs = sorted(q for q in p.iterdir() if q.is_dir() and (q / "frames").is_dir())
    if not seqs:
        raise InputError(f"{p}: no frames/ folder here nor in any sub-folder; expected a data folder (DESIGN.md)")
    return seqs


@dataclass
class _Tally:
    """Totals of one sequence (or of all) at one granularity."""

    frames: int = 0
    pixels: int = 0  # pixels of all frames
    samples: int = 0
    clicks: int = 0

    def add(self, other: "_Tally") -> None:
        self.frames += other.frames
        self.pixels += other.pixels
        self.samples += other.samples
        self.clicks += other.clicks


def _measure(seq: Path, grans, size, epsilon: float, cache_root: Path) -> tuple[str, int, dict[str, _Tally]]:
    """Full-video clicks and per-granularity tallies of one sequence. Returns (size text,
    full-video clicks, tallies by granularity)."""
    import numpy as np

    from hvsa.cost import pool_clicks
    from hvsa.errors import InputError
    from hvsa.pools import Pool
    from hvsa.progress import progress
    from hvsa.video import open_data

    with open_data(seq, size, cache_dir=cache_root) as data:
        if data.labels is None:
            raise InputError(f"{seq}: hvsa cost needs ground truth; expected a labels/ folder beside frames/")
        ignore = data.classes.ignore_index
        frames = len(data.frames)
        h, w = data.frames.hw
        tallies = {str(g): _Tally(frames, frames * h * w) for g in grans}
        whole = np.zeros((h, w), np.int32)
        full = 0
        pools = [Pool(g, data.frames, cache_dir=cache_root / "pools") for g in grans]
        try:
            for t in progress(range(frames), total=frames, desc=f"cost {seq.name}", unit="frame"):
                gt = data.labels.read(t)
                frame_cost = int(pool_clicks(gt, whole, 1, epsilon=epsilon, ignore_index=ignore)[0])
                full += frame_cost
                for pool in pools:
                    tally = tallies[str(pool.granularity)]
                    n = pool.num_samples(t)
                    tally.samples += n
                    if pool.granularity.kind == "frame":
                        tally.clicks += frame_cost
                    else:
                        rm = pool.region_map(t)
                        tally.clicks += int(pool_clicks(gt, rm, n, epsilon=epsilon, ignore_index=ignore).sum())
        finally:
            for pool in pools:
                pool.close()
    return f"{w}x{h}", full, tallies


def _table(rows: list[list[str]], header: list[str], left: int = 1) -> str:
    """Plain-text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _gran_row(name: str, g: str, tally: _Tally, full: int) -> list[str]:
    return [
        name,
        g,
        f"{tally.samples / tally.frames:.1f}",
        f"{tally.pixels / tally.samples:.1f}",
        f"{tally.clicks / tally.samples:.2f}",
        f"{100.0 * tally.clicks / full:.1f}" if full else "-",
    ]


def run(args: argparse.Namespace) -> int:
    from hvsa.checks import check_in_range, parse_size
    from hvsa.cost import DEFAULT_EPSILON
    from hvsa.errors import InputError
    from hvsa.pools import parse_granularity
    from hvsa.video import default_cache_dir

    size = parse_size(args.size)
    epsilon = check_in_range(DEFAULT_EPSILON if args.epsilon is None else args.epsilon, "--epsilon", 0.0, 1e6)
    grans = [parse_granularity(g.strip()) for g in args.granularities.split(",") if g.strip()]
    if not grans:
        raise InputError("--granularities: expected a comma-separated list such as frame,rec40,sp200")
    if len({str(g) for g in grans}) != len(grans):
        raise InputError(f"--granularities: {args.granularities!r} names a granularity twice")
    seqs = find_sequences(Path(args.data))
    cache_root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()

    video_rows: list[list[str]] = []
    gran_rows: list[list[str]] = []
    all_full, all_frames, all_seconds = 0, 0, 0.0
    all_tallies = {str(g): _Tally() for g in grans}
    for seq in seqs:
        start = time.perf_counter()
        size_text, full, tallies = _measure(seq, grans, size, epsilon, cache_root)
        seconds = time.perf_counter() - start
        frames = next(iter(tallies.values())).frames
        video_rows.append([seq.name, str(frames), size_text, str(full), f"{full / frames:.1f}", f"{seconds:.1f}"])
        gran_rows.extend(_gran_row(seq.name, g, tallies[g], full) for g in tallies)
        all_full += full
        all_frames += frames
        all_seconds += seconds
        for g, tally in tallies.items():
            all_tallies[g].add(tally)
    if len(seqs) > 1:
        video_rows.append(
            ["all", str(all_frames), "", str(all_full), f"{all_full / all_frames:.1f}", f"{all_seconds:.1f}"]
        )
        gran_rows.extend(_gran_row("all", g, all_tallies[g], all_full) for g in all_tallies)

    print(_table(video_rows, ["sequence", "frames", "size", "full-video clicks", "clicks/frame", "seconds"]))
    print()
    header = ["sequence", "granularity", "samples/frame", "pixels/sample", "clicks/sample", "all samples % of full"]
    print(_table(gran_rows, header, left=2))
    print(f"\nepsilon {epsilon:g} px; full-video clicks = every frame annotated whole (frame granularity)")
    return 0

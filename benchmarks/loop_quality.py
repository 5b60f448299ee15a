"""Quality per click of the HVSA loop on every sequence of a data set (issue targets).

Runs ``hvsa simulate`` (the user's command, in-process) on each sequence folder under DATA, one
session folder per sequence under OUT; a finished session is not run again and an interrupted
one resumes. Prints one row per sequence (final iteration) and the mean, and writes
OUT/summary.json.

    python benchmarks/loop_quality.py ../shared/data/davis2016 --out /tmp/hvsa-bench/davis \\
        --granularity frame --selector hvsa --budget-pct 3 --iterations 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hvsa.cli.main import main as hvsa


def sequences(data: Path) -> list[Path]:
    """Sequence folders under ``data`` (``data`` itself when it is one)."""
    if (data / "frames").is_dir():
        return [data]
    return sorted(p for p in data.iterdir() if (p / "frames").is_dir())


def finished(out: Path, iterations: int) -> bool:
    report = out / "report.json"
    if not report.is_file():
        return False
    return len(json.loads(report.read_text())["iterations"]) >= iterations


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", help="comma-separated sequence names")
    args, simulate_flags = p.parse_known_args(argv)  # the rest goes to hvsa simulate
    simulate_flags = [f for f in simulate_flags if f != "--"]
    iterations = 3
    if "--iterations" in simulate_flags:
        iterations = int(simulate_flags[simulate_flags.index("--iterations") + 1])
    seqs = sequences(args.data)
    if args.only:
        wanted = set(args.only.split(","))
        seqs = [s for s in seqs if s.name in wanted]
    if not seqs:
        print(f"{args.data}: no sequence folders", file=sys.stderr)
        return 2
    rows = []
    for seq in seqs:
        out = args.out / seq.name
        if not finished(out, iterations):
            start = time.perf_counter()
            resume = ["--resume"] if (out / "hvsa.sqlite").exists() else []
            code = hvsa(["simulate", str(seq), "--out", str(out), *simulate_flags, *resume])
            if code != 0:
                print(f"{seq.name}: hvsa simulate exited with {code}", file=sys.stderr)
                return code
            print(f"{seq.name}: {time.perf_counter() - start:.0f} s", flush=True)
        report = json.loads((out / "report.json").read_text())
        last = report["iterations"][-1]
        rows.append({
            "sequence": seq.name,
            "frames": report["frames"],
            "size": report["size"],
            "samples": last["samples"] if len(report["iterations"]) == 1 else sum(r["samples"] for r in report["iterations"]),
            "clicks_pct": last["clicks_pct"],
            "miou_per_iteration": [r.get("miou") for r in report["iterations"]],
            "miou": last.get("miou"),
            "boundary_iou": last.get("boundary_iou"),
            "tc": last.get("tc"),
            "seconds_per_frame_per_iteration": sum(r["seconds"].get("total", 0) for r in report["iterations"])
            / len(report["iterations"]) / report["frames"],
        })
    print(f"\n{'sequence':<20} {'frames':>6} {'samples':>7} {'clicks%':>7} {'mIoU by iteration':>22} {'bIoU':>6} {'TC':>6} {'s/frame/it':>10}")
    for r in rows:
        its = " ".join(f"{m:.3f}" if m is not None else "  -  " for m in r["miou_per_iteration"])
        print(f"{r['sequence']:<20} {r['frames']:>6} {r['samples']:>7} {r['clicks_pct']:7.2f} {its:>22}"
              f" {r['boundary_iou']:6.3f} {r['tc']:6.3f} {r['seconds_per_frame_per_iteration']:10.3f}")
    n = len(rows)
    mean = {k: sum(r[k] for r in rows) / n for k in ("clicks_pct", "miou", "boundary_iou", "tc", "seconds_per_frame_per_iteration")}
    print(f"{'mean':<20} {'':>6} {'':>7} {mean['clicks_pct']:7.2f} {mean['miou']:>22.3f} {mean['boundary_iou']:6.3f}"
          f" {mean['tc']:6.3f} {mean['seconds_per_frame_per_iteration']:10.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"flags": simulate_flags, "rows": rows, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds per frame per iteration and peak memory of the HVSA loop on a synthetic clip.

Generates a clip (default 100 frames at 480x360, the issue's working size), runs the one-off
preparation (flow, encoder taps, pools, first prediction) and K iterations with a simulated
annotator, and prints where the time goes, per frame. Peak RSS is the process's high-water mark
(``ru_maxrss``), measured after everything ran.

    python benchmarks/loop_speed.py --frames 100                   # speed
    python benchmarks/loop_speed.py --frames 1000 --iterations 1   # memory on a long clip
    python benchmarks/loop_speed.py --frames 100 --method hvsa-crf # with the CRF
    python benchmarks/loop_speed.py --frames 100 --view-share 0    # no views of annotated frames
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from hvsa.annotate import SimulatedAnnotator
from hvsa.cli._common import add_model_arguments, finetune_config
from hvsa.errors import InputError
from hvsa.session import LoopSettings, Session, run_loop
from hvsa.synth import generate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", default="480x360")
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--granularity", default="frame")
    p.add_argument("--method", default="hvsa", help="labelling method (default hvsa)")
    p.add_argument("--per-iteration", type=int, default=1, help="samples per iteration (default 1)")
    p.add_argument("--budget-pct", type=float, help="instead of --per-iteration: total clicks %%")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one, deleted)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    add_model_arguments(p)  # --model, --device and the fine-tuning flags of `hvsa simulate`
    args = p.parse_args(argv)
    try:
        finetune = finetune_config(args)
    except InputError as e:
        p.error(str(e))
    with tempfile.TemporaryDirectory(prefix="hvsa-speed-") as tmp:
        work = args.work or Path(tmp)
        start = time.perf_counter()
        data = generate(work / "data", frames=args.frames, size=args.size, classes=args.classes, overwrite=True)
        synth_s = time.perf_counter() - start
        folder = work / "session"
        if (folder / "hvsa.sqlite").exists():
            import shutil

            shutil.rmtree(folder)
        with Session.create(folder, data, granularity=args.granularity, method=args.method, finetune=finetune,
                            model=args.model, device=args.device) as s:
            n = s.num_frames
            start = time.perf_counter()
            setup = s.prepare()
            setup_s = time.perf_counter() - start
            per = None if args.budget_pct else args.per_iteration
            report = run_loop(s, LoopSettings(args.iterations, per_iteration=per, budget_pct=args.budget_pct),
                              SimulatedAnnotator(s.gt, ignore_index=s.classes.ignore_index), write_report=False)
            steps = [it.info.get("finetune", {}).get("steps") for it in s.iterations]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    w, h = report["size"]
    print(f"clip: {n} frames {w}x{h}, {args.classes} classes, granularity {args.granularity},"
          + (f" budget {args.budget_pct}%" if args.budget_pct else f" {args.per_iteration} sample(s) per iteration")
          + f" (synthesised in {synth_s:.0f} s)")
    print("one-off preparation, seconds per frame: "
          + ", ".join(f"{k} {v / n:.3f}" for k, v in setup.items()) + f" (total {setup_s / n:.3f})")
    parts = ("select", "annotate", "finetune", "predict")
    print(f"{'iteration':>9} {'steps':>6} " + " ".join(f"{k:>9}" for k in parts) + f" {'total':>9}  (seconds per frame)   mIoU")
    for row, st in zip(report["iterations"], steps):
        sec = row["seconds"]
        print(f"{row['iteration']:>9} {st if st is not None else '-':>6} "
              + " ".join(f"{sec.get(k, 0) / n:9.3f}" for k in parts) + f" {sec['total'] / n:9.3f}"
              + f"  {row.get('miou', float('nan')):24.3f}")
    rows = report["iterations"]
    # The "select + fine-tune + predict" of the issue: the annotator's time is the person's.
    machine = [sum(r["seconds"].get(k, 0) for k in ("select", "finetune", "predict")) / n for r in rows]
    print(f"mean select+finetune+predict: {sum(machine) / len(machine):.3f} s per frame per iteration")
    print(f"peak RSS: {peak_gb:.2f} GB")
    if args.json:
        settings = {"method": args.method, "granularity": args.granularity, "classes": args.classes,
                    "per_iteration": per, "budget_pct": args.budget_pct, "model": args.model,
                    "device": args.device, "finetune": finetune.to_dict()}
        args.json.write_text(json.dumps({"frames": n, "size": [w, h], "settings": settings, "setup_seconds": setup,
                                         "iterations": rows, "steps": steps, "peak_rss_gb": peak_gb}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

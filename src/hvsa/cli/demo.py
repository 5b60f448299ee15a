"""``hvsa demo``: a synthetic clip, the simulated loop, a table and a plot. No data needed."""

from __future__ import annotations

import argparse

from hvsa.cli._common import add_threads_argument, device, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="run the whole loop on a synthetic clip it generates (no data needed)",
        description="Generate a synthetic clip with exact labels, run K iterations of HVSA with a"
        " simulated annotator, print a table and write a plot (mIoU against clicks %%, frames with"
        " the labels) to OUT/demo.png.",
    )
    p.add_argument("--out", "-o", default="hvsa-demo", help="output folder (default ./hvsa-demo; replaced)")
    p.add_argument("--frames", type=positive_int, default=40, help="clip length (default 40)")
    p.add_argument("--size", default="320x240", help="clip size WxH (default 320x240)")
    p.add_argument("--classes", type=positive_int, default=5, help="classes (default 5)")
    p.add_argument("--iterations", "-k", type=positive_int, default=3, help="iterations (default 3)")
    p.add_argument("--granularity", "-g", default="sp200", help="sample pool (default sp200)")
    p.add_argument("--budget-pct", type=positive_float, default=6.0, help="total clicks %% (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    add_threads_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    import shutil
    import time
    from pathlib import Path

    import numpy as np

    from hvsa.annotate import SimulatedAnnotator
    from hvsa.bench.plots import demo_figure
    from hvsa.checks import parse_size
    from hvsa.cli.simulate import HEADER, print_row
    from hvsa.export import overlay
    from hvsa.session import LoopSettings, Session, run_loop
    from hvsa.synth import generate

    size = parse_size(args.size)
    settings = LoopSettings(iterations=args.iterations, budget_pct=args.budget_pct)
    out = Path(args.out)
    if out.exists():
        if not (out / "demo.json").exists() and any(out.iterdir()):
            from hvsa.errors import InputError

            raise InputError(f"{out}: exists and is not a previous demo folder; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "demo.json").write_text('{"hvsa": "demo output; safe to delete"}\n')
    start = time.perf_counter()
    data = generate(out / "data", frames=args.frames, size=size, classes=args.classes, seed=args.seed)
    print(f"synthetic clip: {args.frames} frames {size[0]}x{size[1]}, {args.classes} classes -> {data}")
    with Session.create(out / "session", data, granularity=args.granularity, seed=args.seed, device=args.device) as s:
        print(f"granularity {s.config.granularity}, selector {s.config.selector}, budget {args.budget_pct}% of"
              f" the clicks of annotating every frame, {args.iterations} iterations")
        print(HEADER)
        report = run_loop(s, settings, SimulatedAnnotator(s.gt, ignore_index=s.classes.ignore_index), on_iteration=print_row)
        rows = report["iterations"]
        picks = np.linspace(0, s.num_frames - 1, 4).round().astype(int)
        strip = []
        for t in picks:
            frame = s.frames.read(int(t))
            labels, _ = s.prediction(int(t))
            strip.append((f"frame {t}", frame, s.classes.colorize(s.gt[int(t)]), overlay(frame, s.classes.colorize(labels))))
        figure = demo_figure(out / "demo.png", rows, strip, title=f"hvsa demo: {s.config.granularity}, {args.budget_pct}% budget")
        s.export(out / "labels", "png")
    last = rows[-1]
    print(f"\nfinal: mIoU {last['miou']:.3f} at {last['clicks_pct']:.2f}% clicks"
          f" ({last['clicks']} of {report['full_video_clicks']}); {time.perf_counter() - start:.0f} s in all")
    print(f"plot: {figure}\nlabels: {out / 'labels'}\nsession: {out / 'session'} (report.json inside)")
    return 0

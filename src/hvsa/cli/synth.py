"""``hvsa synth OUT``: write a synthetic clip with exact labels and exact forward flow."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic labelled clip (exact labels and flow)",
        description="Write a synthetic clip as a data folder: textured background layers panning"
        " at different speeds (parallax) and moving, occluding, textured objects that enter and"
        " leave the frame, with exact per-frame labels and exact forward optical flow."
        " OUT gets frames/<name>.png, labels/<name>.png, flow/<name>.flo (O_t->t+1, Middlebury"
        " .flo), classes.json and synth.json. The same --seed gives the same clip, bit for bit.",
    )
    p.add_argument("out", metavar="OUT", help="output folder (created; a previous synth output is replaced)")
    p.add_argument("--frames", type=int, default=60, metavar="T", help="number of frames, at least 2 (default 60)")
    p.add_argument("--size", default="320x240", metavar="WxH", help="frame size (default 320x240)")
    p.add_argument(
        "--classes",
        type=int,
        default=5,
        metavar="C",
        help="number of classes, 2..20: 2 = background + object; otherwise sky, ground and C-2"
        " object classes (default 5)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed, >= 0 (default 0)")
    p.add_argument(
        "--integer-motion",
        action="store_true",
        help="move every layer by whole pixels per frame (default: sub-pixel motion)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder that is not a previous synth output (replaces its"
        " frames/, labels/ and flow/ files)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    import time

    from hvsa.checks import parse_size
    from hvsa.synth import generate

    size = parse_size(args.size)
    start = time.perf_counter()
    out = generate(
        args.out,
        frames=args.frames,
        size=size,
        classes=args.classes,
        seed=args.seed,
        subpixel=not args.integer_motion,
        overwrite=args.overwrite,
        show_progress=True,
    )
    seconds = time.perf_counter() - start
    from hvsa.video.classes import Classes

    names = Classes.from_json(out / "classes.json").names
    w, h = size
    print(
        f"wrote {out}: {args.frames} frames {w}x{h}, {len(names)} classes ({', '.join(names)}),"
        f" seed {args.seed}, {seconds:.1f} s"
    )
    return 0

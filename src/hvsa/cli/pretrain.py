"""``hvsa pretrain``: train the segmentation network on labelled sequences, to start from later."""

from __future__ import annotations

import argparse

from hvsa.cli._common import add_threads_argument, device, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pretrain",
        help="train the network on other labelled sequences (a pre-trained start for --model)",
        description="Train a new decoder (frozen ImageNet encoder) on every frame of the labelled"
        " sequences under DATA and save a checkpoint that `hvsa simulate --model` and `hvsa bench"
        " --model` start from, e.g. train on two camvid-1hz sequences and annotate the third.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="sequence folders, or folders of sequences")
    p.add_argument("--out", "-o", required=True, help="checkpoint to write (e.g. model.pt)")
    p.add_argument("--size", help="working size WxH (needed when the sequences' sizes differ)")
    p.add_argument("--epochs", type=positive_float, default=4.0, help="training items per frame (default 4)")
    p.add_argument("--steps", type=positive_int, help="a fixed number of steps instead of --epochs")
    p.add_argument("--lr", type=positive_float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--decoder-channels", type=positive_int, default=64, help="decoder width (default 64)")
    p.add_argument("--taps", default="4,8,16,32", metavar="STRIDES",
                   help="encoder strides the decoder reads, finest first; 2,4,8,16,32 adds the stride-2 tap"
                   " for finer boundaries (default 4,8,16,32)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--cache", help="cache folder for frames and encoder taps (default: the hvsa cache)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    add_threads_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from hvsa.bench.grid import find_sequences, parse_list
    from hvsa.checks import parse_size
    from hvsa.pretrain import PretrainConfig, pretrain
    from hvsa.progress import progress_bar

    sequences = find_sequences(args.data)
    config = PretrainConfig(epochs=args.epochs, steps=args.steps, lr=args.lr,
                            decoder_channels=args.decoder_channels, taps=parse_list(args.taps, "taps", int),
                            seed=args.seed)
    print(f"pretraining on {len(sequences)} sequence(s): {', '.join(s.key for s in sequences)}")
    bar = None

    def on_step(i: int, n: int, info: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total=n, desc="pretraining", unit="step")
        bar.update(1)
        if i % 20 == 0:
            bar.set_postfix(ce=f"{info['ce']:.3f}")

    try:
        path, stats = pretrain([s.path for s in sequences], args.out, size=parse_size(args.size), config=config,
                               cache_dir=args.cache, device=args.device, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()
    print(f"{stats['steps']} steps in {stats['seconds']:.0f} s, mean cross-entropy {stats['ce']:.3f}; wrote {path}")
    return 0

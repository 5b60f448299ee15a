"""Argument helpers shared by sub-commands (no heavy imports here)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def device(text: str) -> str:
    """A torch device this machine has (:func:`hvsa.checks.check_device`), checked as the
    arguments are parsed, before any work."""
    from hvsa.checks import check_device
    from hvsa.errors import InputError

    try:
        return check_device(text, name="")
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = nonneg_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """``--threads N``: the command's torch and OpenCV work on at most N threads (see
    :func:`hvsa.cli.main.main`, which applies it before the command runs)."""
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for torch and OpenCV, e.g. to leave cores to other work (default: one per core)")


def add_loop_arguments(p: argparse.ArgumentParser) -> None:
    """The loop and model flags shared by ``simulate`` and ``demo``."""
    g = p.add_argument_group("loop")
    g.add_argument("--granularity", "-g", default="frame", help="sample pool: frame, rec<N>, sp<N> (default frame)")
    g.add_argument("--iterations", "-k", type=positive_int, default=3, help="iterations K (default 3)")
    b = g.add_mutually_exclusive_group()
    b.add_argument("--budget-pct", type=positive_float, help="total clicks %% of the full-video cost, split over the iterations")
    b.add_argument("--per-iteration", "-b", type=positive_int, help="samples per iteration (the paper's b)")
    g.add_argument("--selector", "-s", default="hvsa", help="hvsa, hvsa-balanced, hvsa-disagree, random, uncertainty or diversity (default hvsa)")
    g.add_argument("--method", default="hvsa",
                   help="labelling method: hvsa (test-time fine-tuning), hvsa-fused (hvsa fused per pixel with"
                   " label propagation where that is more confident), hvsa-crf (hvsa-fused reading each frame also"
                   " mirrored and enlarged, outlines refined by a fully connected CRF), finetune-only (lambda 0),"
                   " lp (label propagation along optical flow), copy (nearest annotated frame) (default hvsa)")
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument("--size", help="working size WxH (default: longest side 480)")
    add_model_arguments(p)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The model and fine-tuning flags (``simulate``, ``demo``, ``serve``)."""
    m = p.add_argument_group("model and fine-tuning")
    m.add_argument("--model", help="start from this hvsa checkpoint (default: ImageNet encoder, new decoder)")
    m.add_argument("--lambda-tc", type=nonneg_float, default=1.0, help="weight of the temporal-consistency loss; 0 = fine-tune only (default 1)")
    m.add_argument("--epochs", type=positive_float, default=None, help="training items per frame per iteration (default 8)")
    m.add_argument("--crop", type=positive_float, default=None,
                   help="side of each item's random training window, a fraction of the frame's (default 0.5; 1 = whole frames)")
    m.add_argument("--anchor-windows", action=argparse.BooleanOptionalAction, default=None,
                   help="place the training window of an annotated frame over an annotated pixel (default on;"
                   " --no-anchor-windows: anywhere, as hvsa did before)")
    m.add_argument("--lr", type=positive_float, default=None, help="learning rate (default 0.004)")
    m.add_argument("--class-balance", type=nonneg_float, default=None,
                   help="exponent of the cross-entropy's class weights: 0 = unweighted (the paper), 1 = inverse"
                   " frequency (default 0.5)")
    m.add_argument("--view-share", type=nonneg_float, default=None,
                   help="share of the annotated training items taken from a rescaled or mirrored copy of the"
                   " frame (0.75x, 1x mirrored, 1.25x) (default 0.5; 0 = the frames as they are)")
    m.add_argument("--hold-unseen", type=nonneg_float, default=None,
                   help="while some class has no annotated pixel, also train on the previous labels where their"
                   " confidence is at least this (default 0.5; 0 = off; hvsa and finetune-only never do, as in the"
                   " paper)")
    m.add_argument("--propagated-targets", type=nonneg_float, default=None,
                   help="also train on the labels propagated from the annotations along optical-flow chains where"
                   " their chain confidence is at least this (default 0 = off; hvsa and finetune-only never do)")
    m.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")


def finetune_config(args: argparse.Namespace):  # noqa: ANN201 - FinetuneConfig
    from hvsa.finetune import FinetuneConfig

    kw = {"lambda_tc": args.lambda_tc}
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    if args.lr is not None:
        kw["lr"] = args.lr
    if getattr(args, "crop", None) is not None:
        kw["crop"] = args.crop
    if getattr(args, "anchor_windows", None) is not None:
        kw["anchor_windows"] = args.anchor_windows
    if getattr(args, "view_share", None) is not None:
        kw["view_share"] = args.view_share
    if getattr(args, "class_balance", None) is not None:
        kw["class_balance"] = args.class_balance
    if getattr(args, "hold_unseen", None) is not None:
        kw["hold_unseen"] = args.hold_unseen
    if getattr(args, "propagated_targets", None) is not None:
        kw["propagated_targets"] = args.propagated_targets
    return FinetuneConfig(**kw)

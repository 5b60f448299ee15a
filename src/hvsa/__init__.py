"""hvsa: human-in-the-loop video semantic segmentation auto-annotation (HVSA, Qiao et al. 2023).

The public API is imported lazily: ``import hvsa`` is cheap, and ``hvsa.open_video`` and friends
load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "HvsaError": "hvsa.errors",
    "InputError": "hvsa.errors",
    "DataError": "hvsa.errors",
    "SampleId": "hvsa.types",
    "Classes": "hvsa.video.classes",
    "VideoSource": "hvsa.video.sources",
    "open_video": "hvsa.video.data",
    "open_data": "hvsa.video.data",
    "Session": "hvsa.session",
    "SessionConfig": "hvsa.session",
    "LoopSettings": "hvsa.session",
    "run_loop": "hvsa.session",
    "FinetuneConfig": "hvsa.finetune",
    "SampleLabels": "hvsa.annotate.base",
    "SampleRequest": "hvsa.annotate.base",
    "SimulatedAnnotator": "hvsa.annotate.simulated",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'hvsa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""The public API: every exported name resolves, and the layers point one way (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hvsa


@pytest.mark.parametrize("name", sorted(hvsa._PUBLIC))  # noqa: SLF001
def test_public_names_resolve(name: str) -> None:
    assert getattr(hvsa, name) is not None
    assert name in dir(hvsa)


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Sesion'"):
        hvsa.Sesion  # noqa: B018


# Core and session modules; none of them may load an app layer (cli, web, bench).
_CORE = [
    "hvsa.session", "hvsa.store", "hvsa.finetune", "hvsa.select", "hvsa.annotate", "hvsa.cost",
    "hvsa.metrics", "hvsa.export", "hvsa.flow", "hvsa.pools", "hvsa.model", "hvsa.video", "hvsa.synth",
]


def test_core_never_imports_the_apps() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {_CORE!r}: importlib.import_module(m)\n"
        "apps = sorted(m for m in sys.modules if m.split('.')[:2] in (['hvsa', 'cli'], ['hvsa', 'web'], ['hvsa', 'bench']))\n"
        "print(','.join(apps))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"core modules import app modules: {out}"


def test_import_hvsa_is_cheap() -> None:
    code = "import sys, hvsa; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]

"""Shared fixtures. Tests never write outside their tmp folders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point hvsa's default disk cache at a per-test folder, deleted after the test, and
    silence progress bars."""
    cache = tmp_path_factory.mktemp("hvsa-cache")
    monkeypatch.setenv("HVSA_CACHE_DIR", str(cache))
    monkeypatch.setenv("HVSA_PROGRESS", "0")
    monkeypatch.delenv("HVSA_DEBUG", raising=False)
    yield
    shutil.rmtree(cache, ignore_errors=True)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p

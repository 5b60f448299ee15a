"""Shared fixtures. Tests never write outside their tmp folders."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point hvsa's default disk cache at a per-test folder and silence progress bars."""
    monkeypatch.setenv("HVSA_CACHE_DIR", str(tmp_path_factory.mktemp("hvsa-cache")))
    monkeypatch.setenv("HVSA_PROGRESS", "0")
    monkeypatch.delenv("HVSA_DEBUG", raising=False)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p

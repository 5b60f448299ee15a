"""How many cores hvsa counts: the process's CPU affinity where there is one."""

from __future__ import annotations

import os

import pytest

from hvsa.threads import usable_cores


def test_usable_cores_is_the_affinity_where_the_system_reports_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)
    assert usable_cores() == 2  # a taskset or a container's cpuset, not the machine's 64


def test_usable_cores_falls_back_to_the_machine_then_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert usable_cores() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # undeterminable
    assert usable_cores() == 1

"""Peak resident memory of the process (hvsa.memory)."""

from __future__ import annotations

import numpy as np
import pytest

from hvsa.memory import peak_rss_mb, reset_peak


def test_peak_memory_rises_with_an_allocation_and_starts_again_after_a_reset() -> None:
    assert peak_rss_mb() > 0
    if not reset_peak():
        pytest.skip("this platform cannot reset the peak (the peak covers the process's life)")
    before = peak_rss_mb()  # what is resident now
    block = np.ones(2**26 // 8)  # 64 MiB, every page touched
    high = peak_rss_mb()
    assert high >= before + 60
    del block  # numpy returns a block this large to the system at once
    assert peak_rss_mb() >= high - 1  # a peak does not fall (up to the kernel's lazy RSS counters)
    assert reset_peak() and peak_rss_mb() <= high - 60

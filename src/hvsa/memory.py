"""Peak resident memory of this process, for the reports of long work.

On Linux the kernel keeps the process's high-water mark of resident memory (``VmHWM`` in
``/proc/self/status``) and lets the process reset it (``/proc/self/clear_refs``), so a worker
can measure each run it does on its own. Elsewhere the peak comes from ``getrusage`` and cannot
be reset: it covers the process's whole life.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["peak_rss_mb", "reset_peak"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_mb() -> float | None:
    """The process's peak resident memory in MiB since it started or since :func:`reset_peak`,
    or None where the platform reports none."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, kB elsewhere


def reset_peak() -> bool:
    """Start the peak of :func:`peak_rss_mb` again from the memory resident now; False where the
    platform cannot (the peak then keeps covering the process's whole life)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True

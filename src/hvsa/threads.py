"""How many threads hvsa's numerical libraries may run.

torch, OpenCV and the BLAS libraries each start a thread per core by default. Two hvsa
processes on one machine (a bench's workers, or a run beside other work) then run many more
threads than there are cores and slow each other down many times over; ``--threads`` and the
bench's workers limit them with :func:`limit_threads`.
"""

from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "limit_threads", "usable_cores"]

# The environment variables that size the thread pools of OpenMP (torch), MKL and OpenBLAS in
# this process's children, and in this process when they are read before the library starts.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system reports one (a
    ``taskset``, a container's cpuset), else every core of the machine; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def limit_threads(threads: int) -> None:
    """Run torch's and OpenCV's work on at most ``threads`` threads, and have the processes this
    one starts do the same (:data:`THREAD_VARIABLES`)."""
    from hvsa.checks import check_positive

    threads = int(check_positive(threads, "threads", integer=True))
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)

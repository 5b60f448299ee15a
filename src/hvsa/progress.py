"""Progress bars for long work, shown on standard error when it is a terminal.

``HVSA_PROGRESS=1`` forces them on (for example under ``tee``), ``HVSA_PROGRESS=0`` off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress", "progress_bar"]


def _disabled() -> bool | None:
    flag = os.environ.get("HVSA_PROGRESS")
    if flag == "1":
        return False
    if flag == "0":
        return True
    return None  # tqdm: off when stderr is not a terminal


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar."""
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, disable=_disabled(), leave=False,
                    mininterval=0.5, dynamic_ncols=True)


def progress_bar(*, total: int, desc: str = "", unit: str = "it"):  # noqa: ANN201 - a tqdm bar
    """A manual progress bar (``update``, ``set_postfix``, ``close``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=_disabled(), leave=False, mininterval=0.5,
                dynamic_ncols=True)

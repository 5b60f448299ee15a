"""Typed errors.

Every error hvsa raises on purpose derives from :class:`HvsaError`. Errors caused by the
caller (a missing file, a bad flag, an unknown class id) derive from :class:`InputError`; the
command line turns those into a one-line message and exit code 2. Anything else that escapes is
an internal error (exit code 1).
"""

from __future__ import annotations

__all__ = [
    "HvsaError",
    "InputError",
    "DataError",
    "ShapeError",
    "UnknownNameError",
    "StoreError",
]


class HvsaError(Exception):
    """Base class of every error raised by hvsa on purpose."""


class InputError(HvsaError, ValueError):
    """The caller gave something hvsa cannot use: a bad path, value, flag or array."""


class DataError(InputError):
    """A data file exists but its content is wrong (corrupt image, unknown label id, ...).

    The message names the file and the offending values.
    """


class ShapeError(InputError):
    """An array has the wrong shape, dtype or value range."""


class UnknownNameError(InputError, KeyError):
    """A registry was asked for a name it does not hold; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreError(InputError):
    """A session folder is missing, from another version, or does not match the request."""

"""Fixed-shape arrays on disk, one record per frame, read and written without memory maps.

A :class:`DiskArray` is a raw file of ``length`` records of identical shape and dtype plus a
one-byte-per-record "filled" file. Reads use ``pread`` into a fresh array, so streaming a long
video through a cache never grows the process's resident memory with mapped pages. A record is
marked filled only after its bytes are written, so a crash leaves at worst an unfilled record,
never a half-written one that looks valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hvsa.errors import StoreError

__all__ = ["DiskArray"]


class DiskArray:
    """``length`` records of ``item_shape`` and ``dtype`` in ``<path>`` (+ ``.json``, ``.filled``).

    Open an existing array, or create it when absent, with :meth:`open_or_create`. Records are
    indexed by frame index ``t``.
    """

    def __init__(self, path: Path, length: int, item_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = Path(path)
        self.length = int(length)
        self.item_shape = tuple(int(s) for s in item_shape)
        self.dtype = np.dtype(dtype)
        self.item_bytes = int(np.prod(self.item_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDWR)
        self._filled_fd = os.open(self._filled_path(self.path), os.O_RDWR)
        self._filled = np.frombuffer(os.pread(self._filled_fd, self.length, 0), dtype=np.uint8).copy()
        if self._filled.size != self.length:
            raise StoreError(f"{self.path}: cache index is truncated; delete the cache folder")

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    @staticmethod
    def _filled_path(path: Path) -> Path:
        return path.with_name(path.name + ".filled")

    @classmethod
    def open_or_create(
        cls,
        path: str | os.PathLike,
        length: int,
        item_shape: tuple[int, ...],
        dtype: np.dtype | type,
        meta: dict | None = None,
    ) -> "DiskArray":
        """Open the array at ``path``; create it when absent or when its layout or ``meta``
        differ from the request (then the stale content is discarded)."""
        path = Path(path)
        want = {
            "length": int(length),
            "item_shape": [int(s) for s in item_shape],
            "dtype": np.dtype(dtype).str,
            "meta": meta or {},
        }
        meta_path = cls._meta_path(path)
        have = None
        if meta_path.exists() and path.exists() and cls._filled_path(path).exists():
            try:
                have = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                have = None
        if have != want:
            path.parent.mkdir(parents=True, exist_ok=True)
            item_bytes = int(np.prod(item_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            with open(path, "wb") as f:
                f.truncate(item_bytes * int(length))
            with open(cls._filled_path(path), "wb") as f:
                f.write(bytes(int(length)))
            tmp = meta_path.with_name(meta_path.name + ".tmp")
            tmp.write_text(json.dumps(want))
            os.replace(tmp, meta_path)
        return cls(path, length, tuple(item_shape), np.dtype(dtype))

    def __len__(self) -> int:
        return self.length

    def _check_index(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.length:
            raise IndexError(f"record {t} out of range for {self.length} records in {self.path}")
        return t

    def is_filled(self, t: int) -> bool:
        return bool(self._filled[self._check_index(t)])

    @property
    def all_filled(self) -> bool:
        return bool(self._filled.all())

    def missing(self) -> list[int]:
        """Indices of records never written."""
        return np.flatnonzero(self._filled == 0).tolist()

    def __getitem__(self, t: int) -> np.ndarray:
        t = self._check_index(t)
        if not self._filled[t]:
            raise KeyError(f"record {t} of {self.path} has not been written")
        buf = os.pread(self._fd, self.item_bytes, t * self.item_bytes)
        if len(buf) != self.item_bytes:
            raise StoreError(f"{self.path}: record {t} is truncated; delete the cache folder")
        return np.frombuffer(buf, dtype=self.dtype).reshape(self.item_shape).copy()

    def __setitem__(self, t: int, value: np.ndarray) -> None:
        t = self._check_index(t)
        a = np.ascontiguousarray(value, dtype=self.dtype)
        if a.shape != self.item_shape:
            raise ValueError(f"record shape {a.shape} does not match {self.item_shape} of {self.path}")
        os.pwrite(self._fd, a.tobytes(), t * self.item_bytes)
        os.pwrite(self._filled_fd, b"\x01", t)
        self._filled[t] = 1

    def flush(self) -> None:
        os.fsync(self._fd)
        os.fsync(self._filled_fd)

    def close(self) -> None:
        for name in ("_fd", "_filled_fd"):
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def remove(self) -> None:
        """Close the array and delete its files (the records, ``.json`` and ``.filled``)."""
        self.close()
        for p in (self.path, self._meta_path(self.path), self._filled_path(self.path)):
            p.unlink(missing_ok=True)

    def __enter__(self) -> "DiskArray":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

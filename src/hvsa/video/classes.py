"""Semantic classes of a video: ids, names, colours and the ignore index."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hvsa.errors import DataError, InputError

__all__ = ["ClassInfo", "Classes", "default_palette"]


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct colours (the PASCAL VOC bit-interleaving palette, without black after 0)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i + 1 if i else 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


class Classes:
    """An ordered set of classes with contiguous ids ``0..C-1`` and an ignore index.

    Args:
        classes: the classes, ids ``0..C-1`` in any order.
        ignore_index: label value meaning "no label" (default 255); not a class id.
    """

    def __init__(self, classes: Sequence[ClassInfo], ignore_index: int = 255) -> None:
        items = sorted(classes, key=lambda c: c.id)
        if not items:
            raise InputError("classes: expected at least one class")
        ids = [c.id for c in items]
        if ids != list(range(len(items))):
            raise InputError(f"classes: ids must be 0..{len(items) - 1} with no gaps, got {ids}")
        if len(items) > 254:
            raise InputError(f"classes: at most 254 classes fit in uint8 labels, got {len(items)}")
        if not 0 <= ignore_index <= 255 or ignore_index < len(items):
            raise InputError(
                f"classes: ignore_index must be in {len(items)}..255 (not a class id), got {ignore_index}"
            )
        names = [c.name for c in items]
        if len(set(names)) != len(names):
            raise InputError(f"classes: names must be unique, got {names}")
        self._items = tuple(items)
        self.ignore_index = int(ignore_index)

    @classmethod
    def from_names(cls, names: Sequence[str], ignore_index: int = 255) -> "Classes":
        palette = default_palette(len(names))
        return cls([ClassInfo(i, str(n), palette[i]) for i, n in enumerate(names)], ignore_index)

    @classmethod
    def from_dict(cls, d: dict, source: str = "classes") -> "Classes":
        """Build from the ``classes.json`` structure of DESIGN.md; ``source`` names it in errors."""
        if not isinstance(d, dict) or not isinstance(d.get("classes"), list):
            raise DataError(f'{source}: expected {{"classes": [{{"id", "name", "color"}}, ...]}}')
        items = []
        palette = default_palette(len(d["classes"]))
        for k, c in enumerate(d["classes"]):
            if not isinstance(c, dict) or "id" not in c or "name" not in c:
                raise DataError(f"{source}: class entry {k} needs an integer 'id' and a 'name', got {c!r}")
            cid = c["id"]
            if isinstance(cid, bool) or not isinstance(cid, int):
                raise DataError(f"{source}: class entry {k} has a non-integer id {cid!r}")
            color = c.get("color", palette[cid] if 0 <= cid < len(palette) else (255, 255, 255))
            if (
                not isinstance(color, (list, tuple))
                or len(color) != 3
                or not all(isinstance(v, int) and 0 <= v <= 255 for v in color)
            ):
                raise DataError(f"{source}: class {cid} colour must be [r, g, b] in 0..255, got {color!r}")
            items.append(ClassInfo(cid, str(c["name"]), tuple(color)))
        ignore = d.get("ignore_index", 255)
        try:
            return cls(items, ignore_index=ignore)
        except InputError as e:
            raise DataError(f"{source}: {str(e).removeprefix('classes: ')}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Classes":
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{p}: classes file does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{p}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=str(p))

    def to_dict(self) -> dict:
        return {
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self._items],
            "ignore_index": self.ignore_index,
        }

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self._items)

    def __getitem__(self, i: int) -> ClassInfo:
        return self._items[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Classes) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Classes({[c.name for c in self._items]}, ignore_index={self.ignore_index})"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._items]

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 lookup table: class id -> colour; the ignore index and unused -> black."""
        lut = np.zeros((256, 3), np.uint8)
        for c in self._items:
            lut[c.id] = c.color
        return lut

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(H, W) uint8 labels -> (H, W, 3) uint8 colours."""
        return self.palette()[labels]

    def unknown_values(self, labels: np.ndarray) -> list[int]:
        """Label values that are neither a class id nor the ignore index."""
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
        return [int(v) for v in present if v >= len(self) and v != self.ignore_index]

"""Request bodies of the annotation app, parsed into typed values before anything runs.

A sample's annotation arrives as JSON (frame coordinates, (x, y), integer pixels)::

    {"fill": null | {"kind": "class", "class_id": 2} | {"kind": "prediction"},
     "polygons": [{"class_id": 1, "points": [[x, y], ...]}, ...],
     "click_log": [{"kind": "vertex", "x": 10, "y": 12, "class_id": 1, "ts": 1712345678.1}, ...]}

``fill`` is the base layer of the sample: one class over all of it (the single-class sample of
the click model) or the model's prediction accepted as it stands; polygons are painted over it
in the order drawn. :func:`parse_annotation` checks everything (types, unknown keys, vertex
counts, coordinates inside the frame, class ids of the project, log length) and raises
:class:`hvsa.errors.InputError` whose message names the field, what was expected and what
came; the app answers such errors with status 400 and the message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hvsa.errors import InputError

__all__ = ["Limits", "DrawnPolygon", "Click", "Drawing", "CLICK_KINDS", "parse_annotation"]

CLICK_KINDS = ("vertex", "close", "class", "fill", "accept", "undo", "redo", "clear", "cancel")
"""What a logged click did: placed a polygon vertex, closed a polygon, picked a class, filled
the sample with a class, accepted the prediction, undid, redid, cleared the drawing, dropped
the polygon being drawn."""


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may carry.

    Attributes:
        max_body_bytes: request body size.
        max_polygons: polygons per annotation.
        max_vertices: vertices per polygon.
        max_total_vertices: vertices per annotation.
        max_clicks: entries of the click log per request.
    """

    max_body_bytes: int = 1 << 20
    max_polygons: int = 256
    max_vertices: int = 1000
    max_total_vertices: int = 20000
    max_clicks: int = 20000


@dataclass(frozen=True)
class DrawnPolygon:
    """A polygon a person closed: its class and int32 (K, 2) vertices (x, y), K >= 3."""

    class_id: int
    points: np.ndarray


@dataclass(frozen=True)
class Click:
    """One logged click: its kind (:data:`CLICK_KINDS`), where (frame pixels) and with which
    class, when it applies, and when (seconds since the epoch, the browser's clock)."""

    kind: str
    x: float | None
    y: float | None
    class_id: int | None
    ts: float

    def to_dict(self) -> dict:
        return {"kind": self.kind, "x": self.x, "y": self.y, "class_id": self.class_id, "ts": self.ts}


@dataclass(frozen=True)
class Drawing:
    """A parsed annotation request.

    Attributes:
        fill: None, "class" (every pixel of the sample is ``fill_class``) or "prediction".
        fill_class: the class of a "class" fill, else None.
        polygons: painted over the fill in this order (later on top).
        clicks: the click log.
    """

    fill: str | None
    fill_class: int | None
    polygons: tuple[DrawnPolygon, ...]
    clicks: tuple[Click, ...]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _check_keys(obj: object, name: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(obj, dict):
        raise InputError(f"{name}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise InputError(f"{name}: missing {', '.join(missing)}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise InputError(f"{name}: unknown field(s) {', '.join(map(str, unknown))}; expected {', '.join(required + optional)}")
    return obj


def _class_id(v: object, name: str, num_classes: int) -> int:
    if not _is_int(v) or not 0 <= v < num_classes:
        raise InputError(f"{name}: expected a class id 0..{num_classes - 1}, got {v!r}")
    return int(v)


def _points(v: object, name: str, hw: tuple[int, int], limits: Limits) -> np.ndarray:
    h, w = hw
    if not isinstance(v, list) or not 3 <= len(v) <= limits.max_vertices:
        got = f"{len(v)} vertices" if isinstance(v, list) else type(v).__name__
        raise InputError(f"{name}: expected a list of 3..{limits.max_vertices} [x, y] vertices, got {got}")
    for i, p in enumerate(v):
        if not (isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and _is_int(p[1])):
            raise InputError(f"{name}[{i}]: expected [x, y] integer pixel coordinates, got {p!r}")
        if not (0 <= p[0] < w and 0 <= p[1] < h):
            raise InputError(f"{name}[{i}]: ({p[0]}, {p[1]}) lies outside the {w}x{h} frame")
    return np.asarray(v, np.int32).reshape(-1, 2)


def _click(v: object, name: str, hw: tuple[int, int], num_classes: int) -> Click:
    d = _check_keys(v, name, ("kind", "ts"), ("x", "y", "class_id"))
    if d["kind"] not in CLICK_KINDS:
        raise InputError(f"{name}.kind: expected one of {', '.join(CLICK_KINDS)}, got {d['kind']!r}")
    if not _is_number(d["ts"]):
        raise InputError(f"{name}.ts: expected a time in seconds, got {d['ts']!r}")
    x, y = d.get("x"), d.get("y")
    if (x is None) != (y is None):
        raise InputError(f"{name}: give both x and y or neither")
    if x is not None:
        h, w = hw
        if not (_is_number(x) and _is_number(y) and 0 <= x < w and 0 <= y < h):
            raise InputError(f"{name}: ({x!r}, {y!r}) is not a point of the {w}x{h} frame")
        x, y = float(x), float(y)
    cid = d.get("class_id")
    if cid is not None:
        cid = _class_id(cid, f"{name}.class_id", num_classes)
    return Click(str(d["kind"]), x, y, cid, float(d["ts"]))


def parse_annotation(
    body: object, *, hw: tuple[int, int], num_classes: int, limits: Limits = Limits()
) -> Drawing:
    """Check and parse an annotation request body (the module docstring's format).

    Args:
        body: the decoded JSON.
        hw: the frame's (H, W): every coordinate must lie inside it.
        num_classes: class ids must be 0..num_classes-1.
        limits: size caps.

    Raises:
        InputError: anything malformed; the message names the field.
    """
    d = _check_keys(body, "annotation", ("polygons",), ("fill", "click_log"))
    fill, fill_class = None, None
    if d.get("fill") is not None:
        f = _check_keys(d["fill"], "fill", ("kind",), ("class_id",))
        if f["kind"] == "class":
            fill, fill_class = "class", _class_id(f.get("class_id"), "fill.class_id", num_classes)
        elif f["kind"] == "prediction":
            if "class_id" in f:
                raise InputError("fill: a prediction fill takes no class_id")
            fill = "prediction"
        else:
            raise InputError(f"fill.kind: expected 'class' or 'prediction', got {f['kind']!r}")
    raw = d["polygons"]
    if not isinstance(raw, list) or len(raw) > limits.max_polygons:
        got = f"{len(raw)} polygons" if isinstance(raw, list) else type(raw).__name__
        raise InputError(f"polygons: expected a list of at most {limits.max_polygons} polygons, got {got}")
    polygons = []
    total = 0
    for i, p in enumerate(raw):
        p = _check_keys(p, f"polygons[{i}]", ("class_id", "points"))
        total += len(p["points"]) if isinstance(p["points"], list) else 0
        if total > limits.max_total_vertices:
            raise InputError(f"polygons: more than {limits.max_total_vertices} vertices in one annotation")
        polygons.append(
            DrawnPolygon(
                _class_id(p["class_id"], f"polygons[{i}].class_id", num_classes),
                _points(p["points"], f"polygons[{i}].points", hw, limits),
            )
        )
    if fill is None and not polygons:
        raise InputError("annotation: empty; draw a polygon, fill the sample with a class or accept the prediction")
    log = d.get("click_log", [])
    if not isinstance(log, list) or len(log) > limits.max_clicks:
        got = f"{len(log)} entries" if isinstance(log, list) else type(log).__name__
        raise InputError(f"click_log: expected a list of at most {limits.max_clicks} clicks, got {got}")
    clicks = tuple(_click(c, f"click_log[{i}]", hw, num_classes) for i, c in enumerate(log))
    return Drawing(fill, fill_class, tuple(polygons), clicks)

"""The session store: one SQLite database per session folder.

It holds everything a session needs to resume: settings, classes, selections, annotations with
their clicks and click logs, iterations with their stage, metrics, timings and checkpoint paths.
Every write is one transaction, committed before the call returns (``synchronous=FULL``), so an
acknowledged annotation survives a killed process. ``hvsa simulate``, ``hvsa serve`` and
``hvsa bench`` all go through this module.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hvsa.errors import StoreError

__all__ = [
    "Store",
    "SelectionRow",
    "AnnotationRow",
    "IterationRow",
    "STAGES",
    "DB_NAME",
    "encode_png",
    "decode_png",
]

DB_NAME = "hvsa.sqlite"
SCHEMA_VERSION = 1

# Stages of an iteration, in order. An iteration row is created at "selected".
STAGES = ("selected", "annotated", "finetuned", "done")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS iterations (
    iteration  INTEGER PRIMARY KEY,
    stage      TEXT NOT NULL,
    samples    INTEGER NOT NULL DEFAULT 0,
    budget     REAL,
    metrics    TEXT NOT NULL DEFAULT '{}',
    seconds    TEXT NOT NULL DEFAULT '{}',
    info       TEXT NOT NULL DEFAULT '{}',
    checkpoint TEXT,
    started    REAL NOT NULL,
    finished   REAL
);
CREATE TABLE IF NOT EXISTS selections (
    pool_index INTEGER PRIMARY KEY,
    t          INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    iteration  INTEGER NOT NULL,
    rank       INTEGER NOT NULL,
    est_clicks REAL
);
CREATE INDEX IF NOT EXISTS selections_iteration ON selections (iteration);
CREATE TABLE IF NOT EXISTS annotations (
    pool_index INTEGER PRIMARY KEY,
    t          INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    iteration  INTEGER NOT NULL,
    clicks     INTEGER NOT NULL,
    pixels     INTEGER NOT NULL,
    source     TEXT NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    labels     BLOB NOT NULL,
    polygons   TEXT NOT NULL DEFAULT '[]',
    created    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_t ON annotations (t);
CREATE TABLE IF NOT EXISTS click_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_index INTEGER NOT NULL,
    iteration  INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    x          REAL,
    y          REAL,
    class_id   INTEGER,
    ts         REAL NOT NULL
);
"""


def encode_png(a: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 (H, W) or (H, W, 3) array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(b: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(b)) as im:
        return np.asarray(im).copy()


@dataclass(frozen=True)
class SelectionRow:
    """A sample chosen for annotation in ``iteration`` (rank 0 = the selector's best)."""

    pool_index: int
    t: int
    n: int
    iteration: int
    rank: int
    est_clicks: float | None


@dataclass(frozen=True)
class AnnotationRow:
    """An annotated sample: its labels on the bounding box (x0, y0, x1, y1) (ignore index
    outside the sample), its clicks and where it came from ("simulated", "manual", "accepted")."""

    pool_index: int
    t: int
    n: int
    iteration: int
    clicks: int
    pixels: int
    source: str
    bbox: tuple[int, int, int, int]
    labels: np.ndarray
    polygons: list
    created: float


@dataclass(frozen=True)
class IterationRow:
    iteration: int
    stage: str
    samples: int
    budget: float | None
    metrics: dict
    seconds: dict
    info: dict
    checkpoint: str | None
    started: float
    finished: float | None

    @property
    def done(self) -> bool:
        return self.stage == "done"


class Store:
    """The SQLite database of one session folder. Thread-safe (one lock around the connection)."""

    def __init__(self, folder: str | os.PathLike, *, create: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if not create and not self.path.is_file():
            raise StoreError(f"{self.folder}: not an hvsa session folder (no {DB_NAME})")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot open the session database ({e})") from None
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: session schema version {version}, this hvsa reads version {SCHEMA_VERSION}"
            )

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT) under the store's lock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta

    def set_meta(self, key: str, value: object) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: object = None) -> object:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # ------------------------------------------------------------------ iterations

    def start_iteration(self, iteration: int, samples: int, budget: float | None, info: dict | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO iterations (iteration, stage, samples, budget, info, started)"
                " VALUES (?, 'selected', ?, ?, ?, ?)",
                (iteration, samples, budget, json.dumps(info or {}), time.time()),
            )

    def update_iteration(
        self,
        iteration: int,
        *,
        stage: str | None = None,
        metrics: dict | None = None,
        seconds: dict | None = None,
        info: dict | None = None,
        checkpoint: str | None = None,
    ) -> None:
        """Advance ``iteration``'s stage and merge the given fields (one transaction)."""
        if stage is not None and stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        with self.transaction() as db:
            row = db.execute(
                "SELECT stage, metrics, seconds, info FROM iterations WHERE iteration = ?", (iteration,)
            ).fetchone()
            if row is None:
                raise StoreError(f"iteration {iteration} does not exist in {self.path}")
            merged = [json.loads(row[1]), json.loads(row[2]), json.loads(row[3])]
            for d, new in zip(merged, (metrics, seconds, info)):
                if new:
                    d.update(new)
            db.execute(
                "UPDATE iterations SET stage = ?, metrics = ?, seconds = ?, info = ?,"
                " checkpoint = COALESCE(?, checkpoint), finished = ? WHERE iteration = ?",
                (
                    stage or row[0],
                    json.dumps(merged[0]),
                    json.dumps(merged[1]),
                    json.dumps(merged[2]),
                    checkpoint,
                    time.time() if stage == "done" else None,
                    iteration,
                ),
            )

    def iterations(self) -> list[IterationRow]:
        rows = self._query(
            "SELECT iteration, stage, samples, budget, metrics, seconds, info, checkpoint, started, finished"
            " FROM iterations ORDER BY iteration"
        )
        return [
            IterationRow(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), json.loads(r[6]), r[7], r[8], r[9])
            for r in rows
        ]

    def iteration(self, k: int) -> IterationRow | None:
        return next((r for r in self.iterations() if r.iteration == k), None)

    # ------------------------------------------------------------------ selections

    def add_selections(self, iteration: int, rows: list[tuple[int, int, int, float | None]]) -> None:
        """Record the picks (pool_index, t, n, est_clicks) of ``iteration``, best first."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO selections (pool_index, t, n, iteration, rank, est_clicks) VALUES (?, ?, ?, ?, ?, ?)",
                [(int(p), int(t), int(n), iteration, r, None if e is None else float(e)) for r, (p, t, n, e) in enumerate(rows)],
            )

    def selections(self, iteration: int | None = None) -> list[SelectionRow]:
        sql = "SELECT pool_index, t, n, iteration, rank, est_clicks FROM selections"
        args: tuple = ()
        if iteration is not None:
            sql += " WHERE iteration = ?"
            args = (iteration,)
        return [SelectionRow(*r) for r in self._query(sql + " ORDER BY iteration, rank", args)]

    def drop_selections(self, iteration: int, pool_indices: Sequence[int]) -> None:
        """Withdraw picks of ``iteration`` that were never annotated (the iteration's click
        allowance ran out first); they become free for later iterations, and the iteration's
        sample count follows."""
        if not pool_indices:
            return
        with self.transaction() as db:
            db.executemany("DELETE FROM selections WHERE iteration = ? AND pool_index = ?",
                           [(iteration, int(p)) for p in pool_indices])
            db.execute("UPDATE iterations SET samples = (SELECT COUNT(*) FROM selections WHERE iteration = ?)"
                       " WHERE iteration = ?", (iteration, iteration))

    def selected_pool_indices(self) -> np.ndarray:
        return np.array([r[0] for r in self._query("SELECT pool_index FROM selections")], np.int64)

    # ------------------------------------------------------------------ annotations

    def add_annotation(
        self,
        *,
        pool_index: int,
        t: int,
        n: int,
        iteration: int,
        clicks: int,
        source: str,
        bbox: tuple[int, int, int, int],
        labels: np.ndarray,
        polygons: list | None = None,
        ignore_index: int = 255,
        click_log: list[dict] | None = None,
    ) -> None:
        """Store (or replace) the annotation of one sample and its click log, atomically.

        ``labels``: uint8 (y1 - y0, x1 - x0) on the bounding box, ``ignore_index`` outside the
        sample.
        """
        x0, y0, x1, y1 = (int(v) for v in bbox)
        if labels.shape != (y1 - y0, x1 - x0) or labels.dtype != np.uint8:
            raise ValueError(f"annotation labels of shape {labels.shape} do not fit bbox {bbox}")
        pixels = int(np.count_nonzero(labels != ignore_index))
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO annotations (pool_index, t, n, iteration, clicks, pixels, source,"
                " x0, y0, x1, y1, labels, polygons, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(pool_index), int(t), int(n), int(iteration), int(clicks), pixels, source,
                    x0, y0, x1, y1, encode_png(labels), json.dumps(polygons or []), now,
                ),
            )
            if click_log:
                db.executemany(
                    "INSERT INTO click_log (pool_index, iteration, kind, x, y, class_id, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (int(pool_index), int(iteration), str(c.get("kind", "vertex")), c.get("x"), c.get("y"),
                         c.get("class_id"), float(c.get("ts", now)))
                        for c in click_log
                    ],
                )

    def _annotation_rows(self, where: str = "", args: tuple = ()) -> list[AnnotationRow]:
        rows = self._query(
            "SELECT pool_index, t, n, iteration, clicks, pixels, source, x0, y0, x1, y1, labels, polygons, created"
            f" FROM annotations {where} ORDER BY iteration, t, n",
            args,
        )
        return [
            AnnotationRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], (r[7], r[8], r[9], r[10]),
                          decode_png(r[11]), json.loads(r[12]), r[13])
            for r in rows
        ]

    def annotations(self, *, t: int | None = None, iteration: int | None = None) -> list[AnnotationRow]:
        if t is not None:
            return self._annotation_rows("WHERE t = ?", (t,))
        if iteration is not None:
            return self._annotation_rows("WHERE iteration = ?", (iteration,))
        return self._annotation_rows()

    def annotated_pool_indices(self) -> np.ndarray:
        return np.array([r[0] for r in self._query("SELECT pool_index FROM annotations ORDER BY pool_index")], np.int64)

    def annotation_count(self, iteration: int | None = None) -> int:
        """Annotated samples (of one iteration, or in all)."""
        if iteration is None:
            return int(self._query("SELECT COUNT(*) FROM annotations")[0][0])
        return int(self._query("SELECT COUNT(*) FROM annotations WHERE iteration = ?", (iteration,))[0][0])

    def annotated_frames(self) -> list[int]:
        return [r[0] for r in self._query("SELECT DISTINCT t FROM annotations ORDER BY t")]

    def clicks_total(self, up_to_iteration: int | None = None) -> tuple[int, int]:
        """(clicks, annotated pixels) summed over annotations (of iterations <= the given one)."""
        sql = "SELECT COALESCE(SUM(clicks), 0), COALESCE(SUM(pixels), 0) FROM annotations"
        args: tuple = ()
        if up_to_iteration is not None:
            sql += " WHERE iteration <= ?"
            args = (up_to_iteration,)
        c, p = self._query(sql, args)[0]
        return int(c), int(p)

    def charged_and_estimated(self, iterations: Sequence[int] | None = None) -> tuple[float, float]:
        """(charged clicks, estimated clicks) summed over selected samples that were annotated
        and had an estimate (of the given iterations only, when given): their ratio calibrates
        later estimates."""
        sql = ("SELECT COALESCE(SUM(a.clicks), 0), COALESCE(SUM(s.est_clicks), 0) FROM selections s"
               " JOIN annotations a ON a.pool_index = s.pool_index WHERE s.est_clicks IS NOT NULL")
        args: tuple = ()
        if iterations is not None:
            if not iterations:
                return 0.0, 0.0
            sql += f" AND s.iteration IN ({', '.join('?' * len(iterations))})"
            args = tuple(int(i) for i in iterations)
        c, e = self._query(sql, args)[0]
        return float(c), float(e)

    def click_log(self, pool_index: int | None = None) -> list[dict]:
        sql = "SELECT pool_index, iteration, kind, x, y, class_id, ts FROM click_log"
        args: tuple = ()
        if pool_index is not None:
            sql += " WHERE pool_index = ?"
            args = (pool_index,)
        keys = ("pool_index", "iteration", "kind", "x", "y", "class_id", "ts")
        return [dict(zip(keys, r)) for r in self._query(sql + " ORDER BY id", args)]

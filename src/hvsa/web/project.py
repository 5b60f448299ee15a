"""The project behind the annotation app: one session, one worker thread, one lock.

A project is a session folder (:mod:`hvsa.session`) opened for a person. Its life is a cycle of
*phases*: "preparing" (caches and the first prediction), "annotating" (the person labels the
batch), then, once the batch is complete, "training" -> "predicting" -> "selecting" in the
background, and "annotating" again with the next batch. "failed" holds the error of a
background step (completing the batch again retries it).

Threads. The worker thread runs everything that touches the network (prepare, fine-tune,
predict, select) and exports, one job at a time. Request handlers run on the server's thread
pool and only read (frames and predictions come from disk arrays read with ``pread``, the store
has its own lock) or, in phase "annotating" only, commit annotations. One lock guards every
phase change and every annotation write, so no annotation is written once a batch has been
handed to the worker, and the network never sees a half-painted annotation map.

Durability and resume. An annotation is committed to the store before :meth:`Project.save`
returns. Completing a batch records the iteration's "annotated" stage before the worker starts;
a restarted server resumes each stage from the store exactly as :func:`hvsa.session.run_loop`
does (fine-tune, predict, select), or waits for the person when the batch is still open.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from hvsa.errors import InputError, StoreError
from hvsa.session import Batch, Session
from hvsa.store import DB_NAME
from hvsa.types import SampleId
from hvsa.video.classes import Classes
from hvsa.web.drawing import drawing_labels, mask_runs
from hvsa.web.payloads import Drawing

__all__ = ["Project", "Activity", "NotFoundError", "ConflictError", "open_session", "PHASES"]

log = logging.getLogger("hvsa.web")

PHASES = ("starting", "preparing", "annotating", "training", "predicting", "selecting", "failed")

_SERVE_META = "serve"
EXPORT_FOLDER = Path("export") / "png"


class NotFoundError(InputError):
    """The request names a frame or sample the project does not have (HTTP 404)."""


class ConflictError(InputError):
    """The request does not fit the project's phase, e.g. saving while training (HTTP 409)."""


class _Stopped(Exception):
    """Raised inside a background step when the project closes."""


@dataclass(frozen=True)
class Activity:
    """What the project is doing: its phase, progress (``done`` of ``total`` steps or frames)
    and, in phase "failed", the error."""

    phase: str
    done: int = 0
    total: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ExportStatus:
    """The last export: "queued", "running", "done" or "failed", where, how many frames."""

    state: str
    folder: str
    frames: int = 0
    error: str | None = None


def open_session(
    out: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    classes: str | os.PathLike | None = None,
    granularity: str | None = None,
    per_iteration: int | None = None,
    **create: object,
) -> tuple[Session, int]:
    """Open the project folder ``out``, or create it from ``data``; returns (session, b).

    A new project needs ``data``; ``granularity`` defaults to "frame" and ``per_iteration``
    (b, samples per batch) to 10; ``create`` passes on to :meth:`Session.create` (size, seed,
    selector, model, finetune, device...). An existing project keeps its settings: ``data``,
    ``classes`` and ``granularity``, when given, must match them; ``per_iteration`` replaces the
    stored b from the next batch on.
    """
    from hvsa.pools import parse_granularity

    out = Path(out)
    if not (out / DB_NAME).exists():
        if data is None:
            raise InputError(f"{out}: no project there yet; pass the data folder or video to create it")
        b = 10 if per_iteration is None else int(per_iteration)
        session = Session.create(out, data, classes=classes, granularity=granularity or "frame", **create)
        session.store.set_meta(_SERVE_META, {"per_iteration": b})
        return session, b
    device = str(create.get("device", "cpu"))
    session = Session.open(out, device=device)
    try:
        config = session.config
        if data is not None and Path(data).resolve() != Path(config.data):
            raise StoreError(f"{out}: the project labels {config.data}, not {Path(data).resolve()}; choose another --out")
        if granularity is not None and str(parse_granularity(granularity)) != config.granularity:
            raise StoreError(f"{out}: the project's granularity is {config.granularity}, not {granularity}")
        if classes is not None and Classes.from_json(classes) != session.classes:
            raise StoreError(f"{out}: {classes} differs from the project's classes {session.classes.names}")
        stored = (session.store.get_meta(_SERVE_META) or {}).get("per_iteration", 10)
        b = int(stored if per_iteration is None else per_iteration)
        if b != stored:
            session.store.set_meta(_SERVE_META, {"per_iteration": b})
        return session, b
    except BaseException:
        session.close()
        raise


class Project:
    """A session served to a person. Call :meth:`start` to resume it in the background and
    :meth:`close` to stop the worker; the caller owns (and closes) the session.

    Args:
        session: the open session.
        per_iteration: b, samples per batch.
    """

    def __init__(self, session: Session, per_iteration: int) -> None:
        if isinstance(per_iteration, bool) or int(per_iteration) < 1:
            raise InputError(f"per-iteration: expected >= 1, got {per_iteration}")
        self.session = session
        self.per_iteration = int(per_iteration)
        self._lock = threading.RLock()
        self._activity = Activity("starting")
        self._export: ExportStatus | None = None
        self._batch: Batch | None = None
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="hvsa-worker", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker: prepare the caches, then resume where the store says."""
        self._jobs.put(self._resume)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the worker (a running fine-tune stops at its next step and resumes next time).
        Returns False when it did not stop within ``timeout`` seconds."""
        self._stop.set()
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            try:
                job()
            except _Stopped:
                return
            except Exception as e:  # noqa: BLE001 - reported to the page, the server keeps serving
                log.exception("background step failed")
                self._set(Activity("failed", error=f"{type(e).__name__}: {e}"))

    def _set(self, activity: Activity) -> None:
        with self._lock:
            self._activity = activity

    def _progress(self, phase: str) -> Callable[..., None]:
        def report(done: int, total: int, *_: object) -> None:
            if self._stop.is_set():
                raise _Stopped
            self._set(Activity(phase, done, total))

        return report

    # ------------------------------------------------------------------ background steps

    def _resume(self) -> None:
        self._set(Activity("preparing"))
        setup = self.session.prepare()
        self.session.store.set_meta("setup_seconds", setup)
        self._advance()

    def _advance(self) -> None:
        """Run the iteration's remaining stages (as :func:`hvsa.session.run_loop` does) until the
        batch needs the person."""
        s = self.session
        while not self._stop.is_set():
            cur = s.current
            if cur is None:
                self._set(Activity("selecting"))
                k = s.completed + 1
                start = time.perf_counter()
                s.select(self.per_iteration)
                s.store.update_iteration(k, seconds={"select": time.perf_counter() - start})
                continue
            k, seconds = cur.iteration, dict(cur.seconds)
            if cur.stage == "selected":
                with self._lock:
                    self._batch = s.select()
                    self._activity = Activity("annotating")
                return
            if cur.stage == "annotated":
                total = s.config.finetune.steps_for(s.num_frames)
                self._set(Activity("training", 0, total))
                start = time.perf_counter()
                s.finetune(show_progress=False, on_step=self._progress("training"))
                seconds["finetune"] = time.perf_counter() - start
                s.store.update_iteration(k, seconds=seconds)
            self._set(Activity("predicting", 0, s.num_frames))
            start = time.perf_counter()
            s.predict(estimate_clicks=False, on_frame=self._progress("predicting"))
            seconds["predict"] = time.perf_counter() - start
            seconds["total"] = sum(v for key, v in seconds.items() if key != "total")
            s.store.update_iteration(k, seconds=seconds)
            s.write_report()

    def _run_export(self) -> None:
        status = self._export
        self._export = replace(status, state="running")
        try:
            self.session.export(self.session.folder / EXPORT_FOLDER, "png")
        except Exception as e:  # noqa: BLE001 - reported to the page
            log.exception("export failed")
            self._export = replace(status, state="failed", error=f"{type(e).__name__}: {e}")
            return
        self._export = replace(status, state="done", frames=self.session.num_frames)

    # ------------------------------------------------------------------ requests

    @property
    def activity(self) -> Activity:
        with self._lock:
            return self._activity

    @property
    def batch(self) -> Batch | None:
        """The batch being annotated (None before the first selection)."""
        with self._lock:
            return self._batch

    def _sample_of(self, pool_index: int) -> tuple[SampleId, int]:
        """(sample id, iteration) of a selected sample; NotFoundError otherwise."""
        row = next((r for r in self.session.store.selections() if r.pool_index == pool_index), None)
        if row is None:
            raise NotFoundError(f"sample {pool_index}: not a selected sample of this project")
        return SampleId(row.t, row.n), row.iteration

    def check_frame(self, t: int) -> int:
        if not 0 <= t < self.session.num_frames:
            raise NotFoundError(f"frame {t}: out of range 0..{self.session.num_frames - 1}")
        return t

    def sample(self, pool_index: int) -> dict:
        """A selected sample: frame, bbox, mask (run lengths over the bbox, :func:`mask_runs`)
        and its saved annotation, if any."""
        sid, k = self._sample_of(pool_index)
        req = self.session.request(sid)
        x0, y0, x1, y1 = req.bbox
        saved = [r for r in self.session.store.annotations(t=sid.t) if r.pool_index == req.pool_index]
        annotation = None
        if saved:
            r = saved[0]
            annotation = {"clicks": r.clicks, "pixels": r.pixels, "source": r.source, "polygons": r.polygons,
                          "iteration": r.iteration}
        return {
            "pool_index": req.pool_index,
            "t": sid.t,
            "n": sid.n,
            "frame": self.session.names[sid.t],
            "iteration": k,
            "bbox": [x0, y0, x1, y1],
            "mask_runs": mask_runs(req.mask[y0:y1, x0:x1]),
            "annotation": annotation,
        }

    def save(self, pool_index: int, drawing: Drawing) -> dict:
        """Rasterise, price and commit one sample's annotation; returns the acknowledgement
        (after the commit)."""
        sid, k = self._sample_of(pool_index)
        with self._lock:
            batch = self._batch
            if self._activity.phase != "annotating" or batch is None:
                raise ConflictError(f"cannot save while the project is {self._activity.phase}; wait for the next batch")
            if batch.iteration != k or int(pool_index) not in batch.pool_indices.tolist():
                raise ConflictError(f"sample {pool_index} belongs to iteration {k}, not to the open batch")
            s = self.session
            prediction = s.prediction(sid.t)[0] if drawing.fill == "prediction" else None
            answer = drawing_labels(drawing, s.request(sid), prediction, ignore_index=s.classes.ignore_index)
            s.add_annotation(sid, answer, iteration=k)
        done = self._annotated(batch)
        return {
            "saved": True,
            "pool_index": int(pool_index),
            "clicks": answer.clicks,
            "source": answer.source,
            "pixels": int(np.count_nonzero(answer.labels != s.classes.ignore_index)),
            "batch_annotated": int(done.sum()),
            "batch_size": len(batch),
        }

    def _annotated(self, batch: Batch) -> np.ndarray:
        return np.isin(batch.pool_indices, self.session.store.annotated_pool_indices())

    def complete_batch(self) -> Activity:
        """Hand the annotated batch to the worker (fine-tune, predict, select the next), or
        retry a failed background step."""
        with self._lock:
            phase = self._activity.phase
            if phase == "failed":  # retry from the top: preparing is cheap once its caches are filled
                self._activity = Activity("preparing")
                self._jobs.put(self._resume)
                return self._activity
            batch = self._batch
            if phase != "annotating" or batch is None:
                raise ConflictError(f"the project is {phase}; there is no open batch to complete")
            if len(batch) == 0:
                raise ConflictError("the batch is empty: every sample of the video is annotated")
            missing = batch.pool_indices[~self._annotated(batch)]
            if missing.size:
                raise ConflictError(f"{missing.size} sample(s) of the batch are not annotated yet: {missing.tolist()}")
            cur = self.session.current
            waited = time.time() - cur.started
            self.session.store.update_iteration(
                batch.iteration, stage="annotated", seconds={**cur.seconds, "annotate": waited}
            )
            self._activity = Activity("training")
            self._jobs.put(self._advance)
            return self._activity

    def export(self) -> ExportStatus:
        """Queue an export of every frame's labels as PNG index masks (``PROJECT/export/png``);
        it runs after any background step in progress."""
        with self._lock:
            if self._export is not None and self._export.state in ("queued", "running"):
                return self._export
            self._export = ExportStatus("queued", str(self.session.folder / EXPORT_FOLDER))
            self._jobs.put(self._run_export)
            return self._export

    def frame_confidence(self) -> list[float] | None:
        """Mean margin of every frame's latest prediction, or None before the first one."""
        try:
            return [round(float(v), 4) for v in self.session.frame_confidence()]
        except (FileNotFoundError, KeyError):
            return None

    def state(self) -> dict:
        """The whole project as the page sees it (polled)."""
        s = self.session
        activity = self.activity
        batch = self.batch
        samples = []
        if batch is not None:
            saved = {r.pool_index: r for r in s.store.annotations(iteration=batch.iteration)}
            for sid, p in zip(batch.samples, batch.pool_indices.tolist()):
                r = saved.get(p)
                samples.append({"pool_index": p, "t": sid.t, "n": sid.n, "annotated": r is not None,
                                "clicks": r.clicks if r else None, "source": r.source if r else None})
        ready = activity.phase not in ("starting", "preparing")
        clicks, pixels = s.store.clicks_total()
        return {
            "project": {
                "folder": str(s.folder),
                "data": s.config.data,
                "frames": s.num_frames,
                "width": s.hw[1],
                "height": s.hw[0],
                "granularity": s.config.granularity,
                "per_iteration": self.per_iteration,
                "ground_truth": s.gt is not None,
                "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in s.classes],
                "ignore_index": s.classes.ignore_index,
            },
            "activity": asdict(activity),
            "completed": s.completed,
            "prediction_iteration": int(s.store.get_meta("prediction_iteration", 0)) if ready else None,
            "batch": None if batch is None else {"iteration": batch.iteration, "samples": samples},
            "clicks": clicks,
            "annotated_pixels": pixels,
            "iterations": s.report()["iterations"] if ready else [],
            "export": None if self._export is None else asdict(self._export),
        }

"""The HVSA loop over one video, persisted in a session folder.

A session folder holds the SQLite store (:mod:`hvsa.store`), the effective configuration
(``config.json``), checkpoints, per-iteration selection statistics and the disk caches
(frames, flows, encoder taps, superpixels, predictions, annotation maps). ``hvsa simulate``,
``hvsa serve`` and ``hvsa bench`` all create and reopen sessions through this module, so a
simulated session can be opened in the app, resumed after a kill, or exported.

One iteration = :meth:`Session.select` -> :meth:`Session.annotate` (or
:meth:`Session.add_annotation` per sample, from the web app) -> :meth:`Session.finetune` ->
:meth:`Session.predict`. Each step records its stage in the store before returning, and
:func:`run_loop` resumes an interrupted iteration at the step where it stopped; every random
choice comes from a generator seeded by (seed, iteration, step), so a resumed run makes the same
choices as an uninterrupted one.

Layout::

    OUT/hvsa.sqlite          store: settings, selections, annotations, iterations
    OUT/config.json          effective configuration (written at creation)
    OUT/report.json          a view of the store (DESIGN.md schema)
    OUT/checkpoints/iter-K.pt  the network after iteration K (iter-0: the start)
    OUT/state/pred-K.npz     per-sample uncertainty, features and click estimates after K
                             (and the uncertainty split by class, or the fused labels' summed
                             doubt, for the selectors that rank by them)
    OUT/cache/...            frames, flows, taps, pools, latest prediction, annotation maps
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from hvsa.annotate.base import Annotator, SampleLabels, SampleRequest
from hvsa.checks import check_device, check_path
from hvsa.cost import DEFAULT_EPSILON, pool_clicks, video_clicks
from hvsa.diskarray import DiskArray
from hvsa.errors import InputError, StoreError
from hvsa.finetune import FinetuneConfig
from hvsa.memory import peak_rss_mb
from hvsa.progress import progress
from hvsa.store import DB_NAME, STAGES, IterationRow, Store
from hvsa.types import SampleId
from hvsa.video.classes import Classes

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Session", "SessionConfig", "Batch", "run_loop", "LoopSettings"]

_CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class SessionConfig:
    """The settings a session is created with (saved in the store and as ``config.json``).

    Attributes:
        data: the data folder or video the session labels.
        granularity: sample pool ("frame", "rec<N>", "sp<N>").
        size: working (W, H).
        seed: the seed of every random choice.
        selector: selection strategy name (:data:`hvsa.select.SELECTORS`).
        model: checkpoint the network starts from, or None for ImageNet encoder + new decoder.
        decoder_channels: width of a new decoder.
        finetune: fine-tuning settings.
        flow_preset: DIS preset of the flow cache.
        epsilon: polygon simplification tolerance of the click model, pixels.
        method: labelling method name (:data:`hvsa.methods.METHODS`): "hvsa" (test-time
            fine-tuning), "finetune-only" (lambda_tc = 0), "lp" (label propagation), "copy".
        cache_dir: folder of the video caches (frames, labels, flows, encoder taps, pools), all
            keyed by content, so sessions of one video may share it; None: ``OUT/cache``.
        samples_from: a reference session folder (same video, size and granularity): each
            iteration annotates the samples the reference chose in that iteration, so methods
            compare on the same annotated samples; None: this session's selector chooses.
    """

    data: str
    granularity: str = "frame"
    size: tuple[int, int] | None = None
    seed: int = 0
    selector: str = "hvsa"
    model: str | None = None
    decoder_channels: int = 64
    finetune: FinetuneConfig = FinetuneConfig()
    flow_preset: str = "medium"
    epsilon: float = DEFAULT_EPSILON
    method: str = "hvsa"
    cache_dir: str | None = None
    samples_from: str | None = None

    def to_dict(self) -> dict:
        return {
            "data": self.data,
            "granularity": self.granularity,
            "size": list(self.size) if self.size else None,
            "seed": self.seed,
            "selector": self.selector,
            "model": self.model,
            "decoder_channels": self.decoder_channels,
            "finetune": self.finetune.to_dict(),
            "flow_preset": self.flow_preset,
            "epsilon": self.epsilon,
            "method": self.method,
            "cache_dir": self.cache_dir,
            "samples_from": self.samples_from,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SessionConfig":
        return cls(
            data=d["data"],
            granularity=d["granularity"],
            size=tuple(d["size"]) if d.get("size") else None,
            seed=int(d["seed"]),
            selector=d["selector"],
            model=d.get("model"),
            decoder_channels=int(d.get("decoder_channels", 64)),
            # a session saved before views (the hold, anchored windows) existed trained without them
            finetune=FinetuneConfig(**({"view_share": 0.0, "hold_unseen": 0.0, "anchor_windows": False} | d["finetune"])),
            flow_preset=d.get("flow_preset", "medium"),
            epsilon=float(d.get("epsilon", DEFAULT_EPSILON)),
            method=d.get("method", "hvsa"),
            cache_dir=d.get("cache_dir"),
            samples_from=d.get("samples_from"),
        )


class _FrameOutput(NamedTuple):
    """One frame's prediction (:meth:`Session._frame_outputs`).

    Attributes:
        t: frame index.
        features: (1, D, h, w) network features (selection's diversity).
        labels: uint8 (H, W) the method's labels.
        uncertainty: float32 (H, W) 1 - their confidence.
        select_labels: uint8 (H, W) the labels selection prices clicks on (before refinement).
        select_uncertainty: float32 (H, W) the uncertainty selection ranks by (before refinement).
        select_runner_up: uint8 (H, W) the class each pixel hesitates towards: the softmax's
            second (or, where fusion chose the propagation's label, its first); the label
            itself where the labels come from propagation alone. None unless asked for.
        select_doubt: float32 (H, W) 1 - :func:`hvsa.methods.disagreement_margin` of fused labels
            (before refinement), what ``hvsa-disagree`` ranks by; the uncertainty otherwise.
    """

    t: int
    features: "torch.Tensor"
    labels: np.ndarray
    uncertainty: np.ndarray
    select_labels: np.ndarray
    select_uncertainty: np.ndarray
    select_runner_up: np.ndarray | None
    select_doubt: np.ndarray


@dataclass(frozen=True)
class Batch:
    """The samples selected in one iteration, best first.

    Attributes:
        iteration: 1-based iteration.
        samples: the sample ids.
        pool_indices: their pool indices, int64 (b,).
        est_clicks: estimated clicks of each sample, float64 (b,).
        budget: the click allowance the batch was fitted to, or None.
    """

    iteration: int
    samples: tuple[SampleId, ...]
    pool_indices: np.ndarray
    est_clicks: np.ndarray
    budget: float | None = None

    def __len__(self) -> int:
        return len(self.samples)


class _SessionTrainingData:
    """:class:`hvsa.finetune.TrainingData` over a session's caches."""

    def __init__(self, session: "Session") -> None:
        self._s = session
        self.num_frames = session.num_frames
        self.frame_hw = session.hw
        self.annotated = session.store.annotated_frames()
        self._annotated = set(self.annotated)

    def taps(self, t: int):  # noqa: ANN201 - list[torch.Tensor]
        return self._s.taps.get(t, self._s.device)

    def annotation(self, t: int) -> np.ndarray | None:
        return self._s.annotation_map(t) if t in self._annotated else None

    def flow(self, t: int, t2: int) -> np.ndarray:
        return self._s.flows.get(t, t2)

    def reliable(self, t: int, t2: int) -> np.ndarray:
        return self._s.flows.reliable(t, t2)

    def view(self, t: int, view):  # noqa: ANN001, ANN201 - View -> (list[torch.Tensor], np.ndarray)
        return self._s.views.get(t, view, self._s.device), view.labels(self._s.annotation_map(t))

    def prediction(self, t: int) -> tuple[np.ndarray, np.ndarray] | None:
        return self._s.prediction(t) if self._s._pred.is_filled(t) else None


class _TrainingDataWithPropagation(_SessionTrainingData):
    """:class:`_SessionTrainingData` that also gives the labels propagated from the annotations
    (``FinetuneConfig.propagated_targets``), read from the session's disk cache."""

    def __init__(self, session: "Session", labels: DiskArray, conf: DiskArray) -> None:
        super().__init__(session)
        self._labels, self._conf = labels, conf

    def propagated(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self._labels[t], self._conf[t].astype(np.float32)


class Session:
    """One video's labelling session, persisted in a folder. Use :meth:`create` or :meth:`open`."""

    def __init__(self, folder: Path, store: Store, config: SessionConfig, device: str = "cpu") -> None:
        import torch

        from hvsa.flow.cache import FlowCache
        from hvsa.methods import get_method
        from hvsa.model.taps import TapCache
        from hvsa.model.views import ViewCache
        from hvsa.pools import Pool
        from hvsa.select import make_selector
        from hvsa.video.data import open_data

        self.folder = folder
        self.store = store
        self.config = config
        self.device = torch.device(device)
        self.selector = make_selector(config.selector)
        self.method = get_method(config.method)
        cache = folder / "cache"
        video_cache = Path(config.cache_dir) if config.cache_dir else cache
        classes = Classes.from_dict(store.get_meta("classes"))
        self.data = open_data(config.data, config.size, classes=classes, cache_dir=video_cache)
        self._closers: list = [self.data]
        try:
            self.frames = self.data.frames
            self.classes = classes
            self.gt = self.data.labels
            self.num_frames = len(self.frames)
            self.hw = self.frames.hw
            if self.num_frames < 2:
                raise InputError(f"{config.data}: a video needs at least 2 frames, got {self.num_frames}")
            self.names = list(self.frames.names)
            self.pool = Pool(config.granularity, self.frames, cache_dir=video_cache / "pools")
            self._closers.append(self.pool)
            self.flows = FlowCache(self.frames, video_cache / "flows", preset=config.flow_preset)
            self._closers.append(self.flows)
            self.model = self._load_model()
            self.taps = TapCache(self.model, self.frames, video_cache / "taps", device=self.device)
            self._closers.append(self.taps)
            self.views = ViewCache(self.model, self.frames, video_cache / "taps", device=self.device)
            h, w = self.hw
            self._pred = DiskArray.open_or_create(cache / "pred.u8", self.num_frames, (h, w), np.uint8,
                                                  meta={"what": "latest prediction"})
            self._conf = DiskArray.open_or_create(cache / "confidence.u8", self.num_frames, (h, w), np.uint8,
                                                  meta={"what": "latest margin, 0..255"})
            self._closers += [self._pred, self._conf]
            self._annot = DiskArray.open_or_create(cache / "annotations.u8", self.num_frames, (h, w), np.uint8,
                                                   meta={"what": "annotation maps"})
            self._closers.append(self._annot)
            self._propagated: tuple[DiskArray, DiskArray] | None = None  # opened on first use
            self._rebuild_annotation_maps()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        data: str | os.PathLike,
        *,
        classes: Classes | str | os.PathLike | None = None,
        granularity: str = "frame",
        size: tuple[int, int] | str | None = None,
        seed: int = 0,
        selector: str = "hvsa",
        model: str | os.PathLike | None = None,
        decoder_channels: int = 64,
        finetune: FinetuneConfig | None = None,
        flow_preset: str = "medium",
        epsilon: float = DEFAULT_EPSILON,
        method: str = "hvsa",
        cache_dir: str | os.PathLike | None = None,
        samples_from: str | os.PathLike | None = None,
        device: str = "cpu",
    ) -> "Session":
        """Create a new session folder (it must not hold a session already).

        ``method`` names a labelling method (:data:`hvsa.methods.METHODS`); its fixed settings
        (``finetune-only``: lambda_tc = 0) override ``finetune`` in the saved configuration.
        ``cache_dir`` shares the video caches between sessions, ``samples_from`` replays a
        reference session's samples (see :class:`SessionConfig`).
        """
        from hvsa.checks import parse_size
        from hvsa.methods import get_method
        from hvsa.pools import parse_granularity
        from hvsa.select import SELECTORS
        from hvsa.video.data import open_data

        device = check_device(device)
        folder = Path(folder)
        if (folder / DB_NAME).exists():
            raise StoreError(f"{folder}: already holds a session; open it (--resume) or choose another folder")
        data = check_path(data, "data folder or video")
        granularity = str(parse_granularity(granularity))
        SELECTORS.get(selector)
        labelling = get_method(method)
        if model is not None:
            check_path(model, "model checkpoint", kind="file")
        wh = parse_size(size) if isinstance(size, str) else size
        if isinstance(classes, (str, os.PathLike)):
            classes = Classes.from_json(classes)
        cache_dir = Path(cache_dir).resolve() if cache_dir is not None else None
        with open_data(data, wh, classes=classes, cache_dir=cache_dir or folder / "cache") as probe:
            if probe.classes is None:
                raise InputError(f"{data}: no classes.json; pass classes (--classes FILE)")
            classes = probe.classes
            wh = probe.frames.size
        if samples_from is not None:
            samples_from = _check_reference(samples_from, Path(data).resolve(), granularity, tuple(wh))
        config = SessionConfig(
            data=str(Path(data).resolve()),
            granularity=granularity,
            size=tuple(wh),
            seed=int(seed),
            selector=selector,
            model=str(Path(model).resolve()) if model else None,
            decoder_channels=int(decoder_channels),
            finetune=labelling.finetune_config(finetune or FinetuneConfig()),
            flow_preset=flow_preset,
            epsilon=float(epsilon),
            method=labelling.name,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            samples_from=samples_from,
        )
        store = Store(folder, create=True)
        try:
            store.set_meta("config", config.to_dict())
            store.set_meta("classes", classes.to_dict())
            store.set_meta("created", time.time())
            tmp = folder / (_CONFIG_FILE + ".tmp")
            tmp.write_text(json.dumps({**config.to_dict(), "classes": classes.to_dict()}, indent=1))
            os.replace(tmp, folder / _CONFIG_FILE)
            return cls(folder, store, config, device)
        except BaseException:
            store.close()
            raise

    @classmethod
    def open(cls, folder: str | os.PathLike, *, device: str = "cpu") -> "Session":
        """Reopen a session folder where it stopped."""
        device = check_device(device)
        folder = check_path(folder, "session folder", kind="dir")
        store = Store(folder)
        try:
            raw = store.get_meta("config")
            if raw is None:
                raise StoreError(f"{folder}: the session was never fully created; delete it and start again")
            return cls(folder, store, SessionConfig.from_dict(raw), device)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        for c in reversed(getattr(self, "_closers", [])):
            c.close()
        self._closers = []
        self.store.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ model

    def _checkpoint_path(self, k: int) -> Path:
        return self.folder / "checkpoints" / f"iter-{k}.pt"

    def _latest_checkpoint(self) -> Path | None:
        """The checkpoint the network is loaded from: the newest fine-tuned one, else the start
        (iteration 0) when it was saved, else None."""
        latest = None
        for row in self.store.iterations():
            if STAGES.index(row.stage) >= STAGES.index("finetuned") and row.checkpoint:
                latest = row.checkpoint
        start = self._checkpoint_path(0)
        return Path(latest) if latest else (start if start.is_file() else None)

    def keep_latest_checkpoint(self) -> None:
        """Delete every checkpoint but the one a reopened session loads. Each is a whole network
        (12.5 MB); a finished run that nobody will roll back needs only its last."""
        keep = self._latest_checkpoint()
        saved = {self._checkpoint_path(0), *(Path(r.checkpoint) for r in self.store.iterations() if r.checkpoint)}
        for p in saved - {keep}:
            p.unlink(missing_ok=True)

    def _load_model(self):  # noqa: ANN202 - SegNet
        import torch

        from hvsa.model import ModelConfig, build_model, load_checkpoint, save_checkpoint

        path = self._latest_checkpoint()
        start = self._checkpoint_path(0)
        if path is not None:
            model, classes, _ = load_checkpoint(path)
        elif self.config.model:
            model, classes, _ = load_checkpoint(self.config.model)
            if classes.names != self.classes.names:
                raise InputError(
                    f"{self.config.model}: the model was trained for classes {classes.names},"
                    f" the video has {self.classes.names}"
                )
            save_checkpoint(start, model, self.classes, meta={"iteration": 0, "from": self.config.model})
        else:
            torch.manual_seed(self.config.seed)
            model = build_model(
                ModelConfig(num_classes=len(self.classes), decoder_channels=self.config.decoder_channels)
            )
            save_checkpoint(start, model, self.classes, meta={"iteration": 0})
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        return model.to(self.device).eval()

    # ------------------------------------------------------------------ state

    @property
    def iterations(self) -> list[IterationRow]:
        return self.store.iterations()

    @property
    def completed(self) -> int:
        """Number of iterations completed (stage "done")."""
        return sum(1 for r in self.store.iterations() if r.done)

    @property
    def current(self) -> IterationRow | None:
        """The iteration in progress (selected but not done), if any."""
        rows = [r for r in self.store.iterations() if not r.done]
        return rows[-1] if rows else None

    def _rng(self, iteration: int, step: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, iteration, step])

    @property
    def full_video_clicks(self) -> int | None:
        """Clicks to annotate every frame whole (ground truth needed); computed once, stored."""
        value = self.store.get_meta("full_video_clicks")
        if value is None and self.gt is not None:
            value = video_clicks(self.gt, epsilon=self.config.epsilon, ignore_index=self.classes.ignore_index)
            self.store.set_meta("full_video_clicks", int(value))
        return None if value is None else int(value)

    @property
    def pool_clicks(self) -> int | None:
        """Clicks to annotate every sample of the pool (ground truth needed): the scale of the
        click estimates in budget mode; computed once, stored."""
        value = self.store.get_meta("pool_clicks")
        if value is None and self.gt is not None:
            if self.config.granularity == "frame":  # one sample per frame: the full-video clicks
                value = self.full_video_clicks
            else:
                frames = progress(range(self.num_frames), total=self.num_frames, desc="pool clicks", unit="frame")
                value = sum(
                    int(pool_clicks(self.gt[t], self.pool.region_map(t), self.pool.num_samples(t),
                                    epsilon=self.config.epsilon, ignore_index=self.classes.ignore_index).sum())
                    for t in frames
                )
            self.store.set_meta("pool_clicks", int(value))
        return None if value is None else int(value)

    def prepare(self) -> dict:
        """Fill every cache the loop needs (flows, encoder taps, pools, first prediction).

        Idempotent; returns seconds per part. Running it up front keeps those one-off costs out
        of the iterations' timings.
        """
        seconds = {}
        start = time.perf_counter()
        self.flows.fill()
        seconds["flow"] = time.perf_counter() - start
        start = time.perf_counter()
        self.taps.fill()
        seconds["encode"] = time.perf_counter() - start
        if self.method.views:  # the views the method predicts from, once per video
            start = time.perf_counter()
            self.views.fill(self.method.views)
            seconds["encode_views"] = time.perf_counter() - start
        start = time.perf_counter()
        self.pool.fill()
        seconds["pool"] = time.perf_counter() - start
        if self.gt is not None:
            start = time.perf_counter()
            self.full_video_clicks  # noqa: B018 - computes and stores
            self.pool_clicks  # noqa: B018 - computes and stores
            seconds["full_video_clicks"] = time.perf_counter() - start
        if not self._stats_path(self._latest_prediction()).is_file():
            start = time.perf_counter()
            self.predict(iteration=0)
            seconds["initial_prediction"] = time.perf_counter() - start
        return seconds

    # ------------------------------------------------------------------ selection

    def _stats_path(self, k: int) -> Path:
        return self.folder / "state" / f"pred-{k}.npz"

    def _latest_prediction(self) -> int:
        """The iteration whose prediction is the latest complete one (0 = the start)."""
        done = [r.iteration for r in self.store.iterations() if r.done]
        return max(done) if done else 0

    def _load_stats(self, k: int) -> dict[str, np.ndarray]:
        """The selection statistics after iteration ``k``, predicted again when missing or when
        they lack what this session's selector needs (a file written for another selector)."""
        path = self._stats_path(k)
        if path.is_file():
            with np.load(path) as z:
                stats = {key: z[key] for key in z.files}
            if self._extra_stat_keys() <= stats.keys():
                return stats
        self.predict(iteration=k)
        with np.load(path) as z:
            return {key: z[key] for key in z.files}

    def _extra_stat_keys(self) -> set[str]:
        """The statistics beyond the usual that the selector needs: each sample's uncertainty
        split between its pixels' predicted and runner-up classes, and the predicted pixels per
        class (class-balanced selection); each sample's summed doubt of the fused labels
        (``hvsa-disagree``)."""
        needs = self.selector.needs
        keys = {"class_uncertainty", "class_pixels"} if "class_uncertainty" in needs else set()
        return keys | ({"disagreement"} & needs)

    def select(self, per_iteration: int | None = None, *, budget_clicks: float | None = None) -> Batch:
        """Select the next batch of samples and record it (starting a new iteration).

        Args:
            per_iteration: b, the number of samples (the paper's budget).
            budget_clicks: instead of b, a click allowance: b is chosen so the estimated clicks
                of the picks (the click model run on the current prediction) fit it, and the
                selector is given those estimates (uncertainty then counts per click).

        If an iteration is already in progress, its recorded batch is returned unchanged.
        """
        current = self.current
        if current is not None:
            return self._batch_of(current.iteration)
        if (per_iteration is None) == (budget_clicks is None):
            raise InputError("select: give exactly one of per_iteration (b) or budget_clicks")
        if per_iteration is not None and (isinstance(per_iteration, bool) or int(per_iteration) < 0):
            raise InputError(f"per-iteration: expected a number of samples >= 0, got {per_iteration}")
        k = self.completed + 1
        if self.config.samples_from is not None:
            return self._select_as_reference(k)
        stats = self._load_stats(self._latest_prediction())
        taken = np.union1d(self.store.annotated_pool_indices(), self.store.selected_pool_indices())
        free = np.setdiff1d(np.arange(len(self.pool)), taken)
        from hvsa.select import Candidates

        needs = self.selector.needs
        est, source = self._estimated_clicks(stats)
        est = est[free]
        candidates = Candidates(
            index=free,
            uncertainty=stats["uncertainty"][free] if "uncertainty" in needs else None,
            features=stats["features"][free].astype(np.float32) if "features" in needs else None,
            clicks=est if budget_clicks is not None else None,
            class_uncertainty=stats["class_uncertainty"][free] if "class_uncertainty" in needs else None,
            class_pixels=stats["class_pixels"] if "class_uncertainty" in needs else None,
            disagreement=stats["disagreement"][free] if "disagreement" in needs else None,
        )
        rng = self._rng(k, 1)
        if budget_clicks is None:
            picks = self.selector.select(candidates, int(per_iteration), iteration=self._selection_round(k), rng=rng)
        else:
            picks = self._fit_budget(candidates, float(budget_clicks), k, rng)
        chosen = free[picks]
        t, n = self.pool.sample_indices(chosen)
        self.store.start_iteration(k, len(chosen), budget_clicks,
                                   info={"selector": self.config.selector, "estimates": source})
        self.store.add_selections(k, [(p, a, b, e) for p, a, b, e in zip(chosen, t, n, est[picks])])
        return self._batch_of(k)

    def _selection_round(self, k: int) -> int:
        """The iteration the selector is told, for iteration ``k``: ``k`` when the network came
        from a checkpoint; otherwise 1 + the iterations before ``k`` that annotated something.

        The paper's first iteration chooses by diversity alone because no prediction of this
        video exists yet; a new decoder's margins are noise until it has been fine-tuned on some
        annotation, so until then (a budget too small for any sample, say) the selector stays in
        its first round.
        """
        if self.config.model is not None:
            return k
        rows = self.store.iterations()
        return 1 + sum(1 for r in rows if r.iteration < k and r.done and r.samples > 0)

    def _select_as_reference(self, k: int) -> Batch:
        """Start iteration ``k`` with the samples the reference session chose in its iteration ``k``."""
        with Store(Path(self.config.samples_from)) as ref:
            it = ref.iteration(k)
            if it is None:
                raise InputError(f"{self.config.samples_from}: the reference session has no iteration {k} yet; run it first")
            rows = ref.selections(k)
        self.store.start_iteration(k, len(rows), it.budget,
                                   info={"selector": self.config.selector, "samples_from": self.config.samples_from,
                                         "estimates": it.info.get("estimates")})
        self.store.add_selections(k, [(r.pool_index, r.t, r.n, r.est_clicks) for r in rows])
        return self._batch_of(k)

    def _estimated_clicks(self, stats: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        """(estimated clicks per sample float64, where they came from: "prior" or "prediction").

        The prior is the mean clicks per sample of the pool (at least 1): before any
        annotation, with a decoder that was never trained, the prediction says nothing about
        the content, so every sample is estimated at that. Afterwards the click model run on
        the latest prediction ranks the samples and, when the pool's total is known (ground
        truth: the budget's own denominator is priced from it too), is rescaled to that total.
        A young network's prediction is noisier than the truth in some places (specks, each a
        polygon) and smoother in others (a paraglider's lines, a fence), so its raw clicks are
        off by a video-wide factor that the total removes. What remains, the selector's taste
        for samples dearer (or cheaper) than their estimate, is corrected by
        :meth:`_click_calibration`. No sample is estimated below 1 click.
        """
        total = self.pool_clicks
        n = len(self.pool)
        if not self.store.annotated_frames() and self.config.model is None:
            return np.full(n, max(total / max(n, 1), 1.0) if total else 1.0), "prior"
        est = stats["est_clicks"].astype(np.float64)
        raw = float(est.sum())
        if total and raw > 0:
            est = est * (total / raw)
        return np.maximum(est * self._click_calibration(), 1.0), "prediction"

    def _click_calibration(self) -> float:
        """charged / estimated clicks over the annotated samples whose estimate came from a
        prediction (the selection-time estimate of a sample nobody had seen is an unbiased
        test of the estimator); 1 until there are such samples."""
        informed = [r.iteration for r in self.store.iterations() if r.info.get("estimates") == "prediction"]
        charged, estimated = self.store.charged_and_estimated(informed)
        return charged / estimated if estimated > 0 else 1.0

    def _fit_budget(self, candidates, allowance: float, k: int, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
        """Pick samples whose estimated clicks (``candidates.clicks``) fit ``allowance``.

        The selector chooses b = allowance / (their mean estimate) among the candidates that
        fit on their own; its picks are kept in rank order while the running total fits.
        Its first pick always fits, so a batch is empty only when no candidate does.
        """
        est = candidates.clicks
        fitting = np.flatnonzero(est <= allowance) if allowance > 0 else np.zeros(0, np.int64)
        if len(fitting) == 0:
            return np.zeros(0, np.int64)
        b = int(max(1, math.floor(allowance / float(np.mean(est[fitting])))))
        picks = fitting[self.selector.select(candidates.take(fitting), b, iteration=self._selection_round(k), rng=rng)]
        keep, spent = [], 0.0
        for p in picks:
            if spent + est[p] <= allowance:
                keep.append(p)
                spent += est[p]
        return np.asarray(keep, np.int64)

    def _batch_of(self, k: int) -> Batch:
        rows = self.store.selections(k)
        row = self.store.iteration(k)
        return Batch(
            iteration=k,
            samples=tuple(SampleId(r.t, r.n) for r in rows),
            pool_indices=np.array([r.pool_index for r in rows], np.int64),
            est_clicks=np.array([r.est_clicks if r.est_clicks is not None else np.nan for r in rows]),
            budget=row.budget if row else None,
        )

    # ------------------------------------------------------------------ annotation

    def request(self, sid: SampleId) -> SampleRequest:
        """What an annotator needs to label sample ``sid``."""
        mask = self.pool.sample_mask(sid)
        return SampleRequest(sid=sid, pool_index=self.pool.pool_index(sid), mask=mask, bbox=self.pool.sample_bbox(sid))

    def annotate(self, batch: Batch, annotator: Annotator) -> int:
        """Have ``annotator`` label the samples of ``batch`` not annotated yet, in rank order;
        returns the clicks charged. Each annotation is committed as soon as it is made.

        When the iteration has a click allowance (budget mode), the annotator is paid as they
        go. The batch was chosen on estimated clicks that fitted the allowance, but samples can
        cost more than estimated: a sample whose estimate exceeds what is left of the allowance
        is withdrawn (free again for later iterations) and the next ones are still tried, and
        once the clicks charged reach the allowance the rest of the batch is withdrawn. This
        bounds what an iteration spends beyond its allowance by the error of one estimate,
        however wrong the others were. What is left only shrinks, so a resumed iteration
        withdraws the same samples.
        """
        k = batch.iteration
        done = set(self.store.annotated_pool_indices().tolist())
        allowance = self.store.iteration(k).budget
        spent = self.store.clicks_total(k)[0] - self.store.clicks_total(k - 1)[0]  # in this iteration
        clicks = 0
        todo = [(sid, int(p), float(e)) for sid, p, e in zip(batch.samples, batch.pool_indices, batch.est_clicks)
                if int(p) not in done]
        withdrawn: list[int] = []
        for i, (sid, p, est) in enumerate(progress(todo, desc=f"annotating (iteration {k})", unit="sample")):
            if allowance is not None:
                left = allowance - spent
                if left <= 0:
                    withdrawn += [q for _, q, _ in todo[i:]]
                    break
                if est > left:  # NaN (no estimate) fits
                    withdrawn.append(p)
                    continue
            answer = annotator.annotate(self.request(sid))
            self.add_annotation(sid, answer, iteration=k)
            clicks += answer.clicks
            spent += answer.clicks
        self.store.drop_selections(k, withdrawn)
        self.store.update_iteration(k, stage="annotated")
        return clicks

    def add_annotation(self, sid: SampleId, answer: SampleLabels, *, iteration: int | None = None) -> None:
        """Store one sample's annotation (committed before returning) and update its frame's
        annotation map. ``iteration`` defaults to the iteration in progress."""
        if iteration is None:
            cur = self.current
            iteration = cur.iteration if cur else self.completed + 1
        req = self.request(sid)
        x0, y0, x1, y1 = req.bbox
        labels = np.asarray(answer.labels)
        if labels.shape != (y1 - y0, x1 - x0) or labels.dtype != np.uint8:
            raise InputError(
                f"annotation of sample {sid}: expected uint8 labels of shape {(y1 - y0, x1 - x0)}, got"
                f" {labels.dtype} {labels.shape}"
            )
        ignore = self.classes.ignore_index
        labels = np.where(req.mask[y0:y1, x0:x1], labels, ignore).astype(np.uint8)
        bad = self.classes.unknown_values(labels)
        if bad:
            raise InputError(f"annotation of sample {sid}: unknown class ids {bad}")
        self.store.add_annotation(
            pool_index=req.pool_index, t=sid.t, n=sid.n, iteration=iteration, clicks=answer.clicks,
            source=answer.source, bbox=req.bbox, labels=labels, polygons=answer.polygons,
            ignore_index=ignore, click_log=answer.click_log,
        )
        self._paint_annotation(sid.t, req.bbox, labels, req.mask)

    def _paint_annotation(self, t: int, bbox, labels: np.ndarray, mask: np.ndarray) -> None:  # noqa: ANN001
        x0, y0, x1, y1 = bbox
        m = self._annot[t] if self._annot.is_filled(t) else np.full(self.hw, self.classes.ignore_index, np.uint8)
        crop = m[y0:y1, x0:x1]
        sample = mask[y0:y1, x0:x1]
        crop[sample] = labels[sample]
        self._annot[t] = m

    def _rebuild_annotation_maps(self) -> None:
        """Make the annotation-map cache agree with the store (the source of truth)."""
        rows = self.store.annotations()
        stamp = [len(rows), sum(int(r.created * 1000) for r in rows)]
        if self.store.get_meta("annotation_maps") == stamp and all(self._annot.is_filled(t) for t in {r.t for r in rows}):
            return
        blank = np.full(self.hw, self.classes.ignore_index, np.uint8)
        maps: dict[int, np.ndarray] = {}
        for r in rows:
            m = maps.setdefault(r.t, blank.copy())
            x0, y0, x1, y1 = r.bbox
            sample = self.pool.sample_mask(SampleId(r.t, r.n))[y0:y1, x0:x1]
            m[y0:y1, x0:x1][sample] = r.labels[sample]
        for t in range(self.num_frames):
            if t in maps:
                self._annot[t] = maps[t]
            elif self._annot.is_filled(t):
                self._annot[t] = blank
        self.store.set_meta("annotation_maps", stamp)

    def annotation_map(self, t: int) -> np.ndarray:
        """uint8 (H, W): the annotated labels of frame ``t``, the ignore index elsewhere."""
        if self._annot.is_filled(t):
            return self._annot[t]
        return np.full(self.hw, self.classes.ignore_index, np.uint8)

    # ------------------------------------------------------------------ fine-tuning

    def finetune(
        self,
        *,
        steps: int | None = None,
        show_progress: bool = True,
        on_step: Callable[[int, int, dict], None] | None = None,
    ) -> dict:
        """Fine-tune on the annotations so far; saves the checkpoint of the current iteration.

        An iteration that annotated nothing (a budget too small for any sample) keeps the
        previous weights: training on the same annotations again would only overfit them.

        ``on_step(step, total, losses)`` is called after every step (the web app's progress); an
        exception it raises aborts the run before the checkpoint is saved.
        """
        from hvsa.finetune import FineTuner
        from hvsa.model import save_checkpoint

        cur = self.current
        if cur is None:
            raise InputError("finetune: no iteration in progress; select (and annotate) a batch first")
        k = cur.iteration
        if cur.stage == "selected":
            self.store.update_iteration(k, stage="annotated")
        skipped = None
        if not self.method.trains:
            skipped = f"method {self.method.name} does not train"
        elif self.store.annotation_count(k) == 0:
            # nothing new to learn: more steps on the old annotations only overfit them
            skipped = "no new annotations"
        if skipped is not None:
            stats = {"steps": 0, "seconds": 0.0, "skipped": skipped}
            self.store.update_iteration(k, stage="finetuned", info={"finetune": stats})
            return stats
        if self.config.finetune.propagated_targets > 0:
            data = _TrainingDataWithPropagation(self, *self._propagate_for_training())
        else:
            data = _SessionTrainingData(self)
        tuner = FineTuner(self.model, self.config.finetune, self.device)
        total = self.config.finetune.steps_for(self.num_frames) if steps is None else steps
        bar = None
        if show_progress:
            from hvsa.progress import progress_bar

            bar = progress_bar(total=total, desc=f"fine-tuning (iteration {k})", unit="step")

        def step_done(i: int, n: int, info: dict) -> None:
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(ce=f"{info['ce']:.3f}", tc=f"{info['tc']:.4f}")
            if on_step is not None:
                on_step(i, n, info)

        try:
            stats = tuner.run(data, self._rng(k, 2), steps=steps, on_step=step_done)
        finally:
            if bar is not None:
                bar.close()
        path = save_checkpoint(self._checkpoint_path(k), self.model, self.classes,
                               meta={"iteration": k, "finetune": stats})
        self.store.update_iteration(k, stage="finetuned", checkpoint=str(path), info={"finetune": stats})
        return stats

    def _propagate_for_training(self) -> tuple[DiskArray, DiskArray]:
        """Labels propagated from the annotations to every frame and their chain confidence,
        written to the session's cache for fine-tuning to read (``propagated_targets``). The
        confidence is kept as float16, not in steps of 1/255, which would move a threshold such
        as 0.95."""
        from hvsa.propagate import PropagationConfig, propagate

        if self._propagated is None:
            cache, (h, w) = self.folder / "cache", self.hw
            self._propagated = (
                DiskArray.open_or_create(cache / "propagated.u8", self.num_frames, (h, w), np.uint8,
                                         meta={"what": "labels propagated for fine-tuning"}),
                DiskArray.open_or_create(cache / "propagated-confidence.f16", self.num_frames, (h, w), np.float16,
                                         meta={"what": "their chain confidence"}),
            )
            self._closers += list(self._propagated)
        labels, conf = self._propagated
        frames = propagate(_SessionTrainingData(self), self.method.propagation or PropagationConfig(),
                           ignore_index=self.classes.ignore_index, scratch=self.folder / "cache")
        try:
            for t, lab, c in progress(frames, total=self.num_frames, desc="propagating labels", unit="frame"):
                labels[t] = lab
                conf[t] = c.astype(np.float16)
        finally:
            frames.close()
        return labels, conf

    # ------------------------------------------------------------------ prediction

    def _frame_outputs(self, runner_up: bool = False) -> Iterator[_FrameOutput]:
        """The outputs of every frame in order (:class:`_FrameOutput`), from the method's label
        source: the network's softmax (uncertainty 1 - (p1 - p2)), label propagation (uncertainty
        1 - its confidence), or their per-pixel fusion (:func:`hvsa.methods.fuse_labels`;
        uncertainty 1 - the winner's confidence). A method that reads views of the frame
        (:attr:`hvsa.methods.Method.views`) labels from the network's softmax averaged over the
        frame and its views (:meth:`_network_probs`); a method that refines
        (:attr:`hvsa.methods.Method.refine`) runs the CRF on the class distribution
        (:func:`hvsa.methods.fused_distribution`) and reads the labels and margins off the
        result. Selection reads the source's labels and uncertainty from the frame alone,
        before views and CRF: mean-field marginals are overconfident, and on DAVIS selecting
        from them chose worse samples; selecting from the views' average lost on davis2016 in
        the runs we made (docs/experiments.md). Of fused labels each output also carries the two
        sources' doubt (:func:`hvsa.methods.disagreement_margin`), which the winner's confidence
        hides. The features, for selection, always come from the network. With ``runner_up``
        each output also carries the class each pixel hesitates towards (class-balanced
        selection); otherwise that is None and costs nothing. Run under
        ``torch.inference_mode()``."""
        source = self.method.labels
        refine = self.method.refine
        propagated = None
        if source in ("propagation", "fused"):
            from hvsa.propagate import propagate

            propagated = propagate(_SessionTrainingData(self), self.method.propagation,
                                   ignore_index=self.classes.ignore_index, scratch=self.folder / "cache")
        prop = conf = None
        try:
            for t in range(self.num_frames):
                f = self.model.features(self.taps.get(t, self.device))
                if propagated is not None:
                    _, prop, conf = next(propagated)
                if source == "propagation":
                    sel_labels, sel_u, sel_second = prop, 1.0 - conf, prop if runner_up else None
                    labels, unc, doubt = sel_labels, sel_u, sel_u
                else:
                    fuse = (prop, conf) if source == "fused" else None
                    own, probs = self._network_probs(t, f)
                    sel_labels, sel_u, sel_second, doubt = _read_softmax(own, fuse, with_second=runner_up)
                    labels, unc = (sel_labels, sel_u) if probs is own else _read_softmax(probs, fuse)[:2]
                if refine is not None:
                    labels, unc = self._refined(t, probs[0].cpu().numpy() if source != "propagation" else None,
                                                prop, conf)
                yield _FrameOutput(t, f, labels, unc, sel_labels, sel_u, sel_second, doubt)
        finally:
            if propagated is not None:
                propagated.close()

    def _network_probs(self, t: int, features: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """The network's softmax (1, C, H, W) of frame ``t`` from its ``features``, and that
        softmax averaged with the network's on each of the method's views
        (:attr:`hvsa.methods.Method.views`), mirrored back and resized to the frame (the same
        tensor when the method reads no views)."""
        import torch.nn.functional as F

        def softmax(f: "torch.Tensor", flip: bool) -> "torch.Tensor":
            logits = self.model.decoder.head(f)
            if flip:
                logits = logits.flip(-1)
            return F.interpolate(logits, size=self.hw, mode="bilinear", align_corners=False).softmax(1)

        own = softmax(features, False)
        if not self.method.views:
            return own, own
        total = own.clone()
        for view in self.method.views:
            total += softmax(self.model.features(self.views.get(t, view, self.device)), view.flip)
        return own, total / (1 + len(self.method.views))

    def _refined(self, t: int, probs: np.ndarray | None, prop: np.ndarray | None,
                 conf: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(labels uint8 (H, W), uncertainty 1 - margin float32 (H, W)) of frame ``t`` after the
        method's CRF, from the network's softmax (C, H, W) and/or the propagation."""
        from hvsa.crf import dense_crf
        from hvsa.methods import fused_distribution
        from hvsa.select.scores import margin_uncertainty

        if prop is not None:
            if probs is None:  # propagation alone: its label on top of a uniform distribution
                probs = np.full((len(self.classes), *self.hw), 1.0 / len(self.classes), np.float32)
            probs = fused_distribution(probs, prop, conf)
        q = dense_crf(probs, self.frames.read(t), self.method.refine)
        return q.argmax(0).astype(np.uint8), margin_uncertainty(q)

    def predict(
        self,
        *,
        iteration: int | None = None,
        estimate_clicks: bool = True,
        on_frame: Callable[[int, int], None] | None = None,
    ) -> dict:
        """Predict every frame with the current network; store the labels, per-sample
        selection statistics and (with ground truth) the quality figures.

        Returns the metrics (``miou``, ``pixel_acc``, ``boundary_iou`` with ground truth; ``tc``
        always). Marks the iteration in progress "done". ``on_frame(done, total)`` is called
        after every frame.
        """
        import torch

        from hvsa.flow.warp import warp
        from hvsa.metrics import VideoScores, consistency_confusion, miou

        cur = self.current
        if iteration is None:
            if cur is None:
                raise InputError("predict: no iteration in progress")
            iteration = cur.iteration
        C = len(self.classes)
        stats = _SelectionStats(self.pool, C, self.num_frames, self._extra_stat_keys(), estimate_clicks=estimate_clicks,
                                epsilon=self.config.epsilon, ignore_index=self.classes.ignore_index)  # fmt: skip
        scores = VideoScores(C, self.classes.ignore_index) if self.gt is not None else None
        tc_conf = np.zeros((C, C), np.int64)
        prev = None
        self.model.eval()
        with torch.inference_mode():
            outputs = self._frame_outputs(runner_up=stats.by_class)
            desc = f"predicting (iteration {iteration})"
            for out in progress(outputs, total=self.num_frames, desc=desc, unit="frame"):
                t, pred = out.t, out.labels
                self._pred[t] = pred
                self._conf[t] = np.round((1.0 - out.uncertainty) * 255).astype(np.uint8)
                stats.add(out)
                if scores is not None:
                    scores.update(self.gt[t], pred)
                if prev is not None:
                    warped = warp(pred, self.flows.get(t - 1, t), mode="nearest")
                    tc_conf += consistency_confusion(prev, warped, self.flows.reliable(t - 1, t), C)
                prev = pred
                if on_frame is not None:
                    on_frame(t + 1, self.num_frames)
        metrics = {"tc": miou(tc_conf)}
        if scores is not None:
            metrics.update(scores.result())
        stats.save(self._stats_path(iteration))
        self.store.set_meta("prediction_iteration", iteration)
        if iteration > 0 and cur is not None and cur.iteration == iteration:
            self.store.update_iteration(iteration, stage="done", metrics=metrics)
        return metrics

    def prediction(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Latest prediction of frame ``t``: (labels uint8 (H, W), confidence float32 (H, W) in
        [0, 1], the softmax margin p1 - p2)."""
        return self._pred[t], self._conf[t].astype(np.float32) / 255.0

    def predictions(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Stream (t, labels, confidence) over every frame (see :meth:`prediction`)."""
        for t in range(self.num_frames):
            labels, conf = self.prediction(t)
            yield t, labels, conf

    def frame_confidence(self) -> np.ndarray:
        """Mean margin of every frame's latest prediction, float32 (T,)."""
        with np.load(self._stats_path(int(self.store.get_meta("prediction_iteration", 0)))) as z:
            return z["frame_confidence"]

    # ------------------------------------------------------------------ report and export

    def report(self) -> dict:
        """report.json of DESIGN.md, built from the store."""
        full = self.full_video_clicks
        total_pixels = self.num_frames * self.hw[0] * self.hw[1]
        rows = []
        for it in self.store.iterations():
            if not it.done:
                continue
            clicks, pixels = self.store.clicks_total(it.iteration)
            row = {
                "iteration": it.iteration,
                "samples": it.samples,
                "clicks": clicks,
                "clicks_pct": 100.0 * clicks / full if full else None,
                "pixels_pct": 100.0 * pixels / total_pixels,
            }
            for key in ("miou", "pixel_acc", "boundary_iou", "tc"):
                if key in it.metrics and it.metrics[key] is not None:
                    value = it.metrics[key]
                    row[key] = None if isinstance(value, float) and math.isnan(value) else value
            row["seconds"] = {k: round(v, 3) for k, v in it.seconds.items()}
            row["peak_rss_mb"] = it.info.get("peak_rss_mb")
            rows.append(row)
        return {
            "data": self.config.data,
            "frames": self.num_frames,
            "size": [self.hw[1], self.hw[0]],
            "classes": len(self.classes),
            "granularity": self.config.granularity,
            "selector": self.config.selector,
            "method": self.config.method,
            "seed": self.config.seed,
            "full_video_clicks": full,
            "iterations": rows,
        }

    def write_report(self, path: str | os.PathLike | None = None) -> Path:
        path = Path(path) if path else self.folder / "report.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.report(), indent=1))
        os.replace(tmp, path)
        return path

    def export(self, out: str | os.PathLike, format: str = "png") -> Path:
        """Write the latest prediction of every frame in ``format`` (see :mod:`hvsa.export`)."""
        from hvsa.export import export_predictions

        return export_predictions(self, out, format)


def _check_reference(folder: str | os.PathLike, data: Path, granularity: str, size: tuple[int, int]) -> str:
    """The resolved path of a reference session for ``samples_from``, after checking that it
    labels the same video at the same size and granularity."""
    folder = check_path(folder, "reference session (samples_from)", kind="dir").resolve()
    with Store(folder) as ref:
        raw = ref.get_meta("config") or {}
    want = {"data": str(data), "granularity": granularity, "size": list(size)}
    have = {k: raw.get(k) for k in want}
    if have != want:
        raise InputError(f"{folder}: the reference session labels {have}, this one {want}; samples can be shared"
                         " only between sessions of the same video, size and granularity")
    return str(folder)


def _read_softmax(
    probs: "torch.Tensor", fuse_with: tuple[np.ndarray, np.ndarray] | None = None, *, with_second: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """(labels uint8, uncertainty 1 - margin, runner-up class or None, doubt) of a softmax (1, C,
    H, W), each (H, W). With ``fuse_with``, the propagation's (labels, confidence): the labels
    fused per pixel with it (:func:`hvsa.methods.fuse_labels`, uncertainty 1 - the winner's
    confidence), the doubt 1 - :func:`hvsa.methods.disagreement_margin`, and the runner-up the
    network's label where the propagation's won; without, the doubt is the uncertainty.
    ``with_second`` asks for the runner-up (the label itself for one class)."""
    import torch

    from hvsa.methods import disagreement_margin, fuse_labels
    from hvsa.select import margin_uncertainty_torch

    first = probs.argmax(1, keepdim=True)
    own = first[0, 0].to(torch.uint8).cpu().numpy()
    second = None
    if with_second:
        runner_up = probs.scatter(1, first, -1.0).argmax(1)[0] if probs.shape[1] > 1 else None
        second = own if runner_up is None else runner_up.to(torch.uint8).cpu().numpy()
    u = margin_uncertainty_torch(probs)[0].cpu().numpy()
    if fuse_with is None:
        return own, u, second, u
    prop, conf = fuse_with
    labels, margin = fuse_labels(own, 1.0 - u, prop, conf)
    doubt = 1.0 - disagreement_margin(own, 1.0 - u, prop, conf)
    if second is not None:
        second = np.where(labels == own, second, own)
    return labels, 1.0 - margin, second, doubt


class _SelectionStats:
    """The per-sample statistics selection reads (``state/pred-K.npz``), gathered frame by frame
    over one prediction pass (:meth:`Session.predict`).

    Each sample gets the sum of its pixels' uncertainty as selection reads it
    (:attr:`_FrameOutput.select_uncertainty`), its mean network feature and, with
    ``estimate_clicks``, the clicks its predicted labels would take (:func:`hvsa.cost.pool_clicks`;
    otherwise 1); each frame gets its mean confidence. ``extra`` names what some selectors need
    beyond that (:meth:`Session._extra_stat_keys`): the uncertainty split by class, and the
    pixels predicted per class; the summed doubt of fused labels.
    """

    def __init__(self, pool, num_classes: int, num_frames: int, extra: set[str], *,  # noqa: ANN001 - Pool
                 estimate_clicks: bool, epsilon: float, ignore_index: int) -> None:  # fmt: skip
        n = len(pool)
        self._pool, self._classes = pool, num_classes
        self._click_model = {"epsilon": epsilon, "ignore_index": ignore_index} if estimate_clicks else None
        self.uncertainty = np.zeros(n, np.float64)
        self.est_clicks = np.ones(n, np.float32)
        self.features: np.ndarray | None = None  # (n, D) float16, once the first frame gives D
        self.frame_confidence = np.zeros(num_frames, np.float32)
        self.disagreement = np.zeros(n, np.float64) if "disagreement" in extra else None
        self.class_uncertainty = np.zeros((n, num_classes), np.float32) if "class_uncertainty" in extra else None
        self.class_pixels = np.zeros(num_classes, np.int64)

    @property
    def by_class(self) -> bool:
        """Whether the uncertainty is split by class (the outputs must carry the runner-up)."""
        return self.class_uncertainty is not None

    def add(self, out: _FrameOutput) -> None:
        """Take in one frame's output."""
        from hvsa.pools import sample_means
        from hvsa.select import reduce_per_sample, sums_per_class

        t, C = out.t, self._classes
        rm, n = self._pool.region_map(t), self._pool.num_samples(t)
        sl = slice(int(self._pool.offsets[t]), int(self._pool.offsets[t + 1]))
        self.frame_confidence[t] = float(1.0 - out.uncertainty.mean())
        self.uncertainty[sl] = reduce_per_sample(rm, out.select_uncertainty, n, "sum")
        if self.disagreement is not None:
            self.disagreement[sl] = reduce_per_sample(rm, out.select_doubt, n, "sum")
        if self.class_uncertainty is not None:
            half = 0.5 * out.select_uncertainty  # a pixel's doubt is shared by the two classes it hesitates between
            self.class_uncertainty[sl] = (sums_per_class(rm, out.select_labels, half, n, C)
                                          + sums_per_class(rm, out.select_runner_up, half, n, C))  # fmt: skip
            self.class_pixels += np.bincount(out.select_labels.ravel(), minlength=256)[:C]
        fm = out.features[0].cpu().numpy()
        if self.features is None:
            self.features = np.zeros((len(self.uncertainty), fm.shape[0]), np.float16)
        self.features[sl] = _pool_features(rm, fm, n, sample_means)
        if self._click_model is not None:
            self.est_clicks[sl] = pool_clicks(out.select_labels, rm, n, **self._click_model)

    def save(self, path: Path) -> None:
        """Write the statistics to ``path`` (``.npz``, atomically)."""
        extra = {}
        if self.class_uncertainty is not None:
            extra |= {"class_uncertainty": self.class_uncertainty, "class_pixels": self.class_pixels}
        if self.disagreement is not None:
            extra["disagreement"] = self.disagreement
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, uncertainty=self.uncertainty, features=self.features, est_clicks=self.est_clicks,
                 frame_confidence=self.frame_confidence, **extra)  # fmt: skip
        os.replace(tmp, path)


def _pool_features(region_map: np.ndarray, feats: np.ndarray, n: int, sample_means) -> np.ndarray:  # noqa: ANN001
    """Mean of a (D, h, w) feature map over each sample of a full-resolution region map.

    The region map is sampled at the feature cells' centres; a sample that covers no cell centre
    (smaller than a cell) takes the feature of the cell under its first pixel.
    """
    d, fh, fw = feats.shape
    h, w = region_map.shape
    ys = np.minimum(((np.arange(fh) + 0.5) * h / fh).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(fw) + 0.5) * w / fw).astype(np.int64), w - 1)
    small = region_map[np.ix_(ys, xs)]
    out = sample_means(small, feats, n)  # (n, D), NaN where no cell
    missing = np.flatnonzero(np.isnan(out[:, 0])) if n else np.zeros(0, np.int64)
    if missing.size:
        flat = region_map.ravel()
        first = np.full(n, -1, np.int64)
        order = np.arange(flat.size - 1, -1, -1)
        first[flat[order]] = order  # the last write wins: the smallest pixel index
        py, px = np.divmod(first[missing], w)
        cy = np.minimum((py * fh) // h, fh - 1)
        cx = np.minimum((px * fw) // w, fw - 1)
        out[missing] = feats[:, cy, cx].T
    return out.astype(np.float16)


# ---------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class LoopSettings:
    """How many iterations and how much to annotate in each.

    Attributes:
        iterations: K.
        per_iteration: b samples per iteration, or
        budget_pct: total clicks % of the full-video cost, split equally over the iterations
            (unspent allowance carries over to the next iteration).
    """

    iterations: int = 3
    per_iteration: int | None = None
    budget_pct: float | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InputError(f"iterations: expected >= 1, got {self.iterations}")
        if (self.per_iteration is None) == (self.budget_pct is None):
            raise InputError("give exactly one of --per-iteration or --budget-pct")
        if self.budget_pct is not None and not 0 < self.budget_pct <= 100:
            raise InputError(f"budget-pct: expected a percentage in (0, 100], got {self.budget_pct}")
        if self.per_iteration is not None and self.per_iteration < 1:
            raise InputError(f"per-iteration: expected >= 1, got {self.per_iteration}")


def run_loop(
    session: Session,
    settings: LoopSettings,
    annotator: Annotator,
    *,
    on_iteration: Callable[[dict], None] | None = None,
    write_report: bool = True,
) -> dict:
    """Run (or resume) the HVSA loop until ``settings.iterations`` iterations are done.

    Each stage is recorded in the store as it completes; an interrupted iteration resumes at its
    first unfinished stage with the same selection. Each iteration records its seconds per stage
    and the process's peak resident memory so far (:func:`hvsa.memory.peak_rss_mb`; ``hvsa
    bench`` resets that peak before each run). Returns the report.
    """
    setup = session.prepare()
    session.store.set_meta("setup_seconds", setup)
    full = session.full_video_clicks
    if settings.budget_pct is not None and full is None:
        raise InputError("--budget-pct needs ground truth to price the full video; use --per-iteration")
    while session.completed < settings.iterations:
        cur = session.current
        k = cur.iteration if cur else session.completed + 1
        seconds = dict(cur.seconds) if cur else {}
        if cur is None:
            start = time.perf_counter()
            if settings.budget_pct is not None:
                spent, _ = session.store.clicks_total()
                allowance = settings.budget_pct / 100.0 * full * k / settings.iterations - spent
                session.select(budget_clicks=max(allowance, 0.0))
            else:
                session.select(settings.per_iteration)
            seconds["select"] = time.perf_counter() - start
            session.store.update_iteration(k, seconds=seconds)
            cur = session.current
        if cur.stage == "selected":
            start = time.perf_counter()
            session.annotate(session.select(), annotator)
            seconds["annotate"] = time.perf_counter() - start
            session.store.update_iteration(k, seconds=seconds)
            cur = session.current
        if cur.stage == "annotated":
            start = time.perf_counter()
            session.finetune()
            seconds["finetune"] = time.perf_counter() - start
            session.store.update_iteration(k, seconds=seconds)
        start = time.perf_counter()
        session.predict(estimate_clicks=settings.budget_pct is not None)
        seconds["predict"] = time.perf_counter() - start
        seconds["total"] = sum(v for key, v in seconds.items() if key != "total")
        peak = peak_rss_mb()
        session.store.update_iteration(k, seconds=seconds,
                                       info={"peak_rss_mb": None if peak is None else round(peak, 1)})
        report = session.report()
        if write_report:
            session.write_report()
        if on_iteration is not None:
            on_iteration(report["iterations"][-1])
    return session.report()

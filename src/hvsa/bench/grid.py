"""Experiment grids: which sequences, and which (granularity, selector, method, budget, seed) runs.

A *sequence* is a data folder with ``frames/``, ``labels/`` and ``classes.json``; a *dataset* is
the folder the sequences sit in (``davis2016`` for ``davis2016/blackswan``). A run is one
simulated loop on one sequence, identified by :attr:`RunSpec.run_id`, which is also its folder
under ``OUT/runs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hvsa.checks import check_path
from hvsa.errors import InputError

__all__ = ["SequenceRef", "RunSpec", "Grid", "Fold", "find_sequences", "folds", "parse_list"]


@dataclass(frozen=True, order=True)
class SequenceRef:
    """A labelled sequence: ``dataset`` (its folder's name), ``name``, and its ``path``."""

    dataset: str
    name: str
    path: str

    @property
    def key(self) -> str:
        """``dataset/name``: unique within a bench."""
        return f"{self.dataset}/{self.name}"


@dataclass(frozen=True, order=True)
class RunSpec:
    """One run of a grid."""

    sequence: SequenceRef
    granularity: str
    selector: str
    method: str
    budget_pct: float
    seed: int

    @property
    def run_id(self) -> str:
        """``dataset/sequence/granularity-selector-method-b<budget>-s<seed>`` (a relative path)."""
        return f"{self.sequence.key}/{self.granularity}-{self.selector}-{self.method}-b{self.budget_pct:g}-s{self.seed}"

    def params(self) -> dict:
        """The run's parameters, as written to ``run.json`` and to every results row."""
        return {
            "run": self.run_id,
            "dataset": self.sequence.dataset,
            "sequence": self.sequence.name,
            "granularity": self.granularity,
            "selector": self.selector,
            "method": self.method,
            "budget_pct": self.budget_pct,
            "seed": self.seed,
        }


def _is_sequence(p: Path) -> bool:
    return (p / "frames").is_dir() and (p / "labels").is_dir() and (p / "classes.json").is_file()


def find_sequences(folders: Sequence[str | os.PathLike]) -> list[SequenceRef]:
    """Every labelled sequence at or below each folder, sorted.

    A folder that is itself a sequence counts as one (its dataset is its parent's name);
    otherwise every sequence below it does, its dataset named by the folder and the path down to
    the sequence's parent (``davis2016`` for ``davis2016/blackswan`` given ``davis2016``).

    Raises:
        InputError: a folder is missing, or no labelled sequence is found.
    """
    found: list[SequenceRef] = []
    for folder in folders:
        root = check_path(folder, "data folder", kind="dir").resolve()
        if _is_sequence(root):
            found.append(SequenceRef(root.parent.name, root.name, str(root)))
            continue
        for dirpath, dirnames, _ in os.walk(root):
            dirnames.sort()
            p = Path(dirpath)
            if _is_sequence(p):
                rel = p.relative_to(root)
                dataset = "/".join((root.name, *rel.parent.parts))
                found.append(SequenceRef(dataset, p.name, str(p)))
                dirnames.clear()  # a sequence's own folders hold no sequences
    if not found:
        names = ", ".join(str(f) for f in folders)
        raise InputError(
            f"{names}: no labelled sequence found (a sequence is a folder with frames/, labels/ and classes.json)"
        )
    keys = [s.key for s in found]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InputError(f"sequences {dup} are given twice; pass each data folder once")
    return sorted(found)


@dataclass(frozen=True)
class Fold:
    """One fold of a dataset's cross-validation: its runs start from a network pre-trained on
    ``train``, the dataset's sequences outside the fold (``test``)."""

    dataset: str
    index: int
    test: tuple[SequenceRef, ...]
    train: tuple[SequenceRef, ...]

    @property
    def name(self) -> str:
        """``dataset/fold<i>``: the checkpoint's path under ``OUT/models`` without ``.pt``."""
        return f"{self.dataset}/fold{self.index}"


def folds(sequences: Sequence[SequenceRef], k: int) -> list[Fold]:
    """Split each dataset's sequences into ``k`` folds, round robin in name order (sequence i of
    a dataset goes to fold i mod k), for a pre-trained start that never saw the sequence it
    annotates. ``k`` equal to a dataset's sequence count is leave-one-out.

    Raises:
        InputError: ``k`` < 2, or a dataset has fewer than ``k`` sequences.
    """
    if k < 2:
        raise InputError(f"pretrain-folds: expected at least 2 folds, got {k}")
    by_dataset: dict[str, list[SequenceRef]] = {}
    for seq in sorted(sequences):
        by_dataset.setdefault(seq.dataset, []).append(seq)
    out = []
    for dataset, seqs in sorted(by_dataset.items()):
        if len(seqs) < k:
            raise InputError(
                f"pretrain-folds: {dataset} has {len(seqs)} sequence(s), fewer than {k} folds; give it more"
                " sequences or use fewer folds"
            )
        for i in range(k):
            test = tuple(seqs[i::k])
            out.append(Fold(dataset, i, test, tuple(s for s in seqs if s not in test)))
    return out


_KIND_NAMES = {int: "an integer", float: "a number"}


def parse_list(text: str, what: str, kind: type = str) -> tuple:
    """``"a,b,c"`` -> ``("a", "b", "c")`` converted by ``kind``; duplicates dropped, order kept."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError(f"{what}: expected a comma-separated list, got {text!r}")
    out = []
    for item in items:
        try:
            value = kind(item)
        except ValueError:
            raise InputError(f"{what}: {item!r} is not {_KIND_NAMES.get(kind, 'a ' + kind.__name__)}") from None
        if value not in out:
            out.append(value)
    return tuple(out)


@dataclass(frozen=True)
class Grid:
    """The grid: every combination of these values is one run per sequence.

    Unknown granularities, selectors and methods raise :class:`InputError` listing the valid ones.
    """

    granularities: tuple[str, ...] = ("frame",)
    selectors: tuple[str, ...] = ("hvsa",)
    methods: tuple[str, ...] = ("hvsa",)
    budgets: tuple[float, ...] = (1.0, 2.0, 3.0)
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        from hvsa.methods import METHODS
        from hvsa.pools import parse_granularity
        from hvsa.select import SELECTORS

        object.__setattr__(self, "granularities", tuple(str(parse_granularity(g)) for g in self.granularities))
        for s in self.selectors:
            SELECTORS.get(s)
        for m in self.methods:
            METHODS.get(m)
        for b in self.budgets:
            if not 0 < b <= 100:
                raise InputError(f"budget-pct: expected percentages in (0, 100], got {b}")
        for name in ("granularities", "selectors", "methods", "budgets", "seeds"):
            if not getattr(self, name):
                raise InputError(f"grid: {name} must not be empty")

    def runs(self, sequences: Sequence[SequenceRef]) -> list[RunSpec]:
        """Every run, sequence-major (so the runs of one sequence share a warm cache)."""
        return [
            RunSpec(seq, g, s, m, float(b), int(seed))
            for seq in sequences
            for g in self.granularities
            for m in self.methods
            for s in self.selectors
            for b in self.budgets
            for seed in self.seeds
        ]

    def to_dict(self) -> dict:
        return {
            "granularities": list(self.granularities),
            "selectors": list(self.selectors),
            "methods": list(self.methods),
            "budgets": list(self.budgets),
            "seeds": list(self.seeds),
        }

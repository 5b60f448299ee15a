"""Figures (matplotlib, Agg backend; imported only by the apps)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hvsa.bench.results import Point

__all__ = ["demo_figure", "curves_figure"]


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def demo_figure(
    out: str | os.PathLike,
    iterations: Sequence[dict],
    strip: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    title: str = "",
) -> Path:
    """mIoU against clicks % (one point per iteration) beside a strip of frames.

    Args:
        out: PNG path.
        iterations: report rows (``clicks_pct``, ``miou``, ``boundary_iou``).
        strip: (caption, frame, ground-truth colours, prediction overlay) per column.
    """
    plt = _pyplot()
    n = len(strip)
    fig = plt.figure(figsize=(4.2 + 2.6 * n, 5.2), dpi=110)
    grid = fig.add_gridspec(3, n + 2, width_ratios=[1.6, 0.1] + [1.0] * n)
    ax = fig.add_subplot(grid[:, 0])
    x = [r["clicks_pct"] for r in iterations]
    ax.plot(x, [r["miou"] for r in iterations], "o-", label="mIoU", color="#1f77b4")
    if all(r.get("boundary_iou") is not None for r in iterations):
        ax.plot(x, [r["boundary_iou"] for r in iterations], "s--", label="boundary IoU", color="#ff7f0e")
    for r in iterations:
        ax.annotate(f"it {r['iteration']}", (r["clicks_pct"], r["miou"]), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xlabel("clicks % of annotating every frame")
    ax.set_ylabel("quality over the whole video")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "quality per click")
    for j, (caption, frame, gt, pred) in enumerate(strip):
        for i, (img, label) in enumerate(((frame, caption), (gt, "ground truth"), (pred, "hvsa labels"))):
            a = fig.add_subplot(grid[i, j + 2])
            a.imshow(img)
            a.set_xticks([])
            a.set_yticks([])
            if j == 0:
                a.set_ylabel(label if i else "frame", fontsize=9)
            if i == 0:
                a.set_title(caption, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STYLES = ("-", "--", ":", "-.")


def _minor_label(v: float, _pos: object = None) -> str:
    """Minor tick labels of a log axis at 2, 3 and 5 times a power of ten only (the others crowd)."""
    if v <= 0:
        return ""
    lead = v / 10 ** math.floor(math.log10(v))
    return f"{v:g}" if min(abs(lead - d) for d in (2, 3, 5)) < 1e-6 else ""


def _narrow_axis_ticks(xs: Sequence[float | None], lo: float, hi: float) -> list[float] | None:
    """The ticks of a log x axis from ``lo`` to ``hi`` too narrow for labels at 1, 2, 3 and 5
    times a power of ten (less than a factor 3, so maybe none in view): the points' own ``xs``,
    one per label (:func:`_narrow_label`, two decimals). None for a wider axis, which keeps
    those labels. A tick stays at its point, not at the rounded value, which may lie outside
    the axis."""
    by_label: dict[str, float] = {}
    for x in sorted(x for x in xs if x):
        by_label.setdefault(_narrow_label(x), x)
    return list(by_label.values()) if by_label and hi < 3 * lo else None


def _narrow_label(v: float, _pos: object = None) -> str:
    return f"{v:.2f}"


def curves_figure(out: str | os.PathLike, points: Sequence["Point"], title: str = "") -> Path:
    """Figure 7 of the paper for one dataset: mIoU against clicks %, boundary IoU against
    clicks % and mIoU against annotated pixels %, log x, one line per (granularity, selector,
    method); colour = method and selector, marker and line style = granularity. A point of
    several seeds has a bar from its seeds' lowest to highest mean mIoU.

    Args:
        out: PNG path.
        points: :class:`hvsa.bench.results.Point` of one dataset (others are not filtered out).
        title: figure title.
    """
    plt = _pyplot()
    from matplotlib import ticker

    lines: dict[tuple[str, str, str], list] = {}
    for p in points:
        if p.clicks_pct is not None and p.miou is not None:
            lines.setdefault(p.line, []).append(p)
    grans = sorted({g for g, _, _ in lines})
    combos = sorted({(m, s) for _, s, m in lines})
    colours = plt.get_cmap("tab10")
    panels = (
        ("clicks_pct", "miou", "clicks % (log)", "mIoU"),
        ("clicks_pct", "boundary_iou", "clicks % (log)", "boundary IoU"),
        ("pixels_pct", "miou", "annotated pixels % (log)", "mIoU"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=110)
    for ax, (xk, yk, xlabel, ylabel) in zip(axes, panels):
        drawn: list[float] = []  # the x of every point this panel draws
        for (g, s, m), pts in sorted(lines.items()):
            pts = sorted((p for p in pts if getattr(p, xk) and getattr(p, yk) is not None), key=lambda p: getattr(p, xk))
            if not pts:
                continue
            drawn += [getattr(p, xk) for p in pts]
            gi, ci = grans.index(g), combos.index((m, s))
            ax.plot(
                [getattr(p, xk) for p in pts], [getattr(p, yk) for p in pts],
                marker=_MARKERS[gi % len(_MARKERS)], linestyle=_STYLES[gi % len(_STYLES)],
                color=colours(ci % 10), label=f"{m} ({s} selection, {g})",
            )  # fmt: skip
            spread = [p for p in pts if len(p.miou_per_seed) > 1]
            if yk == "miou" and spread:  # the seeds' lowest and highest mean mIoU
                ax.vlines([getattr(p, xk) for p in spread], [min(p.miou_per_seed) for p in spread],
                          [max(p.miou_per_seed) for p in spread], color=colours(ci % 10), alpha=0.6)  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.FuncFormatter(_minor_label))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ticks = _narrow_axis_ticks(drawn, *ax.get_xlim())
        if ticks:
            ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_narrow_label))
            ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(title or "quality per annotation cost")
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labels) - 1) // 4), 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

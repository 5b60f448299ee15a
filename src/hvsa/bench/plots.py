"""Figures (matplotlib, Agg backend; imported only by the apps)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["demo_figure"]


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

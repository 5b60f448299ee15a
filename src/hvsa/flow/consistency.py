"""Forward-backward consistency: which flow vectors to trust.

A pixel x of frame t is *reliable* for the pair (t, t') when following the forward flow and then
the backward flow returns to where it started (HVSA, paper 3.3)::

    || O_t->t'(x) + O_t'->t(x + O_t->t'(x)) || < threshold      (default 1 px)

The backward flow is sampled bilinearly at the non-integer target, exactly (with
:func:`hvsa.flow.warp`; OpenCV's ``remap`` would round positions to 1/32 px). A pixel whose
target lies outside frame t' ([0, W - 1] x [0, H - 1]) or whose flow is not finite is unreliable.
Occluded pixels (visible in t, hidden in t') usually fail the check: their forward flow and the
backward flow of whatever covers their target disagree, unless the two motions differ by less
than the threshold (thin occlusions between slowly diverging surfaces go undetected).
"""

from __future__ import annotations

import numpy as np

from hvsa.checks import check_flow, check_positive
from hvsa.errors import ShapeError
from hvsa.flow.warp import target_in_frame, warp

__all__ = ["fb_consistency", "fb_residual"]


def _check_pair(flow_fw: object, flow_bw: object) -> tuple[np.ndarray, np.ndarray]:
    fw = check_flow(flow_fw, "flow_fw")
    bw = check_flow(flow_bw, "flow_bw")
    if fw.shape != bw.shape:
        raise ShapeError(f"flow_fw and flow_bw must have the same shape, got {fw.shape} and {bw.shape}")
    return fw, bw


def fb_residual(flow_fw: np.ndarray, flow_bw: np.ndarray) -> np.ndarray:
    """The round-trip error ``|| O_fw(x) + O_bw(x + O_fw(x)) ||`` in pixels.

    Args:
        flow_fw: O_t->t', float (H, W, 2).
        flow_bw: O_t'->t, float (H, W, 2).

    Returns:
        float32 (H, W); ``inf`` where the target leaves the frame or a flow is not finite.
    """
    fw, bw = _check_pair(flow_fw, flow_bw)
    finite = np.isfinite(fw).all(axis=2)
    fw_safe = np.where(finite[..., None], fw, 0).astype(np.float32)
    bw_at_target = warp(bw.astype(np.float32), fw_safe, mode="bilinear", padding="border")
    s = fw_safe + bw_at_target
    res = np.sqrt(s[..., 0] * s[..., 0] + s[..., 1] * s[..., 1])
    ok = finite & target_in_frame(fw_safe) & np.isfinite(res)
    res[~ok] = np.inf
    return res


def fb_consistency(flow_fw: np.ndarray, flow_bw: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Reliable pixels of frame t for the pair (t, t'): round-trip error below ``threshold``.

    Args:
        flow_fw: O_t->t', float (H, W, 2) of (dx, dy).
        flow_bw: O_t'->t, float (H, W, 2).
        threshold: largest round-trip error in pixels that still counts as consistent (strict).

    Returns:
        bool (H, W): True where reliable; False where inconsistent, where the target x + O_t->t'(x)
        is outside the frame, or where a flow is not finite.
    """
    threshold = check_positive(threshold, "threshold")
    return fb_residual(flow_fw, flow_bw) < threshold

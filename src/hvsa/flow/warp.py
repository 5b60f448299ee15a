"""Backward warping along a flow field, in numpy and in torch, with one convention.

``warp(image, flow)[y, x] = image(x + dx, y + dy)`` where ``(dx, dy) = flow[y, x]``: with
``flow = O_t->t'`` and ``image`` a quantity of frame t' (probabilities, labels, pixels), the
result is that quantity brought back onto frame t's pixel grid ("warp q_t' to t", DESIGN.md).

Sample positions use pixel-centre coordinates: column x is at x, 0 <= x <= W - 1.

Out-of-frame samples (a position outside [0, W - 1] x [0, H - 1]) follow ``padding``, named as in
:func:`torch.nn.functional.grid_sample`:

* ``"border"`` (default): the position is clamped to the frame, so the edge pixel is repeated.
  Results stay finite, which keeps losses and their gradients finite.
* ``"zeros"``: every bilinear tap outside the frame contributes 0 (nearest: the sample is 0).

Either way such pixels carry no real correspondence; :func:`target_in_frame` (and the
forward-backward check of :mod:`hvsa.flow.consistency`, which excludes them) tells which they are.
The numpy and torch versions agree to float32 rounding (about 1e-5 for values in [0, 1]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hvsa.checks import check_array, check_flow
from hvsa.errors import InputError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["MODES", "PADDINGS", "target_in_frame", "warp", "warp_torch"]

MODES = ("bilinear", "nearest")
PADDINGS = ("border", "zeros")


def _check_options(mode: str, padding: str) -> None:
    if mode not in MODES:
        raise InputError(f"unknown warp mode {mode!r}; expected one of: {', '.join(MODES)}")
    if padding not in PADDINGS:
        raise InputError(f"unknown warp padding {padding!r}; expected one of: {', '.join(PADDINGS)}")


def _targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions (x + dx, y + dy), each float64 (H, W)."""
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float64)[None, :] + flow[..., 0].astype(np.float64)
    ys = np.arange(h, dtype=np.float64)[:, None] + flow[..., 1].astype(np.float64)
    return xs, ys


def target_in_frame(flow: np.ndarray) -> np.ndarray:
    """Pixels whose target x + flow(x) lies inside the frame, [0, W - 1] x [0, H - 1].

    Args:
        flow: (H, W, 2) float (dx, dy).

    Returns:
        bool (H, W); False also where the flow is not finite.
    """
    flow = check_flow(flow)
    h, w = flow.shape[:2]
    xs, ys = _targets(flow)
    with np.errstate(invalid="ignore"):
        return (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)


def warp(image: np.ndarray, flow: np.ndarray, mode: str = "bilinear", padding: str = "border") -> np.ndarray:
    """Backward-warp ``image`` along ``flow``: ``out[y, x] = image(x + dx, y + dy)``.

    Args:
        image: (H, W) or (H, W, C), any real dtype (uint8 frames, uint8 label maps, float
            probabilities in channels-last layout).
        flow: (H, W, 2) float of finite (dx, dy), same H and W as ``image``.
        mode: "bilinear", or "nearest" for label maps (rounds half to even, like torch).
        padding: "border" or "zeros" (see the module notes).

    Returns:
        Same shape as ``image``. "bilinear" returns float32 (float64 for a float64 image);
        "nearest" keeps the image's dtype, so a warped label map is still a label map.
    """
    _check_options(mode, padding)
    image = check_array(image, "image")
    if image.ndim not in (2, 3):
        raise ShapeError(f"image: expected (H, W) or (H, W, C), got shape {image.shape}")
    flow = check_flow(flow, hw=image.shape[:2])
    if not np.isfinite(flow).all():
        raise ShapeError("flow: contains NaN or infinite values; warp needs finite (dx, dy) everywhere")
    h, w = image.shape[:2]
    xs, ys = _targets(flow)
    flat = image.reshape(h * w, -1)
    if mode == "nearest":
        xi = np.rint(xs)
        yi = np.rint(ys)
        inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        idx = np.clip(yi, 0, h - 1).astype(np.int64) * w + np.clip(xi, 0, w - 1).astype(np.int64)
        out = np.take(flat, idx.ravel(), axis=0)
        if padding == "zeros":
            out[~inside.ravel()] = 0
        return out.reshape(image.shape)

    out_dtype = np.float64 if image.dtype == np.float64 else np.float32
    if padding == "border":
        xs = np.clip(xs, 0, w - 1)
        ys = np.clip(ys, 0, h - 1)
    else:  # far outside is as outside as just outside; keeps the integer casts in range
        xs = np.clip(xs, -2, w + 1)
        ys = np.clip(ys, -2, h + 1)
    x0f = np.floor(xs)
    y0f = np.floor(ys)
    fx = (xs - x0f).astype(out_dtype)
    fy = (ys - y0f).astype(out_dtype)
    x0 = x0f.astype(np.int64)
    y0 = y0f.astype(np.int64)
    taps_x = []
    for xc, wx in ((x0, 1 - fx), (x0 + 1, fx)):
        if padding == "zeros":  # a tap outside the frame contributes nothing
            wx = wx * ((xc >= 0) & (xc <= w - 1))
        # (under "border" an out-of-frame tap only ever has weight 0)
        taps_x.append((np.clip(xc, 0, w - 1), wx))
    acc = np.zeros((h * w, flat.shape[1]), dtype=out_dtype)
    for yc, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        if padding == "zeros":
            wy = wy * ((yc >= 0) & (yc <= h - 1))
        row = np.clip(yc, 0, h - 1) * w
        for xc, wx in taps_x:
            acc += (wx * wy).reshape(-1, 1) * np.take(flat, (row + xc).ravel(), axis=0)
    return acc.reshape(image.shape)


def warp_torch(
    x: "torch.Tensor", flow: "torch.Tensor", mode: str = "bilinear", padding: str = "border"
) -> "torch.Tensor":
    """Backward-warp a batch along flows with ``grid_sample``; same convention as :func:`warp`.

    Differentiable in ``x`` (and in ``flow`` for "bilinear"), so it serves the temporal
    consistency loss: ``warp_torch(q_t2, O_t->t2)`` is q_t2 brought onto frame t.

    Args:
        x: float (B, C, H, W).
        flow: (B, 2, H, W) or (B, H, W, 2) of (dx, dy) in pixels; when both layouts fit (H = W = 2)
            it is read as (B, 2, H, W).
        mode: "bilinear" or "nearest".
        padding: "border" or "zeros".

    Returns:
        (B, C, H, W), dtype and device of ``x``.
    """
    import torch
    import torch.nn.functional as F

    _check_options(mode, padding)
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"x: expected a float tensor (B, C, H, W), got {got}")
    b, _, h, w = x.shape
    if not isinstance(flow, torch.Tensor) or flow.ndim != 4 or flow.shape[0] != b:
        got = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise ShapeError(f"flow: expected a tensor ({b}, 2, {h}, {w}) or ({b}, {h}, {w}, 2), got {got}")
    if flow.shape[1] == 2 and tuple(flow.shape[2:]) == (h, w):
        f = flow.permute(0, 2, 3, 1)
    elif tuple(flow.shape[1:]) == (h, w, 2):
        f = flow
    else:
        raise ShapeError(f"flow: expected ({b}, 2, {h}, {w}) or ({b}, {h}, {w}, 2), got {tuple(flow.shape)}")
    f = f.to(dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    # align_corners=True: normalised -1 and +1 are the centres of the first and last pixels
    gx = (xs + f[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + f[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=True)

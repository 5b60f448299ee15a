"""Optical flow: backends (OpenCV DIS), warping, forward-backward consistency, ``.flo`` files,
an on-disk flow cache for videos, and evaluation against ground truth.

Convention (DESIGN.md): a flow is float32 (H, W, 2) of (dx, dy) in pixels; O_t->t'(x) maps pixel x
of frame t to x + O_t->t'(x) in frame t'. "Warp q_t' to t" samples q_t' at x + O_t->t'(x)
(:func:`warp`, :func:`warp_torch`). A pixel is reliable when the forward and backward flows agree
to within 1 px and its target stays inside the frame (:func:`fb_consistency`).

Importing this package loads neither OpenCV nor torch; they are imported on first use.
"""

from hvsa.flow.cache import FlowCache, default_flow_dir
from hvsa.flow.consistency import fb_consistency, fb_residual
from hvsa.flow.dis import DIS_PRESETS, DISFlow, FlowBackend, compute_flow, flow_backends, make_flow_backend
from hvsa.flow.evaluate import (
    DatasetSummary,
    PairResult,
    endpoint_error,
    evaluate_folder,
    iter_evaluate_folder,
    occlusion_recall,
    summarize,
    visible_reliability,
)
from hvsa.flow.io import read_flo, write_flo
from hvsa.flow.warp import target_in_frame, warp, warp_torch

__all__ = [
    "DIS_PRESETS",
    "DISFlow",
    "DatasetSummary",
    "FlowBackend",
    "FlowCache",
    "PairResult",
    "compute_flow",
    "default_flow_dir",
    "endpoint_error",
    "evaluate_folder",
    "fb_consistency",
    "fb_residual",
    "flow_backends",
    "iter_evaluate_folder",
    "make_flow_backend",
    "occlusion_recall",
    "read_flo",
    "summarize",
    "target_in_frame",
    "visible_reliability",
    "warp",
    "warp_torch",
    "write_flo",
]

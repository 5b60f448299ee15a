"""Labelling methods, chosen by name from :data:`METHODS`: how a session turns the annotated
samples into labels for every frame. Every method is given the same annotated samples, so they
compare at equal cost.

=============== ==================================================================================
name            what it does
=============== ==================================================================================
hvsa            the paper's method: test-time fine-tuning (lambda * L_tc + L_ce), labels from the
                network
hvsa-fused      the same fine-tuning, holding the confident labels from before while some class
                has no annotated pixel (``FinetuneConfig.hold_unseen``); per pixel, the label of
                whichever is more confident: the network (its margin p1 - p2) or label
                propagation from the annotated pixels (its chain confidence), so annotated pixels
                keep their labels and pixels on reliable flow chains near them follow the chains
hvsa-crf        hvsa-fused whose network also reads each frame mirrored and enlarged 1.25x (plain
                and mirrored) and averages its softmax over the four, and whose labels' outlines
                are moved onto the frame's edges by a fully connected CRF
finetune-only   the paper's fine-tuning with lambda = 0 (cross-entropy on the annotated pixels only)
lp              no training: labels propagated along optical-flow chains from the annotated
                pixels, forward and backward (:mod:`hvsa.propagate`)
copy            no training: every pixel copies the nearest-in-time annotation covering it
=============== ==================================================================================

A method declares what it needs (``trains``, ``labels``) and the session follows the
declaration; the loop never switches on a method's name. For every method the selection
features come from the network (its encoder taps through the decoder's feature layer), so
``diversity`` and ``hvsa`` selection work the same under ``lp`` and ``copy``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hvsa.crf import CRFConfig
from hvsa.finetune import FinetuneConfig
from hvsa.model.views import View, views_for
from hvsa.propagate import PropagationConfig
from hvsa.registry import Registry
from hvsa.select.scores import margin_uncertainty

__all__ = ["METHODS", "Method", "get_method", "disagreement_margin", "fuse_labels", "fused_distribution",
           "LABEL_SOURCES"]

LABEL_SOURCES = ("network", "propagation", "fused")


@dataclass(frozen=True)
class Method:
    """A labelling method.

    Attributes:
        name: the registry name.
        trains: whether :meth:`hvsa.session.Session.finetune` trains the network.
        labels: where the labels of every frame come from: "network" (the fine-tuned network's
            softmax, confidence = margin p1 - p2), "propagation" (:func:`hvsa.propagate.propagate`,
            its confidence) or "fused" (per pixel the more confident of the two,
            :func:`fuse_labels`).
        lambda_tc: when set, the weight of L_tc this method trains with, whatever the session's
            fine-tuning settings say.
        hold_unseen: when set, the hold (:attr:`hvsa.finetune.FinetuneConfig.hold_unseen`) this
            method trains with, whatever the session's fine-tuning settings say.
        propagated_targets: when set, whether and from what confidence this method trains on
            propagated labels (:attr:`hvsa.finetune.FinetuneConfig.propagated_targets`),
            whatever the session's fine-tuning settings say.
        propagation: settings of the propagation, for ``labels = "propagation"``.
        views: views of every frame (:class:`hvsa.model.views.View`) the network also reads when
            predicting; its softmax is averaged over the frame and these views, each mirrored
            back and resized to the frame (test-time augmentation). Enlarged views give the
            stride-4 decoder finer outlines. Selection still reads the frame alone. The views'
            encoder taps are cached on disk with the video's, so each view of a frame is encoded
            once per video.
        refine: when set, the labels' per-pixel class distribution is refined by a fully
            connected CRF on the frame (:func:`hvsa.crf.dense_crf`) before the labels are read
            off it.
        summary: one line for listings and reports.
    """

    name: str
    trains: bool
    labels: str
    lambda_tc: float | None = None
    hold_unseen: float | None = None
    propagated_targets: float | None = None
    propagation: PropagationConfig | None = None
    views: tuple[View, ...] = ()
    refine: CRFConfig | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if self.labels not in LABEL_SOURCES:
            raise ValueError(f"method {self.name}: labels must be one of {LABEL_SOURCES}, got {self.labels!r}")
        if (self.labels in ("propagation", "fused")) != (self.propagation is not None):
            raise ValueError(f"method {self.name}: propagation settings go with labels 'propagation' and 'fused' only")
        if self.views and self.labels == "propagation":
            raise ValueError(f"method {self.name}: views are read by the network; its labels come from propagation")

    def finetune_config(self, config: FinetuneConfig) -> FinetuneConfig:
        """``config`` with this method's fixed settings applied (the effective configuration)."""
        fixed = {name: value for name in ("lambda_tc", "hold_unseen", "propagated_targets")
                 if (value := getattr(self, name)) is not None and getattr(config, name) != value}
        return dataclasses.replace(config, **fixed) if fixed else config


METHODS: Registry[Method] = Registry("method")


def _add(method: Method) -> None:
    METHODS.register(method.name)(method)


_add(Method("hvsa", trains=True, labels="network", hold_unseen=0.0, propagated_targets=0.0,
            summary="test-time fine-tuning, lambda L_tc + L_ce (paper)"))
# The frame's mirror and its 1.25x views, plain and mirrored (fine-tuning trains on 1.25x views of
# the annotated frames). Re-predicting 30 finished davis2016 runs (rec40, 2 %) with their final
# networks, these views added 0.43 points of mIoU on average; the mirror alone 0.11, and 0.75x
# views beside these 0.11 (docs/experiments.md, "Reading each frame also mirrored and enlarged").
# They cost about four decoder passes per frame, so the faster hvsa-fused reads the frame alone.
_PREDICT_VIEWS = views_for((1.25,))

_add(Method("hvsa-fused", trains=True, labels="fused", propagation=PropagationConfig(),
            summary="test-time fine-tuning, labels fused with flow propagation where it is more confident"))
_add(Method("hvsa-crf", trains=True, labels="fused", propagation=PropagationConfig(), views=_PREDICT_VIEWS,
            refine=CRFConfig(),
            summary="hvsa-fused reading views of each frame, its outlines moved onto the frame's edges by a fully"
                    " connected CRF"))
_add(Method("finetune-only", trains=True, labels="network", lambda_tc=0.0, hold_unseen=0.0, propagated_targets=0.0,
            summary="test-time fine-tuning, L_ce only"))
_add(Method("lp", trains=False, labels="propagation", propagation=PropagationConfig(),
            summary="label propagation along flow chains, forward and backward"))
_add(Method("copy", trains=False, labels="propagation", propagation=PropagationConfig(follow_flow=False),
            summary="nearest annotated frame copied"))


def fuse_labels(
    net_labels: np.ndarray, net_conf: np.ndarray, prop_labels: np.ndarray, prop_conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the label of the more confident source (ties: the network).

    Args:
        net_labels: uint8 (H, W), the network's argmax.
        net_conf: float (H, W), its margin p1 - p2 in [0, 1].
        prop_labels: uint8 (H, W), the propagated labels.
        prop_conf: float (H, W), their confidence in [0, 1] (1 on annotated pixels).

    Returns:
        (labels uint8 (H, W), confidence float32 (H, W)): the winner's label and confidence.
    """
    take = prop_conf > net_conf
    return np.where(take, prop_labels, net_labels), np.where(take, prop_conf, net_conf).astype(np.float32)


def disagreement_margin(
    net_labels: np.ndarray, net_conf: np.ndarray, prop_labels: np.ndarray, prop_conf: np.ndarray
) -> np.ndarray:
    """The two sources' joint margin, which the ``hvsa-disagree`` selector ranks fused labels by:
    float32 (H, W) in [0, 1].

    Where the network and the propagation agree (or the propagation reaches no label, confidence
    0), the winner's confidence, as :func:`fuse_labels` gives it; where they disagree, the
    difference of their confidences. The two sources are a committee of two: the winner's
    confidence alone calls a pixel sure when either source is, and so hides the pixels where a
    confident network contradicts a confident chain, where one of the two is confidently wrong.

    Args: as :func:`fuse_labels`.
    """
    nc = np.asarray(net_conf, np.float32)
    pc = np.asarray(prop_conf, np.float32)
    return np.where(net_labels == prop_labels, np.maximum(nc, pc), np.abs(nc - pc)).astype(np.float32)


def fused_distribution(
    net_probs: np.ndarray, prop_labels: np.ndarray, prop_conf: np.ndarray
) -> np.ndarray:
    """A per-pixel class distribution whose argmax and margin are :func:`fuse_labels`'s label
    and confidence.

    Where the network is at least as confident as the propagation (its margin p1 - p2 >= the
    propagation's confidence c), its softmax; elsewhere the propagated label with probability
    ``c + (1 - c) / C`` and every other class ``(1 - c) / C``, a distribution of margin c.

    Args:
        net_probs: float (C, H, W) softmax of the network.
        prop_labels: uint8 (H, W) propagated labels (class ids).
        prop_conf: float (H, W) their confidence in [0, 1].

    Returns:
        float32 (C, H, W).
    """
    probs = np.asarray(net_probs, np.float32)
    c = probs.shape[0]
    take = prop_conf > 1.0 - margin_uncertainty(probs)
    conf = np.asarray(prop_conf, np.float32)
    onehot = np.arange(c)[:, None, None] == prop_labels[None]
    propagated = conf * onehot + (1.0 - conf) / c
    return np.where(take, propagated, probs).astype(np.float32)


def get_method(name: str) -> Method:
    """The method registered as ``name``; an unknown name raises
    :class:`hvsa.errors.UnknownNameError` listing the valid ones."""
    return METHODS.get(name)

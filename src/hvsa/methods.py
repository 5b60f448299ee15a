"""Labelling methods, chosen by name from :data:`METHODS`: how a session turns the annotated
samples into labels for every frame. Every method is given the same annotated samples, so they
compare at equal cost.

=============== ==================================================================================
name            what it does
=============== ==================================================================================
hvsa            the paper's method: test-time fine-tuning (lambda * L_tc + L_ce), labels from the
                network
finetune-only   the same with lambda = 0 (cross-entropy on the annotated pixels only)
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

from hvsa.finetune import FinetuneConfig
from hvsa.propagate import PropagationConfig
from hvsa.registry import Registry

__all__ = ["METHODS", "Method", "get_method", "LABEL_SOURCES"]

LABEL_SOURCES = ("network", "propagation")


@dataclass(frozen=True)
class Method:
    """A labelling method.

    Attributes:
        name: the registry name.
        trains: whether :meth:`hvsa.session.Session.finetune` trains the network.
        labels: where the labels of every frame come from: "network" (the fine-tuned network's
            softmax, confidence = margin p1 - p2) or "propagation" (:func:`hvsa.propagate.propagate`,
            its confidence).
        lambda_tc: when set, the weight of L_tc this method trains with, whatever the session's
            fine-tuning settings say.
        propagation: settings of the propagation, for ``labels = "propagation"``.
        summary: one line for listings and reports.
    """

    name: str
    trains: bool
    labels: str
    lambda_tc: float | None = None
    propagation: PropagationConfig | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if self.labels not in LABEL_SOURCES:
            raise ValueError(f"method {self.name}: labels must be one of {LABEL_SOURCES}, got {self.labels!r}")
        if (self.labels == "propagation") != (self.propagation is not None):
            raise ValueError(f"method {self.name}: propagation settings go with labels='propagation' only")

    def finetune_config(self, config: FinetuneConfig) -> FinetuneConfig:
        """``config`` with this method's fixed settings applied (the effective configuration)."""
        if self.lambda_tc is None or config.lambda_tc == self.lambda_tc:
            return config
        return dataclasses.replace(config, lambda_tc=self.lambda_tc)


METHODS: Registry[Method] = Registry("method")


def _add(method: Method) -> None:
    METHODS.register(method.name)(method)


_add(Method("hvsa", trains=True, labels="network", summary="test-time fine-tuning, lambda L_tc + L_ce (paper)"))
_add(Method("finetune-only", trains=True, labels="network", lambda_tc=0.0, summary="test-time fine-tuning, L_ce only"))
_add(Method("lp", trains=False, labels="propagation", propagation=PropagationConfig(),
            summary="label propagation along flow chains, forward and backward"))
_add(Method("copy", trains=False, labels="propagation", propagation=PropagationConfig(follow_flow=False),
            summary="nearest annotated frame copied"))


def get_method(name: str) -> Method:
    """The method registered as ``name``; an unknown name raises
    :class:`hvsa.errors.UnknownNameError` listing the valid ones."""
    return METHODS.get(name)

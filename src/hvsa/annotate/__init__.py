"""Annotators: the simulated one (ground truth -> mimic polygons + clicks) and the interface."""

from hvsa.annotate.base import Annotator, SampleLabels, SampleRequest
from hvsa.annotate.simulated import SimulatedAnnotator
from hvsa.registry import Registry

ANNOTATORS: Registry[type] = Registry("annotator")
ANNOTATORS.register("simulated")(SimulatedAnnotator)

__all__ = ["ANNOTATORS", "Annotator", "SampleLabels", "SampleRequest", "SimulatedAnnotator"]

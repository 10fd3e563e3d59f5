"""The notebook-first API: arrays in, astropy and photutils objects out.

``astrostatlearn.segment(data, rms)``, ``astrostatlearn.simulate(shape)``,
``astrostatlearn.evaluate(true, pred)`` and ``astrostatlearn.inject(image)`` are the same work as
the CLI commands, on arrays (or ``NDData``) held in memory.
"""

from astrostatlearn.api.functions import evaluate, inject, segment, simulate
from astrostatlearn.api.results import InjectionResult, SegmentationResult, SimulatedField

__all__ = ["InjectionResult", "SegmentationResult", "SimulatedField", "evaluate", "inject", "segment", "simulate"]

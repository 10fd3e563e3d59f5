"""Simulate realistic survey fields with exact truth, using GalSim."""

from astrostatlearn.simulate.catalog import draw_catalog
from astrostatlearn.simulate.field import OUTPUT_FILES, SimulationSummary, field_wcs, simulate_field
from astrostatlearn.simulate.presets import PRESETS, Preset, get_preset
from astrostatlearn.simulate.render import render_tile

__all__ = ["OUTPUT_FILES", "PRESETS", "Preset", "SimulationSummary", "draw_catalog", "field_wcs",
           "get_preset", "render_tile", "simulate_field"]

from astrostatlearn._callable import make_callable  # noqa: E402

make_callable(__name__, "simulate")  # astrostatlearn.simulate(...) is astrostatlearn.api.simulate(...)

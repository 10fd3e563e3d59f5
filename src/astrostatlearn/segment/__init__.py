"""Whole-field segmentation: background mesh, tiles with halo, Dask, stitching, catalogue."""

from astrostatlearn.segment.background import BackgroundMesh
from astrostatlearn.segment.run import OUTPUTS, SegmentResult, segment_field
from astrostatlearn.segment.stitch import OwnedObjects, own_objects
from astrostatlearn.segment.tiles import channel0_noise, make_tile, region_tiles, tile_from_arrays

__all__ = ["BackgroundMesh", "OUTPUTS", "OwnedObjects", "SegmentResult", "channel0_noise", "make_tile", "own_objects",
           "region_tiles", "segment_field", "tile_from_arrays"]

from astrostatlearn._callable import make_callable  # noqa: E402

make_callable(__name__, "segment")  # astrostatlearn.segment(...) is astrostatlearn.api.segment(...)

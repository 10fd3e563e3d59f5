"""Field I/O: open, check and write large FITS images window by window."""

from astrostatlearn.field.checks import FieldReport, robust_stats, scan_field
from astrostatlearn.field.field import Field
from astrostatlearn.field.fitsio import (
    FitsImageWriter,
    ImageFile,
    atomic_write_bytes,
    atomic_write_json,
    check_writable,
    header_wcs,
    open_image,
    output_header,
    write_image,
)
from astrostatlearn.field.views import MaskFile, parse_bad_bits
from astrostatlearn.field.windows import Window, row_blocks, tile_grid

__all__ = [
    "Field", "FieldReport", "FitsImageWriter", "ImageFile", "MaskFile", "Window", "atomic_write_bytes", "atomic_write_json",
    "check_writable", "header_wcs", "open_image", "output_header", "parse_bad_bits", "robust_stats", "row_blocks",
    "scan_field", "tile_grid", "write_image",
]

"""Arrays, memory-mapped HDU data and ``NDData``/``CCDData`` as inputs, checked in one place.

An ``NDData``'s ``uncertainty`` becomes the rms (``StdDevUncertainty`` as it is,
``VarianceUncertainty`` by its square root, ``InverseVariance`` by ``1/sqrt``; where a variance
or inverse variance is 0, or any is NaN, the pixel has no data), its ``mask`` (True = bad) is applied, and its ``wcs`` is used,
and its ``meta`` (a ``CCDData``'s FITS header) gives the magnitude zero-point
(:func:`~astrostatlearn.field.zeropoint.header_zeropoint`).
Masked pixels become NaN, which every method treats as missing data. Every problem is an :class:`~astrostatlearn.errors.InputError` (a
``ValueError``) with one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field.views import apply_mask, to_rms
from astrostatlearn.field.zeropoint import header_zeropoint


@dataclass
class ImageInputs:
    """``img`` float32 [y, x] (NaN = no data), ``rms`` float32 or None, ``wcs`` or None,
    ``zeropoint`` (magnitudes) or None."""

    img: np.ndarray
    rms: np.ndarray | None
    wcs: Any
    zeropoint: float | None = None


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise InputError(f"{name} must be a 2-D array [y, x], got {a.ndim} dimension(s) of shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise InputError(f"{name} must hold numbers, got dtype {a.dtype}")
    if min(a.shape) < 8:
        raise InputError(f"{name} is {a.shape[0]}x{a.shape[1]} pixels; at least 8x8 is needed")
    return a


def _uncertainty_rms(unc: Any) -> np.ndarray:
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    a = np.asarray(unc.array, dtype=np.float64)
    if isinstance(unc, StdDevUncertainty):
        return a
    if isinstance(unc, VarianceUncertainty):  # 0 is no data: NaN, which masks the image there
        return to_rms(a, "variance")
    if isinstance(unc, InverseVariance):
        return to_rms(a, "weight")
    raise InputError(f"unsupported NDData uncertainty {type(unc).__name__}; use StdDevUncertainty, "
                     "VarianceUncertainty or InverseVariance")


def image_inputs(data: Any, rms: Any = None, wcs: Any = None, mask: Any = None) -> ImageInputs:
    """Unpack and check the science image, its rms, WCS and mask (see the module docstring)."""
    from astropy.nddata import NDData

    no_data, zeropoint = None, None
    if isinstance(data, NDData):
        found = header_zeropoint(data.meta or {})
        zeropoint = None if found is None else found[0]
        if rms is None and data.uncertainty is not None:
            rms = _uncertainty_rms(data.uncertainty)
            no_data = np.isnan(rms)  # an InverseVariance of 0, or an unknown uncertainty
        if mask is None and data.mask is not None:
            mask = data.mask
        if wcs is None and data.wcs is not None:
            wcs = data.wcs
        data = data.data
    img = _as_2d(data, "data").astype(np.float32)
    if rms is not None:
        rms = _as_2d(rms, "rms").astype(np.float32)
        if rms.shape != img.shape:
            raise InputError(f"rms has shape {rms.shape}, but the image has {img.shape}")
        if no_data is not None:
            img = apply_mask(img, no_data)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != img.shape:
            raise InputError(f"mask has shape {m.shape}, but the image has {img.shape}")
        img = apply_mask(img, m.astype(bool))
    if wcs is not None and not hasattr(wcs, "to_header"):
        raise InputError(f"wcs must be an astropy WCS, got {type(wcs).__name__}")
    return ImageInputs(img, rms, wcs, zeropoint)


def label_input(x: Any, name: str) -> np.ndarray:
    """A label map (int, 0 = background) from an array, a SegmentationImage or a result."""
    for attr in ("labels", "data"):
        if hasattr(x, attr) and not isinstance(x, np.ndarray):
            x = getattr(x, attr)
            break
    return _as_2d(x, name)

"""Streaming checks and statistics over a whole field, one row block at a time.

:func:`scan_field` reads each image once in strips of bounded size (default 16 Mpix, i.e.
about 200 MB of float32 working memory for img + rms + true), so it runs on 25k^2 fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field.field import Field
from astrostatlearn.field.windows import Window, row_blocks, sample_rows
from astrostatlearn.progress import progress_bar


@dataclass
class FieldReport:
    """What one pass over a field found. Counts are in pixels unless named otherwise."""

    shape: tuple[int, int]
    n_pixels: int
    n_nonfinite: int = 0
    n_objects: int | None = None
    n_foreground: int | None = None
    max_id: int | None = None
    ids: np.ndarray | None = dc_field(default=None, repr=False)

    @property
    def foreground_fraction(self) -> float | None:
        return None if self.n_foreground is None else self.n_foreground / self.n_pixels


def scan_field(field: Field, block_pixels: int = 1 << 24, progress: bool = False, truth: bool = True) -> FieldReport:
    """Check every pixel of ``field`` in bounded memory.

    Non-finite image pixels are counted (they are masked downstream); it is fatal only when
    every pixel is non-finite. The rms must be finite and > 0 wherever the image is finite.
    The truth map must hold integral IDs in [0, 2**31 - 1] and look like a label map
    (:func:`check_label_like`).

    Parameters
    ----------
    field : Field
        An opened field (image, and optionally rms and truth).
    block_pixels : int
        Pixels per streamed row block; memory is a few times this many bytes per map.
    progress : bool
        Show a progress bar.
    truth : bool
        Check the truth map too, when the field has one (segmentation does not read it).

    Returns
    -------
    FieldReport
        Shape, non-finite count and, with a truth map, the number of objects, foreground
        pixels and the largest ID.

    Raises
    ------
    InputError
        Every image pixel non-finite, an rms <= 0 or non-finite where the image is finite, or a
        truth map that is not integral, has negative or too large IDs, or is not a label map.

    Examples
    --------
    >>> import numpy as np
    >>> from astrostatlearn.field import Field, scan_field
    >>> from astrostatlearn.field.arrays import ArrayImage
    >>> true = np.zeros((64, 64), np.int32); true[10:20, 10:20] = 7
    >>> f = Field(ArrayImage(np.ones((64, 64), np.float32)), true=ArrayImage(true))
    >>> r = scan_field(f)
    >>> r.n_objects, r.n_foreground
    (1, 100)
    """
    report = FieldReport(field.shape, field.shape[0] * field.shape[1])
    with_truth = truth and field.true is not None
    blocks = list(row_blocks(field.shape, block_pixels))
    ids = np.zeros(0, dtype=np.int64)
    n_fg = n_label = n_same = 0
    iterator = progress_bar(blocks, desc="scanning field", unit="block", enabled=progress)
    for w in iterator:
        report.n_nonfinite += check_pixels(field, w, *field.read_img_rms(w))
        if with_truth:
            lab = check_label_block(field.true.read(w), w, field.true.path)
            n_label, n_same = n_label + (a := neighbour_agreement(lab))[0], n_same + a[1]
            fg = lab > 0
            n_fg += int(np.count_nonzero(fg))
            if fg.any():
                ids = np.union1d(ids, np.unique(lab[fg]))
    if report.n_nonfinite == report.n_pixels:
        raise InputError("every pixel is non-finite (NaN or inf)", field.img.path)
    if with_truth:
        check_label_like(n_label, n_same, field.true.path)
        report.n_foreground = n_fg
        report.n_objects = int(ids.size)
        report.max_id = int(ids.max()) if ids.size else 0
        report.ids = ids
    return report


def check_pixels(field: Field, w: Window, img: np.ndarray, rms: np.ndarray | None) -> int:
    """Check one window of the image and its rms (already read): :class:`InputError` where the rms
    is non-finite or <= 0 but the image is finite; returns the number of non-finite image pixels."""
    finite = np.isfinite(img)
    if rms is not None:
        _check_rms(field, w, rms, finite)
    return int(finite.size - np.count_nonzero(finite))


def _first_bad(mask: np.ndarray, w: Window) -> str:
    y, x = np.argwhere(mask)[0]
    return f"first at y={w.y0 + y}, x={w.x0 + x}"


def _check_rms(field: Field, w: Window, rms: np.ndarray, finite: np.ndarray) -> None:
    bad = finite & ~(np.isfinite(rms) & (rms > 0))
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} pixels in rows {w.y0}-{w.y1 - 1} have rms <= 0 or non-finite where "
            f"the image is finite ({_first_bad(bad, w)})", field.rms.path)  # type: ignore[union-attr]


MAX_LABEL = 2**31 - 1  # label maps are int32 on disk: larger IDs are refused, never wrapped


def check_label_block(raw: np.ndarray, w: Window, path: Any, role: str = "truth map") -> np.ndarray:
    """One block of a label map as integer IDs: the block itself when its dtype holds no more than
    :data:`MAX_LABEL` (int8-int32, uint8-uint16; no copy), else int64. :class:`InputError` (naming
    the first bad pixel) for non-finite or non-integral values, negative IDs, or IDs above
    :data:`MAX_LABEL`."""
    if raw.dtype.kind not in "iuf":
        raise InputError(f"{role} has unsupported dtype {raw.dtype}; expected integer labels", path)
    if raw.dtype.kind == "f":
        raw = raw.astype(np.float64, copy=False)  # float32 cannot tell 2**31 - 1 from 2**31
        nonint = ~np.isfinite(raw) | (raw != np.round(raw))
        if nonint.any():
            raise InputError(f"{role} is not integer: {int(nonint.sum())} pixels with non-finite or non-integral "
                             f"values in rows {w.y0}-{w.y1 - 1} ({_first_bad(nonint, w)}); is this an image?", path)
    if raw.dtype.kind != "u":
        neg = raw < 0
        if neg.any():
            raise InputError(f"{role} has negative IDs (min {raw.min():g}, {_first_bad(neg, w)})", path)
    if raw.dtype.kind in "iu" and np.iinfo(raw.dtype).max <= MAX_LABEL:
        return raw  # nothing above MAX_LABEL fits; widening 16 Mpix to int64 would cost 0.5 s
    big = raw > MAX_LABEL
    if big.any():
        raise InputError(f"{role} has IDs above 2**31 - 1 (max {raw.max():.0f}, {_first_bad(big, w)}); "
                         "label maps are int32: renumber the objects", path)
    return raw.astype(np.int64, copy=False)


def neighbour_agreement(lab: np.ndarray) -> tuple[int, int]:
    """(foreground pixels, foreground pixels whose right neighbour has the same ID) of one block."""
    fg = lab > 0
    same = fg[:, :-1] & (lab[:, :-1] == lab[:, 1:])
    return int(np.count_nonzero(fg)), int(np.count_nonzero(same))


def check_label_like(n_fg: int, n_same: int, path: Any, role: str = "truth map") -> None:
    """Refuse a map whose neighbouring foreground pixels almost never share an ID: an image, not labels."""
    if n_fg >= 1000 and n_same < 0.2 * n_fg:
        raise InputError(f"{role} does not look like a label map: only {100 * n_same / n_fg:.0f}% of its "
                         "non-zero pixels share their neighbour's ID (objects are regions of one ID); "
                         "is this an image?", path)


def robust_stats(field: Field, max_pixels: int = 4_000_000, sigma: float = 3.0) -> tuple[float, float, float]:
    """Sigma-clipped (mean, median, std) of the finite image pixels.

    On large fields a regular subsample of whole rows (at most ``max_pixels`` pixels) is used,
    so the cost is bounded whatever the field size.
    """
    rows = [block[np.isfinite(block)] for block in field.read_img_windows(sample_rows(field.shape, max_pixels))]
    values = np.concatenate(rows) if rows else np.zeros(0, np.float32)
    if values.size == 0:
        raise InputError("every pixel is non-finite (NaN or inf)", field.img.path)
    from astropy.stats import sigma_clipped_stats

    mean, median, std = sigma_clipped_stats(values, sigma=sigma, maxiters=10)
    return float(mean), float(median), float(std)

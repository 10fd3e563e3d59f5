"""Global (whole-field) statistics for the input variants, from a bounded row subsample.

Every variant is computed with these field-wide numbers, never per patch, so a pixel gets the
same value whether it is processed in a 256^2 patch, a 4096^2 tile or the whole field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.preprocess.clipping import clipped_rows
from astrostatlearn.preprocess.sky_noise import source_noise_slope
from astrostatlearn.field import Field
from astrostatlearn.field.windows import sample_rows


@dataclass(frozen=True)
class GlobalStats:
    """Robust statistics of a field's image and rms (image units).

    ``img_lo``/``img_hi`` and ``rms_lo``/``rms_hi`` are the 0.5 and 99.5 (image) / 0.5 and 99.5
    (rms) percentiles of the finite pixels of the subsample. ``has_rms`` is False when the rms
    was estimated as the constant ``img_std``. ``rms_source_slope`` is the variance the rms map
    adds per unit signal (``1 / gain`` when it carries the sources' Poisson noise, else 0;
    :func:`~astrostatlearn.preprocess.sky_noise.source_noise_slope`).
    """

    img_median: float
    img_std: float
    img_lo: float
    img_hi: float
    img_max: float
    rms_median: float
    rms_lo: float
    rms_hi: float
    has_rms: bool
    n_sampled: int
    rms_source_slope: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def sorted_percentiles(values: np.ndarray, q: list[float], presorted: bool = True) -> list[float]:
    """Percentiles ``q`` (0-100) of the sorted 1-D ``values`` (non-empty), as ``np.percentile``
    (linear interpolation between the closest ranks) without its partition pass; unsorted
    ``values`` (``presorted=False``) are partitioned once at the ranks they read."""
    pos = np.asarray(q, np.float64) / 100.0 * (values.size - 1)
    i = np.floor(pos).astype(np.int64)
    j = np.minimum(i + 1, values.size - 1)
    if not presorted:
        values = np.partition(values, np.unique(np.concatenate([i, j])))
    a, b = values[i].astype(np.float64), values[j].astype(np.float64)
    return [float(v) for v in a + (b - a) * (pos - i)]


def global_stats(field: Field, max_pixels: int = 4_000_000) -> GlobalStats:
    """Field-wide robust statistics (bounded cost: at most ``max_pixels`` pixels are read)."""
    rows = sample_rows(field.shape, max_pixels)
    imgs, rmss, paired = [], [], []
    rms_rows = field.read_rms_windows(rows)
    for i, img in enumerate(field.read_img_windows(rows)):
        ok = np.isfinite(img)
        imgs.append(img[ok])
        if rms_rows is not None:
            rms = rms_rows[i]
            good = ok & np.isfinite(rms) & (rms > 0)
            rmss.append(rms[good])
            paired.append((np.where(good, img, np.nan), np.where(good, rms, np.nan)))
    values = np.sort(np.concatenate(imgs))  # sorted once: the clipping and the percentiles read it
    if values.size == 0:
        raise InputError("every pixel is non-finite (NaN or inf)", field.img.path)
    clipped = clipped_rows(values[None, :], sigma=3.0, maxiters=10, presorted=True)
    median, std = float(clipped.median[0]), float(clipped.std[0])
    std = std if std > 0 else float(np.std(values)) or 1.0
    lo, hi = sorted_percentiles(values, [0.5, 99.5])
    if rmss:
        r = np.concatenate(rmss)
        if r.size == 0:
            raise InputError("the rms map is non-finite or <= 0 wherever the image is finite",
                             field.rms.path)  # type: ignore[union-attr]
        r_lo, r_med, r_hi = sorted_percentiles(r, [0.5, 50.0, 99.5], presorted=False)
        has_rms = True
        slope = source_noise_slope(np.vstack([p[0] for p in paired]), np.vstack([p[1] for p in paired]), median, r_med)
    else:
        r_med = r_lo = r_hi = std
        has_rms, slope = False, 0.0
    if r_hi <= r_lo:
        r_hi = r_lo + max(abs(r_lo), 1e-12) * 1e-3
    return GlobalStats(float(median), std, float(lo), float(hi), float(values[-1]), r_med, r_lo, r_hi,
                       has_rms, int(values.size), slope)

"""The vectorised sigma clipping against astropy's and photutils' own estimators."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.stats import SigmaClip, sigma_clipped_stats

from astrostatlearn.preprocess.clipping import clipped_rows


def _rows(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 500.0 + rng.normal(0, 4, (60, 1500))
    x += (rng.random(x.shape) < 0.08) * rng.exponential(60, x.shape)  # sources: a positive tail
    x = x.astype(np.float32)
    x[:4, :1200] = np.nan  # mostly masked rows
    x[5] = np.nan  # an empty row
    x[6, :] = 7.0  # a constant row (std 0)
    return x


def test_rows_equal_astropy_sigma_clipped_stats() -> None:
    x = _rows()
    st = clipped_rows(x, sigma=3.0, maxiters=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, row in enumerate(x):
            if not np.isfinite(row).any():
                assert st.n[i] == 0 and np.isnan(st.median[i])
                continue
            mean, median, std = sigma_clipped_stats(row, sigma=3.0, maxiters=10)
            kept = SigmaClip(sigma=3.0, maxiters=10)(row[np.isfinite(row)], masked=False)
            assert st.n[i] == np.count_nonzero(np.isfinite(kept))
            assert st.median[i] == pytest.approx(median, abs=1e-4)
            assert st.mean[i] == pytest.approx(mean, abs=1e-3)
            assert st.std[i] == pytest.approx(std, rel=1e-4, abs=1e-6)


def test_fewer_iterations_clip_less() -> None:
    x = _rows()[10:20]
    one, ten = clipped_rows(x, maxiters=1), clipped_rows(x, maxiters=10)
    assert (one.n >= ten.n).all() and (one.n > ten.n).any()


def test_sextractor_mode_equals_photutils() -> None:
    from photutils.background import SExtractorBackground

    x = _rows()[8:40]
    st = clipped_rows(x)
    clip = SigmaClip(sigma=3.0, maxiters=10)
    ref = [SExtractorBackground(sigma_clip=None)(clip(r, masked=False)) for r in x]
    np.testing.assert_allclose(st.sextractor_mode(), ref, rtol=0, atol=2e-3)
    crowded = np.abs(st.mean - st.median) / st.std >= 0.3
    np.testing.assert_array_equal(st.sextractor_mode()[crowded], st.median[crowded])


def test_a_large_sky_level_keeps_its_precision() -> None:
    rng = np.random.default_rng(0)
    x = (1.0e5 + rng.normal(0, 1.0, (4, 4096))).astype(np.float32)
    st = clipped_rows(x)
    np.testing.assert_allclose(st.std, 1.0, rtol=0.05)  # not lost to float32 cancellation


def test_a_long_row_clipped_by_many_values_equals_astropy() -> None:
    """A whole-field sample (one row of 10^6 values, 5% in a source tail): the kept run's sums
    come from its clipped ends, not a pass over the row."""
    rng = np.random.default_rng(5)
    x = (100.0 + rng.normal(0, 3, 1_000_000) + (rng.random(1_000_000) < 0.05) * rng.exponential(80, 1_000_000))
    x = x.astype(np.float32)
    st = clipped_rows(x[None, :], sigma=3.0, maxiters=10)
    mean, median, std = sigma_clipped_stats(x, sigma=3.0, maxiters=10)
    assert st.median[0] == pytest.approx(median, rel=1e-6)
    assert st.mean[0] == pytest.approx(mean, rel=1e-6)
    assert st.std[0] == pytest.approx(std, rel=1e-5)


def test_presorted_rows_skip_the_sort_with_the_same_result() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (3, 5000)).astype(np.float32)
    x[1, :40] = np.nan
    a, b = clipped_rows(x), clipped_rows(np.sort(x, axis=1), presorted=True)
    for name in ("median", "mean", "std", "n"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(clipped_rows(x, presorted=True).n, a.n)  # the flag is honoured: unsorted rows mislead it

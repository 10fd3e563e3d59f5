"""The real KiDS frame (no rms map) against its SExtractor catalogue."""

from pathlib import Path

from astrostatlearn.benchmark.real import compare_with_sextractor


def test_sep_on_kids_agrees_with_sextractor(real_dir: Path, tmp_path: Path) -> None:
    r = compare_with_sextractor(real_dir / "kids-r", tmp_path / "k", method="sep")
    assert r["match_fraction"] > 0.9 and r["our_match_fraction"] > 0.9
    assert r["median_offset_px"] < 0.3
    assert 0.4 < r["flux_ratio_median"] < 1.2  # isophotal flux vs SExtractor's Kron FLUX_AUTO
    # Kron flux_auto is SExtractor's FLUX_AUTO to within a few percent (measured 0.991, MAD 0.034)
    assert 0.95 < r["flux_auto_ratio_median"] < 1.05 and r["flux_auto_ratio_mad"] < 0.08
    assert Path(r["overlay"]).read_bytes()[:4] == b"\x89PNG"


def test_objects_without_a_centroid_are_left_out_of_the_matching() -> None:
    """A segment with no positive flux has a NaN centroid (the shipped Mask2Former makes a few on
    KiDS); matching by position skips it instead of failing."""
    import numpy as np
    from astropy.table import Table

    from astrostatlearn.benchmark.real import placed_objects

    cat = Table({"x": [1.0, np.nan, 3.0], "y": [2.0, 5.0, np.nan], "flux": [10.0, -1.0, 4.0]})
    xy, flux = placed_objects(cat)
    assert xy.tolist() == [[1.0, 2.0]] and flux.tolist() == [10.0]

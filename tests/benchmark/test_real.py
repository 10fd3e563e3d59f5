"""The real KiDS frame (no rms map) against its SExtractor catalogue."""

from pathlib import Path

from astrostatlearn.benchmark.real import compare_with_sextractor


def test_sep_on_kids_agrees_with_sextractor(real_dir: Path, tmp_path: Path) -> None:
    r = compare_with_sextractor(real_dir / "kids-r", tmp_path / "k", method="sep")
    assert r["match_fraction"] > 0.9 and r["our_match_fraction"] > 0.9
    assert r["median_offset_px"] < 0.3
    assert 0.4 < r["flux_ratio_median"] < 1.2  # isophotal flux vs SExtractor's Kron FLUX_AUTO
    assert Path(r["overlay"]).read_bytes()[:4] == b"\x89PNG"

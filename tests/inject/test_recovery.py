from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from typer.testing import CliRunner

from astrostatlearn.cli import app
from astrostatlearn.errors import InputError
from astrostatlearn.inject import InjectRequest, inject_image
from astrostatlearn.inject.recovery import run_recovery, score_realisation, summarise
from tests.inject.test_inject import star_field

runner = CliRunner()


@pytest.fixture(scope="module")
def injected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("recovery")
    path = star_field(tmp / "stars.fits")
    inject_image(path, tmp / "inj", InjectRequest(n=25, realisations=2, seed=1))
    return tmp / "inj"


def test_a_perfect_segmentation_recovers_what_is_in_the_truth(injected: Path, tmp_path: Path) -> None:
    real = injected / "real-000"
    true = fits.getdata(real / "true.fits")
    pred = true.copy()
    busy = (fits.getdata(real / "ignore.fits") > 0) | (true > 0)
    y, x = next((y, x) for y in range(4, 390, 6) for x in range(4, 390, 6) if not busy[y - 4:y + 8, x - 4:x + 8].any())
    pred[y:y + 4, x:x + 4] = 77  # one blob off every source: spurious
    fits.PrimaryHDU(pred).writeto(tmp_path / "perfect.fits")
    cat = Table.read(real / "truth.ecsv")
    r = score_realisation(real, tmp_path / "perfect.fits", np.arange(18.0, 30.0, 0.5))
    assert r["n_recovered"] == int(np.count_nonzero(cat["area_true"] > 0)) and r["n_injected"] == len(cat)
    assert r["n_spurious"] == 1 and r["iou_sum"] == pytest.approx(r["n_matched"])
    clean = float(np.count_nonzero(fits.getdata(real / "ignore.fits") == 0)) / 1e6
    assert r["clean_mpix"] == pytest.approx(clean)
    s = summarise("perfect", [r])
    assert s["mask_iou"] == pytest.approx(1.0) and s["spurious_per_mpix"] == pytest.approx(1 / clean)
    assert sum(s["mag"]["n_true"]) == len(cat)
    assert s["dmag_median"] is None  # no catalogue beside the map: no photometry to compare


def test_segments_the_other_bands_see_are_confirmed(injected: Path, tmp_path: Path) -> None:
    """With confirm.fits, a spurious segment on another band's source is confirmed; one on
    nothing is not; the rate is per Mpix outside the own and the confirmed sources."""
    real = tmp_path / "real-000"
    shutil.copytree(injected / "real-000", real)
    true = fits.getdata(real / "true.fits")
    ignore = fits.getdata(real / "ignore.fits") > 0
    busy = ignore | (true > 0)
    spots = [(y, x) for y in range(4, 390, 6) for x in range(4, 390, 6) if not busy[y - 4:y + 8, x - 4:x + 8].any()]
    (ya, xa), (yb, xb) = spots[0], spots[-1]
    pred = true.copy()
    pred[ya:ya + 4, xa:xa + 4] = 77
    pred[yb:yb + 4, xb:xb + 4] = 78
    confirm = np.zeros(true.shape, np.uint8)
    confirm[ya + 1:ya + 3, xa + 1:xa + 3] = 1  # another band sees a source under segment 77 only
    fits.PrimaryHDU(confirm).writeto(real / "confirm.fits")
    fits.PrimaryHDU(pred).writeto(tmp_path / "pred.fits")
    r = score_realisation(real, tmp_path / "pred.fits", np.arange(18.0, 30.0, 0.5))
    assert r["n_spurious"] == 2 and r["n_unconfirmed"] == 1
    clean = float(np.count_nonzero(~ignore & (confirm == 0))) / 1e6
    assert r["unconfirmed_mpix"] == pytest.approx(clean)
    assert summarise("m", [r])["unconfirmed_per_mpix"] == pytest.approx(1 / clean)
    plain = score_realisation(injected / "real-000", tmp_path / "pred.fits", np.arange(18.0, 30.0, 0.5))
    assert "n_unconfirmed" not in plain and summarise("m", [plain])["unconfirmed_per_mpix"] is None


def test_recovery_reports_every_method_with_sextractor(injected: Path, tmp_path: Path) -> None:
    res = run_recovery(injected, tmp_path / "rec", methods=["sep"])
    names = [r["method"] for r in res.rows]
    assert names[0] == "sep" and (("SExtractor" in names) == (shutil.which("source-extractor") is not None))
    sep = res.rows[0]
    comp = np.asarray(sep["mag"]["completeness"], float)
    finite = comp[np.isfinite(comp)]
    assert finite[:3].mean() >= finite[-3:].mean()  # bright galaxies are found more often than faint ones
    assert 0 < sep["completeness"] <= 1 and sep["n_injected"] == 50
    lo, hi = np.asarray(sep["mag"]["low"], float), np.asarray(sep["mag"]["high"], float)
    ok = np.isfinite(lo) & np.isfinite(comp)
    assert np.all(lo[ok] <= comp[ok] + 1e-9) and np.all(comp[ok] <= hi[ok] + 1e-9)
    if sep["m50"] is not None and np.isfinite(sep["m50"]):
        assert sep["mag"]["edges"][0] <= sep["m50"] <= sep["mag"]["edges"][-1]
    for name in ("recovery.csv", "recovery.json", "recovery.html"):
        assert (tmp_path / "rec" / name).exists()
    assert (tmp_path / "rec" / "runs" / "real-001" / "sep" / "segmentation.fits").exists()
    assert "data:image/png;base64," in (tmp_path / "rec" / "recovery.html").read_text()
    assert all(r["false_per_mpix_negated"] >= 0 for r in res.rows)
    for row in res.rows:  # Kron magnitudes of the recovered objects: a little faint of the injected totals
        assert -0.1 < row["dmag_median"] < 0.4 and 0 < row["dmag_scatter"] < 0.5, row["method"]
        median = np.asarray(row["response"]["median"], float)
        assert np.isfinite(median).any() and np.nanmax(np.abs(median)) < 1.0  # per magnitude bin
    assert "Photometric response" in (tmp_path / "rec" / "recovery.html").read_text()


def test_recovery_compares_settings_of_one_method(injected: Path, tmp_path: Path) -> None:
    """``sep,sep:nsigma=4``: two rows named by their text, each run with its own settings (the
    stricter one detects less), in their own run folders; a row given twice or a bad option is
    refused before anything is written."""
    res = run_recovery(injected, tmp_path / "rec", methods=["sep", "sep:nsigma=4"], sextractor=False)
    loose, strict = res.rows
    assert (loose["method"], strict["method"]) == ("sep", "sep:nsigma=4")
    runs = tmp_path / "rec" / "runs" / "real-000"
    n = [np.unique(fits.getdata(runs / d / "segmentation.fits")).size for d in ("sep", "sep_nsigma=4")]
    assert n[1] < n[0]
    assert strict["n_recovered"] <= loose["n_recovered"]
    for methods, says in ((["sep", "sep"], "twice"), (["sep:nsigma=-2"], "positive")):
        with pytest.raises(InputError, match=says):
            run_recovery(injected, tmp_path / "bad", methods=methods, sextractor=False)
        assert not (tmp_path / "bad").exists()


def test_the_negated_image_counts_only_segments_off_the_own_sources(injected: Path, tmp_path: Path) -> None:
    """The negated field is -img with the rms and header; its false-detection count skips own sources."""
    from astrostatlearn.inject.recovery import false_per_mpix, negated_field

    real = injected / "real-000"
    neg = negated_field(real, tmp_path / "neg")
    img, header = fits.getdata(real / "img.fits", header=True)
    assert np.array_equal(fits.getdata(neg / "img.fits"), -img, equal_nan=True)
    assert fits.getheader(neg / "img.fits") == header
    ignore = fits.getdata(real / "ignore.fits") > 0
    seg = np.zeros(ignore.shape, np.int32)
    seg[ignore] = 5  # one segment on the own sources: not false
    free = np.argwhere(~ignore)[:1]
    seg[tuple(free.T)] = 9  # one off them: false
    fits.PrimaryHDU(seg).writeto(tmp_path / "seg.fits")
    clean = float(np.count_nonzero(~ignore)) / 1e6
    assert false_per_mpix(tmp_path / "seg.fits", real / "ignore.fits") == pytest.approx(1 / clean)


def test_recovery_cli(injected: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["recovery", str(injected), "-o", str(tmp_path / "r"), "--methods", "sep", "--no-sextractor"])
    assert r.exit_code == 0, r.output
    assert "completeness" in r.output and "spurious/Mpix" in r.output
    bad = runner.invoke(app, ["recovery", str(tmp_path), "-o", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "no realisations" in bad.output
    again = runner.invoke(app, ["recovery", str(injected), "-o", str(tmp_path / "r"), "--methods", "sep"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    unknown = runner.invoke(app, ["recovery", str(injected), "-o", str(tmp_path / "r3"), "--methods", "magic"])
    assert unknown.exit_code == 2 and not (tmp_path / "r3").exists()


def test_recovered_fluxes_are_looked_up_by_segment_id_in_either_catalogue(tmp_path: Path) -> None:
    from astrostatlearn.inject.recovery import recovered_flux

    ours, sex = tmp_path / "ours", tmp_path / "sex"
    ours.mkdir(), sex.mkdir()
    Table({"id": [3, 1], "flux": [1.0, 2.0], "flux_auto": [30.0, 10.0]}).write(ours / "catalog.ecsv")
    (sex / "sex.cat").write_text("#   1 NUMBER                 Running object number\n"
                                 "#   2 FLUX_AUTO              Flux within a Kron-like elliptical aperture [count]\n"
                                 "     1   12.5\n     2   -3.0\n")
    got = recovered_flux(ours / "segmentation.fits", np.array([1, 3, 7]))
    assert got[:2].tolist() == [10.0, 30.0] and np.isnan(got[2])
    assert recovered_flux(sex / "sex_seg.fits", np.array([2, 1])).tolist() == [-3.0, 12.5]
    assert recovered_flux(tmp_path / "none.fits", np.array([1])) is None
    Table({"id": [1], "flux": [1.0]}).write(tmp_path / "catalog.ecsv")  # a run without --kron
    assert recovered_flux(tmp_path / "segmentation.fits", np.array([1])) is None


def test_completeness_magnitudes_interpolate_between_bins() -> None:
    from astrostatlearn.inject.recovery import _crossing

    mids = np.array([20.0, 21.0, 22.0, 23.0, 24.0])
    comp = np.array([1.0, 1.0, 0.6, 0.2, 0.0])
    assert _crossing(mids, comp, 0.9) == pytest.approx(21.25)
    assert _crossing(mids, comp, 0.5) == pytest.approx(22.25)
    assert _crossing(mids, np.full(5, 0.3), 0.5) is None  # never reached
    assert _crossing(mids, np.full(5, 0.95), 0.9) == float("inf")  # above it over the whole range

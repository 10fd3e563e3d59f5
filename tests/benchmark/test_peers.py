import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.benchmark import peers

needs_sextractor = pytest.mark.skipif(shutil.which("source-extractor") is None,
                                      reason="Debian source-extractor not installed (.ci/run installs it)")


@needs_sextractor
def test_run_sextractor_gives_an_aligned_instance_map(sim_field: Path, tmp_path: Path) -> None:
    seg = fits.getdata(peers.run_sextractor(sim_field, tmp_path / "sex"))
    true = fits.getdata(sim_field / "true.fits")
    assert seg.shape == true.shape
    ids = np.unique(seg)
    assert ids[0] == 0 and len(ids) > 20
    # it finds the truth's foreground: most detected pixels lie on true objects
    assert ((seg > 0) & (true > 0)).sum() / (seg > 0).sum() > 0.8


@needs_sextractor
def test_run_sextractor_failure_is_a_runtime_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="SExtractor failed"):
        peers.run_sextractor(tmp_path / "no-such-field", tmp_path / "sex")


def test_sky_rms_map_takes_the_sources_poisson_noise_off(sim_field: Path, tmp_path: Path) -> None:
    """The simulator's rms map carries source noise: its sky part is lower on the objects, the same on the sky,
    and keeps the header; a sky-only map gives no file."""
    sky_path = peers.sky_rms_map(sim_field, tmp_path / "sky.fits")
    assert sky_path == tmp_path / "sky.fits"
    sky, rms, true = (fits.getdata(p) for p in (sky_path, sim_field / "rms.fits", sim_field / "true.fits"))
    assert sky.shape == rms.shape and np.all(sky <= rms)
    assert np.median(rms[true > 0] / sky[true > 0]) > 1.1 and np.median(rms[true == 0] / sky[true == 0]) == 1.0
    assert fits.getheader(sky_path)["CTYPE1"] == fits.getheader(sim_field / "rms.fits")["CTYPE1"]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "img.fits").symlink_to(sim_field / "img.fits")
    fits.PrimaryHDU(sky).writeto(flat / "rms.fits")
    assert peers.sky_rms_map(flat, tmp_path / "again.fits") is None and not (tmp_path / "again.fits").exists()


@needs_sextractor
def test_sextractor_with_the_sky_rms_finds_more_of_the_truth(sim_field: Path, tmp_path: Path) -> None:
    from astrostatlearn.benchmark.matrix import sextractor_runs

    runs = sextractor_runs(sim_field, tmp_path)
    assert [r[0] for r in runs] == ["SExtractor", "SExtractor-tuned", "SExtractor-sky"] and runs[2][3] is not None
    true = fits.getdata(sim_field / "true.fits")
    found = []
    for rms in (None, runs[2][3]):
        seg = fits.getdata(peers.run_sextractor(sim_field, tmp_path / f"sex{rms is None}", 1.5, rms))
        found.append(len(np.unique(true[(seg > 0) & (true > 0)])))
    assert found[1] > 1.1 * found[0]  # a total-noise MAP_RMS raises its threshold on every object

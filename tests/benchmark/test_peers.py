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

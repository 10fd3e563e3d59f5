from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.metrics import block_pq_terms, bootstrap_pq, evaluate


@pytest.fixture(scope="module")
def maps(sim_field: Path) -> tuple[np.ndarray, np.ndarray]:
    true = fits.getdata(sim_field / "true.fits").astype(np.int32)
    # A flawed prediction: every third object missed, masks shifted by one pixel, 30 false squares.
    pred = np.roll(np.where(true % 3 == 0, 0, true), 1, axis=1)
    rng = np.random.default_rng(1)
    for k, (y, x) in enumerate(rng.integers(0, min(true.shape) - 4, size=(30, 2))):
        pred[y:y + 4, x:x + 4] = 10_000_000 + k
    return true, pred


def test_block_sums_give_back_the_region_pq(maps) -> None:
    true, pred = maps
    terms = block_pq_terms(true, pred, block=100)
    assert terms.shape == (-(-true.shape[0] // 100) * -(-true.shape[1] // 100), 4)
    ref = evaluate(true, pred, coco=False).panoptic["galaxy"]
    iou, tp, fp, fn = terms.sum(axis=0)
    assert (tp, fp, fn) == (ref["tp"], ref["fp"], ref["fn"])
    assert iou / (tp + fp / 2 + fn / 2) == pytest.approx(ref["pq"], rel=1e-12)
    assert (terms[:, 1] > 0).sum() > 10  # the objects are spread over many blocks


def test_intervals_are_paired_and_contain_the_estimate(maps) -> None:
    true, pred = maps
    good = block_pq_terms(true, true, block=100)
    bad = block_pq_terms(true, pred, block=100)
    res = bootstrap_pq({"perfect": good, "flawed": bad, "same": bad.copy()}, reference="flawed", n=500)
    assert res["perfect"]["pq"] == 1.0 and res["perfect"]["lo"] == res["perfect"]["hi"] == 1.0
    f = res["flawed"]
    assert f["lo"] < f["pq"] < f["hi"] < 1.0
    assert res["same"]["ratio_lo"] == res["same"]["ratio_hi"] == 1.0  # same draws for every method
    assert res["perfect"]["ratio_lo"] > 1.0 and res["perfect"]["ratio"] == pytest.approx(1 / f["pq"])


def test_bootstrap_input_errors(maps) -> None:
    true, pred = maps
    with pytest.raises(ValueError, match="shape"):
        block_pq_terms(true, pred[:-1], block=100)
    a = block_pq_terms(true, pred, block=100)
    b = block_pq_terms(true, pred, block=50)
    with pytest.raises(ValueError, match="different block grids"):
        bootstrap_pq({"a": a, "b": b})
    with pytest.raises(ValueError, match="reference"):
        bootstrap_pq({"a": a}, reference="SExtractor")

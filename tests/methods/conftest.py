from pathlib import Path

import pytest

from astrostatlearn.field import Field, Window
from astrostatlearn.preprocess import fit_variant
from astrostatlearn.segment import BackgroundMesh, make_tile


@pytest.fixture(scope="session")
def tiles_by_variant(sim_field: Path):
    """For each variant: (training tiles with truth, one test tile) from the simulated field."""
    out = {}
    with Field.open(sim_field) as f:
        from astrostatlearn.preprocess import VARIANTS

        for v in VARIANTS:
            pre = fit_variant(f, v)
            mesh = BackgroundMesh.from_field(f, pre)
            train = [make_tile(f, pre, mesh, Window(0, 256, 0, 256), with_truth=True),
                     make_tile(f, pre, mesh, Window(0, 256, 256, 512), with_truth=True)]
            test = make_tile(f, pre, mesh, Window(300, 512, 0, 512), with_truth=True)
            out[v] = (train, test)
    return out

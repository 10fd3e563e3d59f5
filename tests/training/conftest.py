from pathlib import Path

import pytest

from astrostatlearn.datasets import build_dataset
from astrostatlearn.field import Field


@pytest.fixture(scope="session")
def small_dataset(sim_field: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "ds"
    with Field.open(sim_field) as f:
        build_dataset(f, "soft+rms", out, patch=64, fractions=(0.6, 0.2, 0.2), guard=16, shard_size=10)
    return out

"""Shared fixtures: small simulated fields made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrostatlearn.simulate import simulate_field

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def sim_field(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512x512 euclid-vis field, seed 11."""
    out = tmp_path_factory.mktemp("sim") / "field"
    simulate_field(out, 512, seed=11, tile=256, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The shared real-data folder; tests using it skip cleanly when it is absent."""
    if not REAL.exists():
        pytest.skip(f"real data not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def small_dataset(sim_field: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A soft+rms patch dataset (64^2 patches, 60/20/20 splits) of the simulated field."""
    from astrostatlearn.datasets import build_dataset
    from astrostatlearn.field import Field

    out = tmp_path_factory.mktemp("ds") / "ds"
    with Field.open(sim_field) as f:
        build_dataset(f, "soft+rms", out, patch=64, fractions=(0.6, 0.2, 0.2), guard=16, shard_size=10)
    return out

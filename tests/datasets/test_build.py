from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.datasets import SPLITS, build_dataset, iter_shards, leak_free_splits, load_manifest, plan_splits
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window
from astrostatlearn.preprocess import fit_variant


def test_splits_share_no_object_and_patches_stay_inside(small_dataset: Path, sim_field: Path) -> None:
    man = load_manifest(small_dataset)
    true = fits.getdata(sim_field / "true.fits")
    ids = {}
    for s in SPLITS:
        reg = Window(*man["splits"]["regions"][s])
        region_ids = set(np.unique(true[reg.slices])) - {0}
        ids[s] = region_ids
        for shard in iter_shards(small_dataset, s):
            for (y0, x0), inst in zip(shard["origin"], shard["instances"]):
                assert reg.y0 <= y0 and y0 + 64 <= reg.y1 and reg.x0 <= x0 and x0 + 64 <= reg.x1
                np.testing.assert_array_equal(inst, true[y0:y0 + 64, x0:x0 + 64])
                assert set(np.unique(inst)) - {0} <= region_ids
    assert not ids["train"] & ids["val"] and not ids["val"] & ids["test"] and not ids["train"] & ids["test"]


def test_guard_widens_until_no_object_spans_two_splits(tmp_path: Path) -> None:
    img = np.random.default_rng(0).normal(size=(400, 64)).astype(np.float32)
    true = np.zeros((400, 64), np.int32)
    plan = plan_splits((400, 64), (0.6, 0.2, 0.2), 8)
    y = plan.regions["train"].y1
    true[y - 20:y + 20, 10:20] = 5  # a tall object across the first guard band
    fits.PrimaryHDU(img).writeto(tmp_path / "img.fits")
    fits.PrimaryHDU(true).writeto(tmp_path / "true.fits")
    with Field.open(tmp_path) as f:
        wide = leak_free_splits(f, (0.6, 0.2, 0.2), 8)
    assert wide.guard > 8
    t = {s: set(np.unique(true[w.slices])) - {0} for s, w in wide.regions.items()}
    assert sum(5 in v for v in t.values()) <= 1


def test_manifest_records_variant_split_seed_and_params(small_dataset: Path) -> None:
    man = load_manifest(small_dataset)
    assert man["variant"] == "soft+rms" and man["channels"] == ["img", "rms"] and man["patch"] == 64
    assert man["variant_params"]["stretch"] == "asinh" and "stats" in man["variant_params"]
    assert set(man["splits"]["regions"]) == set(SPLITS) and man["seed"] == 0
    assert all(man["n_patches"][s] > 0 for s in SPLITS)


def test_inputs_use_global_statistics(small_dataset: Path, sim_field: Path) -> None:
    with Field.open(sim_field) as f:
        pre = fit_variant(f, "soft+rms")
        shard = next(iter_shards(small_dataset, "train"))
        y0, x0 = shard["origin"][0]
        np.testing.assert_array_equal(shard["inputs"][0], pre.read(f, Window(y0, y0 + 64, x0, x0 + 64)))


def test_cut_objects_are_flagged(small_dataset: Path, sim_field: Path) -> None:
    true = fits.getdata(sim_field / "true.fits")
    n_cut = 0
    for shard in iter_shards(small_dataset, "train"):
        for (y0, x0), inst, cut in zip(shard["origin"], shard["instances"], shard["cut_ids"]):
            for oid in np.unique(inst[inst > 0]):
                whole = (true == oid).sum()
                is_cut = whole > (inst == oid).sum()
                assert is_cut == (oid in cut), oid
                n_cut += is_cut
    assert n_cut > 0


def test_keep_or_skip_empty_patches(sim_field: Path, tmp_path: Path) -> None:
    with Field.open(sim_field) as f:
        a = build_dataset(f, "norm", tmp_path / "a", patch=32, fractions=(0.6, 0.2, 0.2), guard=16, keep_empty=True)
        b = build_dataset(f, "norm", tmp_path / "b", patch=32, fractions=(0.6, 0.2, 0.2), guard=16, keep_empty=False)
        assert a["n_patches"]["train"] > b["n_patches"]["train"]
        for shard in iter_shards(tmp_path / "b", "train"):
            assert all(m.any() for m in shard["mask"])
        with pytest.raises(InputError, match="already exists"):
            build_dataset(f, "norm", tmp_path / "a", patch=32, fractions=(0.6, 0.2, 0.2), guard=16)
        with pytest.raises(InputError, match="smaller than one"):
            build_dataset(f, "norm", tmp_path / "c", patch=256)


def test_needs_truth(sim_field: Path, tmp_path: Path) -> None:
    with Field.open(img=sim_field / "img.fits") as f, pytest.raises(InputError, match="truth map"):
        build_dataset(f, "norm", tmp_path / "x")

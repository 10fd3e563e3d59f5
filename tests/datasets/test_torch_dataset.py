from pathlib import Path

import numpy as np
import pytest
import torch

from astrostatlearn.datasets.torch_dataset import PatchDataset, dihedral


def _which_k(aug: np.ndarray, raw: np.ndarray) -> int:
    ks = [k for k in range(8) if np.array_equal(dihedral(raw, k), aug)]
    assert ks, "augmented array is not a dihedral transform of the raw one"
    return ks[0]


def test_dihedral_group_has_eight_distinct_elements() -> None:
    a = np.arange(16).reshape(4, 4)
    assert len({dihedral(a, k).tobytes() for k in range(8)}) == 8


def test_augmentations_keep_image_and_masks_aligned(small_dataset: Path) -> None:
    ds = PatchDataset(small_dataset, "train", augment=True, seed=3)
    seen = set()
    for i in range(len(ds)):
        raw, item = ds.raw(i), ds[i]
        k = _which_k(item["image"].numpy(), raw["inputs"])
        seen.add(k)
        np.testing.assert_array_equal(item["instances"].numpy(), dihedral(raw["instances"], k))
        np.testing.assert_array_equal(item["mask"].numpy(), dihedral(raw["mask"], k).astype(np.float32))
    assert len(seen) >= 4
    assert isinstance(item["image"], torch.Tensor) and item["image"].dtype == torch.float32


def test_noise_and_flux_augmentation(small_dataset: Path) -> None:
    ds = PatchDataset(small_dataset, "train", augment=True, noise=0.5, flux_scale=(0.5, 2.0), seed=1)
    for i in range(min(len(ds), 6)):
        raw, item = ds.raw(i), ds[i]
        ratio = item["rms"].numpy() / np.float32(np.sqrt(1.25))
        # The rms is the raw rms scaled by one flux factor, transformed like the masks.
        k = [k for k in range(8) if np.allclose(ratio / dihedral(raw["rms"], k), (ratio / dihedral(raw["rms"], k)).flat[0], rtol=1e-4)][0]
        scale = (ratio / dihedral(raw["rms"], k)).flat[0]
        assert 0.5 <= scale <= 2.0
        np.testing.assert_array_equal(item["instances"].numpy(), dihedral(raw["instances"], k))
        img = item["image"].numpy()
        assert img.shape == raw["inputs"].shape and not np.array_equal(img, dihedral(raw["inputs"], k))
        # Objects stay brighter than the background after augmentation.
        m = item["mask"].numpy() > 0
        if m.any() and (~m).any():
            assert img[0][m].mean() > img[0][~m].mean()


def test_reproducible_per_epoch(small_dataset: Path) -> None:
    a = PatchDataset(small_dataset, "train", augment=True, noise=0.3, seed=5)
    b = PatchDataset(small_dataset, "train", augment=True, noise=0.3, seed=5)
    assert torch.equal(a[2]["image"], b[2]["image"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["image"], b[2]["image"])


def test_unknown_split(small_dataset: Path) -> None:
    from astrostatlearn.errors import InputError

    with pytest.raises(InputError, match="unknown split"):
        PatchDataset(small_dataset, "holdout")


def test_flux_scaling_leaves_snr_inputs_unchanged(sim_field: Path, tmp_path: Path) -> None:
    """S/N is unitless: flux scaling (about the sky level) must not change an snr input, even with a sky."""
    from astropy.io import fits

    from astrostatlearn.datasets import build_dataset
    from astrostatlearn.field import Field

    sky = tmp_path / "sky"
    sky.mkdir()
    for name in ("rms", "true"):
        (sky / f"{name}.fits").write_bytes((sim_field / f"{name}.fits").read_bytes())
    fits.PrimaryHDU(fits.getdata(sim_field / "img.fits") + np.float32(100.0)).writeto(sky / "img.fits")
    with Field.open(sky) as f:
        build_dataset(f, "snr", tmp_path / "ds", patch=64, fractions=(0.6, 0.2, 0.2), guard=16)
    ds = PatchDataset(tmp_path / "ds", "train", augment=True, flux_scale=(0.3, 3.0), seed=2)
    for i in range(4):
        raw, item = ds.raw(i), ds[i]
        k = _which_k(item["instances"].numpy(), raw["instances"]) if raw["instances"].any() else 0
        np.testing.assert_allclose(item["image"].numpy(), dihedral(raw["inputs"], k), atol=1e-3)

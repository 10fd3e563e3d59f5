"""The U-Net's fast core finding equals the whole-image h-maxima transform it replaces."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from astrostatlearn.methods.instances import core_seeded_instances, h_maxima_in, remove_small


def _landscape(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    fg = ndimage.gaussian_filter(rng.normal(size=(160, 200)), 3) > 0.05  # many blobs, some touching the border
    comp, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    land = np.where(fg, ndimage.gaussian_filter(rng.random((160, 200)), 1.5) * 2 + rng.random() * 0.3, 0.0)
    return fg, land, comp, n


@pytest.mark.parametrize("seed", range(6))
def test_h_maxima_in_equals_the_whole_image_transform(seed: int) -> None:
    _, land, comp, n = _landscape(seed)
    h = 0.05
    peaks = np.asarray(ndimage.maximum(land, comp, np.arange(1, n + 1)))
    ids = np.flatnonzero(peaks > h) + 1
    whole = h_maxima(land, h).astype(bool)
    fast = h_maxima_in(land, comp, ids, h)
    judged = np.isin(comp, ids)
    assert n > 20 and whole[judged].sum() > 20
    np.testing.assert_array_equal(fast[judged], whole[judged])
    assert not fast[~judged].any()


def _reference(fg, centre, core_level, min_area, min_dynamic):
    """core_seeded_instances as it was: h-maxima over the whole image."""
    comp, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    landscape = np.where(fg, centre, 0.0)
    cores = fg & (landscape > core_level) & h_maxima(landscape, min_dynamic).astype(bool)
    markers, n_seeds = ndimage.label(cores, structure=np.ones((3, 3), bool))
    has = np.zeros(n + 1, bool)
    has[np.unique(comp[markers > 0])] = True
    missing = np.flatnonzero(~has[1:]) + 1
    markers = np.where(np.isin(comp, missing), comp + n_seeds, markers)
    return remove_small(watershed(-landscape, markers, mask=fg, connectivity=2).astype(np.int32), min_area)


def _canonical(labels: np.ndarray) -> np.ndarray:
    """The same partition numbered 1, 2, ... in raster order of each segment's first pixel."""
    ids, first = np.unique(labels.ravel(), return_index=True)
    order = ids[np.argsort(first)]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[order[order > 0]] = np.arange(1, (order > 0).sum() + 1)
    return lut[labels]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("core_level,min_dynamic", [(0.7, 0.2), (1.2, 0.05), (0.1, 0.3)])
def test_core_seeded_instances_equal_the_whole_image_reference(seed: int, core_level: float, min_dynamic: float) -> None:
    fg, land, _, _ = _landscape(seed)
    fast = core_seeded_instances(fg, land, core_level, 5, min_dynamic)
    ref = _reference(fg, land, core_level, 5, min_dynamic)
    np.testing.assert_array_equal(_canonical(fast), _canonical(ref))  # the same objects (IDs may be permuted)
    assert len(np.unique(ref)) > 20

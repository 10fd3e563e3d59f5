"""Per-pixel features for the pixel classifiers (K-means, Random Forest).

All filters are local (support <= 4 x the largest scale), so features of a pixel are the same in
any tile that holds it with a halo of at least :data:`FEATURE_HALO` pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from astrostatlearn.methods.base import Tile
from astrostatlearn.methods.detection import gaussian_smooth

SCALES = (1.0, 2.0, 4.0)
FEATURE_HALO = int(4 * max(SCALES)) + 2


def feature_names(n_channels: int) -> list[str]:
    names = []
    for c in range(n_channels):
        names += [f"ch{c}"] + [f"ch{c}_g{s:g}" for s in SCALES]
    names += [f"log{s:g}" for s in SCALES] + ["dog1_2", "dog2_4", "grad1", "snr1", "snr2"]
    return names


def pixel_features(tile: Tile) -> np.ndarray:
    """Features ``[F, y, x]`` (float32): smoothed channels, LoG, DoG, gradient magnitude, S/N."""
    sig = tile.signal
    g = {s: gaussian_smooth(sig, s) for s in SCALES}
    feats = [sig, *g.values()]  # channel 0 less its background, and smoothed
    for c in range(1, tile.image.shape[0]):
        feats += [tile.image[c], *(gaussian_smooth(tile.image[c], s) for s in SCALES)]
    err = np.maximum(tile.err, 1e-12)
    feats += [-ndimage.gaussian_laplace(sig, s, mode="nearest") * s**2 / err for s in SCALES]
    feats += [(g[1.0] - g[2.0]) / err, (g[2.0] - g[4.0]) / err]
    feats.append(ndimage.gaussian_gradient_magnitude(sig, 1.0, mode="nearest") / err)
    # S/N of the smoothed signal: the noise of a Gaussian-smoothed image drops as 1 / (2 sqrt(pi) s).
    feats += [g[1.0] / err * (2 * np.sqrt(np.pi) * 1.0), g[2.0] / err * (2 * np.sqrt(np.pi) * 2.0)]
    out = np.stack(feats).astype(np.float32, copy=False)
    if not tile.all_valid:
        out[:, ~tile.valid] = 0.0
    return out

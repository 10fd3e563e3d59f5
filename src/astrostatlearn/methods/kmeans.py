"""``kmeans``: unsupervised pixel clustering; the brightest cluster is galaxy.

Fitted once on a pixel sample (from training tiles, or from the field itself when no model is
given), then applied pixel by pixel, so every tile uses the same clusters: the seed fitted each
patch separately and its cluster-to-label rule broke on the plain normalised image. Instances
are 8-connected components of the galaxy pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Prediction, Segmenter, Tile, register
from astrostatlearn.methods.detection import gaussian_smooth
from astrostatlearn.methods.instances import connected_instances


def kmeans_features(tile: Tile, extra_channels: bool = False) -> np.ndarray:
    """[F, y, x]: asinh of the S/N of channel 0 smoothed at 1 and 2 px (and, optionally, the other
    channels smoothed at 1 px).

    asinh compresses the heavy tail of bright cores, so clusters split sky from sources rather
    than cores from everything else. S/N is measured in the variant's own units, so the features
    mean the same on every variant.
    """
    sig = tile.signal
    err = np.maximum(tile.err, 1e-30)
    feats = [np.arcsinh(gaussian_smooth(sig, s) / err * 2 * np.sqrt(np.pi) * s)
             for s in (1.0, 2.0)]
    if extra_channels:
        feats += [gaussian_smooth(tile.image[c], 1.0) for c in range(1, tile.image.shape[0])]
    return np.stack(feats).astype(np.float32)


@register
class KMeansSegmenter(Segmenter):
    name = "kmeans"
    needs_fit = True

    def __init__(self, n_clusters: int = 5, extra_channels: bool = False, sample_size: int = 200_000, min_area: int = 5,
                 seed: int = 0, halo: int = 16) -> None:
        self.n_clusters, self.extra_channels, self.sample_size = n_clusters, extra_channels, sample_size
        self.min_area, self.seed, self.halo = min_area, seed, halo

    def fit(self, train: Sequence[Tile], val: Sequence[Tile] | None = None) -> "KMeansSegmenter":
        rng = np.random.default_rng(self.seed)
        per = max(1, self.sample_size // max(len(train), 1))
        rows = []
        for t in train:
            f = kmeans_features(t, self.extra_channels)[:, t.valid]
            take = rng.choice(f.shape[1], size=min(per, f.shape[1]), replace=False)
            rows.append(f[:, take].T)
        if not rows:
            raise InputError("kmeans needs at least one tile to fit")
        x = np.concatenate(rows)
        self.scaler_ = StandardScaler().fit(x)
        self.kmeans_ = KMeans(self.n_clusters, n_init=4, random_state=self.seed).fit(self.scaler_.transform(x))
        centers = self.scaler_.inverse_transform(self.kmeans_.cluster_centers_)
        self.galaxy_cluster_ = int(np.argmax(centers[:, 0]))  # highest S/N
        return self

    def predict(self, tile: Tile) -> Prediction:
        if not self.is_fitted:
            raise InputError("kmeans is not fitted: fit it on tiles of the field first")
        f = kmeans_features(tile, self.extra_channels)
        x = self.scaler_.transform(f.reshape(f.shape[0], -1).T)
        d = self.kmeans_.transform(x)
        assign = d.argmin(axis=1).reshape(tile.valid.shape)
        fg = (assign == self.galaxy_cluster_) & tile.valid
        d_gal = d[:, self.galaxy_cluster_]
        d_other = np.delete(d, self.galaxy_cluster_, axis=1).min(axis=1)
        score = (d_other / np.maximum(d_gal + d_other, 1e-12)).reshape(fg.shape).astype(np.float32)
        return Prediction(connected_instances(fg, self.min_area), score)

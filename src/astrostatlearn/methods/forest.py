"""``forest``: a Random Forest pixel classifier on multi-scale features (scikit-learn).

Trained on class-balanced pixel samples drawn from the training split's truth maps (never from
images scored later). Instances: connected components of P(galaxy) > threshold, split by a
watershed on the probability-weighted smoothed signal.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from astrostatlearn.errors import InputError
from astrostatlearn.methods.base import Prediction, Segmenter, Tile, register
from astrostatlearn.methods.detection import gaussian_smooth
from astrostatlearn.methods.features import FEATURE_HALO, pixel_features
from astrostatlearn.methods.instances import watershed_instances


@register
class ForestSegmenter(Segmenter):
    name = "forest"
    needs_fit = True
    supervised = True

    def __init__(self, n_estimators: int = 40, max_depth: int = 14, samples_per_class: int = 40_000,
                 threshold: float = 0.5, min_area: int = 5, min_distance: int = 3, seed: int = 0, n_jobs: int = 1,
                 halo: int = 48) -> None:
        self.n_estimators, self.max_depth, self.samples_per_class = n_estimators, max_depth, samples_per_class
        self.threshold, self.min_area, self.min_distance = threshold, min_area, min_distance
        self.seed, self.n_jobs, self.halo = seed, n_jobs, max(halo, FEATURE_HALO)

    def fit(self, train: Sequence[Tile], val: Sequence[Tile] | None = None) -> "ForestSegmenter":
        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        per = max(1, self.samples_per_class // max(len(train), 1))
        for t in train:
            if t.truth is None:
                raise InputError("forest is supervised: training tiles need truth labels")
            f = pixel_features(t)
            for cls, sel in ((1, (t.truth > 0) & t.valid), (0, (t.truth == 0) & t.valid)):
                idx = np.flatnonzero(sel)
                if idx.size == 0:
                    continue
                take = rng.choice(idx, size=min(per, idx.size), replace=False)
                xs.append(f.reshape(f.shape[0], -1)[:, take].T)
                ys.append(np.full(take.size, cls, np.uint8))
        if not ys or len(np.unique(np.concatenate(ys))) < 2:
            raise InputError("forest needs training tiles with both galaxy and background pixels")
        x, y = np.concatenate(xs), np.concatenate(ys)
        # Balance the classes exactly.
        n = min((y == 0).sum(), (y == 1).sum())
        keep = np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in (0, 1)])
        self.classifier_ = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, n_jobs=self.n_jobs, random_state=self.seed,
            min_samples_leaf=2).fit(x[keep], y[keep])
        self.n_train_pixels_ = int(keep.size)
        return self

    def predict(self, tile: Tile) -> Prediction:
        if not self.is_fitted:
            raise InputError("forest is not fitted: train it on a field with a truth map (--model)")
        f = pixel_features(tile)
        proba = self.classifier_.predict_proba(f.reshape(f.shape[0], -1).T)[:, 1].reshape(tile.valid.shape)
        proba = np.where(tile.valid, proba, 0.0).astype(np.float32)
        fg = proba > self.threshold
        landscape = gaussian_smooth(tile.signal, 1.0) * proba
        labels = watershed_instances(fg, landscape, self.min_area, self.min_distance)
        return Prediction(labels, proba)

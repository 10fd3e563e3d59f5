"""Pixel (semantic) metrics from confusion counts: foreground = ``labels > 0``.

Conventions: ``tp`` = true and predicted foreground, ``fp`` = predicted only, ``fn`` = true only,
``tn`` = neither. Precision = tp / (tp + fp) (purity of predicted pixels); recall = tp / (tp + fn)
(fraction of true pixels found). The seed study swapped these two; tests pin them down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PIXEL_METRICS = ("iou", "dice", "precision", "recall", "accuracy", "f1")


@dataclass
class Confusion:
    """Pixel confusion counts (int)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: "Confusion") -> "Confusion":
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @classmethod
    def from_masks(cls, true_fg: np.ndarray, pred_fg: np.ndarray) -> "Confusion":
        t, p = np.asarray(true_fg, bool), np.asarray(pred_fg, bool)
        tp = int(np.count_nonzero(t & p))
        nt, npred = int(np.count_nonzero(t)), int(np.count_nonzero(p))
        return cls(tp, npred - tp, nt - tp, t.size - nt - npred + tp)

    def metrics(self) -> dict[str, float]:
        """IoU, Dice, precision, recall, accuracy, F1 (NaN where undefined, e.g. 0/0)."""
        return pixel_metrics_from_counts(self.tp, self.fp, self.fn, self.tn)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _div(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def pixel_metrics_from_counts(tp, fp, fn, tn) -> dict[str, float]:
    """Metrics from (possibly arrays of) counts; arrays give per-patch values."""
    precision = _div(tp, np.add(tp, fp))
    recall = _div(tp, np.add(tp, fn))
    out = {
        "iou": _div(tp, np.add(np.add(tp, fp), fn)),
        "dice": _div(np.multiply(2, tp), np.add(np.add(np.multiply(2, tp), fp), fn)),
        "precision": precision,
        "recall": recall,
        "accuracy": _div(np.add(tp, tn), np.add(np.add(tp, fp), np.add(fn, tn))),
        # F1 of precision and recall equals Dice; computed from its definition as a check.
        "f1": _div(2 * precision * recall, precision + recall),
    }
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def patch_mean(per_patch: dict[str, np.ndarray]) -> dict[str, float]:
    """The seed's convention: the mean over patches of each per-patch metric, skipping patches
    where it is undefined (e.g. IoU of a patch with no true and no predicted foreground)."""
    out: dict[str, float] = {}
    for k, v in per_patch.items():
        v = np.asarray(v, float)
        ok = np.isfinite(v)
        out[k] = float(v[ok].mean()) if ok.any() else float("nan")
        out[f"n_patches_{k}"] = int(ok.sum())
    return out

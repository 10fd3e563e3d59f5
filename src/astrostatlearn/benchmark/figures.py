"""Report figures (matplotlib, Agg): example patches, metric bars, completeness/purity vs
magnitude, precision-recall curves. Each function returns PNG bytes."""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval  # noqa: E402

from astrostatlearn.field import Window, open_image  # noqa: E402


def png_bytes(fig, dpi: int = 90) -> bytes:
    """``fig`` as PNG bytes (tight bounding box), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _label_rgb(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids, inv = np.unique(labels, return_inverse=True)
    colours = rng.uniform(0.25, 1.0, (ids.size, 3))
    colours[ids == 0] = 0.0
    return colours[inv].reshape(labels.shape + (3,))


def pick_patches(true: np.ndarray, region: Window, size: int = 192, n: int = 2) -> list[Window]:
    """The ``n`` most crowded ``size``^2 windows of the region (non-overlapping grid)."""
    cands = []
    for y in range(region.y0, region.y1 - size + 1, size):
        for x in range(region.x0, region.x1 - size + 1, size):
            cands.append((len(np.unique(true[y:y + size, x:x + size])), Window(y, y + size, x, x + size)))
    cands.sort(key=lambda c: -c[0])
    return [w for _, w in cands[:n]] or [Window(region.y0, min(region.y1, region.y0 + size), region.x0,
                                                 min(region.x1, region.x0 + size))]


def example_patches(img_path: str, true_path: str, preds: Sequence[tuple[str, str]], windows: Sequence[Window]) -> bytes:
    """Rows: patches; columns: image | truth | each method's prediction."""
    img_f, true_f = open_image(img_path), open_image(true_path)
    ncol = 2 + len(preds)
    fig, axes = plt.subplots(len(windows), ncol, figsize=(2.2 * ncol, 2.3 * len(windows)), squeeze=False)
    pred_files = [(name, open_image(p)) for name, p in preds]
    for r, w in enumerate(windows):
        im = img_f.read(w)
        norm = ImageNormalize(im, interval=ZScaleInterval(), stretch=AsinhStretch(0.1))
        panels = [("image", None), ("truth", true_f.read(w))] + [(n, f.read(w)) for n, f in pred_files]
        for c, (name, lab) in enumerate(panels):
            ax = axes[r, c]
            if lab is None:
                ax.imshow(im, origin="lower", cmap="gray", norm=norm)
            else:
                ax.imshow(_label_rgb(lab), origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
        axes[r, 0].set_ylabel(f"y {w.y0}, x {w.x0}", fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def metric_bars(records: Sequence[dict], metrics: Sequence[str] = ("pixel_iou", "inst_f1", "pq")) -> bytes:
    """Grouped bars per variant: one bar per method, one panel per metric."""
    variants = sorted({r["variant"] for r in records}, key=lambda v: [r["variant"] for r in records].index(v))
    methods = list(dict.fromkeys(r["method"] for r in records))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for ax, m in zip(axes[0], metrics):
        for i, meth in enumerate(methods):
            vals = [next((r.get(m, np.nan) for r in records if r["method"] == meth and r["variant"] == v), np.nan)
                    for v in variants]
            ax.bar(np.arange(len(variants)) + i * width, vals, width, label=meth)
        ax.set_xticks(np.arange(len(variants)) + width * (len(methods) - 1) / 2)
        ax.set_xticklabels(variants, rotation=30, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(m)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return png_bytes(fig)


def completeness_purity(curves: Sequence[tuple[str, dict]], col: str = "mag") -> bytes:
    """Completeness and purity against true magnitude (``col='mag'``) or S/N (``'snr'``, log
    axis), one line per method."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, b in curves:
        edges = np.asarray(b["edges"], float)
        if col == "snr":
            edges = np.where(np.isfinite(edges), edges, edges[np.isfinite(edges)].max() * 2)
            mid = np.sqrt(np.maximum(edges[:-1], 1.0) * edges[1:])
        else:
            mid = (edges[:-1] + edges[1:]) / 2
        axes[0].plot(mid, np.asarray(b["completeness"], float), marker="o", label=name)
        axes[1].plot(mid, np.asarray(b["purity"], float), marker="o", label=name)
    for ax, t in zip(axes, ("completeness", "purity")):
        ax.set_xlabel("true magnitude (AB)" if col == "mag" else "true S/N")
        if col == "snr":
            ax.set_xscale("log")
        ax.set_ylabel(t)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def pr_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]]) -> bytes:
    """Pixel precision-recall curves: (name, precision, recall, average precision)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, p, r, ap in curves:
        ax.plot(r, p, label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall (pixels)")
    ax.set_ylabel("precision (pixels)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def pixel_pr(true_path: str, score_path: str, region: Window, max_pixels: int = 400_000, seed: int = 0):
    """Precision-recall of a per-pixel score against truth on a random pixel sample of ``region``."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    t = open_image(true_path).read(region) > 0
    s = open_image(score_path).read(region)
    rng = np.random.default_rng(seed)
    idx = rng.choice(t.size, size=min(max_pixels, t.size), replace=False)
    y, sc = t.ravel()[idx], s.ravel()[idx]
    p, r, _ = precision_recall_curve(y, sc)
    return p, r, float(average_precision_score(y, sc))

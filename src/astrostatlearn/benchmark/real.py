"""Real data: segment a frame without an rms map and compare with a SExtractor catalogue.

The noise is estimated from the image itself: the background mesh's rms (sigma-clipped, per
64x64 cell) becomes the rms map. The comparison cross-matches centroids (nearest neighbour within
``radius_px``), reports the match fraction both ways and the flux agreement (our segment flux
against SExtractor's FLUX_AUTO), and draws an overlay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import ascii
from astropy.table import Table
from scipy.spatial import cKDTree

from astrostatlearn.field import Field, FitsImageWriter, Window, atomic_write_json, row_blocks
from astrostatlearn.field.fitsio import output_header
from astrostatlearn.methods import default_segmenter
from astrostatlearn.preprocess import fit_variant
from astrostatlearn.segment import BackgroundMesh, segment_field


SEED_NSIGMA = 1.5  # the seed study's detection threshold (sigma)


def estimate_rms_map(field: Field, out: Path) -> Path:
    """Write the image's own noise estimate (background mesh rms, raw units) as an rms map."""
    pre = fit_variant(field, "raw")
    mesh = BackgroundMesh.from_field(field, pre)
    with FitsImageWriter(out, field.shape, np.float32, output_header(field.header, CONTENT="estimated rms"),
                         overwrite=True) as w:
        for win in row_blocks(field.shape, 1 << 22):
            w.write(win, mesh.at(win)[1])
    return out


def read_sextractor_catalog(path: Path) -> Table:
    return ascii.read(path, format="sextractor")


def placed_objects(catalog: Table, flux: str = "flux") -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(n, 2)`` (x, y) and fluxes (column ``flux``) of the catalogue's objects that
    have a centroid: a segment with no positive flux has none (NaN, as in photutils) and cannot be
    matched by position."""
    xy = np.c_[np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)]
    placed = np.isfinite(xy).all(axis=1)
    return xy[placed], np.asarray(catalog[flux], float)[placed]


def _ratio_stats(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Median and median absolute deviation of ``ours / ref`` where both are finite and ``ref`` > 0."""
    ratio = ours / ref
    good = np.isfinite(ratio) & (ref > 0)
    if not good.any():
        return float("nan"), float("nan")
    med = float(np.median(ratio[good]))
    return med, float(np.median(np.abs(ratio[good] - med)))


def compare_with_sextractor(kids_dir: Path, out: Path, method: str = "sep", radius_px: float = 2.0) -> dict[str, Any]:
    """Segment ``kids_dir/r.fits`` with ``method`` and compare with ``r.sextractor.cat``: the
    matched fractions, and our isophotal ``flux`` and Kron ``flux_auto`` against its ``FLUX_AUTO``."""
    out.mkdir(parents=True, exist_ok=True)
    img = kids_dir / "r.fits"
    with Field.open(img=img) as f0:
        rms_path = estimate_rms_map(f0, out / "rms_estimated.fits")
    with Field.open(img=img, rms=rms_path) as f:
        seg = default_segmenter(method)
        if "nsigma" in seg.get_params():
            seg.set_params(nsigma=SEED_NSIGMA)  # thresholding methods at the seed's settings
        variant = seg.trained_variant or seg.default_variant
        res = segment_field(f, seg, out / "segment", variant=variant, overwrite=True, scheduler="threads", kron=True)
        shape = f.shape
    ours = Table.read(out / "segment" / "catalog.ecsv")
    ref = read_sextractor_catalog(kids_dir / "r.sextractor.cat")
    ref_xy = np.c_[ref["X_IMAGE"] - 1.0, ref["Y_IMAGE"] - 1.0]  # SExtractor is 1-based
    our_xy, our_flux = placed_objects(ours)
    _, our_auto = placed_objects(ours, "flux_auto")
    d_ref, i_ref = cKDTree(our_xy).query(ref_xy)
    d_our, _ = cKDTree(ref_xy).query(our_xy)
    hit = d_ref < radius_px
    flux_ref = np.asarray(ref["FLUX_AUTO"], float)
    iso, iso_mad = _ratio_stats(our_flux[i_ref[hit]], flux_ref[hit])
    auto, auto_mad = _ratio_stats(our_auto[i_ref[hit]], flux_ref[hit])
    overlay = out / "overlay.png"
    _overlay(img, ref_xy, our_xy, overlay)
    result = {
        "method": method, "n_ours": int(len(ours)), "n_reference": int(len(ref)), "radius_px": radius_px,
        "match_fraction": float(hit.mean()), "our_match_fraction": float((d_our < radius_px).mean()),
        "match_fraction_bright_half": float(hit[flux_ref > np.nanpercentile(flux_ref, 50)].mean()),
        "median_offset_px": float(np.median(d_ref[hit])) if hit.any() else float("nan"),
        "flux_ratio_median": iso, "flux_ratio_mad": iso_mad, "flux_auto_ratio_median": auto,
        "flux_auto_ratio_mad": auto_mad,
        "overlay": str(overlay), "shape": list(shape), "segment_s": res.timings["total"],
    }
    atomic_write_json(out / "comparison.json", result, overwrite=True)
    return result


def _overlay(img: Path, ref_xy: np.ndarray, our_xy: np.ndarray, path: Path, size: int = 700) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

    with Field.open(img=img) as f:
        cy, cx = f.shape[0] // 2, f.shape[1] // 2
        w = Window(cy - size // 2, cy + size // 2, cx - size // 2, cx + size // 2)
        data = f.read_img(w)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(data, origin="lower", cmap="gray", norm=ImageNormalize(data, interval=ZScaleInterval(), stretch=AsinhStretch(0.1)))
    for xy, colour, marker, label in ((ref_xy, "tab:red", "o", "SExtractor"), (our_xy, "tab:cyan", "+", "astrostatlearn")):
        sel = (xy[:, 0] >= w.x0) & (xy[:, 0] < w.x1) & (xy[:, 1] >= w.y0) & (xy[:, 1] < w.y1)
        ax.scatter(xy[sel, 0] - w.x0, xy[sel, 1] - w.y0, s=60 if marker == "o" else 40, facecolors="none" if marker == "o" else colour,
                   edgecolors=colour if marker == "o" else None, marker=marker, linewidths=1, label=label)
    ax.legend(loc="upper right")
    ax.set_title(f"KiDS r, central {size}x{size} px")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)

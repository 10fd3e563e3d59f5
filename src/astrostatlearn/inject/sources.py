"""The image's own sources and background, measured once with sep (SExtractor's core).

- background and its rms: ``sep.Background`` (64-pixel mesh, 3x3 median filter), with
  non-finite pixels masked;
- own sources: ``sep.extract`` at 1.5 sigma, 5 pixels, on the background-subtracted image,
  with its segmentation map.

Memory: the whole image and a few same-size work arrays (about 20 bytes per pixel); ``inject``
is made for frames and cutouts (0.14 GB for a 2600² frame), not for a 25000² mosaic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DETECT_SIGMA, DETECT_MINAREA = 1.5, 5


@dataclass
class ImageSources:
    """``background`` and ``rms`` maps, the ``objects`` table of sep and its ``segmap`` (0 = none),
    and ``valid`` (finite pixels)."""

    background: np.ndarray
    rms: np.ndarray
    objects: np.ndarray
    segmap: np.ndarray
    valid: np.ndarray


def find_sources(img: np.ndarray, rms: np.ndarray | None = None) -> ImageSources:
    """Background, noise and own sources of ``img`` (float32 [y, x]); ``rms``: a noise map to use
    instead of the background's rms."""
    import sep

    valid = np.isfinite(img)
    data = np.ascontiguousarray(np.where(valid, img, 0.0), dtype=np.float32)
    mask = ~valid
    bkg = sep.Background(data, mask=mask, bw=64, bh=64, fw=3, fh=3)
    background = bkg.back().astype(np.float32)
    noise = bkg.rms().astype(np.float32) if rms is None else np.ascontiguousarray(rms, dtype=np.float32)
    sub = np.ascontiguousarray(data - background)
    err = np.ascontiguousarray(np.where(valid & np.isfinite(noise) & (noise > 0), noise, np.float32(1e30)))
    sep.set_extract_pixstack(max(300000, img.size))
    sep.set_sub_object_limit(4096)
    objects, segmap = sep.extract(sub, DETECT_SIGMA, err=err, mask=mask, minarea=DETECT_MINAREA,
                                  segmentation_map=True)
    return ImageSources(background, noise, objects, segmap.astype(np.int32), valid)


def other_band_sources(images: list[np.ndarray]) -> np.ndarray:
    """Where other bands of the same pixel grid see a source: sep at 1.5 sigma, 5 pixels, on
    their noise-normalised stack ``sum_b (img_b - bkg_b) / rms_b / sqrt(n)`` (unit noise;
    non-finite pixels count as 0). A segment of the injected band that touches this mask is
    *confirmed* by independent data, since the other bands' noise is not the band's own.
    Memory: a few float32 copies of one image."""
    import sep

    stack = np.zeros(images[0].shape, np.float32)
    for img in images:
        valid = np.isfinite(img)
        data = np.ascontiguousarray(np.where(valid, img, 0.0), dtype=np.float32)
        bkg = sep.Background(data, mask=~valid, bw=64, bh=64, fw=3, fh=3)
        stack += np.where(valid, (data - bkg.back()) / bkg.rms(), 0.0).astype(np.float32)
    stack /= np.float32(np.sqrt(len(images)))
    sep.set_extract_pixstack(max(300000, stack.size))
    sep.set_sub_object_limit(4096)
    _, segmap = sep.extract(stack, DETECT_SIGMA, err=np.ones_like(stack), minarea=DETECT_MINAREA,
                            segmentation_map=True)
    return segmap > 0

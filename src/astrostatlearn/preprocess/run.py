"""Write a variant of a whole field to FITS (a cube when multi-channel) plus a PNG preview.

Streams in row strips of at most ``block_pixels`` pixels per channel: memory stays bounded
(about 20 bytes per pixel of the strip, 0.3 GB for the default 16 Mpix) whatever the field size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, FitsImageWriter, Window, check_writable, row_blocks
from astrostatlearn.field.fitsio import output_header
from astrostatlearn.field.outputs import OutputSet
from astrostatlearn.preprocess.variants import Preprocessor
from astrostatlearn.progress import progress_bar

PREVIEW_MAX = 1024


def preprocess_field(field: Field, pre: Preprocessor, out: str | Path, overwrite: bool = False,
                     preview: bool = True, block_pixels: int = 1 << 24, progress: bool = False) -> dict:
    """Write ``pre`` applied to ``field`` to ``out`` (FITS) and ``out`` with suffix ``.png``, committed
    as one set. Check the field with :func:`~astrostatlearn.field.scan_field` first (the CLI does)."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        raise InputError("--out names the FITS output; the PNG preview goes beside it", out)
    png = out.with_suffix(".png")
    check_writable(out, overwrite)
    if preview:
        check_writable(png, overwrite)
    n_ch = len(pre.channels)
    shape = field.shape if n_ch == 1 else (n_ch,) + field.shape
    header = output_header(field.header, VARIANT=pre.variant)
    for i, name in enumerate(pre.channels, start=1):
        header[f"CHNAME{i}"] = (name, f"channel {i} of the variant")
    header["STRETCH"] = pre.stretch
    for key, card in (("SOFTBLK", "soft_black"), ("SOFTWHT", "soft_white"), ("BKGLEVEL", "background")):
        header[key] = float(pre.params[card])
    header["NORMLO"], header["NORMHI"] = (float(v) for v in pre.params["norm_interval"])
    header["RMSLO"], header["RMSHI"] = (float(v) for v in pre.params["rms_interval"])
    header.add_comment("astrostatlearn variant parameters (JSON): " + json.dumps(pre.params, default=float))
    blocks = list(row_blocks(field.shape, block_pixels))
    blocks = progress_bar(blocks, desc=f"preprocess {pre.variant}", unit="strip", enabled=progress)
    names = (out.name, png.name) if preview else (out.name,)
    with OutputSet(out.parent, names, overwrite, expected_bytes=4 * int(np.prod(shape))) as tx:
        with FitsImageWriter(tx.path(out.name), shape, np.float32, header, overwrite=True) as w:
            for win in blocks:
                data = pre.read(field, win)
                w.write(win, data[0] if n_ch == 1 else data)
        if preview:
            write_preview(field, pre, tx.path(png.name), overwrite=True)
    return {"fits": str(out), "png": str(png) if preview else None, "params": pre.params}


def write_preview(field: Field, pre: Preprocessor, path: Path, overwrite: bool = False) -> Path:
    """A PNG of the first channel, subsampled to at most PREVIEW_MAX pixels a side (atomic write)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrostatlearn.field import atomic_write_bytes

    ny, nx = field.shape
    step = max(1, int(np.ceil(max(ny, nx) / PREVIEW_MAX)))
    # One row at a time, without the variant's context (a preview: a row's sky rms from the row alone).
    rows = [pre.apply(*field.read_img_rms(Window(y, y + 1, 0, nx)))[0, 0, ::step] for y in range(0, ny, step)]
    img = np.vstack(rows)
    if pre.variant in ("raw", "snr"):
        lo, hi = np.percentile(img, [1, 99.5])
        img = np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)
    buf = io.BytesIO()
    plt.imsave(buf, img, cmap="gray", origin="lower", vmin=0, vmax=1, format="png")
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)

"""The peer tools: SExtractor (Debian ``source-extractor``) and NoiseChisel + Segment (Debian
``gnuastro``), run on a field as they are configured here, each giving an int32 segmentation map
aligned with the field.

``ensure_installed`` installs the Debian packages when missing and running as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from astropy.io import fits

SEX_CONF = Path("/usr/share/source-extractor")


def ensure_installed() -> dict[str, bool]:
    """Install source-extractor and gnuastro with apt-get if they are missing (root only)."""
    need = [pkg for exe, pkg in (("source-extractor", "source-extractor"), ("astnoisechisel", "gnuastro"))
            if shutil.which(exe) is None]
    if need and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *need], check=False, env=env, capture_output=True)
    return {"sextractor": shutil.which("source-extractor") is not None,
            "noisechisel": shutil.which("astnoisechisel") is not None}


def sky_rms_map(field: Path, out: Path) -> Path | None:
    """Write the sky part of ``field``'s ``rms.fits`` to ``out`` (its header kept), as SExtractor's
    ``MAP_RMS`` expects a map of the background noise alone: the rms map without its sources'
    Poisson noise (:meth:`~astrostatlearn.preprocess.Preprocessor.sky_rms`, the ``snr`` input's
    divisor). None, with nothing written, when the map carries no such noise (or there is none).
    Streams in strips of rows, each read with the sky rms's context around it."""
    from astrostatlearn.field import Field, FitsImageWriter, row_blocks
    from astrostatlearn.field.fitsio import output_header
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment.tiles import sky_of

    with Field.open(field) as f:
        pre = fit_variant(f, "snr")
        if f.rms is None or pre.context == 0:
            return None
        with FitsImageWriter(out, f.shape, np.float32, output_header(f.header, CONTENT="sky rms"), overwrite=True) as w:
            for win in row_blocks(f.shape, 1 << 22):
                big = win.grow(pre.context, f.shape)
                img, rms = f.read_img_rms(big)
                ok = np.isfinite(img) & np.isfinite(rms) & (rms > 0)  # elsewhere the map as it was
                w.write(win, np.where(ok, sky_of(pre, img, rms, big), rms)[win.relative_to(big)].astype(np.float32))
    return out


def sextractor_command(field: Path, work: Path, thresh: float = 1.0, rms: Path | None = None) -> list[str]:
    """SExtractor on img.fits with rms.fits (or ``rms``) as MAP_RMS weight; writes work/sex_seg.fits and a catalogue."""
    work.mkdir(parents=True, exist_ok=True)
    param = work / "sex.param"
    param.write_text("NUMBER\nX_IMAGE\nY_IMAGE\nFLUX_AUTO\nFLUX_ISO\nISOAREA_IMAGE\nFLAGS\n")
    return [
        "source-extractor", str(field / "img.fits"), "-c", str(SEX_CONF / "default.sex"),
        "-CATALOG_NAME", str(work / "sex.cat"), "-CATALOG_TYPE", "ASCII_HEAD", "-PARAMETERS_NAME", str(param),
        "-DETECT_THRESH", str(thresh), "-ANALYSIS_THRESH", str(thresh), "-DETECT_MINAREA", "5",
        "-FILTER", "Y", "-FILTER_NAME", str(SEX_CONF / "gauss_2.0_5x5.conv"),
        "-DEBLEND_NTHRESH", "32", "-DEBLEND_MINCONT", "0.005", "-CLEAN", "Y",
        "-WEIGHT_TYPE", "MAP_RMS", "-WEIGHT_IMAGE", str(rms or field / "rms.fits"),
        "-BACK_SIZE", "64", "-BACK_FILTERSIZE", "3",
        "-CHECKIMAGE_TYPE", "SEGMENTATION", "-CHECKIMAGE_NAME", str(work / "sex_seg.fits"),
        "-STARNNW_NAME", str(SEX_CONF / "default.nnw"), "-VERBOSE_TYPE", "QUIET",
        "-MEMORY_BUFSIZE", "4096", "-MEMORY_OBJSTACK", "30000", "-MEMORY_PIXSTACK", "3000000",
    ]


def run_sextractor(field: Path, work: Path, thresh: float = 1.0, rms: Path | None = None) -> Path:
    """Run :func:`sextractor_command`; return the segmentation map's path (``work/sex_seg.fits``).

    Raises ``RuntimeError`` with the end of SExtractor's stderr when it fails.
    """
    p = subprocess.run(sextractor_command(field, work, thresh, rms), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"SExtractor failed: {p.stderr.strip()[-300:]}")
    return work / "sex_seg.fits"


def noisechisel_commands(field: Path, work: Path) -> list[list[str]]:
    """NoiseChisel detection then Segment; the OBJECTS extension is the instance map."""
    work.mkdir(parents=True, exist_ok=True)
    nc = work / "nc.fits"
    return [
        ["astnoisechisel", str(field / "img.fits"), "--hdu=0", f"--output={nc}", "--quiet", "--numthreads=2"],
        ["astsegment", str(nc), f"--output={work / 'nc_seg.fits'}", "--quiet", "--numthreads=2"],
    ]


def noisechisel_objects(work: Path) -> Path:
    """Write the OBJECTS HDU of Segment's output as a plain int32 FITS beside it."""
    with fits.open(work / "nc_seg.fits") as h:
        data = np.asarray(h["OBJECTS"].data, np.int32)
    out = work / "nc_objects.fits"
    fits.PrimaryHDU(data).writeto(out, overwrite=True)
    return out

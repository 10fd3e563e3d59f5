"""Property tests of the input checks (hypothesis): random dtypes, shapes, NaN patterns, ID ranges,
header cards and option values, for every command. The invariant: exit 0 with correct results,
or exit 2 with one line; never a traceback, never a wrong number."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from astrostatlearn.cli import main

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = ("uint8", "int16", "int32", "int64", "float32", "float64")
MAX_LABEL = 2**31 - 1


def cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the console entry point in-process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_exit_0_or_one_line(code: int, err: str) -> None:
    event(f"exit {code}" + (f": {err.split(':')[-1].strip()[:40]}" if code else ""))
    assert code in (0, 2), f"exit {code}: {err}"
    assert "Traceback" not in err, err
    if code == 2:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err


@st.composite
def label_maps(draw, shape=None) -> np.ndarray:
    """Mostly valid label maps (blocks of one ID), some broken: NaN, negative, huge or fractional."""
    if shape is None:
        shape = tuple(draw(st.sampled_from([40, 17, 1, 60])) for _ in range(2))
    block = draw(st.sampled_from([4, 1, 8, 2]))
    ny, nx = shape
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    gshape = (-(-ny // block), -(-nx // block))
    scale = draw(st.sampled_from([1, 1, 1000, 0]))  # 0: an empty map
    grid = rng.integers(0, 2, size=gshape) * (1 + np.arange(gshape[0] * gshape[1]).reshape(gshape)) * scale
    lab = np.kron(grid, np.ones((block, block), dtype=np.int64))[:ny, :nx].astype(np.float64)
    fault = draw(st.sampled_from(["none", "none", "none", "nan", "negative", "huge", "fraction", "noise"]))
    if fault == "nan":
        lab[draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1))] = np.nan
    elif fault == "negative":
        lab[0, 0] = -draw(st.integers(1, 100))
    elif fault == "huge":
        lab[lab > 0] += draw(st.sampled_from([2**31 - 2, 2**31, 2**32 + 5, 2**40]))
    elif fault == "fraction":
        lab[0, 0] = 0.5
    elif fault == "noise":
        lab = np.random.default_rng(0).uniform(0, 1000, size=shape).round()
    return lab


def write_fits(path: Path, data: np.ndarray, dtype: str, header_cards: dict) -> bool:
    """Write ``data`` cast to ``dtype``; False when the cast cannot represent it (NaN in ints...)."""
    arr = np.asarray(data)
    if np.dtype(dtype).kind in "iu":
        if not np.all(np.isfinite(arr)) or arr.min(initial=0) < np.iinfo(dtype).min or \
                arr.max(initial=0) > np.iinfo(dtype).max or np.any(arr != np.round(arr)):
            return False
    hdr = fits.Header()
    for k, v in header_cards.items():
        hdr[k] = v
    hdu = fits.PrimaryHDU(arr.astype(dtype), header=hdr)
    hdu.writeto(path, overwrite=True)
    return True


HEADERS = st.fixed_dictionaries({}, optional={
    "BUNIT": st.sampled_from(["adu", "", "electron/s"]),
    "CTYPE1": st.sampled_from(["RA---TAN", "GARBAGE", ""]),
    "CRVAL1": st.floats(-1e6, 1e6, allow_nan=False),
    "CDELT1": st.sampled_from([0.0, -2.7e-5, 1e30]),
    "EXPTIME": st.floats(-10, 1e4, allow_nan=False),
})


def read_back(path: Path) -> np.ndarray:
    """The map as astropy reads it (BSCALE/BZERO/BLANK applied): the oracle's view."""
    return np.asarray(fits.getdata(path), dtype=np.float64)


def oracle_label_problem(lab: np.ndarray) -> str | None:
    """Why this map is not a valid label map, by the documented rules (None: valid)."""
    if lab.ndim != 2:
        return "not 2-D"
    if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
        return "not integral"
    if lab.min(initial=0) < 0:
        return "negative"
    if lab.max(initial=0) > MAX_LABEL:
        return "too large"
    fg = lab > 0
    n_fg = int(fg.sum())
    same = int((fg[:, :-1] & (lab[:, :-1] == lab[:, 1:])).sum())
    if n_fg >= 1000 and same < 0.2 * n_fg:
        return "image-like"
    return None


@pytest.mark.timeout(600)
@SETTINGS
@given(true=label_maps(), data=st.data(), t_dtype=st.sampled_from(DTYPES), p_dtype=st.sampled_from(DTYPES),
       cards=HEADERS, patch=st.sampled_from([256, 7, 1, 0, -3]))
def test_evaluate_is_right_or_refuses_in_one_line(true, data, t_dtype, p_dtype, cards, patch) -> None:
    pred = data.draw(label_maps(shape=None if data.draw(st.booleans()) else true.shape), label="pred")
    with tempfile.TemporaryDirectory() as d:
        tp, pp, js = Path(d) / "t.fits", Path(d) / "p.fits", Path(d) / "e.json"
        if not (write_fits(tp, true, t_dtype, cards) and write_fits(pp, pred, p_dtype, {})):
            return
        code, _, err = cli(["evaluate", "--true", str(tp), "--pred", str(pp), "--no-coco", "--patch", str(patch),
                            "--json", str(js)])
        assert_exit_0_or_one_line(code, err)
        t, p = read_back(tp), read_back(pp)
        problems = [oracle_label_problem(t), oracle_label_problem(p), None if t.shape == p.shape else "shape",
                    None if patch >= 1 else "patch"]
        valid = not any(problems)
        assert (code == 0) == valid, (problems, err)
        if code == 0:
            res = json.loads(js.read_text())
            union = np.count_nonzero((t > 0) | (p > 0))
            iou = res["pixel_global"]["iou"]
            if union:
                assert iou == pytest.approx(np.count_nonzero((t > 0) & (p > 0)) / union)
            assert res["instance"]["n_true"] == np.unique(t[t > 0]).size
            assert res["instance"]["n_pred"] == np.unique(p[p > 0]).size


@st.composite
def images(draw) -> np.ndarray:
    """Science-like images with random NaN patterns, constant images, cubes and lines."""
    kind = draw(st.sampled_from(["noise", "noise", "constant", "all-nan", "some-nan", "inf", "cube", "line"]))
    ny, nx = (draw(st.sampled_from([64, 96, 33, 7, 1])) for _ in range(2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    img = rng.normal(0, 1, size=(ny, nx))
    yy, xx = np.mgrid[:ny, :nx]
    img += 20 * np.exp(-((yy - ny / 2) ** 2 + (xx - nx / 2) ** 2) / 8)
    if kind == "constant":
        img[:] = draw(st.sampled_from([0.0, 1.0, -5.0]))
    elif kind == "all-nan":
        img[:] = np.nan
    elif kind == "some-nan":
        img[rng.random(img.shape) < draw(st.floats(0.01, 0.99))] = np.nan
    elif kind == "inf":
        img[0, 0] = np.inf
    elif kind == "cube":
        img = np.stack([img, img])
    elif kind == "line":
        img = img[0]
    return img


def _maybe_rms(draw, img: np.ndarray, d: Path) -> list[str]:
    kind = draw(st.sampled_from(["good", "none", "zero", "negative", "nan", "shape"]))
    if kind == "none" or img.ndim != 2:
        return []
    rms = np.ones_like(img)
    if kind == "zero":
        rms[0, 0] = 0
    elif kind == "negative":
        rms[:] = -1
    elif kind == "nan":
        rms[:] = np.nan
    elif kind == "shape":
        rms = np.ones((img.shape[0] + 1, img.shape[1]))
    write_fits(d / "rms.fits", rms, "float32", {})
    return ["--rms", str(d / "rms.fits")]


@pytest.mark.timeout(600)
@SETTINGS
@given(img=images(), data=st.data(), dtype=st.sampled_from(["int16", "int32", "float32", "float64"]), cards=HEADERS,
       tile=st.sampled_from([64, 100] * 4 + [63, 0, -5]), halo=st.sampled_from([None, 128] * 4 + [0, -1]),
       workers=st.sampled_from([1, 0] * 4 + [-1]))
def test_segment_is_consistent_or_refuses_in_one_line(img, data, dtype, cards, tile, halo, workers) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if not write_fits(d / "img.fits", np.round(img * 10) if dtype.startswith("int") else img, dtype, cards):
            return
        args = ["segment", str(d / "img.fits"), "-m", "sep", "-o", str(d / "out"), "--scheduler", "threads",
                "--tile", str(tile), "--workers", str(workers)] + _maybe_rms(data.draw, img, d)
        if halo is not None:
            args += ["--halo", str(halo)]
        code, out, err = cli(args)
        assert_exit_0_or_one_line(code, err)
        if code != 0:
            assert not (d / "out").exists() or not any((d / "out").iterdir()), "a refused run left files"
            return
        assert tile >= 64 and workers >= 0 and (halo is None or halo >= 0)
        seg = fits.getdata(d / "out" / "segmentation.fits")
        assert seg.shape == img.shape
        run = json.loads((d / "out" / "run.json").read_text())
        from astropy.table import Table

        cat = Table.read(d / "out" / "catalog.ecsv")
        assert len(cat) == run["n_objects"] == np.unique(seg[seg > 0]).size
        assert f"{run['n_objects']} objects" in out


@pytest.mark.timeout(600)
@SETTINGS
@given(img=images(), data=st.data(), variant=st.sampled_from(["soft+rms", "snr", "raw", "norm", "soft", "nonsense"]),
       stretch=st.sampled_from(["asinh", "log", "sqrt", "power", "linear", "bogus"]))
def test_preprocess_is_finite_or_refuses_in_one_line(img, data, variant, stretch) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_fits(d / "img.fits", img, "float32", {})
        code, _, err = cli(["preprocess", str(d / "img.fits"), "-v", variant, "-o", str(d / "v.fits"),
                            "--stretch", stretch] + _maybe_rms(data.draw, img, d))
        assert_exit_0_or_one_line(code, err)
        if code == 0:
            out = fits.getdata(d / "v.fits")
            assert out.shape[-2:] == img.shape and np.all(np.isfinite(out))
            assert (d / "v.png").exists()
        else:
            assert not (d / "v.fits").exists() and not (d / "v.png").exists()


@pytest.mark.timeout(600)
@SETTINGS
@given(true=label_maps(shape=(192, 64)), patch=st.sampled_from([16, 32] * 3 + [8, 0, -1]),
       guard=st.sampled_from([4, 0] * 3 + [-5]),
       split=st.sampled_from(["0.6,0.2,0.2", "0.34,0.33,0.33"] * 3 + ["1,0,0", "0.5,0.5", "a,b,c", "0.8,0.3,-0.1"]))
def test_dataset_is_complete_or_refuses_in_one_line(true, patch, guard, split) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        img = np.random.default_rng(1).normal(size=true.shape) + 5 * (np.nan_to_num(true) > 0)
        write_fits(d / "img.fits", img, "float32", {})
        if not write_fits(d / "true.fits", true, "float64", {}):
            return
        code, _, err = cli(["dataset", str(d), "-v", "snr", "-o", str(d / "ds"), "--patch", str(patch),
                            "--guard", str(guard), "--split", split, "--keep-empty"])
        assert_exit_0_or_one_line(code, err)
        if code == 0:
            assert oracle_label_problem(read_back(d / "true.fits")) is None
            man = json.loads((d / "ds" / "manifest.json").read_text())
            n = sum(np.load(d / "ds" / s["file"])["instances"].shape[0]
                    for shards in man["shards"].values() for s in shards)
            assert n == sum(man["n_patches"].values()) > 0
        else:
            assert not (d / "ds").exists()
            assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []


@pytest.mark.timeout(600)
@settings(max_examples=20, deadline=None, derandomize=True)
@given(size=st.sampled_from([24, 8] * 3 + [7, 0, -1]), tile=st.sampled_from([16] * 4 + [15, 0, -1]),
       workers=st.sampled_from([1, 0] * 2 + [-1]), preset=st.sampled_from(["euclid-vis", "ground"] * 2 + ["hubble?"]))
def test_simulate_is_complete_or_refuses_in_one_line(size, tile, workers, preset) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim"
        code, _, err = cli(["simulate", str(out), "--size", str(size), "--tile", str(tile), "--workers",
                            str(workers), "--preset", preset])
        assert_exit_0_or_one_line(code, err)
        valid = size >= 8 and tile >= 16 and workers >= 0 and preset != "hubble?"
        assert (code == 0) == valid, err
        if code == 0:
            assert fits.getdata(out / "img.fits").shape == (size, size)
            assert fits.getdata(out / "true.fits").dtype.kind == "i"
        else:
            assert not out.exists()


@pytest.mark.timeout(600)
@SETTINGS
@given(img=images(), dtype=st.sampled_from(["float32", "float64", "int16", "int32", "uint8"]), cards=HEADERS,
       true=st.one_of(st.none(), label_maps()))
def test_info_reports_the_file_or_refuses_in_one_line(img, dtype, cards, true) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if not write_fits(d / "img.fits", np.round(img * 10) if dtype[0] in "iu" else img, dtype, cards):
            return
        args = ["info", str(d / "img.fits"), "--json"]
        if true is not None and write_fits(d / "true.fits", true, "float64", {}):
            args += ["--true", str(d / "true.fits")]
        code, out, err = cli(args)
        assert_exit_0_or_one_line(code, err)
        if code == 0:
            js = json.loads(out)
            data = read_back(d / "img.fits")
            assert tuple(js["shape"]) == data.shape[-2:]
            assert js["nonfinite_pixels"] == int((~np.isfinite(data)).sum())
            if "--true" in args:
                t = read_back(d / "true.fits")
                assert oracle_label_problem(t) is None
                assert js["n_objects"] == np.unique(t[t > 0]).size

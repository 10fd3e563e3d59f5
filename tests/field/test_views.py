"""Images read through another map: inverse-variance weight maps in place of rms maps (0 = no
data), bad-pixel masks (non-zero = no data), and HDUs chosen by name."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from astrostatlearn.cli import app
from astrostatlearn.errors import InputError
from astrostatlearn.field import Field, Window

runner = CliRunner()


def _write(path: Path, data: np.ndarray) -> Path:
    fits.PrimaryHDU(data).writeto(path, overwrite=True)
    return path


@pytest.fixture
def weighted(sim_field: Path, tmp_path: Path) -> dict[str, Path]:
    """The simulated field's image with a weight map 1/rms^2 and a variance map rms^2, both 0 on a strip;
    and the same as NaN + rms."""
    img, rms = fits.getdata(sim_field / "img.fits"), fits.getdata(sim_field / "rms.fits")
    weight = (1.0 / rms.astype(np.float64) ** 2).astype(np.float32)
    weight[:, 100:160] = 0.0
    variance = (rms.astype(np.float64) ** 2).astype(np.float32)
    variance[:, 100:160] = 0.0
    masked = img.copy()
    masked[:, 100:160] = np.nan
    return {"img": _write(tmp_path / "img.fits", img), "weight": _write(tmp_path / "weight.fits", weight),
            "variance": _write(tmp_path / "variance.fits", variance), "rms": _write(tmp_path / "rms.fits", rms),
            "masked": _write(tmp_path / "masked.fits", masked)}


@pytest.mark.parametrize("kind", ["weight", "variance"])
def test_a_weight_or_variance_map_reads_as_rms_with_no_data_where_it_is_zero(weighted: dict, kind: str) -> None:
    rms = fits.getdata(weighted["rms"])
    noise = weighted[kind]
    with Field.open(img=weighted["img"], rms=noise, noise_kind=kind) as f:
        assert f.noise_kind == kind
        got = f.read_rms()
        assert np.isnan(got[:, 100:160]).all()
        np.testing.assert_allclose(got[:, :100], rms[:, :100], rtol=1e-6)
        img = f.read_img()
        assert np.isnan(img[:, 100:160]).all() and np.isfinite(img[:, :100]).all()
        w = Window(10, 20, 90, 170)
        np.testing.assert_array_equal(f.read_img(w), img[w.slices])
        (row,) = f.read_img_windows([Window(5, 6, 0, f.shape[1])])
        np.testing.assert_array_equal(row, img[5:6])
    r = runner.invoke(app, ["info", str(weighted["img"]), f"--{kind}", str(noise), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["noise_kind"] == kind
    assert json.loads(r.output)["nonfinite_pixels"] == 60 * img.shape[0]  # the map's zeros are no data
    with pytest.raises(InputError, match="noise_kind must be"):
        Field.open(img=weighted["img"], rms=noise, noise_kind="sigma")


def test_segment_with_a_weight_or_variance_map_equals_segment_with_its_rms(weighted: dict, tmp_path: Path) -> None:
    """On worker processes (sep's scheduler), so the weight map travels to them as a weight map."""
    for name, args in (("weight", ["--weight", str(weighted["weight"])]), ("rms", ["--rms", str(weighted["rms"])]),
                       ("variance", ["--variance", str(weighted["variance"])])):
        src = weighted["masked"] if name == "rms" else weighted["img"]
        r = runner.invoke(app, ["segment", str(src), "-m", "sep", "-o", str(tmp_path / name), "--workers", "2",
                                "--tile", "256", *args])
        assert r.exit_code == 0, r.output
    a = fits.getdata(tmp_path / "weight" / "segmentation.fits")
    np.testing.assert_array_equal(a, fits.getdata(tmp_path / "rms" / "segmentation.fits"))
    np.testing.assert_array_equal(a, fits.getdata(tmp_path / "variance" / "segmentation.fits"))
    assert a.max() > 10 and not a[:, 100:160].any()
    run = json.loads((tmp_path / "weight" / "run.json").read_text())
    assert run["field"]["noise"] == "weight" and run["field"]["rms"].endswith("weight.fits")
    r = runner.invoke(app, ["segment", str(weighted["img"]), "-m", "sep", "-o", str(tmp_path / "both"),
                            "--rms", str(weighted["rms"]), "--weight", str(weighted["weight"])])
    assert r.exit_code == 2 and "give one noise map, not --rms and --weight" in r.output
    assert not (tmp_path / "both").exists()


def test_hdus_are_chosen_by_index_or_name_as_in_a_drizzled_file(weighted: dict, tmp_path: Path) -> None:
    """One multi-extension file holds the image and its weight map (HST's SCI and WHT); workers
    reopen each HDU by its index, here from tile-compressed HDUs, which they read by path."""
    from astrostatlearn.field import open_image

    img, weight = fits.getdata(weighted["img"]), fits.getdata(weighted["weight"])
    drz = tmp_path / "drz.fits"
    lossless = {"compression_type": "GZIP_1", "quantize_level": 0.0}
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(img, name="SCI", **lossless), fits.CompImageHDU(weight, name="WHT", **lossless),
                  fits.ImageHDU(np.ones(img.shape, np.int32), name="CTX")]).writeto(drz)
    for spec in (f"{drz}[WHT]", f"{drz}[2]", f"{drz}[wht,1]"):
        with open_image(spec) as f:
            assert f.hdu_index == 2 and f.spec == f"{drz.resolve()}[2]"
            np.testing.assert_array_equal(f.read(Window(0, 5, 0, 5)), weight[:5, :5])
    with open_image(drz) as f:
        assert f.hdu_index == 1 and f.spec == str(drz.resolve())  # the first image, as before
    for spec, text in ((f"{drz}[NOPE]", "no HDU named 'NOPE'.*SCI, WHT"), (f"{drz}[9]", "HDU 9 does not exist"),
                       (f"{drz}[SCI,one]", "bad HDU")):
        with pytest.raises(InputError, match=text):
            open_image(spec)
    r = runner.invoke(app, ["segment", f"{drz}[SCI]", "--weight", f"{drz}[WHT]", "-m", "sep", "-o",
                            str(tmp_path / "drz"), "--workers", "2", "--tile", "256"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["segment", str(weighted["img"]), "--weight", str(weighted["weight"]), "-m", "sep",
                            "-o", str(tmp_path / "files"), "--workers", "2", "--tile", "256"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(fits.getdata(tmp_path / "drz" / "segmentation.fits"),
                                  fits.getdata(tmp_path / "files" / "segmentation.fits"))
    run = json.loads((tmp_path / "drz" / "run.json").read_text())
    assert run["field"]["img"].endswith("drz.fits[1]") and run["field"]["rms"].endswith("drz.fits[2]")


def test_a_bad_pixel_mask_is_no_data_in_every_process(weighted: dict, tmp_path: Path) -> None:
    """A DQ-like extension (non-zero = bad) masks the image as NaN does, on worker processes too."""
    img = fits.getdata(weighted["img"])
    dq = np.zeros(img.shape, np.int16)
    dq[:, 100:160] = 4
    dq[300, 300] = 1
    drz = tmp_path / "drz.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="SCI"),
                  fits.CompImageHDU(dq, name="DQ", compression_type="RICE_1")]).writeto(drz)
    masked = fits.getdata(weighted["masked"])
    masked[300, 300] = np.nan
    fits.PrimaryHDU(masked).writeto(tmp_path / "nan.fits")
    with Field.open(img=f"{drz}[SCI]", mask=f"{drz}[DQ]") as f:
        got = f.read_img()
        np.testing.assert_array_equal(got, masked)
        assert f.img.hdu_index == 1 and f.wcs is None  # the image file's, through the mask
    for name, args in (("dq", [f"{drz}[SCI]", "--mask", f"{drz}[DQ]"]), ("nan", [str(tmp_path / "nan.fits")])):
        r = runner.invoke(app, ["segment", *args, "--rms", str(weighted["rms"]), "-m", "sep", "-o",
                                str(tmp_path / name), "--workers", "2", "--tile", "256"])
        assert r.exit_code == 0, r.output
    a = fits.getdata(tmp_path / "dq" / "segmentation.fits")
    np.testing.assert_array_equal(a, fits.getdata(tmp_path / "nan" / "segmentation.fits"))
    assert a.max() > 10 and not a[:, 100:160].any()
    small = _write(tmp_path / "small.fits", np.zeros((5, 5), np.uint8))
    r = runner.invoke(app, ["segment", str(weighted["img"]), "--mask", str(small), "-m", "sep", "-o",
                            str(tmp_path / "small-run")])
    assert r.exit_code == 2 and "mask is 5x5" in r.output and not (tmp_path / "small-run").exists()


@pytest.mark.parametrize("spec, bits", [("131", 131), ("0x83", 131), ("1,2,128", 131), ("1+2+128", 131),
                                        ("~4096", ~4096)])
def test_bad_bits_are_read_in_astropys_notation_and_in_hex(spec: str, bits: int) -> None:
    from astrostatlearn.field import parse_bad_bits

    assert parse_bad_bits(spec) == bits


@pytest.mark.filterwarnings("ignore:Keyword name .MP_NO_DATA.")
def test_bad_bits_are_named_by_the_mask_planes_of_lsst_and_hsc() -> None:
    from astrostatlearn.field import parse_bad_bits

    header = fits.Header({"MP_BAD": 0, "MP_SAT": 1, "MP_DETECTED": 5, "MP_NO_DATA": 8})
    assert parse_bad_bits("BAD,sat,NO_DATA", header) == 1 + 2 + 256
    assert parse_bad_bits("~DETECTED", header) == ~32 and parse_bad_bits("BAD+128", header) == 129
    with pytest.raises(InputError, match=r"no bit named 'CR' \(it names BAD, DETECTED, NO_DATA, SAT\)"):
        parse_bad_bits("BAD,CR", header)
    with pytest.raises(InputError, match="no bit named 'BAD' .it has no MP_. cards"):
        parse_bad_bits("BAD")


@pytest.mark.parametrize("spec, text", [("abc", "no bit named 'abc'"), ("0", "select no bit"), ("1,3", "bad mask bits"),
                                        ("0xZZ", "bad mask bits")])
def test_bad_bits_that_mean_nothing_are_refused(spec: str, text: str) -> None:
    from astrostatlearn.field import parse_bad_bits

    with pytest.raises(InputError, match=text):
        parse_bad_bits(spec)


def test_only_the_bad_bits_of_a_bit_plane_mask_are_no_data_in_every_process(weighted: dict, tmp_path: Path) -> None:
    """An HSC/LSST-like mask plane: BAD (bit 0) on a strip, SAT (bit 1) on one pixel, and DETECTED
    (bit 5) on every source, named in ``MP_*`` cards. With ``--mask-bits BAD,SAT`` only those are no data; as a plain mask
    (any non-zero bad) it would blank every source."""
    img = fits.getdata(weighted["img"])
    plane = np.zeros(img.shape, np.int32)
    plane[img > 5 * np.nanmedian(fits.getdata(weighted["rms"]))] |= 32  # DETECTED
    plane[:, 100:160] |= 1
    plane[300, 300] |= 2
    calexp = tmp_path / "calexp.fits"
    planes = fits.Header({"MP_BAD": 0, "MP_SAT": 1, "MP_DETECTED": 5})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="IMAGE"),
                  fits.ImageHDU(plane, header=planes, name="MASK")]).writeto(calexp)
    masked = fits.getdata(weighted["masked"])
    masked[300, 300] = np.nan
    fits.PrimaryHDU(masked).writeto(tmp_path / "nan.fits")
    runs = {"bits": [f"{calexp}[IMAGE]", "--mask", f"{calexp}[MASK]", "--mask-bits", "BAD,SAT"],
            "nan": [str(tmp_path / "nan.fits")], "any": [f"{calexp}[IMAGE]", "--mask", f"{calexp}[MASK]"]}
    for name, args in runs.items():
        r = runner.invoke(app, ["segment", *args, "--rms", str(weighted["rms"]), "-m", "sep", "-o",
                                str(tmp_path / name), "--workers", "2", "--tile", "256"])
        assert r.exit_code == 0, r.output
    seg = {name: fits.getdata(tmp_path / name / "segmentation.fits") for name in runs}
    np.testing.assert_array_equal(seg["bits"], seg["nan"])
    detected = (plane & 32) > 0
    assert seg["bits"].max() > 10 and (seg["bits"][detected] > 0).mean() > 0.9
    assert not seg["any"][detected].any()  # a plain mask blanks every source's core
    run = json.loads((tmp_path / "bits" / "run.json").read_text())
    assert run["field"]["mask"] == {"path": f"{calexp.resolve()}[2]", "bad_bits": 3}
    r = runner.invoke(app, ["info", f"{calexp}[IMAGE]", "--mask", f"{calexp}[MASK]", "--mask-bits", "0x3"])
    assert r.exit_code == 0 and f"{60 * img.shape[0] + 1} pixels" in r.output and "mask bits 0x3" in r.output


@pytest.mark.parametrize("args, text", [(["--mask-bits", "4"], "--mask-bits needs --mask"),
                                        (["--mask", "FLOAT", "--mask-bits", "4"], "mask bits need an integer mask"),
                                        (["--mask", "INT", "--mask-bits", "1,3"], "bad mask bits '1,3'")])
def test_mask_bits_without_an_integer_mask_are_one_line_errors(weighted: dict, tmp_path: Path, args: list,
                                                               text: str) -> None:
    files = {"FLOAT": str(weighted["rms"]), "INT": str(_write(tmp_path / "int.fits", np.zeros((512, 512), np.int16)))}
    args = [files.get(a, a) for a in args]
    r = runner.invoke(app, ["segment", str(weighted["img"]), *args, "-m", "sep", "-o", str(tmp_path / "run")])
    assert r.exit_code == 2 and text in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "run").exists()

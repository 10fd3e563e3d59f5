"""The command line: readable output, one-line errors with exit code 2 for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from astrostatlearn.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0]


def test_info_describes_a_simulated_field(sim_field: Path) -> None:
    r = run("info", sim_field)
    assert r.exit_code == 0, r.output
    assert "512 x 512" in r.output and "WCS        yes" in r.output and "foreground fraction" in r.output
    js = json.loads(run("info", sim_field, "--json").output)
    true = fits.getdata(sim_field / "true.fits")
    assert js["n_objects"] == len(np.unique(true)) - 1
    assert js["foreground_fraction"] == pytest.approx((true > 0).mean())
    assert js["sigma_clipped_std"] == pytest.approx(0.55, rel=0.15)
    assert js["zeropoint"] == fits.getheader(sim_field / "img.fits")["MAGZP"] and js["zeropoint_card"] == "MAGZP"
    assert f"zero-point {js['zeropoint']:.4f} mag (MAGZP)" in r.output


def test_simulate_then_refuse_overwrite(tmp_path: Path) -> None:
    r = run("simulate", tmp_path / "f", "--size", "128", "--seed", "2", "--workers", "1")
    assert r.exit_code == 0, r.output
    assert "objects" in r.output
    assert_one_line_error(run("simulate", tmp_path / "f", "--size", "128"), "already exists", "--overwrite")
    assert run("simulate", tmp_path / "f", "--size", "128", "--overwrite", "--workers", "1").exit_code == 0
    assert_one_line_error(run("simulate", tmp_path / "g", "--preset", "nope"), "unknown preset")


def _field(tmp_path: Path, img=None, rms=None, true=None) -> Path:
    shape = (32, 32)
    arrays = {"img": np.zeros(shape, np.float32) if img is None else img,
              "rms": np.ones(shape, np.float32) if rms is None else rms,
              "true": np.zeros(shape, np.int32) if true is None else true}
    for name, arr in arrays.items():
        fits.PrimaryHDU(arr).writeto(tmp_path / f"{name}.fits", overwrite=True)
    return tmp_path


@pytest.mark.parametrize("case,needle", [
    ("missing", "not found"),
    ("not_fits", "not a FITS file"),
    ("truncated", "truncated"),
    ("no_image", "no 2-D image"),
    ("shape", "differs"),
    ("all_nan", "non-finite"),
    ("rms_zero", "rms <= 0"),
    ("truth_float", "not integer"),
    ("truth_negative", "negative IDs"),
])
def test_info_bad_input(tmp_path: Path, case: str, needle: str) -> None:
    d = _field(tmp_path)
    if case == "missing":
        (d / "img.fits").unlink()
        target = d / "img.fits"
        assert_one_line_error(run("info", target), needle, "img.fits")
        return
    if case == "not_fits":
        (d / "img.fits").write_text("plain text")
    elif case == "truncated":
        fits.PrimaryHDU(np.zeros((300, 300), np.float32)).writeto(d / "img.fits", overwrite=True)
        (d / "img.fits").write_bytes((d / "img.fits").read_bytes()[:10000])
    elif case == "no_image":
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column(name="a", format="E", array=np.zeros(2))])]).writeto(d / "img.fits", overwrite=True)
    elif case == "shape":
        fits.PrimaryHDU(np.ones((31, 32), np.float32)).writeto(d / "rms.fits", overwrite=True)
    elif case == "all_nan":
        _field(d, img=np.full((32, 32), np.nan, np.float32))
    elif case == "rms_zero":
        rms = np.ones((32, 32), np.float32)
        rms[4, 4] = 0
        _field(d, rms=rms)
    elif case == "truth_float":
        _field(d, true=np.full((32, 32), 0.25, np.float32))
    elif case == "truth_negative":
        _field(d, true=np.full((32, 32), -1, np.int32))
    assert_one_line_error(run("info", d), needle)


def test_console_script_exit_code_without_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "astrostatlearn"
    p = subprocess.run([str(exe), "info", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error:")


def test_evaluate_prints_table_and_writes_json(sim_field: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    r = run("evaluate", "--true", sim_field / "true.fits", "--pred", sim_field / "true.fits",
            "--catalog", sim_field / "truth.ecsv", "--json", out)
    assert r.exit_code == 0, r.output
    assert "completeness  1.000" in r.output and "PQ" in r.output and "AP50" in r.output
    js = json.loads(out.read_text())
    assert js["panoptic"]["galaxy"]["pq"] == 1.0 and js["pixel_global"]["iou"] == 1.0
    assert js["binned"]["mag"]["completeness"][5] in (1.0, None)
    assert_one_line_error(run("evaluate", "--true", sim_field / "true.fits", "--pred", sim_field / "true.fits",
                              "--json", out), "already exists")


def test_evaluate_bad_input(sim_field: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.int32)).writeto(small)
    assert_one_line_error(run("evaluate", "--true", sim_field / "true.fits", "--pred", small), "differs")
    assert_one_line_error(run("evaluate", "--true", sim_field / "true.fits", "--pred", tmp_path / "none.fits"),
                          "not found")
    assert_one_line_error(run("evaluate", "--true", sim_field / "true.fits", "--pred", sim_field / "true.fits",
                              "--region", "a:b"), "--region")
    assert not (tmp_path / "x.json").exists()


def test_preprocess_and_dataset_commands(sim_field: Path, tmp_path: Path) -> None:
    r = run("preprocess", sim_field, "--variant", "soft+rms+log", "--out", tmp_path / "v.fits")
    assert r.exit_code == 0, r.output
    assert fits.getdata(tmp_path / "v.fits").shape == (2, 512, 512) and (tmp_path / "v.png").exists()
    assert_one_line_error(run("preprocess", sim_field, "--variant", "nope", "--out", tmp_path / "w.fits"),
                          "unknown variant")
    r = run("dataset", sim_field, "--variant", "norm", "--out", tmp_path / "ds", "--patch", "64",
            "--split", "0.6,0.2,0.2", "--guard", "16")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ds" / "coco" / "instances_test.json").exists()
    assert (tmp_path / "ds" / "coco" / "panoptic_test.json").exists()
    assert_one_line_error(run("dataset", sim_field, "--variant", "norm", "--out", tmp_path / "ds"), "already exists")
    assert_one_line_error(run("dataset", sim_field, "--variant", "norm", "--out", tmp_path / "ds2", "--split", "1,2"),
                          "--split")
    assert not (tmp_path / "ds2").exists()


def test_segment_and_train_commands(sim_field: Path, tmp_path: Path) -> None:
    r = run("segment", sim_field, "--method", "sep", "--out", tmp_path / "s", "--tile", "256", "--scheduler", "threads")
    assert r.exit_code == 0, r.output
    assert "objects" in r.output and (tmp_path / "s" / "catalog.ecsv").exists()
    assert_one_line_error(run("segment", sim_field, "--method", "sep", "--out", tmp_path / "s"), "already exists")
    assert_one_line_error(run("segment", sim_field, "--method", "forest", "--out", tmp_path / "f"), "supervised")
    assert_one_line_error(run("segment", sim_field, "--method", "nope", "--out", tmp_path / "n"), "unknown method")
    assert_one_line_error(run("segment", sim_field, "--method", "sep", "--out", tmp_path / "h", "--halo", "3"), "halo")
    assert_one_line_error(run("segment", sim_field, "--method", "sep", "--out", tmp_path / "t", "-p", "tta=2"), "no option")
    assert_one_line_error(run("segment", sim_field, "--method", "unet", "--out", tmp_path / "t", "-p", "tta=3"), "1, 2, 4 or 8")
    r = run("train", "forest", "--field", sim_field, "--out", tmp_path / "forest.joblib", "--split", "0.6,0.2,0.2")
    assert r.exit_code == 0, r.output
    r = run("segment", sim_field, "--method", "forest", "--model", tmp_path / "forest.joblib", "--out", tmp_path / "f2",
            "--scheduler", "threads", "--tile", "256")
    assert r.exit_code == 0, r.output
    assert_one_line_error(run("segment", sim_field, "--method", "sep", "--model", tmp_path / "forest.joblib",
                              "--out", tmp_path / "f3"), "not 'sep'")
    assert_one_line_error(run("train", "sep", "--field", sim_field, "--out", tmp_path / "x.joblib"), "nothing to train")


@pytest.mark.parametrize("args,needle", [
    (["segment", "somewhere"], "Missing option '--method'"),
    (["bogus"], "No such command"),
    (["simulate", "x", "--size", "abc"], "Invalid value for '--size'"),
])
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], needle: str) -> None:
    exe = Path(sys.executable).parent / "astrostatlearn"
    p = subprocess.run([str(exe), *args], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_failed_commands_leave_nothing_on_disk(sim_field: Path, tmp_path: Path) -> None:
    cases = [
        ("benchmark", "--field", sim_field, "--out", tmp_path / "b", "--methods", "magic", "--no-peers"),
        ("benchmark", "--field", sim_field, "--out", tmp_path / "c", "--variants", "shiny", "--no-peers"),
        ("segment", sim_field, "--method", "sep", "--out", tmp_path / "s", "--halo", "3"),
        ("evaluate", "--true", sim_field / "true.fits", "--pred", tmp_path / "none.fits", "--json", tmp_path / "e" / "o.json"),
        ("train", "unet", "--field", sim_field, "--out", tmp_path / "t" / "m.pt", "--variant", "nope"),
        ("train", "unet", "--field", sim_field, "--out", tmp_path / "u" / "m.pt", "--snapshot-every", "-1"),
        ("preprocess", sim_field, "--variant", "nope", "--out", tmp_path / "p" / "x.fits"),
    ]
    for args in cases:
        assert_one_line_error(run(*args))
    assert list(tmp_path.iterdir()) == []


def test_error_boundary_turns_any_unexpected_error_into_one_line(tmp_path: Path) -> None:
    code = ("import astrostatlearn.field as f\n"
            "def boom(*a, **k):\n    raise ZeroDivisionError('deep inside')\n"
            "f.Field.open = boom\n"
            "from astrostatlearn import cli\ncli.main(['info', 'x'])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == ["error: unexpected ZeroDivisionError: deep inside"]


def test_unknown_scheduler_is_refused(sim_field: Path, tmp_path: Path) -> None:
    assert_one_line_error(run("segment", sim_field, "--method", "sep", "--out", tmp_path / "s",
                              "--scheduler", "nonsense"), "unknown scheduler")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_json_path_is_refused_before_any_work(sim_field: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    r = run("evaluate", "--true", sim_field / "true.fits", "--pred", sim_field / "true.fits",
            "--json", tmp_path / "file" / "e.json")
    assert_one_line_error(r, "runs through a file")
    assert "pixel metrics" not in r.output  # refused before scoring


EXIT_AT_ONCE = """
import atexit, sys, threading, time
atexit.register(lambda: print("exit handler ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=True))).start()
sys.argv = ["astrostatlearn", *sys.argv[1:]]
from astrostatlearn.cli import main
main()
print("not reached")
"""


@pytest.mark.parametrize("args, status", [(["methods"], 0), (["segment", "/nonexistent", "-m", "sep", "-o", "x"], 2)])
def test_the_console_process_ends_at_once_with_its_status_threads_and_exit_handlers(args: list[str], status: int,
                                                                                 tmp_path: Path) -> None:
    """The console entry point skips the interpreter's module teardown, but not what a process
    owes before it exits: its status, its non-daemon threads, its exit handlers, its output."""
    p = subprocess.run([sys.executable, "-c", EXIT_AT_ONCE, *args], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert p.returncode == status, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "exit handler ran" and "thread finished" in lines and "not reached" not in lines
    if status:
        assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error: ")
    else:
        assert "sep" in p.stdout


@pytest.mark.parametrize("args, expected", [
    (["segment", "F", "-m", "sep", "-o", "O"], ("sep", None)),
    (["segment", "F", "-msep", "-o", "O"], ("sep", None)),
    (["segment", "F", "--method=unet", "--scheduler", "threads"], ("unet", "threads")),
    (["segment", "F", "--method", "kmeans", "--scheduler=tcp://h:8786"], ("kmeans", "tcp://h:8786")),
    (["segment", "F", "-m", "sep", "--help"], None),
    (["evaluate", "--true", "T", "-m", "sep"], None),
    (["segment", "F", "-o", "O"], None),
])
def test_the_segment_head_start_reads_the_method_off_the_raw_command_line(args, expected) -> None:
    """The console starts the workers' forkserver before Typer parses: only for segment, with the
    method and scheduler as the command will read them."""
    from astrostatlearn.cli import segment_method_in

    assert segment_method_in(args) == expected

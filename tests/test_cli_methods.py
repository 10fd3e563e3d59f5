"""The CLI through the method registry: options, model files and the Mask R-CNN commands."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from tests.test_cli import assert_one_line_error, run


def test_methods_command_lists_the_registry() -> None:
    r = run("methods")
    assert r.exit_code == 0, r.output
    for name in ("sep", "photutils", "kmeans", "forest", "unet", "maskrcnn", "detr", "mask2former"):
        assert f"\n{name}: " in "\n" + r.output
    assert "segment -p tta=" in r.output and "train -p widths=" in r.output
    for cmd in ("benchmark", "methods"):
        h = run(cmd, "--help")
        assert h.exit_code == 0 and "Usage" in h.output


def test_bad_params_are_one_line_errors(sim_field: Path, tmp_path: Path) -> None:
    assert_one_line_error(run("segment", sim_field, "--method", "sep", "--out", tmp_path / "a", "-p", "nsigma"),
                          "NAME=VALUE")
    assert_one_line_error(run("train", "unet", "--field", sim_field, "--out", tmp_path / "m.pt", "-p", "colour=red"),
                          "no trainer option 'colour'")
    assert_one_line_error(run("benchmark", "--field", sim_field, "--out", tmp_path / "b", "--methods", "sep",
                              "--model", f"unet={tmp_path / 'x.pt'}", "--no-peers"), "not among the methods")
    assert list(tmp_path.iterdir()) == []


def test_maskrcnn_model_checks(sim_field: Path, tmp_path: Path) -> None:
    from astrostatlearn.methods import default_segmenter
    from astrostatlearn.methods.maskrcnn import MaskRCNNSegmenter, build_maskrcnn

    seg = MaskRCNNSegmenter.from_network(build_maskrcnn(2, window=64), "soft+rms")
    seg.save(tmp_path / "m.pt")
    assert_one_line_error(run("segment", sim_field, "--method", "maskrcnn", "--model", tmp_path / "m.pt",
                              "--variant", "snr", "--out", tmp_path / "o"), "trained on variant 'soft+rms'")
    default_segmenter("unet").save(tmp_path / "u.pt")
    assert_one_line_error(run("segment", sim_field, "--method", "maskrcnn", "--model", tmp_path / "u.pt",
                              "--out", tmp_path / "o"), "not 'maskrcnn'")
    (tmp_path / "bad.pt").write_bytes(b"PK" + bytes(range(200)))
    assert_one_line_error(run("segment", sim_field, "--method", "maskrcnn", "--model", tmp_path / "bad.pt",
                              "--out", tmp_path / "o"), "bad.pt")
    assert_one_line_error(run("segment", sim_field, "--method", "maskrcnn", "--model", tmp_path / "m.pt",
                              "-p", "score_threshold=2", "--out", tmp_path / "o"), "[0, 1]")
    assert not (tmp_path / "o").exists()


def test_train_maskrcnn_refuses_fields_without_truth_or_splits(sim_field: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(sim_field / "img.fits", bare / "img.fits")
    assert_one_line_error(run("train", "maskrcnn", "--field", bare, "--out", tmp_path / "m.pt"), "truth map")
    assert_one_line_error(run("train", "maskrcnn", "--field", sim_field, "--out", tmp_path / "m.pt"),
                          "smaller than one 256-pixel patch")
    assert_one_line_error(run("train", "maskrcnn", "--field", sim_field, "--out", tmp_path / "m.pt", "-p",
                              "backbone=resnet"), "expected galaxy or unet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare"]  # no datasets left behind


@pytest.mark.parametrize("method, options, export, term", [
    ("maskrcnn", ["-p", "fpn=16"], "instances_train.json", None),  # the default U-Net backbone
    ("maskrcnn", ["-p", "backbone=galaxy", "-p", "widths=8/8/16/16", "-p", "fpn=16"], "instances_train.json", None),
    ("detr", ["-p", "window=64", "-p", "widths=8/8/16/16", "-p", "d_model=32"], "panoptic_train.json", "term_aux"),
    ("mask2former", ["-p", "window=64", "-p", "widths=8/8/16/16", "-p", "hidden=32", "-p", "decoder_layers=2",
                     "-p", "points=256"], "panoptic_train.json", "term_aux"),
])
def test_train_a_detector_from_its_coco_export_then_segment(sim_field: Path, tmp_path: Path, method: str,
                                                            options: list[str], export: str, term: str | None) -> None:
    out = tmp_path / "m.pt"
    args = ["train", method, "--field", sim_field, "--out", out, "--patch", "64", "--split", "0.6,0.2,0.2",
            "--steps", "2", "--batch", "2", *options]
    r = run(*args, "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert "validation PQ" in r.output and (out.parent / "m.pt.datasets" / "ds0" / "coco" / export).exists()
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [r["metric"] for r in rows] == ["pq"] and 0.0 <= float(rows[0]["val_metric"]) <= 1.0
    if term:  # the model's loss terms are logged, and sum to the training loss
        terms = [float(v) for k, v in rows[0].items() if k.startswith("term_")]
        assert float(rows[0][term]) > 0 and sum(terms) == pytest.approx(float(rows[0]["train_loss"]), rel=1e-4)
    r = run(*args, "--epochs", "2", "--resume")
    assert r.exit_code == 0, r.output
    assert len(list(csv.DictReader(open(out.with_suffix(".csv"))))) == 2
    r = run("segment", sim_field, "--method", method, "--model", out, "--out", tmp_path / "seg",
            "-p", "score_threshold=0.0", "--tile", "256")
    assert r.exit_code == 0, r.output
    cat = Table.read(tmp_path / "seg" / "catalog.ecsv")
    assert "score" in cat.colnames and np.all((np.asarray(cat["score"]) >= 0) & (np.asarray(cat["score"]) <= 1))


@pytest.mark.parametrize("method, small", [("detr", ["-p", "widths=8/8/16/16", "-p", "d_model=32"]),
                                           ("mask2former", ["-p", "widths=8/8/16/16", "-p", "hidden=32"])])
def test_query_models_refuse_too_few_queries_or_a_window_beyond_the_patch(sim_field: Path, tmp_path: Path,
                                                                          method: str, small: list[str]) -> None:
    args = ["train", method, "--field", sim_field, "--out", tmp_path / "d.pt", "--patch", "64", "--split",
            "0.6,0.2,0.2", "--steps", "1", "--batch", "2", "--epochs", "1", *small]
    assert_one_line_error(run(*args, "-p", "window=64", "-p", "queries=2"), "densest 64^2 crop")
    assert_one_line_error(run(*args, "-p", "window=128", "--overwrite"), "larger than the dataset patches")
    assert list(tmp_path.iterdir()) == []  # neither a model nor the datasets built for it are left


@pytest.mark.parametrize("option", [["--epochs", "0"], ["--batch", "0"], ["--lr", "-1"], ["--lr", "nan"],
                                    ["--steps", "-5"], ["--patch", "8"], ["--snapshot-every", "-1"]])
def test_impossible_training_settings_are_refused_before_any_work(sim_field: Path, tmp_path: Path,
                                                                  option: list[str]) -> None:
    assert_one_line_error(run("train", "unet", "--field", sim_field, "--out", tmp_path / "m.pt", *option), option[0])
    assert list(tmp_path.iterdir()) == []


def _small_query_model(method: str, channels: int):
    from astrostatlearn.methods import method_class

    cls = method_class(method)
    small = {"window": 64, "widths": [8, 8, 16, 16], **({"d_model": 32} if method == "detr" else {"hidden": 32})}
    return cls, cls.build_network({"in_channels": channels, **small})


@pytest.mark.parametrize("method", ["detr", "mask2former"])
def test_query_model_checks(sim_field: Path, tmp_path: Path, method: str) -> None:
    cls, net = _small_query_model(method, 2)
    cls.from_network(net, "soft+rms").save(tmp_path / "v.pt")
    assert_one_line_error(run("segment", sim_field, "--method", method, "--model", tmp_path / "v.pt",
                              "--variant", "snr", "--out", tmp_path / "o"), "trained on variant 'soft+rms'")
    cls, net = _small_query_model(method, 3)
    cls.from_network(net, "snr").save(tmp_path / "c.pt")
    assert_one_line_error(run("segment", sim_field, "--method", method, "--model", tmp_path / "c.pt",
                              "--out", tmp_path / "o"), "takes 3 channels")
    (tmp_path / "bad.pt").write_bytes(b"PK" + bytes(range(200)))
    assert_one_line_error(run("segment", sim_field, "--method", method, "--model", tmp_path / "bad.pt",
                              "--out", tmp_path / "o"), "bad.pt")
    assert_one_line_error(run("segment", sim_field, "--method", method, "--model", tmp_path / "v.pt",
                              "-p", "mask_threshold=-1", "--out", tmp_path / "o"), "[0, 1]")
    other = "mask2former" if method == "detr" else "detr"
    assert_one_line_error(run("segment", sim_field, "--method", other, "--model", tmp_path / "v.pt",
                              "--out", tmp_path / "o"), f"not '{other}'")
    assert not (tmp_path / "o").exists()

"""The instance-level method contract: per-instance records, the registry, model files."""

from pathlib import Path

import numpy as np
import pytest

from astrostatlearn.errors import InputError
from astrostatlearn.field import Window
from astrostatlearn.methods import (BUILTIN_METHODS, Instances, Prediction, default_segmenter, load_segmenter,
                                    make_segmenter, method_class, method_names)
from astrostatlearn.segment import own_objects
from astrostatlearn.segment.catalog import measure


def test_instances_take_renames_and_shifts() -> None:
    inst = Instances([3, 7], [0.2, 0.9], boxes=np.array([[0, 0, 2, 2], [5, 5, 9, 9]], np.float32), classes=[1, 1])
    t = inst.take(np.array([7, 3, 4]), new_ids=np.array([1, 2, 3]), shift=(10, 20))
    assert list(t.ids) == [1, 2, 3]
    np.testing.assert_allclose(t.scores, [0.9, 0.2, 0.0])  # ID 4 has no record: score 0
    np.testing.assert_allclose(t.boxes[0], [15, 25, 19, 29])
    with pytest.raises(ValueError, match="scores"):
        Instances([1, 2], [0.5])


def test_object_scores_prefer_the_methods_own_then_the_map_mean() -> None:
    labels = np.zeros((6, 6), np.int32)
    labels[:2, :2] = 1
    labels[4:, 4:] = 2
    score = np.zeros((6, 6), np.float32)
    score[:2, :2] = [[0.2, 0.4], [0.6, 0.8]]
    np.testing.assert_allclose(Prediction(labels, score).object_scores(np.array([1, 2])), [0.5, 0.0])
    own = Prediction(labels, score, Instances([1, 2], [0.9, 0.1]))
    np.testing.assert_allclose(own.object_scores(np.array([2, 1])), [0.1, 0.9])
    assert np.isnan(Prediction(labels).object_scores(np.array([1]))).all()


def test_records_survive_ownership_and_reach_the_catalogue() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[2:5, 2:5] = 4      # kept (centroid in core)
    labels[12:15, 2:5] = 2    # kept
    labels[8:12, 14:20] = 9   # centroid outside the core: dropped
    inst = Instances([2, 4, 9], [0.3, 0.8, 0.99], boxes=np.array([[12, 2, 15, 5], [2, 2, 5, 5], [8, 14, 12, 20]], np.float32))
    window = Window(100, 120, 200, 220)
    owned = own_objects(labels, window, Window(100, 118, 200, 212), (1000, 1000), inst)
    # Renumbered 1..n in reference-pixel order, with each object's own score and box (field pixels).
    assert list(owned.source_ids) == [4, 2]
    np.testing.assert_allclose(owned.instances.scores, [0.8, 0.3])
    np.testing.assert_allclose(owned.instances.boxes[0], [102, 202, 105, 205])
    cat = measure(owned.labels, np.ones((20, 20)), None, window, None, owned.instances)
    np.testing.assert_allclose(cat["score"], [0.8, 0.3])
    np.testing.assert_allclose(cat["box_y0"], [102, 112])


def test_registry_lists_every_method_and_declares_what_the_cli_needs() -> None:
    assert method_names()[: len(BUILTIN_METHODS)] == list(BUILTIN_METHODS)
    assert {"sep", "unet", "maskrcnn"} <= set(method_names())
    for name in method_names():
        cls = method_class(name)
        assert cls.name == name and cls.default_scheduler in ("processes", "threads")
        assert set(cls.options) <= set(cls().get_params())  # every CLI option is a real parameter
    assert method_class("unet").shipped_model and method_class("sep").shipped_model is None
    with pytest.raises(InputError, match="unknown method"):
        method_class("nope")


def test_options_are_checked_and_converted() -> None:
    seg = make_segmenter("unet")
    seg.set_options({"tta": "4", "threshold": "0.7"})
    assert seg.tta == 4 and seg.threshold == 0.7
    with pytest.raises(InputError, match="1, 2, 4 or 8"):
        seg.set_options({"tta": "3"})
    with pytest.raises(InputError, match="no option 'nsigma'"):
        seg.set_options({"nsigma": "2"})
    with pytest.raises(InputError, match="expected a int"):
        seg.set_options({"tta": "two"})
    seg.set_options({"device": "cpu", "min_dynamic": "none"})
    assert seg.device == "cpu" and seg.min_dynamic is None
    seg.set_options({"min_dynamic": "0.25"})
    assert seg.min_dynamic == 0.25


def test_model_files_name_their_method(tmp_path: Path) -> None:
    unet = default_segmenter("unet")
    assert unet.trained_variant == "snr"
    unet.save(tmp_path / "u.pt")
    assert load_segmenter(tmp_path / "u.pt").name == "unet"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_segmenter(bad)
    (tmp_path / "junk.joblib").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a saved"):
        load_segmenter(tmp_path / "junk.joblib")


def test_tile_knows_when_every_pixel_is_valid_and_masks_only_then() -> None:
    from astrostatlearn.methods import Tile

    valid = np.ones((4, 5), bool)
    values = np.arange(20, dtype=np.float32).reshape(4, 5)
    tile = Tile(values[None], np.zeros((4, 5)), np.ones((4, 5)), valid, Window(0, 4, 0, 5))
    assert tile.all_valid and tile.zero_invalid(values) is values  # no copy, no pass
    valid[1, 2] = False
    tile = Tile(values[None], np.zeros((4, 5)), np.ones((4, 5)), valid, Window(0, 4, 0, 5))
    out = tile.zero_invalid(values)
    assert not tile.all_valid and out[1, 2] == 0 and out.sum() == values.sum() - values[1, 2]

"""Score cores handed from local workers to the driver through shared slot files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrostatlearn.field import Field
from astrostatlearn.methods import make_segmenter
from astrostatlearn.segment import segment_field
from astrostatlearn.segment.score_slots import ScoreSlots, write_slot


def test_a_slot_holds_a_core_of_any_shape_up_to_a_tile(tmp_path: Path) -> None:
    slots = ScoreSlots(tmp_path, 3, tile=8)
    assert slots.slot(0) != slots.slot(1) and slots.slot(0) == slots.slot(3)  # a ring of 3
    for shape in [(8, 8), (3, 5), (8, 1)]:
        core = np.random.default_rng(1).random(shape, dtype=np.float32)
        ref = write_slot(slots.slot(4), core)  # a worker's map of the same file
        np.testing.assert_array_equal(slots.view(ref), core)
    slots.close()


@pytest.mark.timeout(180)
def test_processes_hand_back_the_score_map_the_threads_make(sim_field: Path, tmp_path: Path) -> None:
    """Many more tiles than slots (36 tiles, 5 slots), two workers racing ahead: every tile's score
    lands where it belongs, as when the score travels with the result."""
    with Field.open(sim_field) as f:
        seg = make_segmenter("sep")
        threads = segment_field(f, seg, tmp_path / "t", tile=96, halo=96, scheduler="threads", workers=2)
        procs = segment_field(f, seg, tmp_path / "p", tile=96, halo=96, scheduler="processes", workers=2)
    assert threads.run["n_tiles"] == procs.run["n_tiles"] == 36
    a, b = (fits.getdata(tmp_path / d / "score.fits") for d in ("t", "p"))
    assert a.min() >= 0 and a.max() > 0.9
    np.testing.assert_array_equal(a, b)
    assert not any((tmp_path / "p").glob("*slot*"))

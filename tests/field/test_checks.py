"""Label-block checks: integer maps that cannot hold a bad ID pass through uncopied; others are
checked and widened."""

import numpy as np
import pytest

from astrostatlearn.errors import InputError
from astrostatlearn.field import Window
from astrostatlearn.field.checks import check_label_block

W = Window(0, 4, 0, 4)


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint16, np.uint8])
def test_narrow_integer_blocks_are_returned_without_a_copy(dtype) -> None:
    raw = np.arange(16, dtype=dtype).reshape(4, 4)
    out = check_label_block(raw, W, None)
    assert out is raw


@pytest.mark.parametrize("dtype,value,match", [(np.int32, -1, "negative IDs"), (np.int64, 2**31, "above 2"),
                                                (np.uint32, 2**31, "above 2"), (np.float32, 1.5, "not integer")])
def test_bad_ids_are_refused_whatever_the_dtype(dtype, value, match) -> None:
    raw = np.zeros((4, 4), dtype)
    raw[2, 3] = value
    with pytest.raises(InputError, match=match):
        check_label_block(raw, W, None)


def test_wide_and_float_blocks_become_int64() -> None:
    for dtype in (np.int64, np.uint32, np.float64):
        out = check_label_block(np.full((4, 4), 7, dtype), W, None)
        assert out.dtype == np.int64 and (out == 7).all()

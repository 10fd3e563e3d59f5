"""An in-memory array behind the same interface as :class:`~astrostatlearn.field.fitsio.ImageFile`,
so a :class:`~astrostatlearn.field.Field` can hold arrays a notebook already has (read in this
process only: worker processes reopen fields from their files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from astropy.io import fits

from astrostatlearn.field.fitsio import header_wcs
from astrostatlearn.field.windows import Window


class ArrayImage:
    """``data`` [y, x] with an optional ``header`` (its WCS is used); ``name`` labels errors."""

    compressed = False
    hdu_index = 0

    def __init__(self, data: np.ndarray, header: fits.Header | None = None, name: str = "array") -> None:
        self._data = data
        self.path = Path(name)
        self.header = header if header is not None else fits.Header()
        self.shape: tuple[int, int] = (int(data.shape[0]), int(data.shape[1]))
        self.dtype = np.dtype(data.dtype).newbyteorder("=")

    @property
    def is_integer(self) -> bool:
        return np.issubdtype(self.dtype, np.integer)

    def read(self, window: Window | None = None) -> np.ndarray:
        w = window or Window(0, self.shape[0], 0, self.shape[1])
        return np.array(self._data[w.slices], dtype=self.dtype)

    def read_windows(self, windows: Sequence[Window]) -> list[np.ndarray]:
        """Each of ``windows``, as :meth:`read` gives it (the file images' batched read)."""
        return [self.read(w) for w in windows]

    def wcs(self) -> Any:
        return header_wcs(self.header)

    def close(self) -> None:
        pass

    def __enter__(self) -> "ArrayImage":
        return self

    def __exit__(self, *_: Any) -> None:
        pass

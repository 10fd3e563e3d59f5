"""A layer's catalogue as JSON chunks keyed by object ID, which the viewer fetches on a click.

``<layer>/catalog/<id // CHUNK>.json`` holds ``{"columns": [...], "units": [...], "rows":
{"<id>": [value, ...]}}``; floats keep 7 significant digits. Only the chunk of the clicked ID is
fetched, so a 170k-object catalogue never loads whole in the browser.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from astrostatlearn.errors import InputError

CHUNK = 1024


def _column_values(col) -> list:
    data = np.asarray(col)
    if data.dtype.kind == "f":
        return [None if not math.isfinite(v) else float(f"{v:.7g}") for v in data.tolist()]
    if data.dtype.kind in "iub":
        return data.tolist()
    return [str(v) for v in data.tolist()]


def write_catalog_chunks(catalog: Path, root: Path) -> dict:
    """Write the chunks of ``catalog`` (an ECSV with an ``id`` column) under ``root``; return
    ``{"columns": [...], "chunk": CHUNK, "n_objects": n}`` for the site's configuration."""
    from astropy.table import Table

    try:
        table = Table.read(catalog, format="ascii.ecsv")
    except Exception as exc:
        raise InputError(f"unreadable ECSV catalogue ({str(exc).splitlines()[0]})", catalog) from None
    if "id" not in table.colnames:
        raise InputError("catalogue has no 'id' column to match the segmentation's IDs", catalog)
    columns = table.colnames
    units = [str(table[c].unit) if table[c].unit is not None else "" for c in columns]
    values = [_column_values(table[c]) for c in columns]
    ids = np.asarray(table["id"]).astype(np.int64)
    root.mkdir(parents=True, exist_ok=True)
    chunk_of = ids // CHUNK
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.flatnonzero(np.diff(chunk_of[order])) + 1
    for rows in np.split(order, bounds) if len(order) else []:
        payload = {"columns": columns, "units": units,
                   "rows": {str(int(ids[i])): [v[i] for v in values] for i in rows.tolist()}}
        (root / f"{int(chunk_of[rows[0]])}.json").write_text(json.dumps(payload, separators=(",", ":")))
    return {"columns": columns, "chunk": CHUNK, "n_objects": int(len(table))}

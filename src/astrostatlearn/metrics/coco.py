"""COCO AP/AR for instance maps with per-object scores, through faster-coco-eval.

Detections are ranked by the method's own per-object score where it gives one (the ``score``
column of the run's catalogue), else by the mean of its per-pixel score map over the object.

A field is cut into tiles (COCO "images", default 512^2); objects crossing a tile edge count as
their visible part in each tile, identically for truth and prediction. ``maxDets`` is raised to
at least the largest number of objects in any tile, so crowded tiles are never capped at 100.
"""

from __future__ import annotations

import contextlib
import io
from typing import Callable, Iterable

import numpy as np
from faster_coco_eval.core import mask as mask_utils  # pycocotools.mask.area fails past 255 RLEs with numpy 2
from scipy import ndimage

from astrostatlearn.field.windows import Window

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR_1", "AR_10", "AR_max",
              "AR_small", "AR_medium", "AR_large")
CATEGORIES = [{"id": 1, "name": "galaxy", "supercategory": "object"}]


def instances_to_rle(labels: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """(IDs, compressed COCO RLEs) of every object in ``labels``, one RLE per ID.

    The runs of every object are found in one pass over the map in column-major order (COCO's),
    and each object's run lengths are compressed by pycocotools' C code (``frPyObjects``): the same
    RLEs as ``mask.encode`` of one full-size binary mask per object (tested), without building them.
    """
    h, w = labels.shape
    flat = np.asarray(labels).T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flat.size]])
    vals = flat[starts]
    fg = vals > 0
    if not fg.any():
        return np.zeros(0, flat.dtype), []
    starts, ends, vals = starts[fg], ends[fg], vals[fg]
    order = np.argsort(vals, kind="stable")  # each object's runs, in position order
    starts, ends, vals = starts[order], ends[order], vals[order]
    ids, first = np.unique(vals, return_index=True)
    bounds = np.append(first, vals.size)
    uncompressed = []
    for k in range(ids.size):
        s, e = starts[bounds[k]:bounds[k + 1]], ends[bounds[k]:bounds[k + 1]]
        counts = np.empty(2 * s.size + 1, np.int64)
        counts[0:-1:2] = s - np.concatenate([[0], e[:-1]])  # zeros before each run
        counts[1::2] = e - s
        counts[-1] = flat.size - e[-1]  # trailing zeros, none when the object ends the map
        uncompressed.append({"counts": (counts if counts[-1] else counts[:-1]).tolist(), "size": [h, w]})
    rles = mask_utils.frPyObjects(uncompressed, h, w)
    for r in rles:
        if isinstance(r["counts"], bytes):
            r["counts"] = r["counts"].decode("ascii")
    return ids, rles


def tile_annotations(true: np.ndarray, pred: np.ndarray, image_id: int, pred_score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                     start_ann_id: int) -> tuple[list[dict], list[dict]]:
    """COCO ground-truth annotations and detections for one tile."""
    gts, dts = [], []
    tids, trles = instances_to_rle(true)
    areas = mask_utils.area(trles) if trles else []
    boxes = mask_utils.toBbox(trles) if trles else []
    for k, (rle, area, box) in enumerate(zip(trles, areas, boxes)):
        gts.append({"id": start_ann_id + k, "image_id": image_id, "category_id": 1, "segmentation": rle,
                    "area": float(area), "bbox": [float(v) for v in box], "iscrowd": 0})
    pids, prles = instances_to_rle(pred)
    if prles:
        scores = pred_score(pred, pids)
        for rle, box, s in zip(prles, mask_utils.toBbox(prles), scores):
            dts.append({"image_id": image_id, "category_id": 1, "segmentation": rle,
                        "bbox": [float(v) for v in box], "score": float(s)})
    return gts, dts


def score_from_map(score: np.ndarray | None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Per-object score = mean of a per-pixel score map over the segment (1.0 without a map)."""
    def f(pred: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if score is None:
            return np.ones(ids.size)
        return np.asarray(ndimage.mean(score, pred, ids), float)
    return f


def score_from_objects(ids: np.ndarray, scores: np.ndarray) -> Callable[[Callable[[np.ndarray, np.ndarray], np.ndarray]],
                                                                  Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Per-object scores looked up by prediction ID (the method's own score), as a function of the
    ``fallback`` (e.g. :func:`score_from_map`) that gives the score of IDs not in the table, or
    with a NaN score. The table is sorted once, for every tile."""
    order = np.argsort(ids)
    sid, ssc = np.asarray(ids, np.int64)[order], np.asarray(scores, float)[order]

    def with_fallback(fallback: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        def f(pred: np.ndarray, pids: np.ndarray) -> np.ndarray:
            pos = np.clip(np.searchsorted(sid, pids), 0, max(sid.size - 1, 0))
            out = np.full(pids.size, np.nan)
            if sid.size:
                hit = sid[pos] == pids
                out[hit] = ssc[pos[hit]]
            miss = ~np.isfinite(out)
            if miss.any():
                out[miss] = fallback(pred, pids)[miss]
            return out
        return f
    return with_fallback


def coco_evaluate(gts: list[dict], dts: list[dict], images: list[dict], max_dets: int,
                  backend: str = "faster") -> dict[str, dict[str, float]]:
    """AP/AR for ``segm`` and ``bbox``; ``backend`` "faster" (faster-coco-eval) or "pycocotools"."""
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster as Eval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    dets = max(int(max_dets), 100)
    out: dict[str, dict[str, float]] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": gts, "categories": CATEGORIES}
        gt.createIndex()
        for iou_type in ("segm", "bbox"):
            if not dts:
                out[iou_type] = {k: (0.0 if gts else float("nan")) for k in STAT_NAMES}
                continue
            dt = gt.loadRes([dict(d) for d in dts])
            ev = Eval(gt, dt, iouType=iou_type)
            ev.params.maxDets = [1, 10, dets]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats = [float(v) for v in ev.stats[: len(STAT_NAMES)]]
            out[iou_type] = {k: (float("nan") if v < 0 else v) for k, v in zip(STAT_NAMES, stats)}
    out["max_dets"] = {"value": float(dets)}  # type: ignore[assignment]
    return out


def _strips(tiles: Iterable[Window]) -> list[tuple[Window, list[tuple[int, Window]]]]:
    """Tiles grouped by their rows: (the strip window that covers them, [(tile index, tile)])."""
    groups: dict[tuple[int, int], list[tuple[int, Window]]] = {}
    for i, w in enumerate(tiles):
        groups.setdefault((w.y0, w.y1), []).append((i, w))
    return [(Window(y0, y1, min(w.x0 for _, w in g), max(w.x1 for _, w in g)), g)
            for (y0, y1), g in groups.items()]


def coco_metrics(read_true: Callable[[Window], np.ndarray], read_pred: Callable[[Window], np.ndarray],
                 tiles: Iterable[Window], read_score: Callable[[Window], np.ndarray | None] | None = None,
                 backend: str = "faster",
                 object_scores: tuple[np.ndarray, np.ndarray] | None = None,
                 workers: int = 2) -> dict[str, dict[str, float]]:
    """COCO metrics over ``tiles`` read lazily from the truth and prediction maps.

    Detections are ranked by ``object_scores`` = (prediction IDs, scores) where given (a method's
    own per-object scores), else by the mean of the score map over each object. The maps are read
    one strip of tiles at a time (contiguous rows, not one window per tile), and ``workers``
    threads build the strips' annotations; IDs follow the tiles' order whatever the threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    own_scores = None if object_scores is None else score_from_objects(*object_scores)

    def strip_annotations(strip: tuple[Window, list[tuple[int, Window]]]) -> list[tuple[int, Window, list, list]]:
        sw, members = strip
        t, p = read_true(sw), read_pred(sw)
        s = read_score(sw) if read_score else None
        out = []
        for i, w in members:
            cut = w.relative_to(sw)
            scorer = score_from_map(None if s is None else s[cut])
            if own_scores is not None:
                scorer = own_scores(scorer)
            g, d = tile_annotations(t[cut], p[cut], i + 1, scorer, 0)
            out.append((i, w, g, d))
        return out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        per_tile = sorted((r for rs in pool.map(strip_annotations, _strips(tiles)) for r in rs), key=lambda r: r[0])
    gts: list[dict] = []
    dts: list[dict] = []
    images = []
    max_objects = 0
    for i, w, g, d in per_tile:
        images.append({"id": i + 1, "height": w.shape[0], "width": w.shape[1], "file_name": f"y{w.y0}_x{w.x0}"})
        for k, ann in enumerate(g):
            ann["id"] = len(gts) + k + 1
        gts += g
        dts += d
        max_objects = max(max_objects, len(g), len(d))
    return coco_evaluate(gts, dts, images, max_objects, backend)


def object_scores_from_catalog(path) -> tuple[np.ndarray, np.ndarray] | None:
    """(IDs, scores) from a run catalogue's ``id`` and ``score`` columns (None without a score column)."""
    from astropy.table import Table

    try:
        t = Table.read(path, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many types for malformed files
        from astrostatlearn.errors import InputError

        raise InputError(f"unreadable ECSV catalogue ({type(exc).__name__})", path) from None
    if "score" not in t.colnames or "id" not in t.colnames:
        return None
    return np.asarray(t["id"], np.int64), np.asarray(t["score"], float)

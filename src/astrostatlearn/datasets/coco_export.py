"""Export a patch dataset's splits as COCO instances JSON and COCO panoptic (PNG + JSON).

Instances: one image per patch, RLE masks (pycocotools format), bbox [x, y, w, h], area,
``iscrowd`` 0, category ``galaxy`` (1) or ``star`` (2, where the truth catalogue flags a star).
Each annotation carries ``object_id`` (the truth ID) and ``cut`` (True when the object continues
beyond the patch edge: only its visible part is annotated).

Panoptic: the seed's two classes, ``galaxy`` (thing, id 1) and ``void`` (stuff, id 0 in its
table, written as category 3 here because COCO panoptic reserves segment id 0 for unlabelled
pixels). Per patch, a PNG holds segment ids as R + 256 G + 256^2 B: the void segment is id 1 and
objects are 2, 3, ...; ``segments_info`` maps each id back to its truth ``object_id``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from astrostatlearn.datasets.build import iter_shards, load_manifest
from astrostatlearn.field import atomic_write_bytes
from astrostatlearn.metrics.coco import instances_to_rle

GALAXY, STAR, VOID = 1, 2, 3
INSTANCE_CATEGORIES = [{"id": GALAXY, "name": "galaxy", "supercategory": "object"},
                       {"id": STAR, "name": "star", "supercategory": "object"}]
PANOPTIC_CATEGORIES = [{"id": GALAXY, "name": "galaxy", "supercategory": "object", "isthing": 1, "color": [255, 200, 0]},
                       {"id": VOID, "name": "void", "supercategory": "background", "isthing": 0, "color": [0, 0, 0]}]


def _image_entry(image_id: int, split: str, origin: np.ndarray, patch: int) -> dict:
    y0, x0 = (int(v) for v in origin)
    return {"id": image_id, "file_name": f"{split}/{image_id:07d}.png", "height": patch, "width": patch,
            "origin_y": y0, "origin_x": x0}


def export_instances(root: str | Path, split: str, out: str | Path, overwrite: bool = False) -> dict:
    """Write the COCO instances JSON of ``split``; returns the dataset dict."""
    from faster_coco_eval.core import mask as mask_utils

    man = load_manifest(root)
    stars = set(man.get("star_ids", []))
    images, anns = [], []
    image_id = 0
    for shard in iter_shards(root, split):
        for k in range(shard["instances"].shape[0]):
            image_id += 1
            lab = shard["instances"][k]
            cut = set(int(c) for c in shard["cut_ids"][k] if c > 0)
            images.append(_image_entry(image_id, split, shard["origin"][k], man["patch"]))
            ids, rles = instances_to_rle(lab)
            if not rles:
                continue
            areas = mask_utils.area([dict(r, counts=r["counts"].encode()) for r in rles])
            boxes = mask_utils.toBbox([dict(r, counts=r["counts"].encode()) for r in rles])
            for oid, rle, area, box in zip(ids, rles, areas, boxes):
                anns.append({"id": len(anns) + 1, "image_id": image_id,
                             "category_id": STAR if int(oid) in stars else GALAXY,
                             "segmentation": rle, "area": int(area), "bbox": [float(v) for v in box],
                             "iscrowd": 0, "object_id": int(oid), "cut": int(oid) in cut})
    data = {"info": {"description": f"astrostatlearn {split} split, variant {man['variant']}"},
            "images": images, "annotations": anns, "categories": INSTANCE_CATEGORIES}
    atomic_write_bytes(out, json.dumps(data).encode(), overwrite=overwrite)
    return data


def encode_panoptic(lab: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """(RGB uint8 PNG array, segments_info) for one instance map."""
    ids = np.unique(lab[lab > 0])
    seg = np.zeros(lab.shape, np.int64)
    seg[lab == 0] = 1
    lut_ids = np.searchsorted(ids, lab[lab > 0])
    seg[lab > 0] = lut_ids + 2
    rgb = np.stack([seg % 256, (seg // 256) % 256, seg // 65536], axis=-1).astype(np.uint8)
    info = []
    if (lab == 0).any():
        ys, xs = np.nonzero(lab == 0)
        info.append({"id": 1, "category_id": VOID, "area": int(ys.size), "iscrowd": 0, "object_id": 0,
                     "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]})
    for k, oid in enumerate(ids):
        ys, xs = np.nonzero(lab == oid)
        info.append({"id": k + 2, "category_id": GALAXY, "area": int(ys.size), "iscrowd": 0, "object_id": int(oid),
                     "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]})
    return rgb, info


def decode_panoptic(rgb: np.ndarray, segments_info: list[dict]) -> np.ndarray:
    """Instance map (truth IDs, 0 = background) from a panoptic PNG array and its segments_info."""
    rgb = rgb.astype(np.int64)
    seg = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    lut = {s["id"]: s["object_id"] for s in segments_info}
    out = np.zeros(seg.shape, np.int64)
    for sid, oid in lut.items():
        out[seg == sid] = oid
    return out


def export_panoptic(root: str | Path, split: str, out_dir: str | Path, overwrite: bool = False) -> dict:
    """Write ``out_dir/panoptic_{split}.json`` and ``out_dir/panoptic_{split}/NNNNNNN.png``."""
    man = load_manifest(root)
    out_dir = Path(out_dir)
    png_dir = out_dir / f"panoptic_{split}"
    png_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    image_id = 0
    for shard in iter_shards(root, split):
        for k in range(shard["instances"].shape[0]):
            image_id += 1
            images.append(_image_entry(image_id, split, shard["origin"][k], man["patch"]))
            rgb, info = encode_panoptic(shard["instances"][k])
            name = f"{image_id:07d}.png"
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG")
            atomic_write_bytes(png_dir / name, buf.getvalue(), overwrite=overwrite)
            anns.append({"image_id": image_id, "file_name": name, "segments_info": info})
    data = {"info": {"description": f"astrostatlearn {split} split panoptic"}, "images": images,
            "annotations": anns, "categories": PANOPTIC_CATEGORIES}
    atomic_write_bytes(out_dir / f"panoptic_{split}.json", json.dumps(data).encode(), overwrite=overwrite)
    return data

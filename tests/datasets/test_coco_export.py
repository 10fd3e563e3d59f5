import json
from pathlib import Path

import numpy as np
from astropy.table import Table
from PIL import Image
from pycocotools.coco import COCO

from astrostatlearn.datasets import SPLITS, decode_panoptic, export_instances, export_panoptic, iter_shards


def test_instances_match_the_instance_maps_pixel_for_pixel(small_dataset: Path, sim_field: Path, tmp_path: Path) -> None:
    cat = Table.read(sim_field / "truth.ecsv")
    star_ids = set(int(i) for i in cat["id"][cat["is_star"]])
    for split in SPLITS:
        path = tmp_path / f"instances_{split}.json"
        export_instances(small_dataset, split, path)
        coco = COCO(str(path))
        maps = [inst for shard in iter_shards(small_dataset, split) for inst in shard["instances"]]
        assert len(coco.getImgIds()) == len(maps)
        for img_id, inst in zip(sorted(coco.getImgIds()), maps):
            rebuilt = np.zeros_like(inst)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
                m = coco.annToMask(ann).astype(bool)
                assert not rebuilt[m].any()  # segments are disjoint
                rebuilt[m] = ann["object_id"]
                assert ann["area"] == m.sum() and ann["iscrowd"] == 0
                assert ann["category_id"] == (2 if ann["object_id"] in star_ids else 1)
                x, y, w, h = ann["bbox"]
                ys, xs = np.nonzero(m)
                assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            np.testing.assert_array_equal(rebuilt, inst)


def test_panoptic_pngs_decode_to_the_instance_maps(small_dataset: Path, tmp_path: Path) -> None:
    data = export_panoptic(small_dataset, "test", tmp_path)
    js = json.loads((tmp_path / "panoptic_test.json").read_text())
    assert {c["name"] for c in js["categories"]} == {"galaxy", "void"}
    maps = [inst for shard in iter_shards(small_dataset, "test") for inst in shard["instances"]]
    assert len(maps) > 0 and len(data["annotations"]) == len(maps) == len(js["images"])
    for ann, inst in zip(data["annotations"], maps):
        rgb = np.asarray(Image.open(tmp_path / "panoptic_test" / ann["file_name"]))
        np.testing.assert_array_equal(decode_panoptic(rgb, ann["segments_info"]), inst)
        areas = {s["object_id"]: s["area"] for s in ann["segments_info"]}
        assert areas.get(0, 0) == (inst == 0).sum()

"""Mask R-CNN's inference settings that change its speed: time, PQ and mask AP on the two
validation fields of ``tune_maskrcnn_postprocess.py`` (seeds 3000 and 3001, neither a training nor
a test seed), for each setting, in one run.

A setting is ``KEY=VALUE[:KEY=VALUE...]``: ``rpn=BEFORE/AFTER``, the RPN boxes kept per level
before NMS and after it (the shipped network keeps 1000/500, as in training), or any segmenter
option (``engine=torch``, ``engine=openvino``, ``precision=f32``, ...). Settings apply to the
loaded model only; nothing is written. An OpenVINO setting's first field includes its one
compilation (about 8 s).

Usage: python benchmarks/tune_maskrcnn_inference.py [--model PATH] [--size 2048] [--settings S1,S2,...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tune_maskrcnn_postprocess import VALIDATION

from _measure import scratch_dir

DEFAULT_SETTINGS = ("rpn=3000/1500:engine=torch,rpn=1000/500:engine=torch,rpn=500/300:engine=torch,"
                    "rpn=1000/500:engine=openvino:precision=f32,rpn=1000/500:engine=auto")


def validation_tiles(seg, size: int, root: Path) -> list:
    """(tile, truth) of each fresh validation field, as the segmenter reads it."""
    from astrostatlearn.field import Field
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, make_tile
    from astrostatlearn.simulate import simulate_field

    out = []
    for seed, preset in VALIDATION:
        d = root / f"field-{seed}"
        simulate_field(d, size, seed=seed, preset=preset, progress=False)
        with Field.open(d) as f:
            pre = fit_variant(f, seg.trained_variant)
            out.append((make_tile(f, pre, BackgroundMesh.from_field(f, pre), f.full), f.read_true()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help="comma-separated; default: %(default)s")
    args = ap.parse_args()
    from astrostatlearn.methods import default_segmenter, load_segmenter
    from astrostatlearn.metrics import evaluate

    seg = load_segmenter(args.model) if args.model else default_segmenter("maskrcnn")
    fields = validation_tiles(seg, args.size, scratch_dir("tune-maskrcnn-inference-"))
    rpn, shipped = seg.net_.rpn, seg.get_params()
    print(f"{'setting':>44} {'s per field':>11} {'mean PQ':>8} {'mean AP':>8} {'mean AP50':>9}")
    for setting in args.settings.split(","):
        params = dict(kv.split("=", 1) for kv in setting.split(":"))
        before, after = (int(v) for v in params.pop("rpn", "1000/500").split("/"))
        rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"] = before, after
        seg.set_params(**{**shipped, **params})
        secs, pq, ap_, ap50 = [], [], [], []
        for tile, truth in fields:
            t0 = time.perf_counter()
            p = seg.predict(tile)
            secs.append(time.perf_counter() - t0)
            ev = evaluate(truth, p.labels, object_scores=(p.instances.ids, p.instances.scores))
            pq.append(ev.panoptic["galaxy"]["pq"])
            ap_.append(ev.coco["segm"]["AP"])
            ap50.append(ev.coco["segm"]["AP50"])
        print(f"{setting:>44} {np.mean(secs):>11.1f} {np.mean(pq):>8.4f} {np.mean(ap_):>8.4f} {np.mean(ap50):>9.4f}",
              flush=True)


if __name__ == "__main__":
    main()

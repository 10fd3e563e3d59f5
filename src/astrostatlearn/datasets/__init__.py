"""Leak-free patch datasets: spatial splits, npz shards, COCO/panoptic export, a PyTorch Dataset.

``torch`` is imported only by :mod:`astrostatlearn.datasets.torch_dataset`.
"""

from astrostatlearn.datasets.build import build_dataset, iter_patches, iter_shards, load_manifest
from astrostatlearn.datasets.coco_export import decode_panoptic, encode_panoptic, export_instances, export_panoptic
from astrostatlearn.datasets.splits import SPLITS, SplitPlan, leak_free_splits, plan_splits

__all__ = ["SPLITS", "SplitPlan", "build_dataset", "decode_panoptic", "encode_panoptic", "export_instances",
           "export_panoptic", "iter_patches", "iter_shards", "leak_free_splits", "load_manifest", "plan_splits"]

"""Evaluation: pixel, instance (completeness/purity), panoptic (PQ/SQ/RQ) and COCO metrics.

All instance figures derive from a sparse table of (true ID, predicted ID) pixel counts
accumulated tile by tile, so whole 25k^2 fields are scored in bounded memory.
"""

from astrostatlearn.metrics.binned import MAG_BINS, SNR_BINS, binned_detection
from astrostatlearn.metrics.bootstrap import block_pq_terms, bootstrap_pq
from astrostatlearn.metrics.coco import coco_evaluate, coco_metrics, instances_to_rle, object_scores_from_catalog
from astrostatlearn.metrics.diagnosis import pq_loss_breakdown
from astrostatlearn.metrics.evaluate import ArraySource, Evaluation, evaluate
from astrostatlearn.metrics.instance import (
    Matching,
    detection_metrics,
    match_instances,
    panoptic_quality,
    pq_terms,
)
from astrostatlearn.metrics.pairs import LabelPairs, count_pairs
from astrostatlearn.metrics.pixel import Confusion, patch_mean, pixel_metrics_from_counts
from astrostatlearn.metrics.snr import footprint_snr

__all__ = [
    "ArraySource", "Confusion", "Evaluation", "LabelPairs", "MAG_BINS", "Matching", "SNR_BINS",
    "binned_detection", "block_pq_terms", "bootstrap_pq", "coco_evaluate", "coco_metrics", "count_pairs", "detection_metrics", "evaluate", "footprint_snr",
    "instances_to_rle", "match_instances", "object_scores_from_catalog", "panoptic_quality", "patch_mean", "pixel_metrics_from_counts",
    "pq_loss_breakdown", "pq_terms",
]

"""Benchmark matrix (every method x variant on one held-out test region), peers, figures, report."""

from astrostatlearn.benchmark.matrix import DEFAULT_METHODS, DEFAULT_VARIANTS, Row, run_matrix, write_results
from astrostatlearn.benchmark.run import run_benchmark

__all__ = ["DEFAULT_METHODS", "DEFAULT_VARIANTS", "Row", "run_benchmark", "run_matrix", "write_results"]

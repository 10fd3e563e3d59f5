"""The allocator setting: freed tile-sized arrays are reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

FAULTS = """
import resource, sys
import numpy as np
from astrostatlearn.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
np.ones((2304, 2304))  # one tile-sized float64 temporary (42 MB) first
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    np.ones((2304, 2304)).sum()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_temporary(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied, float(faults)


def test_a_freed_tile_array_is_reused_without_page_faults() -> None:
    applied, kept = _faults_per_temporary("keep")
    _, default = _faults_per_temporary("default")
    assert applied == "True"
    # glibc's default maps each 42 MB temporary afresh: at least one fault per 2 MB (with huge pages;
    # 660 where the kernel faults 16 small pages at a time); kept, a fraction of one
    assert default >= 20, "glibc's default should fault every fresh 42 MB temporary in again"
    assert kept <= 0.1 * default

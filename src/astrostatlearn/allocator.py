"""Keep freed tile-sized arrays in the process instead of handing them back to the kernel.

A tile's work arrays are tens of MB each (a 2304² float64 image is 42 MB). glibc's ``malloc``
serves blocks above its mmap threshold (at most 32 MB by default) with a fresh ``mmap`` and
returns them at ``free``, and trims the heap's free top above 2x that threshold: every
temporary then costs page faults and the kernel's zeroing of its pages again, a quarter of the
classical methods' time per tile (0.46 s -> 0.35 s per 2048² tile of ``sep`` with its score map,
system time 0.17 s -> 0.02 s; ``benchmarks/bench_tile_overhead.py``). :func:`keep_freed_memory` raises
both limits, so the allocator reuses the memory it already has. The cost is memory a process
holds after a peak: at most the trim threshold (512 MB) above what it uses.

Applied by the command line (``astrostatlearn ...``) and by the local worker processes; a
library caller who wants it calls it once. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD = 256 << 20  # bytes: blocks below this come from the heap, and are reused
TRIM_THRESHOLD = 512 << 20  # bytes: free memory at the heap's top kept for reuse
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module); True when both were applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)

"""The built-in methods by name: what can be known of each before its module is imported.

Nothing here imports a method (or numpy, or astropy), so the command line can list the methods in
its help and start a run's worker processes first thing, while it imports the rest. A new method
is one module plus its line in :data:`BUILTIN_METHODS` (and in :data:`THREADED_METHODS` when its
class's ``default_scheduler`` is ``"threads"``; a test keeps the two equal).
"""

from __future__ import annotations

# name -> module, imported on first use (so the classical methods never import torch)
BUILTIN_METHODS: dict[str, str] = {
    "sep": "astrostatlearn.methods.sep_method",
    "photutils": "astrostatlearn.methods.photutils_method",
    "kmeans": "astrostatlearn.methods.kmeans",
    "forest": "astrostatlearn.methods.forest",
    "unet": "astrostatlearn.methods.unet",
    "maskrcnn": "astrostatlearn.methods.maskrcnn",
    "detr": "astrostatlearn.methods.detr",
    "mask2former": "astrostatlearn.methods.mask2former",
}

# Built-in methods whose tiles run in threads by default (torch parallelises inside each tile);
# the others' run in local worker processes.
THREADED_METHODS: frozenset[str] = frozenset({"unet", "maskrcnn", "detr", "mask2former"})


# Built-in methods with no shipped model that learn only through ``astrostatlearn train`` (not from a
# field's tiles): ``benchmark`` and the demo leave them out unless given a model file (for them
# :func:`~astrostatlearn.methods.benchmarkable` is False; a test keeps the two equal). None today:
# every built-in detector ships a model (DETR since 2026-12-06).
NEEDS_MODEL_FILE: frozenset[str] = frozenset()


def default_benchmark_methods() -> tuple[str, ...]:
    """The built-in methods ``benchmark`` and the demo run by default: all but :data:`NEEDS_MODEL_FILE`."""
    return tuple(m for m in BUILTIN_METHODS if m not in NEEDS_MODEL_FILE)


def builtin_scheduler(name: str) -> str | None:
    """The default scheduler of built-in method ``name`` (``"processes"`` or ``"threads"``), without
    importing it; None for a name that is not built in."""
    if name not in BUILTIN_METHODS:
        return None
    return "threads" if name in THREADED_METHODS else "processes"

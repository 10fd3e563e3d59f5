"""The registry's derived lists."""

from __future__ import annotations


def test_ready_methods_are_those_that_run_without_training() -> None:
    from astrostatlearn.methods import default_segmenter, ready_methods

    ready = ready_methods()
    assert "forest" not in ready  # supervised, no shipped model: needs `train`
    assert {"sep", "photutils", "kmeans", "unet"} <= set(ready)
    for name in ready:
        seg = default_segmenter(name)
        assert seg.is_fitted or not seg.needs_fit or not seg.supervised


def test_the_correlated_noise_unet_ships_and_loads() -> None:
    from importlib import resources

    from astrostatlearn.methods import load_segmenter

    path = resources.files("astrostatlearn") / "data" / "unet-correlated.pt"
    seg = load_segmenter(str(path))
    assert seg.name == "unet" and seg.trained_variant == "snr" and seg.is_fitted
    assert path.stat().st_size < 30e6


def test_the_light_registry_knows_each_builtin_scheduler_without_importing_it() -> None:
    """The command line starts a run's workers from the light registry's word alone: it must be
    the scheduler each method's class declares."""
    from astrostatlearn.methods import BUILTIN_METHODS, method_class
    from astrostatlearn.methods.registry import builtin_scheduler

    for name in BUILTIN_METHODS:
        assert builtin_scheduler(name) == method_class(name).default_scheduler, name
    assert builtin_scheduler("not-a-method") is None


def test_the_command_line_and_the_registry_import_neither_numpy_nor_astropy() -> None:
    """What lets ``segment`` start its worker processes before its own heavy imports."""
    import subprocess
    import sys

    code = ("import sys, astrostatlearn.cli, astrostatlearn.methods.registry; "
            "print(sorted(m for m in ('numpy', 'astropy', 'scipy', 'torch') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"

"""The registry's derived lists."""

from __future__ import annotations

import pytest


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


def test_the_methods_that_need_a_model_file_are_those_benchmark_cannot_run_alone(sim_field, tmp_path,
                                                                                  monkeypatch) -> None:
    """The light registry's NEEDS_MODEL_FILE is what ``benchmarkable`` says (no shipped model, no fit on
    the field's tiles: none since DETR ships one); the defaults of ``benchmark`` and the demo leave
    them out, and a benchmark asked for such a method without its model is refused before anything
    is written (checked on DETR with its shipped model taken away)."""
    from astrostatlearn.benchmark import run_matrix
    from astrostatlearn.demo import DEMO_METHODS
    from astrostatlearn.errors import InputError
    from astrostatlearn.methods import BUILTIN_METHODS, benchmarkable, method_class
    from astrostatlearn.methods.registry import NEEDS_MODEL_FILE, default_benchmark_methods

    assert {m for m in BUILTIN_METHODS if not benchmarkable(m)} == NEEDS_MODEL_FILE == set()
    assert benchmarkable("forest") and benchmarkable("kmeans") and benchmarkable("maskrcnn") and benchmarkable("detr")
    assert set(default_benchmark_methods()) == set(BUILTIN_METHODS) - NEEDS_MODEL_FILE == set(DEMO_METHODS)
    monkeypatch.setattr(method_class("detr"), "shipped_model", None)
    assert not benchmarkable("detr")
    with pytest.raises(InputError, match="has no shipped model.*--model detr=MODEL"):
        run_matrix(sim_field, tmp_path / "bench", methods=("sep", "detr"), variants=("raw",))
    assert not (tmp_path / "bench").exists()


def test_a_method_and_its_options_are_read_from_one_string() -> None:
    from astrostatlearn.errors import InputError
    from astrostatlearn.methods import parse_method_spec

    assert parse_method_spec("sep") == ("sep", {})
    assert parse_method_spec("unet:min_snr=7:tta=4") == ("unet", {"min_snr": "7", "tta": "4"})
    assert parse_method_spec(" sep : nsigma = 3 ") == ("sep", {"nsigma": "3"})
    for bad, says in (("magic", "unknown method"), ("sep:tta=2", "no option"), ("unet:min_snr", "OPTION=VALUE"),
                      ("unet:min_snr=", "OPTION=VALUE"), ("unet:tta=3", "1, 2, 4 or 8"), ("sep:nsigma=x", "float")):
        with pytest.raises(InputError, match=says):
            parse_method_spec(bad)

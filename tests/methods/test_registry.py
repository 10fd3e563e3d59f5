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

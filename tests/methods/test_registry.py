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

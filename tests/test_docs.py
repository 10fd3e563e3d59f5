"""The documentation site builds offline with warnings as errors, its tutorial runs, and every
notebook function's docstring has the numpydoc sections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("sphinx_gallery", reason="docs dependencies not installed (pip install -e .[dev])")
    out = tmp_path / "html"
    p = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(REPO / "docs"),
                        str(out)], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    tutorial = (out / "tutorials" / "plot_quickstart.html").read_text()
    assert "sphx_glr_plot_quickstart_001.png" in tutorial and (out / "_images" / "sphx_glr_plot_quickstart_001.png").exists()
    assert "SegmentationResult(method=" in tutorial  # its output was computed at build time
    api = (out / "generated" / "astrostatlearn.api.segment.html").read_text()
    for section in ("Parameters", "Returns", "Raises", "Examples"):
        assert section in api, section
    for page in ("quickstart", "conventions", "methods", "wholefield", "evaluation", "injection", "viewer", "training"):
        assert (out / "guide" / f"{page}.html").exists(), page


def test_notebook_functions_have_numpydoc_sections() -> None:
    from numpydoc.docscrape import FunctionDoc

    import astrostatlearn.api as api

    for fn in (api.segment, api.simulate, api.evaluate, api.inject):
        doc = FunctionDoc(fn)
        assert doc["Parameters"] and doc["Returns"], fn.__name__
        documented = {p.name for p in doc["Parameters"]}
        names = set(fn.__code__.co_varnames[:fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount])
        undocumented = {n for n in names if not any(n in d.replace(" ", "").split(",") for d in documented)}
        assert not undocumented, (fn.__name__, undocumented)

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
    for page in ("quickstart", "conventions", "simulation", "datasets", "methods", "wholefield", "evaluation", "injection",
                 "viewer", "training", "reliability"):
        assert (out / "guide" / f"{page}.html").exists(), page


def _documented_names(doc) -> set[str]:
    return {n.strip() for p in doc["Parameters"] for n in p.name.replace("*", "").split(",")}


def reference_functions() -> list:
    """Every function listed in the API reference (docs/api.rst)."""
    import importlib
    import inspect
    import re

    names = re.findall(r"^   (astrostatlearn\.\S+)$", (REPO / "docs" / "api.rst").read_text(), re.M)
    objs = [getattr(importlib.import_module(n.rsplit(".", 1)[0]), n.rsplit(".", 1)[1]) for n in names]
    return [o for o in objs if inspect.isfunction(o)]


def test_every_reference_function_has_numpydoc_sections_and_a_tested_example() -> None:
    import inspect

    from numpydoc.docscrape import FunctionDoc

    functions = reference_functions()
    assert len(functions) >= 15
    for fn in functions:
        doc = FunctionDoc(fn)
        sig = inspect.signature(fn)
        params = set(sig.parameters)
        assert params <= _documented_names(doc), (fn.__qualname__, params - _documented_names(doc))
        if sig.return_annotation not in (None, "None"):
            assert doc["Returns"], fn.__qualname__
        if params:  # anything that takes input says what it refuses
            assert doc["Raises"], fn.__qualname__
        assert any(">>>" in line for line in doc["Examples"]), fn.__qualname__


def test_every_module_with_a_reference_example_is_collected_as_a_doctest() -> None:
    """An Examples section is only a test if pytest collects its module (pyproject testpaths)."""
    import inspect
    import tomllib

    paths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    collected = [(REPO / p).resolve() for p in paths]
    for fn in reference_functions():
        src = Path(inspect.getsourcefile(fn)).resolve()
        assert any(src == c or c in src.parents for c in collected), (fn.__qualname__, src)

"""Sphinx configuration: offline build (no intersphinx, built-in theme), numpydoc docstrings, the
user guide in MyST Markdown, and a sphinx-gallery tutorial executed at build time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("ASTROSTATLEARN_DOCS", "1")

import astrostatlearn  # noqa: E402

project = "astrostatlearn"
author = "the astrostatlearn developers"
release = version = astrostatlearn.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc", "sphinx_gallery.gen_gallery", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "images/*.md", "architecture.md"]
html_theme = "alabaster"
html_static_path: list[str] = []
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
suppress_warnings = ["toc.not_included"]
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
}

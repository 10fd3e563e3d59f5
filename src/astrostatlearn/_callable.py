"""Packages that are also functions: ``astrostatlearn.segment(data)`` calls
:func:`astrostatlearn.api.segment` while ``astrostatlearn.segment.segment_field`` stays the
whole-field driver (likewise ``simulate`` and ``inject``), so the layout keeps the data flow's
stage names and the notebook API its verbs."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(module_name: str, function: str) -> None:
    """Make the module ``module_name`` call ``astrostatlearn.api.<function>`` when called."""
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module("astrostatlearn.api.functions"), function)(*args, **kwargs)

    module.__class__ = CallableModule

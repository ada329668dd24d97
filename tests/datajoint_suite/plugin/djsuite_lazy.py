"""Lazy imports for the suite's conftest.py (rewritten so by tests/datajoint_suite/run.py).

DataJoint's conftest.py imports every schema module, and some names of ``datajoint.errors``, at its top: under a
library that lacks one feature used by one schema module, no test at all would run. Rewritten to call ``bind``,
a schema module is imported when a fixture first uses it, and a name that does not import is left unbound (a
NameError where it is used): each test then fails only for what it uses itself. Under DataJoint nothing changes.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """A module imported at its first attribute access; an import error then reaches that test alone."""

    def __init__(self, name: str, package: str):
        self._name, self._package = name, package

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name, self._package), attr)


def bind(scope: dict, module: str, names: dict[str, str]) -> None:
    """``from module import name as alias`` for each alias; lazily for ``from . import submodule``."""
    for alias, name in names.items():
        if module == ".":
            scope[alias] = LazyModule(f".{name}", scope["__package__"])
            continue
        try:
            scope[alias] = getattr(importlib.import_module(module, scope["__package__"]), name)
        except (ImportError, AttributeError):
            pass

"""The name shim: ``import datajoint`` gives djhpc, for running DataJoint's own test suite against djhpc.

It maps names only. ``datajoint`` is the ``djhpc`` package itself (not a copy), and ``datajoint.X`` is djhpc's
module of the same name, else the one in ``RENAMED``; a DataJoint module that djhpc lacks does not import
(ModuleNotFoundError), so the tests that need it fail and are counted. Nothing here implements a feature.
Only tests/datajoint_suite/run.py puts this folder on PYTHONPATH, for the run against djhpc.
"""

import importlib
import importlib.abc
import importlib.util
import sys

import djhpc

# DataJoint's module name -> djhpc's, where djhpc names the same thing differently
RENAMED = {
    "connection": "db.connection",
    "table": "tables",
    "user_tables": "tables",
    "expression": "query",
    "condition": "query",
}


def _target(fullname: str) -> str | None:
    """The djhpc module that stands for DataJoint's ``fullname``, or None when djhpc has none."""
    rest = fullname.partition(".")[2]
    for candidate in (rest, RENAMED.get(rest)):
        if candidate and importlib.util.find_spec(f"djhpc.{candidate}") is not None:
            return f"djhpc.{candidate}"
    return None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``datajoint.X`` as djhpc's module object itself, so that there is one module, not two copies."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("datajoint."):
            return None
        name = _target(fullname)
        if name is None:
            raise ModuleNotFoundError(f"djhpc has no module for {fullname}", name=fullname)
        return importlib.util.spec_from_loader(fullname, self, origin=name)

    def create_module(self, spec):
        module = importlib.import_module(spec.origin)
        spec.loader_state = module.__spec__  # the import system sets __spec__ to this alias's; exec puts it back
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


sys.meta_path.insert(0, _Alias())
sys.modules[__name__] = djhpc

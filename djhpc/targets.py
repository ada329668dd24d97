"""Name a table as ``module:Class`` or ``path/to/pipeline.py:Class`` and load it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from .errors import DjhpcError, UnreachableError, UsageError


def load_target(target: str, *, base: Path | None = None):
    """The table class named by ``target``; it must be a declared Computed or Imported table."""
    from .autopopulate import AutoPopulate
    from .djtarget import datajoint_version, is_datajoint_class

    if not isinstance(target, str) or ":" not in target:
        raise UsageError(f"target {target!r} must look like module:Class or path/to/pipeline.py:Class")
    module_name, _, class_path = target.rpartition(":")
    if not module_name or not class_path:
        raise UsageError(f"target {target!r} must look like module:Class or path/to/pipeline.py:Class")
    module = _import(module_name, base or Path.cwd())
    obj = module
    for part in class_path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"target {target!r}: {module_name} has no {class_path}: check the class name")
    if is_datajoint_class(obj):
        datajoint_version()  # an unsupported DataJoint is a usage error here, before anything is reserved
        from datajoint.autopopulate import AutoPopulate as DataJointAutoPopulate

        if not issubclass(obj, DataJointAutoPopulate):
            raise UsageError(f"target {target!r} is a DataJoint table without make() (Manual or Lookup): "
                             "name a dj.Computed or dj.Imported table")
        return obj
    if not (isinstance(obj, type) and issubclass(obj, AutoPopulate)):
        raise UsageError(f"target {target!r} is not a Computed or Imported table: name one that has make()")
    return obj


def _import(name: str, base: Path):
    try:
        if name.endswith(".py") or "/" in name:
            path = (base / name).resolve()
            if not path.is_file():
                raise UsageError(f"target file {name} does not exist: give a path relative to {base}")
            module_name = "djhpc_target_" + path.stem
            if module_name in sys.modules:
                return sys.modules[module_name]
            sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)  # a failed import is not kept: importing again runs it again
                raise
            return module
        if str(base) not in sys.path:
            sys.path.insert(0, str(base))
        return importlib.import_module(name)
    except DjhpcError:
        raise
    except ImportError as e:
        raise UsageError(f"target module {name} does not import ({e}): check the name and PYTHONPATH") from e
    except SyntaxError as e:
        raise UsageError(f"target module {name} has a syntax error at line {e.lineno}: fix it") from e
    except Exception as e:
        hint = ""
        if type(e).__module__.split(".")[0] == "pymysql":  # a DataJoint pipeline connects as it is imported
            if e.args and e.args[0] in UNREACHABLE_CODES:
                raise UnreachableError(f"target module {name} could not reach its database ({e.args[0]}): check "
                                       "DJ_HOST and that the server runs") from e
            hint = ": it could not reach its database; check DataJoint's settings (DJ_HOST, DJ_USER, DJ_PASS or " \
                   "the pipeline's dj_local_conf.json / datajoint.json)"
        raise UsageError(f"target module {name} failed while importing: {type(e).__name__}: {e}{hint}") from e


# PyMySQL's numbers for a server that does not answer: can't connect, unknown host, gone away, lost
UNREACHABLE_CODES = (2003, 2005, 2006, 2013)


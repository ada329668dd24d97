"""Name a table as ``module:Class`` or ``path/to/pipeline.py:Class`` and load it; a name that is not there gets
the nearest that is (a module file, a class, or a class named by its table: ``__analysis`` -> ``Analysis``)."""

from __future__ import annotations

import difflib
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
    module = import_module(module_name, base or Path.cwd())
    obj = module
    for part in class_path.split("."):
        found = getattr(obj, part, None)
        if found is None:
            near = _nearest(part, _table_classes(obj))
            hint = f": did you mean {module_name}:{class_path.replace(part, near)}?" if near else \
                   _listing(obj, ": check the class name")
            raise UsageError(f"target {target!r}: {module_name} has no {class_path}{hint}")
        obj = found
    if is_datajoint_class(obj):
        datajoint_version()  # an unsupported DataJoint is a usage error here, before anything is reserved
        from datajoint.autopopulate import AutoPopulate as DataJointAutoPopulate

        if not issubclass(obj, DataJointAutoPopulate):
            raise UsageError(f"target {target!r} is a DataJoint table without make() (Manual or Lookup): "
                             "name a dj.Computed or dj.Imported table")
        return obj
    if not (isinstance(obj, type) and issubclass(obj, AutoPopulate)):
        names = _table_classes(module)
        listed = f" ({module_name} has {', '.join(names)})" if names else ""
        raise UsageError(f"target {target!r} is not a Computed or Imported table: name one that has make(){listed}")
    return obj


def _table_classes(namespace) -> list[str]:
    """Names of the tables djhpc could fill in a module (or a master's namespace): Computed and Imported ones."""
    from .autopopulate import AutoPopulate
    from .djtarget import is_datajoint_class

    names = []
    for name, value in vars(namespace).items():
        if not isinstance(value, type) or name.startswith("_"):
            continue
        if issubclass(value, AutoPopulate) or (is_datajoint_class(value) and hasattr(value, "make")):
            names.append(name)
    return sorted(names)


def loose_name(name: str) -> str:
    """A class or table name compared loosely: ``__spike_sorting``, ``SpikeSorting`` and ``spikesorting`` meet."""
    return name.lower().replace("_", "").replace("#", "").replace("~", "")


def _nearest(typed: str, names: list[str]) -> str | None:
    by_simple = {loose_name(n): n for n in names}
    if loose_name(typed) in by_simple:
        return by_simple[loose_name(typed)]
    near = difflib.get_close_matches(loose_name(typed), list(by_simple), n=1, cutoff=0.6)
    return by_simple[near[0]] if near else None


def _listing(namespace, otherwise: str) -> str:
    names = _table_classes(namespace)
    return f": its tables with make() are {', '.join(names)}" if names else otherwise


def _nearest_module(name: str, base: Path) -> str:
    """``: did you mean pipeline.py?`` for a module or file name one typo away from one in its folder."""
    if name.endswith(".py") or "/" in name:
        folder = (base / name).parent
        candidates = [p.name for p in folder.glob("*.py")] if folder.is_dir() else []
        typed = Path(name).name
        near = difflib.get_close_matches(typed if typed.endswith(".py") else typed + ".py", candidates, n=1)
        return f": did you mean {str(Path(name).parent / near[0]).removeprefix('./')}?" if near else ""
    top = name.split(".")[0]
    candidates = [p.stem for p in base.glob("*.py")] + [p.name for p in base.iterdir() if (p / "__init__.py").is_file()]
    near = difflib.get_close_matches(top, candidates, n=1)
    return f": did you mean {near[0] + name[len(top):]}?" if near and near[0] != top else ""


def import_module(name: str, base: Path):
    try:
        if name.endswith(".py") or "/" in name:
            path = (base / name).resolve()
            if not path.is_file():
                hint = _nearest_module(name, base) or f": give a path relative to {base}"
                raise UsageError(f"target file {name} does not exist{hint}")
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
        _check_dotted(name)
        return importlib.import_module(name)
    except DjhpcError:
        raise
    except ImportError as e:
        missing = isinstance(e, ModuleNotFoundError) and e.name == name.split(".")[0]
        hint = (_nearest_module(name, base) if missing else "") or ": check the name and PYTHONPATH"
        raise UsageError(f"target module {name} does not import ({e}){hint}") from e
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


def _check_dotted(name: str):
    """``pipe.Made`` where ``pipe`` is a module, not a package: the user meant a table (``pipe:Made``) or the whole
    pipeline (``pipe``). Said before anything is imported (importing ``pipe`` would declare its tables)."""
    parent, _, last = name.rpartition(".")
    if not parent:
        return
    try:
        spec = importlib.util.find_spec(parent)
    except (ImportError, ValueError):
        return
    if spec is not None and spec.submodule_search_locations is None:
        raise UsageError(f"target '{name}': {parent} is a module, not a package: name one table as {parent}:{last} "
                         f"or the whole pipeline as {parent}")


# PyMySQL's numbers for a server that does not answer: can't connect, unknown host, gone away, lost
UNREACHABLE_CODES = (2003, 2005, 2006, 2013)


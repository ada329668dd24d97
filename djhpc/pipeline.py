"""A whole pipeline as one target: every Computed and Imported table a module declares, in dependency order.

``djhpc work pipeline.py`` (a module, no ``:Class``) or ``pipeline.py:schema`` (a ``dj.Schema`` object: the
module's tables in that schema) name one; so does ``pipeline.py:imaging`` (a module pipeline.py imports, e.g. a
DataJoint Element: its tables exist only once the workflow's pipeline.py has activated its schema). The graph
comes from the tables' foreign keys (through any table in between, part tables counted as their master's) and
from the pipeline tables a custom ``key_source`` reads; a cycle in it is a usage error. Each table may ask for
resources (a ``resources`` class attribute, or ``tables:`` in djhpc.yaml); tables asking for the same resources
form one resource class, which one array of workers serves.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .errors import UsageError
from .targets import import_module, load_target, loose_name

__all__ = ["Pipeline", "ResourceClass", "is_pipeline_target", "load", "load_pipeline"]

PREFERENCES = ("deepest", "upstream")


@dataclass(frozen=True)
class ResourceClass:
    """Tables that ask for the same resources: one array of workers serves them."""

    name: str
    resources: tuple  # sorted (key, value) pairs: the profile settings the class's array adds
    tables: tuple  # table class names, in dependency order

    @property
    def settings(self) -> dict:
        return dict(self.resources)


@dataclass
class Pipeline:
    """Computed and Imported tables of one module, upstream first."""

    name: str  # the target as given, e.g. "pipeline.py"
    tables: list  # table classes in dependency order
    ancestors: dict = field(default_factory=dict)  # class -> set of pipeline classes it depends on
    resources: dict = field(default_factory=dict)  # class -> dict of profile settings (may be empty)
    module_label: str = ""  # for pipeline.py:imaging[.schema], the module named after the colon: "imaging"

    @property
    def label(self) -> str:
        """Short name for logs and job names: ``pipeline`` for pipeline.py[:schema], ``imaging`` for
        pipeline.py:imaging."""
        if self.module_label:
            return self.module_label
        module = self.name.partition(":")[0]
        return Path(module).stem if module.endswith(".py") else module.rsplit(".", 1)[-1]

    def table(self, name: str):
        """The pipeline's table class called ``name`` (a usage error naming the nearest one if none)."""
        for cls in self.tables:
            if cls.__name__ == name:
                return cls
        names = [c.__name__ for c in self.tables]
        by_simple = {loose_name(n): n for n in names}
        near = by_simple.get(loose_name(name)) or next(iter(difflib.get_close_matches(name, names, n=1)), None)
        hint = f"did you mean {near}?" if near else f"its tables are {', '.join(names)}"
        raise UsageError(f"pipeline {self.name} has no computed table {name}: {hint}")

    def parents(self, cls) -> list:
        """The pipeline tables ``cls`` depends on directly (not through another pipeline table)."""
        above = self.ancestors[cls]
        return [a for a in self.tables if a in above and not any(a in self.ancestors[b] for b in above)]

    def depth(self, cls) -> int:
        """0 for a table no pipeline table feeds, else one more than its deepest parent."""
        return 1 + max((self.depth(p) for p in self.parents(cls)), default=-1)

    def dependants(self, cls) -> list:
        return [t for t in self.tables if cls in self.ancestors[t]]

    def restrict(self, tables: Iterable[str] | None = None, downstream_of: Iterable[str] | None = None) -> Pipeline:
        """The pipeline limited to the named tables and/or to some tables and everything below them."""
        keep = list(self.tables)
        if tables:
            named = {self.table(n) for n in tables}
            keep = [t for t in keep if t in named]
        if downstream_of:
            tops = {self.table(n) for n in downstream_of}
            keep = [t for t in keep if t in tops or self.ancestors[t] & tops]
        return Pipeline(self.name, keep, {t: self.ancestors[t] & set(keep) for t in keep},
                        {t: self.resources[t] for t in keep}, self.module_label)

    def upstream_of(self, tables: Iterable) -> list:
        """Every pipeline table the given tables depend on (the keys they wait for come from there)."""
        wanted = set()
        for t in tables:
            wanted |= self.ancestors.get(t, set())
        return [t for t in self.tables if t in wanted]

    def classes(self) -> list[ResourceClass]:
        """The resource classes, in order of their first table; named after the partition asked for (else
        ``default``), with -2, -3 when two classes share a name."""
        groups: dict[tuple, list] = {}
        for t in self.tables:
            groups.setdefault(tuple(sorted(self.resources.get(t, {}).items())), []).append(t.__name__)
        out, used = [], {}
        for resources, names in groups.items():
            base = str(dict(resources).get("partition") or "default")
            used[base] = used.get(base, 0) + 1
            out.append(ResourceClass(base if used[base] == 1 else f"{base}-{used[base]}", resources, tuple(names)))
        return out

    def ordered(self, prefer: str = "deepest") -> list:
        """The tables in the order a worker looks for a ready key: deepest first (finish what is started), or
        upstream first."""
        if prefer not in PREFERENCES:
            raise UsageError(f"prefer must be one of {', '.join(PREFERENCES)} (got {prefer!r})")
        depth = {t: self.depth(t) for t in self.tables}
        position = {t: i for i, t in enumerate(self.tables)}
        sign = -1 if prefer == "deepest" else 1
        return sorted(self.tables, key=lambda t: (sign * depth[t], sign * position[t]))


def is_pipeline_target(text: str | None) -> bool:
    """A target without ``:Class`` names a module, hence a pipeline (``module:schema`` is told on loading)."""
    return bool(text) and ":" not in str(text)


def load(text: str, *, base: Path | None = None, table_resources: Mapping | None = None):
    """A table class (``module:Class``, ``module:element.Class``) or a Pipeline (``module``, ``module:schema``,
    ``module:element``, ``module:element.schema``)."""
    base = base or Path.cwd()
    if ":" in text:
        module_name, _, attr = text.rpartition(":")
        obj = _attribute(import_module(module_name, base), attr) if module_name else None
        if obj is None or not (_is_schema(obj) or isinstance(obj, ModuleType)):
            return load_target(text, base=base)
    return load_pipeline(text, base=base, table_resources=table_resources)


def load_pipeline(text: str, *, base: Path | None = None, tables: Iterable[str] | None = None,
                  downstream_of: Iterable[str] | None = None, table_resources: Mapping | None = None) -> Pipeline:
    """The pipeline a module (or ``module:schema``) declares, optionally limited; usage errors for a module
    without computed tables, a cycle, resources that conflict."""
    base = base or Path.cwd()
    module_name, _, attr = text.partition(":")
    module, schema, module_label = _namespace(import_module(module_name, base), attr, text)
    classes = _computed_classes(module)
    if schema is not None:
        database = getattr(schema, "database", None)
        classes = [c for c in classes if _database(c) == database]
    if not classes:
        where = f"{module_name} (schema {attr})" if schema is not None else text
        raise UsageError(_nothing_to_populate(module, text, where))
    ancestors = _graph(classes)
    order = _order(classes, ancestors, text)
    resources = {c: _resources(c, table_resources or {}) for c in order}
    pipeline = Pipeline(text, order, ancestors, resources, module_label)
    return pipeline.restrict(tables, downstream_of) if tables or downstream_of else pipeline


def _attribute(module, path: str):
    """``module``'s attribute named by a dotted path (``imaging``, ``imaging.schema``), or None."""
    obj = module
    for part in path.split("."):
        obj = getattr(obj, part, None) if part else None
        if obj is None:
            return None
    return obj


def _namespace(module, attr: str, text: str):
    """(the module whose tables form the pipeline, the schema limiting them or None, the label of a module named
    after the colon): ``pipeline.py`` -> pipeline.py; ``pipeline.py:schema`` -> pipeline.py, its schema;
    ``pipeline.py:imaging[.schema]`` -> the imaging module pipeline.py imported (and activated)."""
    if not attr:
        return module, None, ""
    owner, label, parts = module, "", attr.split(".")
    for i, part in enumerate(parts):
        obj = _attribute(owner, part)
        if isinstance(obj, ModuleType):
            owner, label = obj, part
        elif obj is not None and _is_schema(obj) and i == len(parts) - 1:
            return owner, obj, label
        else:
            raise UsageError(f"pipeline {text}: {attr} is not a module or a schema of {module.__name__}: name a "
                             "module it imports (module:element), a schema (module:schema) or one table "
                             "(module:Class)")
    return owner, None, label


def _nothing_to_populate(module, text: str, where: str) -> str:
    """Why the module gives no table to populate, and what to name instead: an Element's module whose schema is
    not activated yet (a fresh process imported it alone), or a workflow module that activates Elements and
    defines no computed table of its own."""
    asleep = _unactivated_classes(module)
    if asleep:
        return (f"pipeline {text}: the schema of {', '.join(asleep)} is not activated in this process: name the "
                f"workflow module that activates it and this module after a colon (e.g. pipeline.py:"
                f"{module.__name__.rsplit('.', 1)[-1]})")
    own = [name for name, value in vars(module).items()
           if isinstance(value, ModuleType) and not name.startswith("_") and _computed_classes(value)]
    if own:
        names = " or ".join(f"{text}:{name}" for name in own[:3])
        return f"pipeline {where} declares no Computed or Imported table; modules it imports do: name {names}"
    return (f"pipeline {where} declares no Computed or Imported table: name a module that defines tables with "
            "make(), or one table as module:Class")


def _unactivated_classes(module) -> list[str]:
    """Names of the Computed and Imported classes of a module whose schema (``schema = dj.Schema()``, as an
    Element's) is not activated yet; none when the module holds no such schema."""
    from .autopopulate import AutoPopulate
    from .djtarget import is_datajoint_class

    if not any(_is_schema(v) and getattr(v, "database", None) is None for v in vars(module).values()):
        return []
    out = []
    for name, value in vars(module).items():
        if not isinstance(value, type) or name.startswith("_") or value.__module__ != module.__name__:
            continue
        if issubclass(value, AutoPopulate) and getattr(value, "_declared_spec", None) is None:
            out.append(name)
        elif is_datajoint_class(value) and _is_datajoint_autopopulate(value, activated=False):
            out.append(name)
    return out


# ------------------------------------------------------------------------------------------- the graph


def _is_schema(obj) -> bool:
    if isinstance(obj, type):
        return False
    from .schemas import Schema

    if isinstance(obj, Schema):
        return True
    return type(obj).__module__.split(".")[0] == "datajoint" and type(obj).__name__ == "Schema"


def _computed_classes(module) -> list:
    """The Computed and Imported table classes the module itself defines, in the order it defines them."""
    from .autopopulate import AutoPopulate
    from .djtarget import is_datajoint_class

    out = []
    for name, value in vars(module).items():
        if not isinstance(value, type) or name.startswith("_") or value.__module__ != module.__name__:
            continue
        if issubclass(value, AutoPopulate) and getattr(value, "_declared_spec", None) is not None:
            out.append(value)
        elif is_datajoint_class(value) and _is_datajoint_autopopulate(value):
            out.append(value)
    return out


def _is_datajoint_autopopulate(cls, activated: bool = True) -> bool:
    from datajoint.autopopulate import AutoPopulate

    return issubclass(cls, AutoPopulate) and (getattr(cls, "database", None) is not None) == activated


def _database(cls) -> str | None:
    return getattr(cls, "database", None)


def _full_name(cls) -> str:
    return cls().full_table_name


def _graph(classes: list) -> dict:
    """class -> the set of pipeline classes it depends on: through foreign keys (any table in between; a part
    table counts as its master) and through the pipeline tables its key_source reads."""
    full = {c: _full_name(c) for c in classes}

    def owner(name: str):
        for c, f in full.items():
            if name == f or name.startswith(f[:-1] + "__"):
                return c
        return None

    direct: dict = {}
    for c in classes:
        above = {owner(n) for n in _ancestor_names(c)} | _read_by_key_source(c, full)
        direct[c] = {a for a in above if a is not None and a is not c}
    closed: dict = {}
    for c in classes:  # transitive closure (the key_source edges may add tables the foreign keys do not)
        seen, todo = set(), list(direct[c])
        while todo:
            a = todo.pop()
            if a not in seen:
                seen.add(a)
                todo.extend(direct[a])
        closed[c] = seen
    return closed


def _ancestor_names(cls) -> list[str]:
    table = cls()
    names = list(table.ancestors())
    for part in getattr(table, "parts", lambda: [])():  # a part table's parents feed its master's make
        names += _free_ancestors(table, part)
    return names


def _free_ancestors(table, part_name: str) -> list[str]:
    deps = table.connection.dependencies
    try:
        return list(deps.ancestors(part_name))
    except Exception:  # noqa: BLE001 - an undeclared part: nothing more to learn
        return []


def custom_key_source(cls) -> bool:
    """Whether the table class (djhpc's or DataJoint's) defines its own key_source instead of the default join."""
    return any("key_source" in vars(k) for k in cls.__mro__ if not k.__module__.startswith(("djhpc.", "datajoint.")))


def key_source(cls):
    """The table's key source as a query (a key_source property may give a table class)."""
    ks = cls().key_source
    return ks() if isinstance(ks, type) else ks


def _read_by_key_source(cls, full: dict) -> set:
    """The pipeline tables (other than ``cls``) that a custom key_source names in its SQL."""
    if not custom_key_source(cls):
        return set()
    sql = key_source(cls).make_sql()
    sql = sql[0] if isinstance(sql, tuple) else sql
    return {c for c, f in full.items() if c is not cls and re.search(re.escape(f), sql)}


def _order(classes: list, ancestors: dict, text: str) -> list:
    """Upstream first (definition order among equals); a usage error naming a cycle."""
    for c in classes:
        if c in ancestors[c]:
            ring = [c.__name__] + [a.__name__ for a in classes if a in ancestors[c] and c in ancestors[a]
                                   and a is not c]
            raise UsageError(f"pipeline {text} has a dependency cycle ({' -> '.join(ring + [c.__name__])}): a "
                             "key_source reads a table that depends on it; fix the key_source")
    done: list = []
    while len(done) < len(classes):
        for c in classes:
            if c not in done and ancestors[c] <= set(done):
                done.append(c)
                break
    return done


# ------------------------------------------------------------------------------------------- resources


def _resources(cls, table_resources: Mapping) -> dict:
    """The table's resources: its ``resources`` attribute and djhpc.yaml's ``tables:`` entry; a setting both
    give with different values is a usage error."""
    from .profile import check_section

    own = getattr(cls, "resources", None) or {}
    if not isinstance(own, Mapping):
        raise UsageError(f"{cls.__name__}.resources must be a dict of profile settings like "
                         f"{{'partition': 'gpu', 'time': '4h'}} (got {type(own).__name__})")
    try:
        check_section(own)
    except UsageError as e:
        raise UsageError(f"{cls.__name__}.resources: {e}") from e
    configured = dict(table_resources.get(cls.__name__) or {})
    for key, value in configured.items():
        if key in own and str(own[key]) != str(value):
            raise UsageError(f"{cls.__name__}: resources conflict: the class sets {key}={own[key]!r}, djhpc.yaml's "
                             f"tables.{cls.__name__} sets {key}={value!r}; keep one")
    merged = {**own, **configured}
    return {str(k): merged[k] for k in merged}

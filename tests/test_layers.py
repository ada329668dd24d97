"""The package's layers: every module imports alone, imports only what its layer may, and no import cycle exists.

The imports are read from the source with ``ast``: module-level and function-level (lazy) imports alike,
relative imports resolved. ``LAYERS`` below is the written rule; a new module is placed in it before its
test passes.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "djhpc"

# Top to bottom. A module may import a module of its own layer or of any layer below it, never one above.
# A name ending in ".*" stands for every submodule of that package (not the package itself); a module
# named exactly wins over a pattern. Names listed here need not exist yet.
LAYERS: list[tuple[str, list[str]]] = [
    ("cli entry point", ["djhpc.__main__", "djhpc.cli.main"]),
    ("cli commands", ["djhpc.cli.*"]),
    ("cli helpers", ["djhpc.cli.scope", "djhpc.cli.display"]),
    ("cli common", ["djhpc.cli", "djhpc.cli.common"]),
    # the package's __init__ re-exports the library for ``import djhpc as dj``: only the cli may import it
    # dj_console is DataJoint's ``dj`` console (``dj.cli(args)``): it hands the package to the user as ``dj``
    ("package and demo", ["djhpc", "djhpc.demo", "djhpc.dj_console"]),
    # status asks the scheduler about recorded runs: the operator view sits above submission
    ("operator view", ["djhpc.report", "djhpc.progress", "djhpc.status", "djhpc.jobrows", "djhpc.cancel",
                       "djhpc.running", "djhpc.logs", "djhpc.pipeprogress", "djhpc.pipeview", "djhpc.plan"]),
    ("submission", ["djhpc.submit", "djhpc.submissions", "djhpc.targets", "djhpc.worker", "djhpc.walltime",
                    "djhpc.pipeline", "djhpc.pipework", "djhpc.pipeprocesses"]),
    # dj.Diagram draws the tables' tiers over the dependencies, beside the schemas
    ("schemas", ["djhpc.schemas", "djhpc.diagram"]),
    # as in DataJoint, schema.jobs is a table: schemas -> jobs -> tables
    ("jobs table", ["djhpc.jobs"]),
    ("tables", ["djhpc.tables"]),
    ("populate", ["djhpc.populate", "djhpc.autopopulate", "djhpc.processes", "djhpc.keywalk", "djhpc.batching",
                  "djhpc.inflight", "djhpc.target", "djhpc.djtarget", "djhpc.djrelease"]),
    # the scheduler adapters know nothing of populate: the loop reads its task's environment through them
    # (schedulers.taskenv) and its reaper asks them which tasks ended; submission renders and submits with them
    ("schedulers", ["djhpc.schedulers", "djhpc.schedulers.*"]),
    # the tables populate keeps beside the results: reservations (and who is alive) and the completion history
    ("reservation", ["djhpc.reservation", "djhpc.liveness", "djhpc.history"]),
    # DataJoint's administration helpers (set_password, kill) act on a connection
    ("administration", ["djhpc.admin"]),
    # blob@store, attach, filepath@store: the stores and their ~external_<store> tracking tables
    ("external storage", ["djhpc.external"]),
    ("dependencies", ["djhpc.dependencies", "djhpc.catalog"]),
    # dj.U builds on queries; fetch shapes their rows (numpy, pandas)
    ("query", ["djhpc.universal", "djhpc.query", "djhpc.fetch"]),
    ("values", ["djhpc.values"]),
    # the one text form of a key, printed and read back: pure, below everything that shows keys
    ("key text", ["djhpc.keytext"]),
    ("definitions", ["djhpc.declare", "djhpc.adapters"]),
    # db.querycache keeps DataJoint's cached query answers with the blob codec: the codec sits below the database
    ("database", ["djhpc.db", "djhpc.db.*"]),
    ("blobs", ["djhpc.blob", "djhpc.blob_dj", "djhpc.blob_v1"]),
    # profile is here because config checks a djhpc.yaml's profiles: sections when it loads the file
    ("foundation", ["djhpc.errors", "djhpc.settings", "djhpc.config", "djhpc.profile", "djhpc.hash", "djhpc.backoff",
                    "djhpc.signals", "djhpc.deadline", "djhpc.durations", "djhpc.utils", "djhpc.plugin"]),
]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    names: tuple[str, ...]  # what ``from target import ...`` took; empty for ``import target``
    path: Path
    line: int
    implicit: bool = False  # the package whose __init__ runs on the way to the module imported

    def __str__(self):
        what = f" ({', '.join(self.names)})" if self.names else ""
        how = " (its __init__ runs first)" if self.implicit else ""
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.source} imports {self.target}{what}{how}"


@cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package) for every module under djhpc/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def edges() -> tuple[Edge, ...]:
    """Every import of a djhpc module by another, wherever in the file it is written."""
    found = []
    for module, (path, is_package) in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [(a.name, ()) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, is_package, node)
                submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules()]
                names = tuple(a.name for a in node.names if f"{base}.{a.name}" not in modules())
                # ``from . import blob`` imports the module djhpc.blob
                targets = [(sub, ()) for sub in submodules] + ([(base, names)] if names else [])
            else:
                continue
            for target, names in targets:
                if (target == "djhpc" or target.startswith("djhpc.")) and target != module:
                    found.append(Edge(module, target, names, path, node.lineno))
                    # importing djhpc.db.x runs djhpc/db/__init__.py first: an import of that package too
                    # (not of djhpc itself, whose __init__ every module runs, nor of a package the module is in)
                    parts = target.split(".")
                    for i in range(2, len(parts)):
                        package = ".".join(parts[:i])
                        if not (module + ".").startswith(package + "."):
                            found.append(Edge(module, package, (), path, node.lineno, implicit=True))
    return tuple(found)


def layer_of(module: str) -> int | None:
    for i, (_, names) in enumerate(LAYERS):
        if module in names:
            return i
    for i, (_, names) in enumerate(LAYERS):
        if any(n.endswith(".*") and fnmatch.fnmatchcase(module, n) for n in names):
            return i
    return None


def _takes_a_name_from_a_parent_package(module: str) -> bool:
    """Whether ``module``, or a module it imports however indirectly, takes a name from a package above it."""
    parents = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for e in edges():
            if e.source == m:
                if e.target in parents and e.names:
                    return True
                todo.append(e.target)
    return False


# Run in a fresh interpreter per module. The parent packages are put in sys.modules without running their
# __init__ (djhpc/__init__.py imports most of the library, which would hide what a module forgot to import
# or the order it depends on); a module that takes a name from a parent package gets the real one.
_CHILD = """
import importlib, importlib.util, sys
name, stub = sys.argv[1], sys.argv[2] == "1"
parts = name.split(".")
for i in range(1, len(parts) if stub else 0):
    parent = ".".join(parts[:i])
    sys.modules[parent] = importlib.util.module_from_spec(importlib.util.find_spec(parent))
importlib.import_module(name)
"""


@cache
def _import_alone_results() -> dict[str, tuple[int, str]]:
    # parse every file here, in this thread: the threads below only start interpreters (ast.parse run from
    # several threads at once once failed with a SystemError on a loaded machine)
    stubs = {name: "0" if _takes_a_name_from_a_parent_package(name) else "1" for name in sorted(modules())}

    def run(name):
        out = subprocess.run([sys.executable, "-c", _CHILD, name, stubs[name]], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        return name, (out.returncode, "\n".join(out.stderr.strip().splitlines()[-20:]))

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        return dict(pool.map(run, sorted(stubs)))


MODULES = sorted(modules())


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module):
    code, stderr = _import_alone_results()[module]
    assert code == 0, f"importing {module} alone in a fresh interpreter fails:\n{stderr}"


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == [], "place these modules in LAYERS"


def test_layers_name_each_module_once():
    names = [n for _, ns in LAYERS for n in ns]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_its_layer_and_below(module):
    mine = layer_of(module)
    wrong = [f"{e}: layer '{LAYERS[mine][0]}' may not import layer '{LAYERS[layer_of(e.target)][0]}'"
             for e in edges() if e.source == module and mine is not None and layer_of(e.target) is not None
             and layer_of(e.target) < mine]
    unknown = [f"{e}: no such module" for e in edges() if e.source == module and e.target not in modules()
               and layer_of(e.target) is None]
    assert wrong + unknown == []


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_private_name(module):
    private = [f"{e.path.relative_to(ROOT)}:{e.line}: {module} imports {', '.join(names)} from {e.target}"
               for e in edges() if e.source == module
               for names in [[n for n in e.names if n.startswith("_") and not n.startswith("__")]] if names]
    assert private == [], "give these names a public spelling, or keep them in one module"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself), Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return found


def test_cycles_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in edges():
        graph[e.source].add(e.target)
    found = cycles(graph)
    detail = [str(e) for e in edges() for c in found if e.source in c and e.target in c]
    assert found == [], "import cycles:\n" + "\n".join(detail)

"""DataJoint's ``dj.Diagram`` (``dj.ERD``, ``dj.Di``): the foreign-key graph of a schema, table or module, as a
networkx DiGraph of full table names that remembers which of them to show.

``Diagram(source)`` shows the tables of a schema (or of a module's ``schema``), or one table; ``d + n`` / ``d - n``
add n levels of children / parents; ``d1 + d2``, ``d1 - d2``, ``d1 * d2`` are union, difference and intersection
of what is shown; ``add_parts()`` adds the parts of the masters shown. As in DataJoint 0.14, the graph holds every
table of the connection's schemas (``topo_sort`` orders them all), a renamed foreign key passes through a numbered
node, and ``_make_graph`` gives the shown part named by class (``Master.Part``) with each node's tier.

networkx is an optional extra (``pip install 'djhpc[diagram]'``); drawing needs pydot and Graphviz's ``dot``
(``make_dot``, ``make_svg``, ``make_png``, ``save``), and matplotlib for ``make_image`` and ``draw``.
"""

from __future__ import annotations

import functools
import inspect
import io
import re
import shutil

from . import catalog
from .dependencies import Dependencies, topo_sort
from .errors import UsageError
from .tables import Computed, Imported, Lookup, Manual, Part, Table

try:
    import networkx as nx
except ImportError:  # an optional extra: Diagram() says how to install it
    nx = None

#: whether Diagram works here (networkx is installed), DataJoint's flag
diagram_active = nx is not None

NETWORKX_MISSING = "dj.Diagram needs networkx: pip install networkx (or pip install 'djhpc[diagram]')"


class AliasNode:
    """The tier of a numbered node: a renamed foreign key's (DataJoint's ``_AliasNode``)."""


# a table name's tier, by its prefix (DataJoint's tier_regexp): lookup #, imported _, computed __, part m__p
_NAME = r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*"
_TIERS = ((re.compile(rf"(?:#|__|_)?{_NAME}__{_NAME}"), Part), (re.compile(f"#{_NAME}"), Lookup),
          (re.compile(f"__{_NAME}"), Computed), (re.compile(f"_{_NAME}"), Imported), (re.compile(_NAME), Manual))


def tier_of(dialect, node: str):
    """The tier class of a node's table (Manual, Lookup, Imported, Computed, Part), AliasNode for a numbered node,
    None for a table of no tier (``~log``)."""
    if node.isdigit():
        return AliasNode
    table = catalog.split_full_name(dialect, node)[1]
    return next((tier for rx, tier in _TIERS if rx.fullmatch(table)), None)


def lookup_class_name(name: str, context: dict, depth: int = 3) -> str | None:
    """The name in ``context`` of the class of table ``name`` (``Master.Part`` for a part; ``module.Class``
    through modules, ``depth`` deep), or None: breadth first, as DataJoint looks."""
    todo = [(context, "", depth)]
    while todo:
        names, prefix, left = todo.pop(0)
        for member_name, member in list(names.items()):
            if member_name.startswith("_"):  # IPython's implicit variables
                continue
            if inspect.isclass(member) and issubclass(member, Table):
                found = _class_name_in(member, member_name, name)
                if found:
                    return (prefix + "." + found).lstrip(".")
            elif left > 0 and inspect.ismodule(member) and member.__name__ not in ("djhpc", "datajoint"):
                todo.append((vars(member), (prefix + "." + member_name).lstrip("."), left - 1))
    return None


def _class_name_in(cls, cls_name: str, name: str) -> str | None:
    if _full_name(cls) == name:
        return cls_name
    for attr, part in vars(cls).items():
        if attr[:1].isupper() and inspect.isclass(part) and issubclass(part, Table) and _full_name(part) == name:
            return f"{cls_name}.{part.__name__}"
    return None


def _full_name(cls) -> str | None:
    if type.__getattribute__(cls, "_declared_spec") is None:
        return None
    try:
        return cls.full_table_name
    except Exception:  # noqa: BLE001 (a half-made class: not the one sought)
        return None


class _SVG:
    """An SVG picture, shown as such by Jupyter (IPython's SVG has the same ``data`` and ``_repr_svg_``)."""

    def __init__(self, data: bytes | str):
        self.data = data.decode() if isinstance(data, bytes) else data

    def _repr_svg_(self) -> str:
        return self.data


_STYLE = {  # tier -> (shape, color, fontcolor, fontsize, size, fixed), DataJoint's look
    None: ("circle", "#FFFF0040", "yellow", 10, 0.48, False),
    AliasNode: ("circle", "#FF880080", "#FF880080", 0, 0.06, True),
    Manual: ("box", "#00FF0030", "darkgreen", 12, 0.48, False),
    Lookup: ("plaintext", "#00000020", "black", 10, 0.48, False),
    Computed: ("ellipse", "#FF000020", "#7F0000A0", 12, 0.36, True),
    Imported: ("ellipse", "#00007F40", "#00007FA0", 12, 0.48, False),
    Part: ("plaintext", "#0000000", "black", 10, 0.12, False),
}


class Diagram(nx.DiGraph if nx is not None else object):
    """The foreign-key graph of ``source`` (a schema, a table class or instance, a module with a ``schema``, or
    another Diagram to copy), its tables named in ``context`` (the caller's names when None) when drawn."""

    def __init__(self, source, context=None):
        if nx is None:
            raise UsageError(NETWORKX_MISSING)
        if isinstance(source, Diagram):
            super().__init__(source)
            self.nodes_to_show = set(source.nodes_to_show)
            self.context = source.context
            self.dialect = source.dialect
            return
        if context is None:
            frame = inspect.currentframe().f_back
            context = dict(frame.f_globals, **frame.f_locals)
            del frame
        self.context = context
        connection = _connection_of(source)
        self.dialect = connection.dialect
        if connection.dependencies is None:
            connection.dependencies = Dependencies(connection)
        deps = connection.dependencies
        deps.load()
        super().__init__()
        _fill(self, deps)
        self.nodes_to_show = _shown(self, source)

    @classmethod
    def from_sequence(cls, sequence) -> Diagram:
        """The union of the diagrams of each item of ``sequence``."""
        return functools.reduce(lambda x, y: x + y, map(Diagram, sequence))

    def add_parts(self) -> Diagram:
        """A copy that also shows the part tables of the masters shown."""
        new = Diagram(self)
        stems = {n[:-1] + "__" for n in self.nodes_to_show if not n.isdigit()}
        new.nodes_to_show.update(n for n in self.nodes() if any(n.startswith(s) for s in stems))
        return new

    def __add__(self, arg) -> Diagram:
        """Union with another diagram or a table, or ``arg`` levels of children added."""
        return self._grow(arg, self, set.update)

    def __sub__(self, arg) -> Diagram:
        """Difference with another diagram or a table, or ``arg`` levels of parents added."""
        return self._grow(arg, nx.DiGraph(self).reverse(), set.difference_update)

    def _grow(self, arg, graph, combine) -> Diagram:
        new = Diagram(self)
        if isinstance(arg, Diagram):
            combine(new.nodes_to_show, arg.nodes_to_show)
        elif hasattr(arg, "full_table_name"):
            combine(new.nodes_to_show, {arg.full_table_name})
        elif isinstance(arg, int) and not isinstance(arg, bool):
            for _ in range(arg):
                found = nx.node_boundary(graph, new.nodes_to_show)
                if not found:
                    break
                found |= nx.node_boundary(graph, [n for n in found if n.isdigit()])  # through renames
                new.nodes_to_show |= found
        else:
            raise UsageError(f"a Diagram adds or subtracts a Diagram, a table or a number of levels, not "
                             f"{type(arg).__name__}")
        return new

    def __mul__(self, arg) -> Diagram:
        """The tables shown in both diagrams."""
        if not isinstance(arg, Diagram):
            raise UsageError(f"a Diagram intersects another Diagram, not {type(arg).__name__}")
        new = Diagram(self)
        new.nodes_to_show &= arg.nodes_to_show
        return new

    def topo_sort(self) -> list[str]:
        """Every table of the graph in topological order, parts right after their masters (DataJoint 0.14's)."""
        return topo_sort(self)

    def _make_graph(self):
        """The graph to draw: the nodes shown (and the rename nodes between two of them), named by class in
        the context, each with its ``node_type`` (tier) and ``distinguished`` (adds a primary-key attribute)."""
        for name in self.nodes_to_show:
            inherited = {a for _, _, p in self.in_edges(name, data=True) if p["primary"] for a in p["attr_map"]}
            key = self.nodes[name].get("primary_key")
            self.nodes[name]["distinguished"] = key is not None and inherited < key
        gaps = nx.node_boundary(self, self.nodes_to_show) & nx.node_boundary(
            nx.DiGraph(self).reverse(), self.nodes_to_show)
        nodes = self.nodes_to_show | {n for n in gaps if n.isdigit()}
        graph = nx.DiGraph(nx.DiGraph(self).subgraph(nodes))
        nx.set_node_attributes(graph, {n: tier_of(self.dialect, n) for n in graph}, name="node_type")
        mapping = {n: lookup_class_name(n, self.context) or n for n in graph}
        if len(set(mapping.values())) < len(mapping):
            raise UsageError("some tables' classes have the same name in the context: the Diagram cannot name "
                             "them apart; pass context= with distinct names")
        return nx.relabel_nodes(graph, mapping)

    # ---------------------------------------------------------------- drawing (pydot, Graphviz, matplotlib)
    def make_dot(self):
        """The diagram as a pydot graph, styled by tier as DataJoint draws it."""
        pydot = _require("pydot", "drawing a Diagram needs pydot: pip install pydot (or pip install "
                                  "'djhpc[diagram]')")
        graph = self._make_graph()
        dot = pydot.Dot(graph_type="digraph")
        for name, data in graph.nodes(data=True):
            shape, color, fontcolor, fontsize, size, fixed = _STYLE[data["node_type"]]
            label = f"<<u>{name}</u>>" if data.get("distinguished") else f'"{name}"'
            dot.add_node(pydot.Node(
                f'"{name}"', shape=shape, color=color, fontcolor=fontcolor, fontsize=fontsize, fontname="arial",
                width=size, height=size, fixedsize="shape" if fixed else "false", style="filled", label=label))
        for src, dest, props in graph.edges(data=True):
            master_part = graph.nodes[dest]["node_type"] is Part and str(dest).startswith(f"{src}.")
            dot.add_edge(pydot.Edge(
                f'"{src}"', f'"{dest}"', color="#00000040", style="solid" if props.get("primary") else "dashed",
                weight=3 if master_part else 1, arrowhead="none", penwidth=0.75 if props.get("multi") else 2))
        return dot

    def _render(self, fmt: str) -> bytes:
        dot = self.make_dot()
        if shutil.which("dot") is None:
            raise UsageError(f"rendering a Diagram as {fmt} needs Graphviz's dot program: install Graphviz "
                             "(apt-get install graphviz), or use make_dot()")
        return dot.create(format=fmt)

    def make_svg(self) -> _SVG:
        return _SVG(self._render("svg"))

    def make_png(self) -> io.BytesIO:
        return io.BytesIO(self._render("png"))

    def _repr_svg_(self) -> str:
        return self.make_svg()._repr_svg_()

    def make_image(self):
        """The diagram as an image array (matplotlib's imread of its PNG)."""
        plt = _pyplot()
        return plt.imread(self.make_png())

    def draw(self):
        plt = _pyplot()
        plt.imshow(self.make_image())
        plt.gca().axis("off")
        plt.show()

    def save(self, filename: str, format=None):  # noqa: A002 (DataJoint's keyword)
        """Write the diagram to ``filename`` as PNG or SVG (by ``format``, else by the file's extension)."""
        fmt = (format or filename.rsplit(".", 1)[-1]).lower()
        if fmt not in ("png", "svg"):
            raise UsageError(f"a Diagram is saved as png or svg, not {fmt!r}: name the file .png or .svg, or pass "
                             "format=")
        with open(filename, "wb") as f:
            f.write(self._render(fmt))


ERD = Di = Diagram  # DataJoint's other names


def _connection_of(source):
    for get in (lambda s: s.connection, lambda s: s.schema.connection):
        try:
            connection = get(source)
        except AttributeError:
            continue
        if connection is not None:
            return connection
    raise UsageError(f"a Diagram is made of a schema, a table or a module with a schema, not {source!r}")


def _fill(graph, deps: Dependencies):
    """The nodes and edges of ``deps``, a renamed foreign key through a numbered node, as DataJoint's graph."""
    for name in deps.nodes:
        graph.add_node(name, **deps.node_properties(name))
    count = 0  # DataJoint numbers them from 0
    for parent, child, props in deps.edges(data=True):
        if not props["aliased"]:
            graph.add_edge(parent, child, **props)
            continue
        graph.add_node(str(count))
        graph.add_edge(parent, str(count), **props)
        graph.add_edge(str(count), child, **props)
        count += 1


def _shown(graph, source) -> set:
    """The tables ``source`` names: itself, or every table of its schema."""
    name = getattr(source, "full_table_name", None)
    if isinstance(name, str):
        return {name}
    database = getattr(source, "database", None) or getattr(getattr(source, "schema", None), "database", None)
    if not isinstance(database, str):
        raise UsageError(f"cannot make a Diagram of {source!r}: give a schema, a table or a module with a schema")
    return {n for n in graph if not n.isdigit() and catalog.split_full_name(graph.dialect, n)[0] == database}


def _require(module: str, message: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise UsageError(message) from exc


def _pyplot():
    try:
        from matplotlib import pyplot
    except ImportError as exc:
        raise UsageError("a Diagram as an image needs matplotlib: pip install matplotlib (or pip install "
                         "'djhpc[diagram]')") from exc
    return pyplot

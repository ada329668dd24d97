"""dj.Diagram (djhpc/diagram.py) on both backends: what a schema, a table and the algebra show, the tiers, the class
names of ``_make_graph``, a renamed foreign key's numbered node, and the one-line errors of the missing extras.
The expected sets are what DataJoint 0.14.10 gives for the same tables (its test_erd's algebra)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.env import ROOT, unavailable

import djhpc as dj


@pytest.fixture
def simple(schema):
    """A <- B (part C), A <- D -> [secondary] L, B <- E (parts F, G: -> B.C), E <- H (E renamed)."""
    try:
        import networkx  # noqa: F401
    except ImportError:
        unavailable("networkx is not installed: pip install 'djhpc[diagram]'")

    @schema
    class A(dj.Lookup):
        definition = "a : int\n"
        contents = [(1,)]

    @schema
    class L(dj.Lookup):
        definition = "l : int\n"

    @schema
    class B(dj.Manual):
        definition = "-> A\nb : int\n"

        class C(dj.Part):
            definition = "-> master\nc : int\n"

    @schema
    class D(dj.Manual):
        definition = "-> A\nd : int\n---\n-> L\n"

    @schema
    class E(dj.Computed):
        definition = "-> B\n"

        class F(dj.Part):
            definition = "-> master\nf : int\n"

        class G(dj.Part):
            definition = "-> master\n-> B.C\n"

        def make(self, key):
            pass

    @schema
    class H(dj.Imported):
        definition = "h : int\n---\n-> E.proj(other_a='a', other_b='b')\n"

        def make(self, key):
            pass

    return dict(A=A, L=L, B=B, D=D, E=E, H=H)


def names(*tables):
    return {t.full_table_name for t in tables}


def test_a_schema_shows_its_tables_and_a_table_itself(simple, schema):
    t = simple
    every = names(t["A"], t["L"], t["B"], t["B"].C, t["D"], t["E"], t["E"].F, t["E"].G, t["H"])
    assert dj.Diagram(schema).nodes_to_show == every
    assert dj.ERD(t["B"]).nodes_to_show == names(t["B"])
    assert dj.Di(t["B"]()).nodes_to_show == names(t["B"])
    module = type(sys)("lab")
    module.schema = schema
    assert dj.Diagram(module).nodes_to_show == every


def test_the_algebra(simple):
    t = simple
    B, E = t["B"], t["E"]
    d0 = dj.Diagram(B)
    assert (d0 + 1).nodes_to_show == names(B, B.C, E)
    # the numbered node of H's renamed reference comes along, as in DataJoint
    assert (d0 + 2).nodes_to_show == names(B, B.C, E, E.F, E.G, t["H"]) | {"0"}
    assert (dj.Diagram(t["D"]) - 1).nodes_to_show == names(t["D"], t["A"], t["L"])
    assert (dj.Diagram(E) - 5).nodes_to_show == names(E, B, t["A"])
    assert ((d0 + 1) * (dj.Diagram(E) - 1)).nodes_to_show == names(B, E)
    assert ((d0 + E).add_parts() - B - E).nodes_to_show == names(B.C, E.F, E.G)
    assert (d0 + dj.Diagram(t["L"]) - dj.Diagram(B)).nodes_to_show == names(t["L"])
    assert dj.Diagram.from_sequence([B, t["L"]]).nodes_to_show == names(B, t["L"])
    assert d0.nodes_to_show == names(B)  # the operators make new diagrams
    with pytest.raises(dj.UsageError, match="adds or subtracts a Diagram, a table or a number"):
        d0 + "B"


def test_a_renamed_reference_passes_through_a_numbered_node(simple):
    t = simple
    d = dj.Diagram(t["H"])
    [alias] = [n for n in d if n.isdigit()]
    assert list(d.predecessors(alias)) == [t["E"].full_table_name]
    assert list(d.successors(alias)) == [t["H"].full_table_name]
    # one level of parents reaches through it, as in DataJoint
    assert (d - 1).nodes_to_show == names(t["H"], t["E"]) | {alias}
    order = d.topo_sort()
    assert alias not in order and order.index(t["E"].full_table_name) < order.index(t["H"].full_table_name)


@pytest.fixture
def stranger(db, schema_name):
    """Another schema on the server, not activated on this connection, with a renamed foreign key of its own."""
    other = schema_name + "_other"
    t = db.dialect.table
    if not db.is_sqlite:
        db.query(f"CREATE DATABASE {db.dialect.quote(other)}")
    db.query(f"CREATE TABLE {t(other, 'p')} (p INT PRIMARY KEY)")
    db.query(f"CREATE TABLE {t(other, 'c')} (c INT PRIMARY KEY, q INT, FOREIGN KEY (q) REFERENCES {t(other, 'p')} (p))")
    yield other
    if not db.is_sqlite:
        db.query(f"DROP DATABASE {db.dialect.quote(other)}")


def test_the_graph_holds_the_schemas_of_the_connection_only(simple, stranger, db):
    """As DataJoint's dependencies: the foreign keys of the schemas activated on the connection, not of every
    schema on a lab's server."""
    d = dj.Diagram(simple["H"])
    assert not any(stranger in n for n in d)
    assert [n for n in d if n.isdigit()] == ["0"]


def test_make_graph_names_classes_and_tiers(simple, schema):
    t = simple
    graph = dj.Diagram(schema, context=t)._make_graph()
    assert set(graph.nodes()) >= {"A", "L", "B", "B.C", "D", "E", "E.F", "E.G", "H"}
    tiers = {n: graph.nodes[n]["node_type"] for n in ("A", "B", "B.C", "E", "H")}
    assert tiers == {"A": dj.Lookup, "B": dj.Manual, "B.C": dj.Part, "E": dj.Computed, "H": dj.Imported}
    assert graph.nodes["B"]["distinguished"] and not graph.nodes["E"]["distinguished"]
    assert graph.edges["A", "D"]["primary"] and not graph.edges["L", "D"]["primary"]
    # without the classes in the context, the full names
    bare = dj.Diagram(t["B"], context={})._make_graph()
    assert list(bare.nodes()) == [t["B"].full_table_name]


def test_topo_sort_orders_every_table_with_parts_after_masters(simple, schema):
    t = simple
    order = dj.Diagram(schema).topo_sort()
    assert order.index(t["A"].full_table_name) < order.index(t["B"].full_table_name)
    assert order.index(t["B"].C.full_table_name) == order.index(t["B"].full_table_name) + 1
    after_e = order[order.index(t["E"].full_table_name) + 1:][:2]  # in either order (DataJoint: G, F)
    assert set(after_e) == names(t["E"].F, t["E"].G)


def test_drawing_without_its_programs_says_what_to_install(simple, monkeypatch):
    import djhpc.diagram as diagram

    d = dj.Diagram(simple["B"])
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(dj.UsageError, match=r"pip install pydot"):
        d.make_dot()
    with pytest.raises(dj.UsageError, match=r"pip install pydot"):
        d.make_png()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(dj.UsageError, match=r"pip install matplotlib"):
        d.draw()
    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)
    monkeypatch.delitem(sys.modules, "pydot")
    try:
        import pydot  # noqa: F401
    except ImportError:
        return
    with pytest.raises(dj.UsageError, match=r"Graphviz's dot program"):
        d.make_svg()


def test_without_networkx_diagram_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['networkx'] = None\n"
            "import djhpc as dj\n"
            "assert not dj.diagram.diagram_active\n"
            "try:\n    dj.Diagram(None)\nexcept dj.UsageError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "dj.Diagram needs networkx: pip install networkx (or pip install 'djhpc[diagram]')"


def test_a_source_without_a_schema_is_refused(simple):
    with pytest.raises(dj.UsageError, match="a Diagram is made of a schema, a table or a module"):
        dj.Diagram(42)

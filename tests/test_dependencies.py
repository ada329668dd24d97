"""DataJoint's dependencies (djhpc/dependencies.py) and the delete/drop rules over them, on both backends, with the
answers DataJoint 0.14.10 gives for the same tables (its suite's test_cascading_delete and test_dependencies)."""

from __future__ import annotations

import pytest

import djhpc as dj
from djhpc.dependencies import topo_sort


class Graph(list):
    """Nodes and edges, as topo_sort reads a networkx DiGraph."""

    def __init__(self, edges):
        super().__init__(dict.fromkeys(n for e in edges for n in e))
        self._edges = edges

    def edges(self):
        return self._edges


def test_topo_sort_puts_parts_after_their_masters():
    # DataJoint 0.14.10's own example: a part's other parent comes before its master
    g = Graph([("`a`.`a`", "`a`.`m`"), ("`a`.`a`", "`a`.`z`"), ("`a`.`m`", "`a`.`m__part`"),
               ("`a`.`z`", "`a`.`m__part`")])
    assert topo_sort(g) == ["`a`.`a`", "`a`.`z`", "`a`.`m`", "`a`.`m__part`"]
    with pytest.raises(dj.DjhpcError, match="cycle"):
        topo_sort(Graph([("`a`.`x`", "`a`.`y`"), ("`a`.`y`", "`a`.`x`")]))


def test_parents_children_descendants(filled):
    p = filled
    name = lambda t: t.full_table_name  # noqa: E731
    assert set(p.Subject().children()) == {name(p.Session), name(p.Note)}
    assert p.Session().parents(primary=True) == [name(p.Subject)]
    assert p.Note().parents(primary=False) == [name(p.Subject)]
    assert p.Subject().parents(primary=False) == [name(p.Species)]
    assert p.Session().descendants() == [name(p.Session), name(p.Analysis), name(p.Analysis.Unit)]
    assert p.Analysis().ancestors()[0] == name(p.Analysis)
    assert set(p.Analysis().ancestors()) == {name(p.Analysis), name(p.Session), name(p.Subject), name(p.Species)}
    assert p.Analysis().parts() == [name(p.Analysis.Unit)]
    assert [t.full_table_name for t in p.Analysis().parts(as_objects=True)] == [name(p.Analysis.Unit)]
    [(parent, info)] = p.Session().parents(foreign_key_info=True)
    assert parent == name(p.Subject) and info["attr_map"] == {"subject_id": "subject_id"} and info["primary"]
    deps = p.Subject.connection.dependencies
    assert name(p.Species) in deps and deps.topo_sort().index(name(p.Subject)) < deps.topo_sort().index(
        name(p.Session))


def test_delete_counts_the_tables_own_rows_and_guards_parts(filled):
    p = filled
    assert (p.Session & {"subject_id": 1}).delete(safemode=False) == 2  # and its 2 analyses, 3 units
    assert len(p.Analysis) == 1 and len(p.Analysis.Unit) == 1
    with pytest.raises(dj.UsageError, match="cannot delete from part table Unit alone"):
        p.Analysis.Unit.delete()
    assert p.Analysis.Unit().delete(force=True, safemode=False) == 1
    assert len(p.Analysis) == 1  # the master stays


def test_force_masters_deletes_the_masters_of_parts_reached(schema):
    @schema
    class Site(dj.Manual):
        definition = "site : int\n"

    @schema
    class Probe(dj.Manual):
        definition = "probe : int\n"

        class Placement(dj.Part):
            definition = "-> master\n-> Site\n"

    Site.insert([(1,), (2,)])
    Probe.insert([(1,), (2,)])
    Probe.Placement.insert([(1, 1), (2, 2)])
    with pytest.raises(dj.UsageError, match="before deleting from its master"):
        (Site & {"site": 1}).delete(safemode=False)
    assert len(Probe.Placement) == 2  # nothing went
    assert (Site & {"site": 1}).delete(safemode=False, force_masters=True) == 1
    assert Probe.fetch("probe").tolist() == [2] and len(Probe.Placement) == 1


def test_delete_inside_a_transaction_joins_it(filled):
    p = filled
    c = p.Subject.connection
    with c.transaction:
        assert (p.Subject & {"subject_id": 3}).delete(safemode=False) == 1
        with pytest.raises(dj.UsageError, match="inside an open transaction"):
            p.Subject.delete(safemode=True)
    assert len(p.Subject) == 2


def test_drop_of_a_part_or_a_restriction_is_refused(filled):
    p = filled
    with pytest.raises(dj.UsageError, match="cannot drop part table Unit alone"):
        p.Analysis.Unit.drop()
    with pytest.raises(dj.UsageError, match="restricted table cannot be dropped"):
        (p.Subject & {"subject_id": 1}).drop(safemode=False)
    assert len(p.Subject) == 3


def test_safemode_question_is_answered_through_utils(filled, monkeypatch):
    p = filled
    monkeypatch.setattr(dj.utils, "input", lambda prompt: "yes", raising=False)
    assert p.Note.delete(safemode=True) == 2
    monkeypatch.setattr(dj.utils, "input", lambda prompt: "no", raising=False)
    assert (p.Session & {"subject_id": 3}).delete(safemode=True) == 0
    assert len(p.Session) == 4

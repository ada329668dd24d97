"""The foreign-key graph of the database, read from its catalog, and the orders it gives: cascading deletes
(children first) and drops (descendants first); DataJoint's ``connection.dependencies`` over it (parents, children,
ancestors, descendants by full table name, in topological order with each part table right after its master).
"""

from __future__ import annotations

import re

from .errors import DjhpcError, UsageError
from .query import new_alias


def foreign_key_graph(connection, schemas=None) -> dict:
    """parent (schema, table) -> [(child (schema, table), child columns, parent columns)] from the catalog: every
    foreign key on the server, or (``schemas``, a list) those whose child or parent is in one of them, as
    DataJoint's dependencies read (a lab server holds hundreds of schemas nobody here activated)."""
    if not connection.is_sqlite:
        return _mysql_foreign_keys(connection, schemas)
    graph = _sqlite_foreign_keys(connection)
    if schemas is None:
        return graph
    wanted = set(schemas)
    kept = {parent: [link for link in links if parent[0] in wanted or link[0][0] in wanted]
            for parent, links in graph.items()}
    return {parent: links for parent, links in kept.items() if links}


def _sqlite_foreign_keys(connection) -> dict:
    graph: dict = {}
    names = [r[0] for r in connection.query(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'").fetchall()]
    for name in names:
        rows = connection.query(f"PRAGMA foreign_key_list({connection.dialect.quote(name)})").fetchall()
        fks: dict = {}
        for r in rows:
            fks.setdefault(r[0], []).append((r[2], r[3], r[4]))
        for items in fks.values():
            parent = tuple(items[0][0].split(".", 1))
            child = tuple(name.split(".", 1))
            graph.setdefault(parent, []).append((child, [i[1] for i in items], [i[2] for i in items]))
    return graph


def _mysql_foreign_keys(connection, schemas) -> dict:
    """In one query of the catalog: all, or those touching ``schemas``."""
    where, params = "", ()
    if schemas is not None:
        if not schemas:
            return {}
        marks = ", ".join(["%s"] * len(schemas))
        where = f" AND (TABLE_SCHEMA IN ({marks}) OR REFERENCED_TABLE_SCHEMA IN ({marks}))"
        params = (*schemas, *schemas)
    rows = connection.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
        "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        f"WHERE REFERENCED_TABLE_NAME IS NOT NULL{where} ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, "
        "ORDINAL_POSITION", params).fetchall()
    graph: dict = {}
    fks: dict = {}
    for s, t, c, col, ps, pt, pcol in rows:
        fks.setdefault((s, t, c), {"parent": (ps, pt), "cols": [], "pcols": []})
        fks[(s, t, c)]["cols"].append(col)
        fks[(s, t, c)]["pcols"].append(pcol)
    for (s, t, _), fk in fks.items():
        graph.setdefault(fk["parent"], []).append(((s, t), fk["cols"], fk["pcols"]))
    return graph


def master_of(name: tuple[str, str]) -> tuple[str, str] | None:
    """The master (schema, table) of a part table's (schema, table) (``m__p`` -> ``m``), else None."""
    m = re.fullmatch(r"(#?\w+)__\w+", name[1])
    return (name[0], m.group(1)) if m else None


def cascade_delete(connection, graph, name, select_sql, params, counts, depth, masters=None):
    """Delete children first, then the rows of ``name`` selected by ``select_sql``; returns how many rows of
    ``name`` went. ``masters``, a set, makes the cascade go up to the master of each part table it reaches (not
    yet visited, and not ``name``'s own parts), deleting that master's rows whose parts would go, with all their
    parts: DataJoint's ``force_masters``."""
    if depth > 50:
        raise DjhpcError("foreign keys nest deeper than 50 levels: is there a cycle?")
    d = connection.dialect
    q = d.quote
    for child, cols, pcols in graph.get(name, []):
        alias = new_alias()
        cond = " AND ".join(f"{alias}.{q(pc)} = _c.{q(c)}" for c, pc in zip(cols, pcols, strict=True))
        child_sql = (f"SELECT * FROM {d.table(*child)} AS _c WHERE EXISTS "
                     f"(SELECT 1 FROM ({select_sql}) AS {alias} WHERE {cond})")
        master = master_of(child) if masters is not None else None
        if master is not None and master != name and master not in masters:
            masters.add(master)
            found = _rows_of_master(connection, master, child_sql, params)
            if found is not None:
                cascade_delete(connection, graph, master, *found, counts, depth + 1, masters)
        else:
            cascade_delete(connection, graph, child, child_sql, params, counts, depth + 1, masters)
    pk = primary_key_columns(connection, name)
    key_cols = ", ".join(q(n) for n in pk)
    lhs = key_cols if len(pk) == 1 else f"({key_cols})"
    sql = f"DELETE FROM {d.table(*name)} WHERE {lhs} IN (SELECT {key_cols} FROM ({select_sql}) AS _d)"
    cur = connection.query(sql, params, context=f"delete from {name[1]}")
    counts.append((name, cur.rowcount))
    return cur.rowcount


def _rows_of_master(connection, master, part_sql, params):
    """(select, params) of the rows of ``master`` whose parts ``part_sql`` selects, by their keys read now: the
    master's cascade deletes those parts first, so a subquery over them would find none by the master's turn."""
    q = connection.dialect.quote
    keys = primary_key_columns(connection, master)
    cols = ", ".join(q(k) for k in keys)
    rows = connection.query(f"SELECT DISTINCT {cols} FROM ({part_sql}) AS _p", params).fetchall()
    if not rows:
        return None
    mark = connection.dialect.placeholder
    one = "(" + ", ".join([mark] * len(keys)) + ")"
    lhs = q(keys[0]) if len(keys) == 1 else "(" + cols + ")"
    marks = ", ".join([mark if len(keys) == 1 else one] * len(rows))
    return (f"SELECT * FROM {connection.dialect.table(*master)} WHERE {lhs} IN ({marks})",
            tuple(v for row in rows for v in row))


def primary_key_columns(connection, name) -> list[str]:
    if connection.is_sqlite:
        rows = connection.query(f"PRAGMA table_info({connection.dialect.quote(name[0] + '.' + name[1])})").fetchall()
        return [r[1] for r in sorted(rows, key=lambda r: r[5]) if r[5]]
    rows = connection.query(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
        "AND CONSTRAINT_NAME='PRIMARY' ORDER BY ORDINAL_POSITION", name).fetchall()
    return [r[0] for r in rows]


def descendants(graph, name, order, seen=None):
    """Append ``name`` and every table that depends on it to ``order``, children before parents."""
    seen = set() if seen is None else seen
    if name in seen:
        return
    seen.add(name)
    for child, _, _ in graph.get(name, []):
        descendants(graph, child, order, seen)
    order.append(name)


# ------------------------------------------------------------------------ DataJoint's connection.dependencies
def _alias_free(nodes, edges):
    """DataJoint marks a renamed foreign key by a numbered node between the tables: join across it."""
    aliases = {n for n in nodes if str(n).isdigit()}
    into = {b: a for a, b in edges if b in aliases}
    out = [(into.get(a, a), b) for a, b in edges if b not in aliases]
    return [n for n in nodes if n not in aliases], [(a, b) for a, b in out if a not in aliases]


def _full_master(name: str) -> str | None:
    """A part's master of full names, either dialect's: ```s`.`m__p``` -> ```s`.`m```, ``"s.m__p"`` -> ``"s.m"``."""
    m = re.fullmatch(r"(.*\W#?\w+)__\w+([`\"])", name)
    return m.group(1) + m.group(2) if m else None


def topo_sort(graph) -> list[str]:
    """The tables of ``graph`` (anything with nodes and ``edges()``, a networkx DiGraph or Dependencies) in
    topological order, each part table right after its master, as DataJoint orders them: a part's other parents
    come before its master."""
    nodes, edges = _alias_free(list(graph), list(graph.edges()))
    edges = list(dict.fromkeys(edges))
    for part in nodes:
        master = _full_master(part)
        if master in nodes:
            for parent, child in list(edges):
                if child == part and master not in (parent, _full_master(parent)):
                    edges.append((parent, master))
    order = _kahn(nodes, edges)
    for part in [n for n in reversed(order) if _full_master(n) in order]:
        order.remove(part)
        order.insert(order.index(_full_master(part)) + 1, part)
    return order


def _kahn(nodes, edges) -> list:
    parents = {n: set() for n in nodes}
    children: dict = {n: [] for n in nodes}
    for a, b in edges:
        if a in parents and b in parents and a not in parents[b]:
            parents[b].add(a)
            children[a].append(b)
    ready = [n for n in nodes if not parents[n]]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for c in children[n]:
            parents[c].discard(n)
            if not parents[c]:
                ready.append(c)
    if len(order) != len(nodes):
        raise DjhpcError("the foreign keys form a cycle: DataJoint's dependencies must be acyclic")
    return order


class Dependencies:
    """DataJoint's ``connection.dependencies``: the foreign keys among the tables of the schemas on this
    connection, by full table name. Edges carry ``primary`` (the key's attributes are in the child's primary key),
    ``attr_map`` (child attribute -> parent attribute), ``aliased`` (renamed) and ``multi`` (not the whole key)."""

    def __init__(self, connection=None):
        self._conn = connection
        self._nodes: dict[str, dict] = {}  # full name -> its properties: primary_key, a set of names
        self._edges: dict[tuple[str, str], dict] = {}
        self._loaded = False

    def clear(self):
        self._nodes, self._edges, self._loaded = {}, {}, False

    def load(self, force=True):
        """Read the foreign keys from the catalog (again, unless loaded and not ``force``)."""
        if self._loaded and not force:
            return
        if self._conn is None:
            raise UsageError("these dependencies have no connection to load from: use connection.dependencies")
        self.clear()
        c = self._conn
        name = lambda st: c.dialect.table(*st)  # noqa: E731
        schemas = list(getattr(c, "schemas", {}))
        keys = _primary_keys(c, schemas)
        for table, key in keys.items():
            self._nodes[name(table)] = {"primary_key": key}
        for parent, links in foreign_key_graph(c, schemas).items():
            for child, cols, pcols in links:
                if parent[1].startswith("~") or child[1].startswith("~"):
                    continue
                for table in (parent, child):
                    if table not in keys:
                        keys[table] = set(primary_key_columns(c, table))
                        self._nodes[name(table)] = {"primary_key": keys[table]}
                attr_map = dict(zip(cols, pcols, strict=True))
                self._edges[(name(parent), name(child))] = dict(
                    primary=set(cols) <= keys[child], attr_map=attr_map,
                    aliased=any(k != v for k, v in attr_map.items()), multi=set(cols) != keys[child])
        self._loaded = True

    # graph views
    def __contains__(self, name):
        self.load(force=False)
        return name in self._nodes

    def __iter__(self):
        self.load(force=False)
        return iter(list(self._nodes))

    def __len__(self):
        self.load(force=False)
        return len(self._nodes)

    @property
    def nodes(self) -> list[str]:
        self.load(force=False)
        return list(self._nodes)

    def node_properties(self, full_table_name: str) -> dict:
        """A table's properties in the graph, as DataJoint's node data: ``primary_key``, the set of its names."""
        self.load(force=False)
        return self._nodes[full_table_name]

    def edges(self, data=False):
        self.load(force=False)
        return [(a, b, p) if data else (a, b) for (a, b), p in self._edges.items()]

    def topo_sort(self) -> list[str]:
        return topo_sort(self)

    def parents(self, table_name: str, primary=None) -> dict:
        """Tables ``table_name`` refers to -> the foreign key's properties (``primary``: only those within its
        primary key (True) or not (False))."""
        self.load(force=False)
        return {a: p for (a, b), p in self._edges.items() if b == table_name and primary in (None, p["primary"])}

    def children(self, table_name: str, primary=None) -> dict:
        """Tables that refer to ``table_name`` -> the foreign key's properties."""
        self.load(force=False)
        return {b: p for (a, b), p in self._edges.items() if a == table_name and primary in (None, p["primary"])}

    def _reach(self, start: str, step) -> set:
        seen, todo = set(), [start]
        while todo:
            for n in step(todo.pop()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    def _sub(self, names: set) -> _Subgraph:
        return _Subgraph([n for n in self._nodes if n in names],
                         [e for e in self._edges if e[0] in names and e[1] in names])

    def descendants(self, full_table_name: str) -> list[str]:
        """The table and every table that depends on it, in topological order."""
        self.load(force=False)
        below = self._reach(full_table_name, self.children) - {full_table_name}
        return [full_table_name] + topo_sort(self._sub(below))

    def ancestors(self, full_table_name: str) -> list[str]:
        """The table and every table it depends on, the table first, in reverse topological order."""
        self.load(force=False)
        above = self._reach(full_table_name, self.parents) - {full_table_name}
        return list(reversed(topo_sort(self._sub(above)) + [full_table_name]))


class _Subgraph(list):
    """Nodes with their edges, for topo_sort."""

    def __init__(self, nodes, edges):
        super().__init__(nodes)
        self._edge_list = edges

    def edges(self):
        return self._edge_list


def _primary_keys(connection, schemas) -> dict:
    """(schema, table) -> the set of its primary-key attributes, for every table of ``schemas`` but djhpc's and
    DataJoint's own (``~...``); on MySQL in one query of the catalog."""
    if connection.is_sqlite:
        return {(s, t): set(primary_key_columns(connection, (s, t)))
                for s in schemas for t in _tables_of(connection, s) if not t.startswith("~")}
    keys: dict = {(s, t): set() for s in schemas for t in _tables_of(connection, s) if not t.startswith("~")}
    if schemas:
        marks = ", ".join(["%s"] * len(schemas))
        rows = connection.query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
            f"CONSTRAINT_NAME='PRIMARY' AND TABLE_SCHEMA IN ({marks})", tuple(schemas)).fetchall()
        for s, t, col in rows:
            if (s, t) in keys:
                keys[(s, t)].add(col)
    return keys


def _tables_of(connection, schema: str) -> list[str]:
    if connection.is_sqlite:
        prefix = schema + "."
        rows = connection.query("SELECT name FROM sqlite_master WHERE type='table' AND substr(name, 1, ?) = ?",
                                (len(prefix), prefix)).fetchall()
        return [r[0][len(prefix):] for r in rows]
    rows = connection.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                            (schema,)).fetchall()
    return [r[0] for r in rows]

"""The foreign-key graph of the database, read from its catalog, and the orders it gives: cascading deletes
(children first) and drops (descendants first).
"""

from __future__ import annotations

from .errors import DjhpcError
from .query import new_alias


def foreign_key_graph(connection) -> dict:
    """parent (schema, table) -> [(child (schema, table), child columns, parent columns)] from the catalog."""
    graph: dict = {}
    if connection.is_sqlite:
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
    rows = connection.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
        "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, "
        "ORDINAL_POSITION").fetchall()
    fks: dict = {}
    for s, t, c, col, ps, pt, pcol in rows:
        fks.setdefault((s, t, c), {"parent": (ps, pt), "cols": [], "pcols": []})
        fks[(s, t, c)]["cols"].append(col)
        fks[(s, t, c)]["pcols"].append(pcol)
    for (s, t, _), fk in fks.items():
        graph.setdefault(fk["parent"], []).append(((s, t), fk["cols"], fk["pcols"]))
    return graph


def cascade_delete(connection, graph, name, select_sql, params, counts, depth):
    """Delete children first, then the rows of ``name`` selected by ``select_sql``."""
    if depth > 50:
        raise DjhpcError("foreign keys nest deeper than 50 levels: is there a cycle?")
    d = connection.dialect
    q = d.quote
    for child, cols, pcols in graph.get(name, []):
        alias = new_alias()
        cond = " AND ".join(f"{alias}.{q(pc)} = _c.{q(c)}" for c, pc in zip(cols, pcols, strict=True))
        child_sql = (f"SELECT * FROM {d.table(*child)} AS _c WHERE EXISTS "
                     f"(SELECT 1 FROM ({select_sql}) AS {alias} WHERE {cond})")
        cascade_delete(connection, graph, child, child_sql, params, counts, depth + 1)
    pk = primary_key_columns(connection, name)
    key_cols = ", ".join(q(n) for n in pk)
    lhs = key_cols if len(pk) == 1 else f"({key_cols})"
    sql = f"DELETE FROM {d.table(*name)} WHERE {lhs} IN (SELECT {key_cols} FROM ({select_sql}) AS _d)"
    cur = connection.query(sql, params, context=f"delete from {name[1]}")
    counts.append((f"{name[0]}.{name[1]}", cur.rowcount))


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

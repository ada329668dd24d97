"""How far a pipeline is, table by table: made, ready, running, failed, waiting for inputs, blocked upstream.

A table's key source holds only the keys whose inputs are made. The keys still to come are those of its
*potential* key source: the same join with every pipeline table above it replaced by what that table will hold
once its own inputs are made (its potential key source, when its primary key is its key source's: one row per
key). ``waiting`` is what the potential key source adds to the key source; ``blocked``, the part of it that
depends on a key that failed (or was ignored) upstream and so will not come without a fix. The same for tables
written with DataJoint (their primary parents read as DataJoint's own key source reads them). A table with a
custom ``key_source``, or below one whose make inserts several keys per key source key, cannot be foreseen
(``waiting``/``blocked`` None).
"""

from __future__ import annotations

from . import jobrows
from .pipeline import Pipeline, custom_key_source, key_source

FIELDS = ("table", "table_name", "total", "done", "remaining", "ready", "waiting", "blocked", "reserved", "error",
          "ignore", "pending")


def pipeline_progress(pipeline: Pipeline, targets: dict, restrictions=()) -> list[dict]:
    """One dict per table of ``pipeline``, upstream first (FIELDS)."""
    foresee = _Foresight(pipeline, targets, restrictions)
    rows = []
    for cls in pipeline.tables:
        target = targets[cls]
        counts = target.progress(restrictions)
        row = {"table": cls.__name__, "table_name": target.table_name, **counts}
        for status in ("reserved", "error", "ignore", "pending"):
            row.setdefault(status, 0)
        row["ready"] = max(counts["remaining"] - row["reserved"] - row["error"] - row["ignore"] - row["pending"], 0)
        row["waiting"], row["blocked"] = foresee.to_come(cls, counts["total"])
        rows.append({k: row[k] for k in FIELDS})
    return rows


class _Foresight:
    """Potential key sources of a pipeline's djhpc tables with the default key source."""

    def __init__(self, pipeline: Pipeline, targets: dict, restrictions):
        self.pipeline = pipeline
        self.targets = targets
        self.restrictions = list(restrictions)
        self.by_full = {targets[c].full_table_name: c for c in targets}
        self._failed: dict = {}

    def to_come(self, cls, in_key_source: int) -> tuple[int | None, int | None]:
        """(keys not yet in the key source, those among them blocked by a failure upstream), or (None, None)."""
        potential = self.potential_key_source(cls)
        if potential is None:
            return None, None
        if not any(a in self.targets for a in self.pipeline.ancestors.get(cls, ())):
            return 0, 0
        waiting = max(len(potential) - in_key_source, 0)
        if not waiting:
            return 0, 0
        failed = [k for above in self.pipeline.ancestors[cls] for k in self.failed_keys(above)]
        if not failed:
            return waiting, 0
        ks = self._restricted(key_source(cls))
        return waiting, len((potential - ks) & failed)  # a list restricts by any of its keys: each counted once

    def failed_keys(self, cls) -> list[dict]:
        """The keys of ``cls`` whose make failed or was ignored (jobs rows)."""
        if cls not in self._failed:
            target = self.targets[cls]
            conn = target.connection
            if not conn.has_table(conn.dialect.table(target.database, target.jobs_table)):
                self._failed[cls] = []
                return []
            rows = jobrows.select(conn, target.database, table_name=target.table_name, statuses=("error", "ignore"),
                                  jobs_table_name=target.jobs_table).fetch("key", as_dict=True)
            keys = (r["key"] if isinstance(r["key"], dict) else jobrows.unpack_key(r["key"]) for r in rows)
            self._failed[cls] = [k for k in keys if k]
        return self._failed[cls]

    # -------------------------------------------------------------------------------- potential key sources
    def potential_key_source(self, cls):
        """The join of cls's primary parents with pipeline parents replaced by their potential contents (the
        default key source, as DataJoint builds it); None when it cannot be foreseen (a custom key_source)."""
        if custom_key_source(cls):
            return None
        query = None
        for parent, renames in self._primary_parents(cls):
            contents = self._potential_contents(parent)
            if contents is None:
                return None
            part = contents.proj(**renames) if renames else contents.proj()
            if hasattr(part, "make_subquery") and contents is not parent:
                part = part.make_subquery()  # DataJoint would name a base table twice in one FROM clause
            query = part if query is None else query * part
        return self._restricted(query) if query is not None else None

    def _primary_parents(self, cls) -> list[tuple]:
        """(parent table, {attribute here: attribute there} where they differ) for each primary foreign key."""
        from .djtarget import is_datajoint_class

        if is_datajoint_class(cls):
            if self.restrictions:  # djhpc's restrictions are not DataJoint's: nothing foreseen under them
                return [(None, {})]
            return [(parent, {a: r for a, r in props["attr_map"].items() if a != r} if props.get("aliased") else {})
                    for parent, props in cls().parents(primary=True, as_objects=True, foreign_key_info=True)]
        return [(fk.parent, {c: p for c, p in zip(fk.attributes, fk.parent_attributes, strict=True) if c != p})
                for fk in cls._declared_spec.foreign_keys if fk.in_key]

    def _potential_contents(self, parent):
        """What a parent table will hold: itself, or for a pipeline table with one row per key source key, its
        potential key source."""
        if parent is None:
            return None
        table = parent() if isinstance(parent, type) else parent
        cls = self.by_full.get(table.full_table_name)
        if cls is None:
            return table
        potential = self.potential_key_source(cls)
        if potential is None or sorted(potential.primary_key) != sorted(cls().primary_key):
            return None
        return potential

    def _restricted(self, query):
        for r in self.restrictions:
            query = query & r
        return query


"""How far a pipeline is, table by table: made, ready, running, failed, waiting for inputs, blocked upstream.

A table's key source holds only the keys whose inputs are made. The keys still to come are those of its
*potential* key source: the same join with every pipeline table above it replaced by what that table will hold
once its own inputs are made (its potential key source, when its primary key is its key source's: one row per
key). ``waiting`` is what the potential key source adds to the key source; ``blocked``, the part of it that
depends on a key that failed (or was ignored) upstream and so will not come without a fix. A table with a
custom ``key_source``, or one whose make inserts several keys per key source key, cannot be foreseen: its
keys to come are counted only as far as they are already in its key source (``waiting``/``blocked`` None).
"""

from __future__ import annotations

from . import jobrows
from .pipeline import Pipeline

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
        blocked = set()
        ks = self._restricted(self._key_source(cls))
        for above in self.pipeline.ancestors[cls]:
            failed = self.failed_keys(above)
            if failed:
                to_come = potential - ks
                names = to_come.primary_key
                blocked |= {tuple(k[n] for n in names) for k in (to_come & failed).fetch(*names, as_dict=True)}
        return waiting, len(blocked)

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
        """The join of cls's primary parents with pipeline parents replaced by their potential contents; None
        when it cannot be foreseen (a DataJoint table, a custom key_source)."""
        from .autopopulate import AutoPopulate

        if not issubclass(cls, AutoPopulate) or _custom_key_source(cls):
            return None
        query = None
        for fk in [fk for fk in cls._declared_spec.foreign_keys if fk.in_key]:
            parent = self._potential_contents(fk.parent)
            if parent is None:
                return None
            renames = {c: p for c, p in zip(fk.attributes, fk.parent_attributes, strict=True) if c != p}
            part = parent.proj(**renames) if renames else parent.proj()
            query = part if query is None else query * part
        return self._restricted(query) if query is not None else None

    def _potential_contents(self, parent):
        """What a parent table will hold: itself, or for a pipeline table with one row per key source key, its
        potential key source."""
        table = parent() if isinstance(parent, type) else parent
        cls = self.by_full.get(table.full_table_name)
        if cls is None:
            return table
        potential = self.potential_key_source(cls)
        if potential is None or sorted(potential.primary_key) != sorted(cls().primary_key):
            return None
        return potential

    def _key_source(self, cls):
        ks = cls().key_source
        return ks() if isinstance(ks, type) else ks

    def _restricted(self, query):
        for r in self.restrictions:
            query = query & r
        return query


def _custom_key_source(cls) -> bool:
    return any("key_source" in vars(k) for k in cls.__mro__ if not k.__module__.startswith(("djhpc.", "datajoint.")))

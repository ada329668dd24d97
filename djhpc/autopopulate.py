"""AutoPopulate: populate(), progress() and key_source of Imported and Computed tables (DataJoint's names).

The loop itself is in populate.py; this mixin gives it a table, its key source and options.
"""

from __future__ import annotations

import time

from .errors import UsageError
from .populate import PopulateOptions, run
from .processes import run as processes_run
from .processes import worker_count
from .query import Query
from .reservation import Reservations, Worker

__all__ = ["AutoPopulate"]


class AutoPopulate:
    """populate(), progress() and key_source for Imported and Computed tables."""

    _auto_populated = True

    @property
    def key_source(self) -> Query:
        """The join of the primary-key parents' keys (a class may override it with any query)."""
        spec = type(self)._declared_spec
        parents = [fk for fk in spec.foreign_keys if fk.in_key]
        if not parents:
            raise UsageError(
                f"{type(self).__name__} has no primary-key parent (-> Parent above ---): define key_source"
            )
        query = None
        for fk in parents:
            renames = {c: p for c, p in zip(fk.attributes, fk.parent_attributes, strict=True) if c != p}
            part = fk.parent.proj(**renames) if renames else fk.parent.proj()
            query = part if query is None else query * part
        return query

    def _key_source(self) -> Query:
        ks = self.key_source
        if isinstance(ks, type):
            ks = ks()
        return ks

    # ---------------------------------------------------------------- progress
    def progress(self, *restrictions, display=False, detail=False):
        """(remaining, total) from counting queries, never fetching keys; ``detail=True`` returns a dict that
        adds the jobs table's reserved, error, ignore and pending counts."""
        ks = self._key_source()
        for r in restrictions:
            ks = ks & r
        counts = self._count_all(ks, restrictions, detail)
        total, remaining = counts["total"], counts["remaining"]
        if display:
            done = total - remaining
            pct = 100.0 * done / total if total else 100.0
            print(f"{type(self).__name__}: Completed {done:,} of {total:,} ({pct:.1f}%)   "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        return counts if detail else (remaining, total)

    def _count_all(self, ks: Query, restrictions, detail: bool) -> dict:
        """Every count in one statement. With the default key source, no restriction and the same primary
        key, every row of the table is a key-source key (its foreign keys say so), so done = COUNT(*) of the
        table instead of an anti-join over the whole key source."""
        c = self.connection
        default_source = not any("key_source" in vars(k) for k in type(self).__mro__ if k is not AutoPopulate)
        parts = [ks.count_sql()]
        if default_source and not restrictions and sorted(ks.primary_key) == sorted(self.primary_key):
            parts.append((f"SELECT COUNT(*) FROM {self.full_table_name}", ()))
            remaining_is_difference = True
        else:
            parts.append((ks.proj() - self).count_sql())
            remaining_is_difference = False
        statuses = ("reserved", "error", "ignore", "pending")
        if detail:
            jobs = Reservations(c, type(self).database, Worker())
            jobs.ensure_table()
            parts += [jobs.count_statement(self.table_name, status) for status in statuses]
        sql = "SELECT " + ", ".join(f"({p})" for p, _ in parts)
        row = c.query(sql, tuple(v for _, ps in parts for v in ps), context="progress").fetchone()
        total = int(row[0])
        remaining = total - int(row[1]) if remaining_is_difference else int(row[1])
        out = {"total": total, "done": total - remaining, "remaining": remaining}
        if detail:
            out.update({s: int(n) for s, n in zip(statuses, row[2:], strict=True)})
            if restrictions:  # the jobs rows of the restricted keys only, as the total and remaining are
                out.update(jobs.counts_within(self.table_name, lambda keys: len(ks & keys)))
        return out

    def parpopulate(self, *restrictions, **kwargs):
        """populate with reservation: safe to run from many processes at once."""
        kwargs["reserve_jobs"] = True
        return self.populate(*restrictions, **kwargs)

    # ---------------------------------------------------------------- populate
    def populate(self, *restrictions, keys=None, processes=1, **options):
        """Call make(key) for every key of the restricted key source that is not in the table yet.

        Options are those of ``PopulateOptions`` (DataJoint's ``reserve_jobs``, ``suppress_errors``, ``order``,
        ``limit``, ``max_calls``, ``display_progress``, ``make_kwargs``, ... and djhpc's own). ``keys``, as in
        DataJoint, makes only those keys (of the key source). ``processes=N`` (None: every core) runs N processes
        on this machine that share the keys through the jobs table (djhpc/processes.py)."""
        try:
            opts = PopulateOptions(**options)
        except TypeError as e:
            raise UsageError(f"populate() got an unknown option ({e}): see help(PopulateOptions)") from e
        opts.make_kwargs = opts.make_kwargs or {}
        if keys is not None:
            restrictions = (*restrictions, [dict(k) for k in keys])  # an OR of the keys; none: nothing to make
        if processes != 1:
            n = worker_count(processes, self.progress(*restrictions)[0])
            if n > 1:
                return processes_run(self, restrictions, opts, n)
        return run(self, restrictions, opts)

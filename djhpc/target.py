"""What the populate loop fills: a djhpc table (``TableTarget``) or, in djtarget.py, a table written with DataJoint.

A target says where its pending keys come from, how a key is encoded for the reservation statement, and how one
key is made: make() in a transaction closed by the reservation's closing statements (``make`` returns the
``PendingCommit`` of that commit). The loop (populate.py) knows nothing else of the table.
"""

from __future__ import annotations

from collections.abc import Callable

from . import blob, values
from .db.pending import PendingCommit
from .errors import DataError, UsageError
from .history import HISTORY_TABLE
from .reservation import JOBS_TABLE

__all__ = ["TableTarget", "make_kind", "target_for"]


def target_for(table_class):
    """The target that fills ``table_class``: a djhpc table, or a table written with DataJoint."""
    from .djtarget import DataJointTarget, is_datajoint_class

    return DataJointTarget(table_class) if is_datajoint_class(table_class) else TableTarget(table_class())


def make_kind(cls) -> str:
    """Which make protocol a table class follows: make_fetch/compute/insert, make, or _make_tuples."""
    if all(hasattr(cls, m) for m in ("make_fetch", "make_compute", "make_insert")):
        return "tripartite"
    if callable(getattr(cls, "make", None)) and "make" in _defined_names(cls):
        return "make"
    if callable(getattr(cls, "_make_tuples", None)):
        return "_make_tuples"
    raise UsageError(f"{cls.__name__} defines no make(self, key): write one to populate it")


class TableTarget:
    """A djhpc Imported or Computed table."""

    jobs_table = JOBS_TABLE
    history_table = HISTORY_TABLE

    def __init__(self, table):
        self.table = table
        self.cls = type(table)
        self.name = self.cls.__name__
        self.connection = table.connection
        self.database = self.cls.database
        self.table_name = table.table_name
        self.full_table_name = table.full_table_name
        self.kind = make_kind(self.cls)
        # the BEGIN of the next make may ride in a commit's packet, unless make_fetch runs before it
        self.begins_ahead = self.kind != "tripartite"
        self.wait_for_commit = self.connection.is_sqlite

    def candidates(self, restrictions):
        """(query of the pending keys, names of the key's attributes) under ``restrictions``."""
        ks = self.table._key_source()
        for r in restrictions:
            ks = ks & r
        names = ks.primary_key
        missing = [n for n in names if n not in self.table.heading]
        if missing:
            raise UsageError(f"key_source attribute '{missing[0]}' is not in {self.name}'s primary key")
        return ks.proj() - self.table, names

    def progress(self, restrictions=()) -> dict:
        """total, done, remaining (the key source under ``restrictions``) and the jobs rows by status."""
        return self.table.progress(*restrictions, detail=True)

    def check_alone(self):
        """Nothing else fills a djhpc table behind djhpc's back: nothing to check."""

    @property
    def make_timeout(self) -> float | None:
        """Seconds one make may run, from the class's ``make_timeout`` attribute (None: no limit)."""
        return getattr(self.cls, "make_timeout", None)

    def reconnect(self):
        """A fresh connection for make (after a time limit cut one short)."""
        self.connection.reconnect()

    def encode(self, key: dict, names) -> tuple:
        """The key's values as the reservation statement compares them with the table's columns."""
        d = self.connection.dialect.name
        return tuple(values.encode(self.table.heading[a], key[a], d) for a in names)

    def make(self, key: dict, closing: Callable[[], tuple[list, int | None]], *, make_kwargs: dict,
             begin_next: bool, wait: bool) -> PendingCommit:
        """make(key) in one transaction, ended by the statements ``closing()`` returns (and the fence's position).

        Writes are deferred (SQLite: no write lock while make computes; MySQL: make's inserts travel with the
        closing statements in one round trip). With ``wait=False`` (MySQL) the commit's reply is read later."""
        conn, cls = self.connection, self.cls
        fetched = computed = None
        if self.kind == "tripartite":
            fetched = cls.make_fetch(self.table, dict(key))
            computed = cls.make_compute(self.table, dict(key), *_as_tuple(fetched))
        conn.start_transaction()
        cls._allow_insert = True
        cls._inserted_keys = []
        conn.defer_writes = True
        try:
            self._call_make(key, fetched, computed, make_kwargs)
            statements, fence_at = closing()
            return conn.commit_with(statements, begin_next=begin_next, wait=wait, context="complete",
                                    one_row_at=fence_at)
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.drop_deferred()
            cls._allow_insert = False
            cls._inserted_keys = None

    def inserted(self) -> list:
        """The primary keys the running make() inserted into the table so far (for a message)."""
        return list(self.cls._inserted_keys or [])

    def _call_make(self, key, fetched, computed, make_kwargs):
        cls = self.cls
        if self.kind == "tripartite":
            again = cls.make_fetch(self.table, dict(key))
            if blob.pack(_as_list(again), compress=False) != blob.pack(_as_list(fetched), compress=False):
                raise DataError("make_fetch returned other data inside the transaction: the inputs changed "
                                "while make_compute ran; populate again")
            cls.make_insert(self.table, dict(key), *_as_tuple(computed))
        elif self.kind == "make":
            self.table.make(dict(key), **make_kwargs)
        else:
            self.table._make_tuples(dict(key))


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _as_list(x):
    return list(x) if isinstance(x, tuple) else [x]


def _defined_names(cls) -> set:
    names = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("djhpc."):
            continue
        names |= set(vars(klass))
    return names

"""The benchmark's pipeline, the one definition djhpc's side of ``python -m bench`` declares: Item, the key
source, and Result, whose make() doubles the item.

``declare(schema, on_make)`` declares both on a schema the caller made (its name and connection), so a bench
worker, the profiler and a test declare the same tables; ``on_make(key)`` runs first in each make() (the bench
worker's log and sleep). bench/worker_datajoint.py declares the same two tables in DataJoint's own words: it
runs in DataJoint's interpreter, which has no djhpc.
"""

from __future__ import annotations

import djhpc as dj


def declare(schema, on_make=None):
    """(Item, Result) declared on ``schema``."""

    @schema
    class Item(dj.Manual):
        definition = """
        item : int
        ---
        value : int
        """

    @schema
    class Result(dj.Computed):
        definition = """
        -> Item
        ---
        doubled : int
        """

        def make(self, key):
            if on_make is not None:
                on_make(key)
            self.insert1(dict(key, doubled=2 * key["item"]))

    return Item, Result

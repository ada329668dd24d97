"""Proposed djhpc changes, applied by monkeypatching inside a benchmark worker to measure them first.

``python -m bench --djhpc-patch NAME`` applies NAME in every djhpc worker. Nothing here changes djhpc
itself: a prototype that pays off is described to the owner of the patched module, who writes it properly.
"""

from __future__ import annotations

# The prototypes measured earlier (reseek, hold-quarter-second, progress-counts) are now part of djhpc
# (populate.py: KeyWalker.reseek, _Runner._adapt_batch, AutoPopulate._count_all);
# bench/RESULTS.md says what each changed.


def batch8():
    """Cap the reservation batch at 8 keys instead of 32: fewer keys held, so fewer lost to a collision."""
    from djhpc import populate as p

    p.MAX_BATCH = 8


PATCHES = {"batch8": batch8}


def apply(names):
    for name in names or ():
        PATCHES[name]()

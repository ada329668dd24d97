"""Reservations driven step by step by the reservation tests."""

from __future__ import annotations

from djhpc.reservation import Reservations, Worker


def quiet(db, schema, **identity) -> Reservations:
    """Reservations without the heartbeat thread and session lock (these tests drive every step by hand)."""
    w = Worker.current(db)
    for k, v in identity.items():
        setattr(w, k, v)
    r = Reservations(db, schema, w)
    r._heartbeat = object()
    return r

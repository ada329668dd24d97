"""The few PyMySQL internals djhpc relies on, in one place: send a packet now, read its reply later.

PyMySQL has no public call for "send a query, read the reply later" (pipelining one commit behind the next
make). These functions are the only code that touches its private methods; ``tests/db/test_wire.py`` pins the
driver versions they were checked against, so an upgrade that moves them fails there first.
"""

from __future__ import annotations

import pymysql
from pymysql.constants import COMMAND
from pymysql.cursors import RE_INSERT_VALUES

#: PyMySQL releases whose private ``_execute_command``, ``_read_query_result`` and ``_result`` were checked
CHECKED_VERSIONS = ("1.1", "1.2")

__all__ = ["CHECKED_VERSIONS", "RE_INSERT_VALUES", "has_more", "read_first", "read_next", "send"]


def send(raw: pymysql.connections.Connection, text: str) -> None:
    """Send ``text`` as one COM_QUERY packet without reading its reply."""
    raw._execute_command(COMMAND.COM_QUERY, text)


def read_first(raw: pymysql.connections.Connection) -> None:
    """Read the reply to the first statement of a packet sent by ``send`` (raises its error)."""
    raw._read_query_result()


def has_more(raw: pymysql.connections.Connection) -> bool:
    """Whether the packet's reply holds the result of another statement."""
    return raw._result is not None and raw._result.has_next


def read_next(raw: pymysql.connections.Connection) -> None:
    """Read the reply to the next statement of the packet (raises its error)."""
    raw.next_result()

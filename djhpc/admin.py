"""DataJoint's administration helpers: change the connected user's password, list and kill server connections.

MariaDB/MySQL only: SQLite has neither users nor server connections.
"""

from __future__ import annotations

import logging
from getpass import getpass

from .db.connection import conn
from .errors import DatabaseError, UsageError
from .settings import config
from .utils import user_choice

log = logging.getLogger(__name__)

_PROCESSES = "SELECT * FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"


def _server(connection, what: str):
    connection = conn() if connection is None else connection
    if connection.is_sqlite:
        raise UsageError(f"{what} needs a MariaDB/MySQL server: an SQLite database has no users or connections")
    return connection


def set_password(new_password: str | None = None, connection=None, update_config: bool | None = None) -> None:
    """Change the password of the connection's user (asked twice at a prompt when not given). With
    ``update_config`` (asked when None) ``dj.config["database.password"]`` takes it and is saved to
    ``dj_local_conf.json``. The password goes to the server as a parameter, never into a log."""
    connection = _server(connection, "set_password")
    if new_password is None:
        new_password = getpass("New password: ")
        if getpass("Confirm password: ") != new_password:
            log.warning("the two passwords differ: the password was not changed")
            return
    version = connection.query("SELECT VERSION()").fetchone()[0]
    # MariaDB lets a user set its own password only so; MySQL 8 removed PASSWORD()
    sql = "SET PASSWORD = PASSWORD(%s)" if "mariadb" in version.lower() else "ALTER USER USER() IDENTIFIED BY %s"
    connection.query(sql, (new_password,), context="set_password")
    log.info("password changed")
    if update_config or (update_config is None and user_choice("Update local setting?") == "yes"):
        config["database.password"] = new_password
        config.save_local(verbose=True)


def _processes(connection, restriction, order_by=None) -> list[dict]:
    sql = _PROCESSES + ("" if restriction is None else f" AND ({restriction})")
    if order_by is not None:
        sql += " ORDER BY " + (order_by if isinstance(order_by, str) else ", ".join(order_by))
    rows = connection.query(sql, None, as_dict=True).fetchall()
    return [{k.lower(): v for k, v in row.items()} for row in rows]


def kill(restriction: str | None = None, connection=None, order_by=None) -> None:
    """List the server's other connections (``restriction``: an SQL condition on PROCESSLIST's columns, e.g.
    ``"TIME > 600"``) and kill the ones whose id is typed, until ``q``."""
    connection = _server(connection, "kill")
    while True:
        print("  ID USER         HOST          STATE         TIME    INFO")
        print("+--+ +----------+ +-----------+ +-----------+ +-----+")
        for p in _processes(connection, restriction, order_by or "ID"):
            print(f"{p['id']:>4} {p['user'] or '':<12} {p['host'] or '':<12} {p['state'] or '':<12} "
                  f"{p['time'] or 0:>7}  {p['info'] or ''}")
        answer = input('process to kill or "q" to quit > ').strip()
        if answer == "q":
            return
        if answer.isdigit():
            _kill_one(connection, int(answer))


def _kill_one(connection, pid: int) -> bool:
    try:
        connection.query("KILL %s", (pid,), context="kill")
    except DatabaseError as exc:
        log.warning("process %d not killed: %s", pid, exc)
        return False
    return True


def kill_quick(restriction: str | None = None, connection=None) -> int:
    """Kill every other connection matching ``restriction`` without asking; returns how many were killed."""
    connection = _server(connection, "kill_quick")
    return sum(_kill_one(connection, int(p["id"])) for p in _processes(connection, restriction))

"""What ``djhpc submit`` sent to the scheduler, kept in the database so that later commands find it."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from dataclasses import dataclass

SUBMISSIONS_TABLE = "~submissions"


@dataclass
class Submission:
    id: int
    job_id: str
    scheduler: str
    target: str
    table_name: str
    array_size: int
    index_offset: int
    total_tasks: int
    submitted_at: dt.datetime  # UTC
    user: str
    host: str
    script: str
    settings: dict


class Submissions:
    def __init__(self, connection, schema: str):
        self.connection = connection
        self.table = connection.dialect.table(schema, SUBMISSIONS_TABLE)
        self._ready = False

    def _run(self, name, params=()):
        if not self._ready:
            self.connection.run("create_submissions", submissions=self.table)
            self._ready = True
        return self.connection.run(name, params, submissions=self.table)

    def record(self, *, job_id: str, scheduler: str, target: str, table_name: str, array_size: int,
               index_offset: int = 0, total_tasks: int | None = None, script: str = "", settings: dict | None = None):
        """Remember one submitted array (settings must hold no password: profiles never do)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        self._run("record_submission", (str(job_id), scheduler, target, table_name, int(array_size),
                                        int(index_offset), int(total_tasks or array_size), user,
                                        socket.gethostname(), str(script), json.dumps(settings or {}, default=str)))

    def recent(self, limit: int = 20) -> list[Submission]:
        rows = self._run("list_submissions", (int(limit),)).fetchall()
        out = []
        for r in rows:
            when = r[8] if isinstance(r[8], dt.datetime) else dt.datetime.fromisoformat(str(r[8]))
            out.append(Submission(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7]), when, r[9],
                                  r[10], r[11], json.loads(r[12]) if r[12] else {}))
        return out

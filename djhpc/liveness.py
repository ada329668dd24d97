"""Is a reservation's worker still alive? Evidence, most certain first, and the reaper that acts on it.

1. Same host: the PID is gone, a zombie, or another process (start time differs: PIDs are reused),
   or the host rebooted (boot id differs). A stopped process (SIGSTOP) is not judged here. A live one (same
   PID and start time, running) is never reclaimed by its lease: on SQLite the lease is written and judged by
   each process's own clock, and a skewed clock must not take a live worker's keys.
2. MySQL/MariaDB: the worker's session lock (``GET_LOCK`` on its work connection) is free, so its
   session is gone. Not trusted while the server has been up for less than a lease, because a
   restart frees every lock while the workers are reconnecting.
3. The scheduler says the cluster job or array task holding it has ended.
4. The lease: no heartbeat for ``lease_seconds`` (on the database clock).

Reclaiming is a compare-and-set on the reservation's token, so any number of reapers is safe and a
late owner can no longer complete, fail or release the key (see reservation.py). After
``max_deaths`` reclaims of the same key it becomes an ``error`` with every attempt listed.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

import psutil

from .errors import DatabaseError
from .reservation import LEASE_SECONDS, Reservations, ReservedRow, boot_id, lock_name

__all__ = ["LEASE_SECONDS", "MAX_DEATHS", "Reaper", "Reclaimed", "ReservedRow", "judge", "lock_name", "pid_state"]

log = logging.getLogger(__name__)

MAX_DEATHS = 3
CLOCK_SKEW_SECONDS = 30.0  # a clock this far from the database's (or another writer's) is said to be off
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY",
                   "BOOT_FAIL", "DEADLINE"}


def pid_state(pid: int, pid_start: float) -> str:
    """'gone', 'alive' or 'stopped' for a process on this host, telling reused PIDs apart."""
    try:
        proc = psutil.Process(int(pid))
        status = proc.status()
        if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return "gone"
        if pid_start and abs(proc.create_time() - pid_start) > 1.0:
            return "gone"
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
            return "stopped"
        return "alive"
    except psutil.NoSuchProcess:
        return "gone"
    except (psutil.AccessDenied, ValueError):
        return "alive"


@dataclass
class Reclaimed:
    table_name: str
    key: dict
    host: str
    pid: int
    reason: str
    status: str  # 'pending' (will run again) or 'error' (gave up: died too often)


def judge(row: ReservedRow, *, lock_free: bool | None, scheduler_state: str | None, lease_seconds: float,
          host: str | None = None, this_boot: str | None = None) -> str | None:
    """The reason to believe the row's worker is dead, or None."""
    host = socket.gethostname() if host is None else host
    this_boot = boot_id() if this_boot is None else this_boot
    alive_here = False
    if row.host == host:
        if row.boot_id and this_boot and row.boot_id != this_boot:
            return "rebooted"
        state = pid_state(row.pid, row.pid_start)
        if state == "gone":
            return "pid-gone"
        alive_here = state == "alive"
    if lock_free:
        return "session-gone"
    if scheduler_state in TERMINAL_STATES:
        return f"scheduler:{scheduler_state}"
    if not alive_here and row.heartbeat_age is not None and row.heartbeat_age > lease_seconds:
        return "lease-expired"
    return None


class Reaper:
    """Finds dead reservations of one schema and gives their keys back, atomically."""

    def __init__(self, reservations: Reservations, *, lease_seconds: float = LEASE_SECONDS,
                 max_deaths: int = MAX_DEATHS,
                 scheduler=None, scheduler_every_seconds: float = 0):
        self.res = reservations
        self.connection = reservations.connection
        self.lease_seconds = lease_seconds
        self.max_deaths = max_deaths
        self.scheduler = scheduler
        # workers ask the scheduler rarely: 200 array tasks polling squeue would load the controller
        self.scheduler_every_seconds = scheduler_every_seconds
        self._next_scheduler_check = 0.0
        self.clock = ClockWatch()
        self.owners_seen = 0  # workers holding reservations at the last look, this one included


    def reserved_rows(self) -> list[ReservedRow]:
        return self.res.reserved_rows()

    def _free_locks(self, owners: list[str]) -> dict[str, bool | None]:
        if self.connection.is_sqlite or not owners:
            return {}
        uptime, skew = self.res.server_clock()
        self.clock.check_server(skew)
        if uptime < self.lease_seconds:
            log.info("database restarted %.0f s ago: waiting a lease before trusting session locks", uptime)
            return {}
        try:
            return self.res.free_session_locks(owners)
        except DatabaseError as e:
            log.info("session locks are not available (%s): judging by lease only", e)
            return {}

    def _scheduler_states(self, rows) -> dict:
        if self.scheduler is None or time.monotonic() < self._next_scheduler_check:
            return {}
        self._next_scheduler_check = time.monotonic() + self.scheduler_every_seconds
        ids = sorted({r.sched_job_id for r in rows if r.sched_job_id and r.sched_job_id not in ("local", "parallel")})
        if not ids:
            return {}
        try:
            states = self.scheduler.task_states(ids)
        except Exception as e:  # the scheduler is one signal among four: carry on without it
            log.warning("could not ask the scheduler (%s): judging without it", e)
            return {}
        return {k: str(getattr(v, "value", v)) for k, v in states.items()}

    def reap(self, *, dry_run: bool = False) -> list[Reclaimed]:
        """Reclaim every reservation whose worker is dead; returns what was reclaimed and why."""
        every = self.reserved_rows()
        self.owners_seen = len({r.owner for r in every})
        rows = [r for r in every if r.owner != self.res.worker.owner]
        if not rows:
            return []
        if self.connection.is_sqlite:
            self.clock.check_writers(rows, self.lease_seconds)
        locks = self._free_locks(sorted({r.owner for r in rows if r.owner}))
        states = self._scheduler_states(rows)
        # of a dead worker's batch only the first key left was being made (or about to be): only it counts
        # a death; the keys queued behind it go back without one, so a crash never poisons its neighbours
        first_of_batch = {}
        for row in rows:
            if row.token not in first_of_batch or row.position < first_of_batch[row.token]:
                first_of_batch[row.token] = row.position
        out = []
        for row in rows:
            task_key = f"{row.sched_job_id}_{row.sched_task_id}" if row.sched_task_id else row.sched_job_id
            reason = judge(row, lock_free=locks.get(row.owner), scheduler_state=states.get(task_key),
                           lease_seconds=self.lease_seconds)
            if reason is None:
                continue
            if dry_run:
                out.append(Reclaimed(row.table_name, row.key, row.host, row.pid, reason, "dry-run"))
                continue
            done = self._reclaim(row, reason, died_on_it=row.position == first_of_batch[row.token])
            if done:
                out.append(done)
        return out

    def _reclaim(self, row: ReservedRow, reason: str, died_on_it: bool = True) -> Reclaimed | None:
        deaths = row.deaths + (1 if died_on_it else 0)
        status = "error" if deaths >= self.max_deaths else "pending"
        attempt = {"outcome": "died" if died_on_it else "queued-behind", "reason": reason, "host": row.host,
                   "pid": row.pid, "job": row.sched_job_id, "task": row.sched_task_id}
        history = row.history + [attempt]
        message = ""
        if status == "error":
            message = (f"worker died {deaths} times on this key (last: {reason}); out of memory or a crash? "
                       "Fix it, then djhpc jobs retry")
        if not self.res.reclaim(row, status=status, death=died_on_it, history=history, message=message):
            return None  # another reaper was first, or the worker finished after all
        log.warning("reclaimed %s %s from %s pid %s (%s)%s", row.table_name, row.key, row.host, row.pid, reason,
                    "; gave up: error" if status == "error" else "")
        self._kill_zombie_session(row.owner)
        return Reclaimed(row.table_name, row.key, row.host, row.pid, reason, status)

    def _kill_zombie_session(self, owner: str):
        """If the dead owner's session still exists (a stalled process), end it so its row locks go."""
        if self.connection.is_sqlite or not owner:
            return
        try:
            holder = self.res.session_of(owner)
            if holder and holder != self.connection.connection_id:
                self.connection.query(f"KILL CONNECTION {int(holder)}")
                log.warning("ended the database session %s of the stalled owner", holder)
        except Exception as e:  # best effort: without the privilege, the zombie's locks time out instead
            log.info("could not end the stalled owner's session: %s", e)


class ClockWatch:
    """Says once when this process's clock is far from the database server's (MySQL), or from the clock another
    process on this host wrote its heartbeat with (SQLite, where every process stamps leases with its own)."""

    def __init__(self, tolerance: float = CLOCK_SKEW_SECONDS):
        self.tolerance = tolerance
        self.said: set = set()

    def _once(self, what, message, *args):
        if what not in self.said:
            self.said.add(what)
            log.warning(message, *args)

    def check_server(self, skew: float | None):
        """``skew``: the server's clock minus this process's, in seconds."""
        if skew is not None and abs(skew) > self.tolerance:
            self._once("server", "this host's clock is %.0f s %s the database server's: leases are judged by the "
                       "server's clock, but logs and times shown here are off; keep the clocks in sync (NTP)",
                       abs(skew), "ahead of" if skew < 0 else "behind")

    def check_writers(self, rows, lease_seconds: float):
        """SQLite: a heartbeat stamped in this clock's future, or a live local worker's heartbeat older than a
        lease, means two clocks disagree (the rows are kept: a live worker's keys are never reclaimed by lease)."""
        host = socket.gethostname()
        for row in rows:
            age = row.heartbeat_age
            if age is None:
                continue
            if age < -self.tolerance:
                self._once(("ahead", row.owner), "the clock of %s pid %s is %.0f s ahead of this process's (its "
                           "heartbeat is stamped in the future): on SQLite each process stamps and judges leases "
                           "by its own clock; keep the clocks in sync (NTP)", row.host, row.pid, -age)
            elif age > lease_seconds and row.host == host and pid_state(row.pid, row.pid_start) == "alive":
                self._once(("behind", row.owner), "pid %s on this host is alive but its heartbeat is %.0f s old by "
                           "this process's clock: one of the two clocks is off (or its heartbeat is stuck); its "
                           "keys are left to it", row.pid, age)

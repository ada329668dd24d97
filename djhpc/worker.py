"""``djhpc work``: what each array task runs. One populate loop with reservation, a log line per key,
graceful stop on SIGTERM/SIGINT/SIGUSR1/SIGUSR2, and an exit code that tells the scheduler what happened.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from dataclasses import dataclass, field, replace

from . import populate, processes, signals
from .errors import ConnectError, DjhpcError, UsageError
from .history import History
from .populate import PopulateOptions
from .schedulers import taskenv
from .signals import Interrupted, stop_signals
from .target import target_for
from .walltime import Walltime

log = logging.getLogger(__name__)

EXIT_OK = 0  # nothing left for this worker
EXIT_FAILURES = 1  # some makes failed (their error rows are in the jobs table)
EXIT_USAGE = 2
EXIT_DATABASE_UNREACHABLE = 69  # EX_UNAVAILABLE: the database stayed unreachable
EXIT_INTERRUPTED = signals.EXIT_INTERRUPTED  # 75, EX_TEMPFAIL: stopped by a signal, keys given back; resubmit


def _work_defaults() -> PopulateOptions:
    # a worker always reserves, keeps going past a failed key, and waits before retrying one
    return PopulateOptions(reserve_jobs=True, suppress_errors=True, retry_delay_seconds=30.0)


@dataclass
class WorkOptions:
    """What ``djhpc work`` runs: populate's own options, the restrictions, and where the key log goes."""

    populate: PopulateOptions = field(default_factory=_work_defaults)
    restrictions: list = field(default_factory=list)
    log_path: str | None = None
    processes: int = 1  # populate loops in forked processes of this task (djhpc work --processes)


class KeyLog:
    """One line per key event: time, event, table, key, seconds, outcome, message (tab-separated)."""

    def __init__(self, table_name: str, path: str | None):
        self.table_name = table_name
        try:
            self.stream = open(path, "a", buffering=1, encoding="utf-8") if path else sys.stderr  # noqa: SIM115
        except OSError as e:
            raise UsageError(f"cannot write the key log {path} ({e.strerror}): choose another --log") from e

    def __call__(self, key, started, ended, outcome, message):
        now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        seconds = "" if ended is None else f"{ended - started:.3f}"
        event = "start" if outcome == "start" else "end"
        fields = [now, event, self.table_name, json.dumps(key, default=str, sort_keys=True), seconds,
                  "" if outcome == "start" else outcome, message.splitlines()[0][:300] if message else ""]
        self.stream.write("\t".join(fields) + "\n")

    def close(self):
        if self.stream is not sys.stderr:
            self.stream.close()


def scheduler_for_reaping():
    """The scheduler to ask about dead tasks, when this worker runs under one that has a CLI here."""
    name = taskenv.current().scheduler
    if name not in ("slurm", "pbs", "torque"):
        return None
    try:
        from .schedulers import get_scheduler

        return get_scheduler(name)
    except DjhpcError:
        return None


def guarded(loop, keylog: KeyLog):
    """(None, what ``loop()`` returned), or (the exit code, None) when it stopped early: a stop signal (the keys
    given back), a KeyboardInterrupt make raised, a database that stayed away. The first stop signal raises
    Interrupted (populate rolls back and gives the keys back); a second one, while that goes on, leaves at once
    with EXIT_INTERRUPTED. The key log is closed either way."""
    with stop_signals(exit_code=EXIT_INTERRUPTED):
        try:
            return None, loop()
        except Interrupted as e:
            log.warning("%s: reservations released; submit again to continue", e)
            return EXIT_INTERRUPTED, None
        except KeyboardInterrupt:  # raised by make itself (SIGINT here raises Interrupted): that key's error
            log.warning("make raised KeyboardInterrupt: its key is an error (djhpc jobs retry runs it again); the "
                        "other reservations released")
            return EXIT_INTERRUPTED, None
        except ConnectError as e:
            log.error("%s", e)
            return EXIT_DATABASE_UNREACHABLE, None
        finally:
            keylog.close()


def task_share() -> tuple[float, float]:
    """(start, width) of this array task's share of the keys, which its processes' walks divide among them."""
    env = taskenv.current()
    start, count = env.position(), env.task_count
    if start is None or not count:
        return 0.0, 1.0
    return start, 1.0 / count


def work(table_class, options: WorkOptions) -> int:
    """Run one worker on ``table_class`` (a djhpc table, or one written with DataJoint); returns the exit code."""
    target = target_for(table_class)
    keylog = KeyLog(target.table_name, options.log_path)

    def loop():
        history = History(target.connection, target.database, target.history_table)
        walltime = Walltime.detect(lambda: history.typical_duration(target.table_name))
        if walltime:
            log.info("allocation ends at %s: keys that would not fit are left for the next run",
                     dt.datetime.fromtimestamp(walltime.end).astimezone().isoformat(timespec="seconds"))
        opts = replace(options.populate, reserve_jobs=True, on_key=keylog, walltime=walltime,
                       scheduler=scheduler_for_reaping())
        if options.processes > 1:
            log.info("%d processes, each a worker of its own", options.processes)
            return processes.run(target, options.restrictions, opts, options.processes, share=task_share())
        return populate.run(target, options.restrictions, opts)

    stopped, result = guarded(loop, keylog)
    if stopped is not None:
        return stopped
    log.info("%s: %d made, %d failed, %d skipped", target.name, result["success_count"],
             result["error_count"], result["skipped_count"])
    return EXIT_FAILURES if result["error_count"] else EXIT_OK

"""``populate(processes=N)``: N worker processes on this machine, each one populate loop with reservation.

DataJoint 0.14 hands the keys to a multiprocessing pool; here each child runs djhpc's own loop (populate.run) with
``reserve_jobs=True``, so the jobs table hands out the keys: each key is made once, a failing key gets its error
row, and a stopped child gives its keys back. As in DataJoint: ``None`` means every core, N is capped at the cores
this process may use and at the keys left, and one process (or one key) runs the ordinary loop here.

Children are forked (a table class defined in a notebook or a test cannot be pickled for spawn); a forked
``Connection`` opens its own session on first use and never touches the parent's. The children report to the
parent over a pipe in djhpc's blob format (no pickle): a line per key made or failed (the progress bar), then
their counts and errors. Ctrl-C (SIGINT) or SIGTERM to the parent stops every child the way ``djhpc work`` stops
(a child's SIGINT raises djhpc's Interrupted, not KeyboardInterrupt): the make in progress rolls back and its keys
are given back; the parent waits for them, then raises.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from dataclasses import replace
from multiprocessing.connection import wait

from . import blob, populate, signals
from .errors import UsageError
from .populate import PopulateOptions, PopulateResult

log = logging.getLogger(__name__)

__all__ = ["run", "usable_cores", "worker_count"]

# fork, not spawn: the children need the table classes as the parent has them, without pickling them
_CONTEXT = "fork"


def usable_cores() -> int:
    """The cores this process may run on (a batch job's allotment, not the whole node's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(processes, keys_left: int) -> int:
    """How many processes populate(processes=...) runs: DataJoint's rule (None: every core; never more than the
    cores or the keys left)."""
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 0):
        raise UsageError(f"processes must be a whole number >= 1, or None for every core (got {processes!r})")
    if not keys_left:
        return 1
    return min(n for n in (processes, keys_left, usable_cores()) if n)  # 0 or None: every core, as DataJoint


def run(table, restrictions, options: PopulateOptions, processes: int,
        share: tuple[float, float] = (0.0, 1.0)) -> PopulateResult:
    """populate() in ``processes`` forked children; their results summed as one PopulateResult. ``share``
    (start, width): the part of the keys whose walks the children divide (an array task's, in djhpc work)."""
    if table.connection.in_transaction:
        raise UsageError("populate() cannot run inside a transaction: call it outside 'with transaction'")
    options.check()
    context = multiprocessing.get_context(_CONTEXT)
    budget = _budget(options)
    tickets = context.Value("q", budget if budget is not None else -1)
    total = table.progress(*restrictions)[0] if options.display_progress else 0
    child_options = replace(options, reserve_jobs=True, display_progress=False, limit=None, max_calls=None)
    children = []
    try:
        for i in range(processes):
            reader, writer = context.Pipe(duplex=False)
            position = (share[0] + share[1] * i / processes) % 1.0
            child = context.Process(target=_child, name=f"populate-{i + 1}",
                                    args=(table, restrictions, replace(child_options, position=position),
                                          writer, tickets))
            child.start()
            writer.close()
            children.append(_Child(child, reader))
        with signals.stop_signals(signals=signals.LOOP_SIGNALS, exit_code=None):
            return _collect(children, options, total)
    finally:
        _stop(children)


def _budget(options: PopulateOptions) -> int | None:
    """The makes the children may start between them: limit and max_calls count for the whole call, as in
    DataJoint, where they cut the list of keys before it is shared out."""
    limits = [n for n in (options.limit, options.max_calls) if n is not None]
    return min(limits) if limits else None


class _Child:
    def __init__(self, process, reader):
        self.process = process
        self.reader = reader
        self.report: dict | None = None
        self.interrupted = False  # sent SIGINT once: a second one would cut short its giving keys back


def _collect(children, options: PopulateOptions, total: int) -> PopulateResult:
    """Read the children's reports until each has ended; raise what a child raised (suppress_errors=False), once
    the others have stopped and given their keys back, as DataJoint's pool stops at the first error."""
    result = PopulateResult()
    progress = populate._ProgressBar("Processes", total) if options.display_progress else None
    try:
        live = {c.reader: c for c in children}
        while live:
            for reader in wait(list(live)):
                child = live[reader]
                try:
                    message = blob.unpack(reader.recv_bytes())
                except EOFError:  # the child has ended (its last report was read before)
                    del live[reader]
                    child.process.join()
                    continue
                if message["event"] == "key":
                    if progress:
                        progress.advance()
                    continue
                child.report = message
                if message["event"] == "raised":
                    _interrupt(c for c in children if c is not child)
    finally:
        if progress:
            progress.close()
    raised = None
    for child in children:
        report = child.report or {"event": "died", "exitcode": child.process.exitcode}
        _add(result, report, options)
        if report["event"] == "raised":
            raised = raised or report
        elif report["event"] != "done":
            log.warning("%s stopped before its end (%s): its keys were given back, or are reclaimed as a dead "
                        "worker's", child.process.name, report.get("error", {}).get("text") or
                        f"exit code {report.get('exitcode')}")
    result._sync()
    if raised is not None:
        raise _exception(raised["error"])
    return result


def _add(result: PopulateResult, report: dict, options: PopulateOptions):
    result.success_count += int(report.get("success_count", 0))
    result.skipped_count += int(report.get("skipped_count", 0))
    result.make_calls += int(report.get("make_calls", 0))
    for key, error in report.get("errors", []):
        result.error_list.append((key, _exception(error) if options.return_exception_objects else error["text"]))


def _stop(children):
    """Stop the children still running (the parent was interrupted) and wait for them: each gives its keys back.
    A second Ctrl-C while waiting kills them (their keys are then reclaimed as a dead worker's)."""
    running = [c.process for c in children if c.process.is_alive()]
    _interrupt(children)
    try:
        for p in running:
            p.join()
    except KeyboardInterrupt:
        for p in running:
            send_signal(p, signal.SIGKILL)
        raise
    finally:
        for c in children:
            c.reader.close()


def _interrupt(children):
    """SIGINT, once, to each child still running: it stops as populate() stops on Ctrl-C. Never twice: inside its
    loop a second stop signal raises again, in the middle of giving its keys back (a child already stopping by
    the terminal's own SIGINT or a scheduler's SIGTERM ignores this one)."""
    for c in children:
        if c.process.is_alive() and not c.interrupted:
            c.interrupted = True
            send_signal(c.process, signal.SIGINT)


def send_signal(process, signum):
    """``signum`` to a child process, unless it has gone already."""
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ in the child
def _child(table, restrictions, options: PopulateOptions, writer, tickets):
    """One child: the populate loop on its own connection; its counts, errors or stop go to the parent."""
    stopping = False

    def on_sigint(signum, frame):
        # the first SIGINT stops the loop as djhpc's stop signals do (Interrupted: the make in progress gives its key
        # back; a KeyboardInterrupt would be that key's error, as DataJoint records one that make raises); later
        # ones (the terminal's and the parent's, or one after a SIGTERM) must not cut short the giving back
        nonlocal stopping
        if stopping or signals.stop_requested() is not None:
            return
        stopping = True
        raise signals.Interrupted(signum)

    signal.signal(signal.SIGINT, on_sigint)
    # the parent's reservations (its jobs table's, a populate before) take their session locks again whenever the
    # connection opens: the child opens its own, and is a worker of its own
    table.connection.on_connect.clear()
    after_fork = getattr(table, "after_fork", None)
    if after_fork:
        after_fork()  # a DataJoint table's own connection: one of the child's, the parent's socket left alone
    own_on_key = options.on_key

    def on_key(key, started, ended, outcome, message):
        if own_on_key:
            own_on_key(key, started, ended, outcome, message)
        if outcome in ("success", "error"):
            writer.send_bytes(blob.pack({"event": "key"}, compress=False))

    def should_stop():
        if own_should_stop and own_should_stop():
            return True
        with tickets.get_lock():  # a ticket per make, shared by the children: limit/max_calls for the call
            if tickets.value == 0:
                return True
            if tickets.value > 0:
                tickets.value -= 1
        return False

    own_should_stop = options.should_stop
    options = replace(options, on_key=on_key, should_stop=should_stop)
    try:
        result = populate.run(table, restrictions, options)
        report = {"event": "done", **_counts(result)}
    except signals.Interrupted as e:
        report = {"event": "stopped", "error": _describe(e)}
    except BaseException as e:  # suppress_errors=False, or make raised KeyboardInterrupt/SystemExit: the parent
        # raises it
        report = {"event": "raised", "error": _describe(e)}
    stopping = True  # nothing to stop any more: a late SIGINT must not lose the report
    try:
        writer.send_bytes(blob.pack(report))
    finally:
        writer.close()
        sys.stdout.flush()
        sys.stderr.flush()


def _counts(result: PopulateResult) -> dict:
    return {"success_count": result.success_count, "skipped_count": result.skipped_count,
            "make_calls": result.make_calls,
            "errors": [[dict(key), _describe(error)] for key, error in result.error_list]}


def _describe(error) -> dict:
    """An error as the parent rebuilds it: its class's module and name, its text and its string arguments."""
    if isinstance(error, str):  # populate's message, "ValueError: bad item 7"
        return {"text": error, "module": "", "name": "", "args": [error]}
    cls = type(error)
    text = populate.error_message(error)
    args = [a if isinstance(a, (str, int, float)) else str(a) for a in error.args]
    return {"text": text, "module": cls.__module__, "name": cls.__qualname__, "args": args}


# ------------------------------------------------------------------ in the parent
def _exception(error: dict) -> BaseException:
    """The child's exception, rebuilt in the parent from its class (looked up among the modules loaded here, never
    imported) and arguments; a ChildError carrying its text when that class is not known here."""
    module = sys.modules.get(error.get("module") or "")
    cls = module
    for part in (error.get("name") or "").split("."):
        cls = getattr(cls, part, None) if cls is not None and part else None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:  # through __init__, which sets what args alone do not (SystemExit's code)
            return cls(*error["args"])
        except Exception:  # a class whose __init__ wants other arguments
            pass
        try:
            exc = cls.__new__(cls, *error["args"])
            exc.args = tuple(error["args"])
            return exc
        except Exception:  # a class whose __new__ wants other arguments too
            pass
    return ChildError(error["text"])


class ChildError(Exception):
    """What a populate child raised, when its exception's class cannot be rebuilt in the parent."""

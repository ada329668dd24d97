"""HTCondor: `condor_submit -terse` to submit, condor_q + condor_history for task states, condor_rm to cancel.

HTCondor has no job script: a submit description names an executable and queues N jobs (a cluster), each
with its own $(Process), 0..N-1. djhpc's task script (templates/htcondor.sh.j2) carries that description
(templates/htcondor.sub.j2) at its top, one `#condor ` line each, so `djhpc render` shows both; submit
writes the description beside the script (a .sub file naming it) and submits that. Task index is
$(Process) + 1, passed with the cluster id in the description's `environment`, the only variables the job
gets from it besides PATH and HOME: never `getenv = true`, which would hand the job this shell's whole
environment, a database password included. The database reaches the task as on every scheduler (the script's
exports, or the 0600 file it sources); anything else a pipeline reads from the environment goes in the
profile's setup lines (export NAME=value).

The job runs /bin/bash on the script where it lies (should_transfer_files = NO): djhpc's workers need
the project on a shared filesystem anyway. condor_rm, periodic_remove (the time limit) and eviction send
kill_sig (SIGTERM), then SIGKILL after the machine's vacate time: the worker gives its keys back at the
first. An evicted job runs again (HTCondor's own choice; a new worker reserves afresh).

--after, without DAGMan (HTCondor has no dependency between clusters otherwise): the run's cluster is
submitted on hold, then a one-job local-universe cluster, which runs on the access point and takes no slot
(templates/htcondor-after.sh.j2), watches the awaited clusters with condor_q, reads how they ended from
condor_history, and releases the held cluster with condor_release, or removes it when after_type can no
longer be met.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile, check_line
from djhpc.schedulers.base import (
    Scheduler,
    SiteLimits,
    TaskState,
    command_failed,
    merge_states,
    one_line,
    optional_output,
    run_command,
    task_key,
    template_environment,
)

_HINT = "run this where condor_submit reaches your schedd (an HTCondor access point) or use --scheduler local"

PREFIX = "#condor"  # the submit description's lines at the top of the task script
ATTRIBUTES = "ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,HoldReasonCode,RemoveReason"

# JobStatus numbers (the job ClassAd's JobStatus)
_JOB_STATUS = {
    1: TaskState.PENDING,  # Idle
    2: TaskState.RUNNING,
    5: TaskState.PENDING,  # Held: runs again when released
    6: TaskState.RUNNING,  # Transferring Output
    7: TaskState.SUSPENDED,
}
# HoldReasonCode of a job HTCondor stopped for using more memory than it asked for (JobOutOfResources)
_HOLD_OUT_OF_MEMORY = {34}
# the submit commands a profile's extra lines may not set: djhpc's own, and getenv (the whole environment)
_RESERVED_COMMANDS = {
    "executable",
    "arguments",
    "environment",
    "env",
    "getenv",
    "queue",
    "universe",
    "djhpc_script",
    "djhpc_task",
    "should_transfer_files",
    "transfer_executable",
    "include",
    "hold",  # with the two below: how --after holds the cluster until its release job lets it go
    "+djhpcafter",
    "+djhpcaftertype",
}
_MAIL = {"ALL": "Always", "END": "Complete", "FAIL": "Error", "NONE": "Never"}


def condor_value(value: Any) -> str:
    """A value on a submit description line: one line, its $ written $(DOLLAR) so no macro expands."""
    return check_line(str(value), "value").replace("$", "$(DOLLAR)")


def condor_path(path: str) -> str:
    """A log path: SLURM's %A and %a written as the cluster id and the task index (1-based)."""
    return condor_value(path).replace("%A", "$(Cluster)").replace("%a", "$INT(djhpc_task,%d)")


def htcondor_state(ad: Mapping[str, Any]) -> TaskState:
    """One job ad (JobStatus, ExitCode, ExitBySignal, HoldReasonCode, RemoveReason) -> TaskState."""
    status = ad.get("JobStatus")
    if status == 3:  # Removed: by condor_rm, or by periodic_remove, which djhpc uses for the time limit only
        return TaskState.TIMEOUT if "PeriodicRemove" in str(ad.get("RemoveReason", "")) else TaskState.CANCELLED
    if status == 4:  # Completed
        if ad.get("ExitBySignal") is True:
            return TaskState.FAILED
        return TaskState.COMPLETED if ad.get("ExitCode") == 0 else TaskState.FAILED
    if status == 5 and ad.get("HoldReasonCode") in _HOLD_OUT_OF_MEMORY:
        return TaskState.OUT_OF_MEMORY
    return _JOB_STATUS.get(status, TaskState.UNKNOWN) if isinstance(status, int) else TaskState.UNKNOWN


def parse_job_ads(text: str, source: str) -> dict[str, TaskState]:
    """`condor_q -json` / `condor_history -json` output: a JSON list of job ads (nothing when no job matched)."""
    if not text.strip():
        return {}
    try:
        ads = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"cannot read {source} JSON ({exc.msg}): {one_line(text, 200)!r}") from exc
    if not isinstance(ads, list):
        raise SchedulerError(f"cannot read {source} JSON: expected a list of job ads, got {one_line(text, 200)!r}")
    states: dict[str, TaskState] = {}
    for ad in ads:
        if (
            not isinstance(ad, dict)
            or not isinstance(ad.get("ClusterId"), int)
            or not isinstance(ad.get("ProcId"), int)
        ):
            raise SchedulerError(f"cannot read {source} job ad {one_line(json.dumps(ad), 200)!r}: no ClusterId/ProcId")
        states[task_key(ad["ClusterId"], ad["ProcId"] + 1)] = htcondor_state(ad)
    return states


def parse_terse(text: str) -> str:
    """`condor_submit -terse`: '123.0 - 123.10' (first and last job of the cluster) -> '123'."""
    m = re.search(r"^\s*(\d+)\.\d+\s*-\s*\1\.\d+\s*$", text, flags=re.MULTILINE)
    if not m:
        raise SchedulerError(
            f"condor_submit -terse printed {one_line(text)!r}, not a cluster id: check for a wrapper around it"
        )
    return m.group(1)


def cluster_id(job_id: str, what: str = "") -> str:
    """'123', '123_4' (a task key) or '123.3' (a job) -> '123'. what: the flag it came from (a usage error)."""
    m = re.fullmatch(r"\s*(\d+)(?:[._]\d+)?\s*", str(job_id))
    if not m:
        if what:
            raise UsageError(f"{what} {job_id!r} is not an HTCondor cluster id: give the number condor_submit printed")
        raise SchedulerError(f"cannot read HTCondor cluster id {job_id!r}: expected digits, e.g. 123")
    return m.group(1)


def submit_description(script_text: str, script_path: Path) -> str:
    """The submit description at the top of a task script, with the script's path in djhpc_script."""
    lines = []
    for line in script_text.split("\n")[1:]:
        if line == PREFIX or line.startswith(PREFIX + " "):
            lines.append(line[len(PREFIX) + 1 :])
        elif line.strip() and not line.startswith("#"):
            break
    if not any(re.match(r"\s*queue\b", line, re.IGNORECASE) for line in lines):
        raise UsageError(f"the task script has no '{PREFIX} queue N' line at its top: fix the htcondor template")
    # arguments = "'$(djhpc_script)'": a ' in the path is '' there, a " is "", and $ is $(DOLLAR)
    path = check_line(str(script_path.resolve()), "script path")
    macro = path.replace("$", "$(DOLLAR)").replace("'", "''").replace('"', '""')
    return f"djhpc_script = {macro}\n" + "\n".join(lines) + "\n"


class HTCondorScheduler(Scheduler):
    name = "htcondor"
    template_name = "htcondor.sh.j2"
    # HTCondor sets no variable naming the job: the submit description passes the cluster id and the task
    # index to the script (DJHPC_CONDOR_*), which exports DJHPC_JOB_ID and DJHPC_TASK_ID from them
    task_env_names: ClassVar[dict[str, str | None]] = {}
    default_output = "djhpc-%A_%a.out"
    default_error = "djhpc-%A_%a.err"
    directive_prefix = None
    missing_hint = _HINT

    def context(self, profile: Profile, **kwargs: Any) -> dict[str, Any]:
        context = super().context(profile, **kwargs)
        notes = context["notes"]
        if (profile.nodes or 1) > 1:
            raise UsageError(
                f"--nodes {profile.nodes} cannot be expressed on HTCondor: a vanilla-universe job runs on one "
                "machine; drop --nodes (a worker needs one)"
            )
        after = [cluster_id(job, what="--after") for job in profile.after]
        if after:
            notes.append(
                f"--after: the cluster starts on hold; djhpc submit queues a job that releases it once "
                f"{', '.join(after)} have ended (submitted by hand: condor_release it yourself)"
            )
        for name, why in (("partition", "HTCondor has no queues"), ("qos", "no HTCondor equivalent")):
            if getattr(profile, name):
                notes.append(
                    f"{name} {getattr(profile, name)!r}: {why}, ignored (extra_directives can set requirements)"
                )
        if profile.gpus and profile.gpu_type:
            notes.append(
                f"gpu_type {profile.gpu_type!r} has no portable HTCondor form: ignored "
                "(extra_directives can set require_gpus)"
            )
        if profile.signal_seconds:
            notes.append(
                "HTCondor sends no early warning: workers get SIGTERM at the time limit (signal_seconds unused)"
            )
        if profile.time:
            notes.append("the time limit is a periodic_remove, checked every PERIODIC_EXPR_INTERVAL (60 s)")
        kinds = [k for k in (profile.mail_type or "").split(",") if k]
        choice = next((_MAIL[k] for k in ("NONE", "ALL", "END", "FAIL") if k in kinds), None)
        dropped = [k for k in kinds if k not in _MAIL]
        if dropped:
            notes.append(f"mail_type {','.join(dropped)} has no HTCondor equivalent: ignored")
        condor = {
            "batch_name": condor_value(profile.job_name),
            "accounting_group": condor_value(profile.account) if profile.account else None,
            "initialdir": condor_value(context["workdir"]) if context["workdir"] else None,
            "output": condor_path(context["output"]),
            "error": condor_path(context["error"]),
            "log": condor_path("djhpc-%A_%a.log" if not profile.output else _log_beside(profile.output)),
            "notify_user": condor_value(profile.mail_user) if profile.mail_user else None,
            "notification": choice,
            "after": list(dict.fromkeys(after)),
            "extra": self.extra_lines(context),  # verbatim, macros and all: the escape hatch
        }
        context["condor"] = condor
        context["extra_directives"] = []  # they go into the submit description, not the script
        return context

    @staticmethod
    def extra_lines(context: Mapping[str, Any]) -> list[str]:
        """The profile's extra lines for the submit description (NAME = VALUE, +Attr = VALUE); djhpc's own
        commands and getenv refused; anything else (another scheduler's flag) left out with a note."""
        lines = []
        for line in context["extra_directives"]:
            if line.lstrip().startswith("#"):
                continue
            command = re.split(r"[\s=:]", line.strip(), maxsplit=1)[0].lower()
            if command in _RESERVED_COMMANDS:
                raise UsageError(
                    f"extra directive {line.strip()!r} sets {command}, which djhpc writes itself "
                    "(getenv would hand the job this shell's whole environment): remove it"
                )
            if not re.fullmatch(r"\s*\+?[A-Za-z_][\w.]*\s*=.*", line):
                context["notes"].append(
                    f"extra directive {line.strip()!r} is not an HTCondor submit command (NAME = VALUE): left out"
                )
                continue
            lines.append(line.strip())
        return lines

    # -- submit, query, cancel ----------------------------------------------------------------

    def submit(self, script_text: str, *, dry_run: bool = False, script_dir: str | Path | None = None) -> list[str]:
        """Write the script and, beside it, its submit description (.sub); submit that."""
        path = self.write_script(script_text, script_dir)
        description = path.with_suffix(".sub")
        text = submit_description(script_text, path)
        description.write_text(text, encoding="utf-8")
        if dry_run:
            return []
        try:
            cluster = self.submit_file(description)
        except SchedulerError:
            description.unlink(missing_ok=True)
            raise
        after = re.search(r'^\+DjhpcAfter = "([\d ]+)"\n\+DjhpcAfterType = "(\w+)"$', text, re.MULTILINE)
        if after:
            try:
                self.submit_release(cluster, after.group(1).split(), after.group(2), path)
            except SchedulerError:
                description.unlink(missing_ok=True)
                raise
        return [cluster]

    def submit_release(self, held: str, after: list[str], after_type: str, script: Path) -> str:
        """Queue the local-universe job that releases the held cluster once `after` have ended
        (templates/htcondor-after.sh.j2); if it cannot be queued, the held cluster is removed."""
        waiter = script.with_name(f"{script.stem}-after.sh")
        text = template_environment(None).get_template("htcondor-after.sh.j2").render(
            held=held, after=after, after_type=after_type, script_dir=condor_value(script.parent.resolve()),
            constraint=" || ".join(f"ClusterId == {c}" for c in after),
        )  # fmt: skip
        waiter.write_text(text, encoding="utf-8")
        description = waiter.with_suffix(".sub")
        description.write_text(submit_description(text, waiter), encoding="utf-8")
        try:
            return self.submit_file(description)
        except SchedulerError as exc:
            waiter.unlink(missing_ok=True)
            description.unlink(missing_ok=True)
            run_command(["condor_rm", held], hint=_HINT)
            raise SchedulerError(
                f"cluster {held} was submitted on hold, but the job that would release it after "
                f"{', '.join(after)} was not ({exc}): cluster {held} removed; submit again"
            ) from exc

    def submit_file(self, path: Path) -> str:
        if path.suffix != ".sub":
            raise UsageError(f"{path} is not a submit description: HTCondor submits the .sub that submit() writes")
        argv = ["condor_submit", "-terse", str(path)]
        proc = run_command(argv, hint=_HINT, timeout=120)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "fix the profile (request_*, accounting group) or the limits")
        return parse_terse(proc.stdout)

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        clusters = sorted({cluster_id(j) for j in job_ids}, key=int)
        if not clusters:
            return {}
        argv = ["condor_q", "-json", "-attributes", ATTRIBUTES, *clusters]
        proc = run_command(argv, hint=_HINT)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "check that the schedd answers (condor_q)")
        live = parse_job_ads(proc.stdout, "condor_q")
        constraint = " || ".join(f"ClusterId == {c}" for c in clusters)
        history = optional_output(["condor_history", "-json", "-attributes", ATTRIBUTES, "-constraint", constraint],
                                  hint=_HINT)  # none here: condor_q alone
        return merge_states(live, parse_job_ads(history, "condor_history") if history is not None else {})

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """condor_rm of whole clusters: SIGTERM (kill_sig) to running jobs, SIGKILL after the vacate time."""
        return ["condor_rm", *sorted({cluster_id(j) for j in job_ids}, key=int)]

    def cancel(self, job_ids: Sequence[str]) -> None:
        """condor_rm; a cluster that has left the queue already is not an error (condor_rm says so, exit 1)."""
        if not job_ids:
            return
        argv = self.cancel_argv(job_ids)
        proc = run_command(argv, hint=_HINT)
        said = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        gone = ("Couldn't find/remove all jobs in cluster", "have been marked for removal", "already marked")
        if proc.returncode != 0 and not all(any(g in line for g in gone) for line in said):
            raise command_failed(argv, proc, "check the cluster ids with djhpc status")

    def site_limits(self) -> SiteLimits:
        try:
            per_submission = _config_int("MAX_JOBS_PER_SUBMISSION")
            per_owner = _config_int("MAX_JOBS_PER_OWNER")
        except SchedulerError:
            return SiteLimits()
        # a cluster is capped at MAX_JOBS_PER_SUBMISSION jobs; SiteLimits counts one above (SLURM's MaxArraySize)
        return SiteLimits(
            max_array_size=None if per_submission is None else per_submission + 1, max_submit_jobs=per_owner
        )


def _log_beside(output: str) -> str:
    """The user log next to the output file: the output path with .log for its extension."""
    stem, dot, _ = output.rpartition(".")
    return f"{stem}.log" if dot and "/" not in output[len(stem) :] else f"{output}.log"


def _config_int(name: str) -> int | None:
    proc = run_command(["condor_config_val", name], hint=_HINT, timeout=20)
    value = proc.stdout.strip()
    return int(value) if proc.returncode == 0 and value.isdigit() else None

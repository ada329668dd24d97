"""``djhpc render``, ``djhpc submit`` and ``djhpc parallel``: a run of populate workers on a scheduler."""

from __future__ import annotations

import argparse
import contextlib
import logging
import subprocess
import sys

from .. import durations
from .. import submit as library
from ..errors import DjhpcError, UsageError
from ..pipeline import Pipeline
from ..plan import PipelinePlan, estimate, plan_pipeline
from ..schedulers.parallel import check_gnu_parallel, check_halt
from . import display
from .common import ArgumentParser, resolve_target_name, target_or_pipeline
from .work import add_pipeline_arguments

log = logging.getLogger("djhpc.cli")

PIPELINE_HELP = """A whole pipeline: TARGET without :Class (a module, pipeline.py, or module:schema) means every
Computed and Imported table it declares. Tables asking for the same resources (their class's `resources`
attribute, or `tables:` in djhpc.yaml) form a resource class; each class gets its own array, named
djhpc-PIPELINE-CLASS, whose tasks run `djhpc work PIPELINE --tables <the class's tables>`, sized to the keys
left of its tables (ready, retrying and still to come, less those blocked by a failure upstream); a class
with nothing left is not submitted. Settings, weakest first: the profile, the class's resources, the flags
(a flag such as --partition applies to every class). A partition the scheduler does not have (sinfo,
qconf -sql) is refused before anything is written.
"""

SETTINGS_HELP = """settings: djhpc.yaml in this folder or above may set
  target: pipeline.py:Analysis      the table (or pipeline.py: the pipeline) to populate when TARGET is not given
  tables:                           resources of a pipeline's tables, e.g.
    Segmentation: {partition: gpu, gpus: 1, time: 4h}
  scheduler: slurm                  slurm, pbs, torque, sge, lsf, htcondor, parallel or local
  profile: default                  the profile used without --profile (env DJHPC_PROFILE)
  profiles:                         named sets of the flags below, e.g.
    default: {partition: cpu, time: 2h, mem: 4G}
    gpu: {partition: gpu, gpus: a100:1, time: 4h, array: 8}
flags override the profile; the scheduler is --scheduler, else the profile's, else djhpc.yaml's,
else slurm when sbatch is on PATH, else local.

The database URL reaches the tasks through the environment: DJHPC_DATABASE_URL, or when it holds a
password DJHPC_DATABASE_URL_FILE naming a 0600 file under ~/.config/djhpc/credentials. It is never
written into the script. A table written with DataJoint: its tasks connect as this command's DataJoint
did, through DJ_HOST, DJ_USER and DJ_PASS in a 0600 file (same folder) the script sources; its worker
runs with this Python, beside DataJoint. Arguments after -- go to each `djhpc work` (e.g. -- --max-calls 100).
"""

RENDER_HELP = """Print the task script(s) that `djhpc submit` would submit, and submit nothing.

The array is capped at the keys left; where SLURM's MaxArraySize is lower, the run is split into
several arrays (each script printed after a '# ==> array I of N' line).

examples:
  djhpc render --array 11
  djhpc render pipeline.py:Analysis --array 4 --scheduler pbs --time 2h --mem 4G
  djhpc render --profile gpu --array 8 -- --max-calls 50
  djhpc render pipeline.py --array 8                         one script per resource class

""" + PIPELINE_HELP + "\n" + SETTINGS_HELP

SUBMIT_HELP = """Submit a run of populate workers: an array of N tasks, each `djhpc work TARGET`.

Prints the job id(s) on stdout, records each submission in the target's schema, says how many keys
are left, never asks for more tasks than keys, and submits nothing when none is left. The default
throttle keeps the workers within the database's free connections (one each, two for DataJoint).

exit codes: 0 submitted (or nothing left), 2 bad input, a missing scheduler command or a rejected
submission (the scheduler's message is shown)

examples:
  djhpc submit --array 11                                     target, scheduler, profile from djhpc.yaml
  djhpc submit pipeline.py:Analysis --array 100 --throttle 20 --time 30m --mem 2G
  djhpc submit --array 11 --dry-run                           print and keep the script, submit nothing
  djhpc submit --array 4 --after 12345 --partition gpu --gpus a100:1
  djhpc submit --array 20 --restrict "subject = 'm1'"         only m1's keys, sized to those left
  djhpc submit --array 8 --scheduler local                    8 workers in the background here
  djhpc submit pipeline.py --array 8                          a whole pipeline: one array per resource class
  djhpc submit pipeline.py --array 8 --plan                   what it would take and cost; submits nothing

then: djhpc progress --watch, djhpc jobs errors, and djhpc submit again to retry what is left.

--plan (a pipeline) prints, from the completion history of past makes, for each resource class: its tables
with their keys left and the p50/p95 of make time, CPU seconds and peak memory; a proposed --time (a
task's share of the class's makes at p95 after the classes it waits for, plus one key's way down the
pipeline, x1.25) and --mem (the largest p95 peak memory x1.25); the CPU-hours and GPU-hours of the makes
(keys left x make time x the CPUs and GPUs a task holds) at p50 and p95. A table without history gets
no numbers. Nothing is written or submitted.

""" + PIPELINE_HELP + "\n" + SETTINGS_HELP

PARALLEL_HELP = """Print the GNU parallel command line that runs N populate workers on this machine.

--run runs it here and waits. Each worker is one input line of parallel, the same on every run, so
--resume-failed (with the same --joblog) runs again only the workers that failed or never ran.

exit codes: 0 every worker finished (or nothing left), 1 some workers failed (see djhpc jobs errors),
2 bad input or GNU parallel missing

examples:
  djhpc parallel --jobs 11 pipeline.py:Analysis
  djhpc parallel --jobs 4 --run --joblog analysis.joblog
  djhpc parallel --jobs 4 --run --joblog analysis.joblog --resume-failed
  djhpc parallel --jobs 8 --run --halt soon,fail=1 -- --max-calls 100
  djhpc parallel --jobs 4 --run pipeline.py                  every table of a pipeline, one set of workers

A whole pipeline (TARGET without :Class): one set of workers, each `djhpc work PIPELINE`, takes keys of every
table (no resource classes here), as many as the keys left of all tables.
"""


class WorkerArgsParser(ArgumentParser):
    """Everything after the first `--` is kept as the workers' arguments (argparse would mix them
    with TARGET)."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        worker_args: list[str] = []
        if "--" in args:
            at = args.index("--")
            args, worker_args = args[:at], args[at + 1:]
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.worker_args = worker_args
        return namespace, extras


def _add_parser(sub, name, help_text, description):
    p = sub.add_parser(name, help=help_text, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       usage=f"djhpc {name} [TARGET] [options] [-- WORKER_ARGS ...]")
    p.__class__ = WorkerArgsParser
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="table as module:Class or path/to/pipeline.py:Class, or a whole pipeline as module or "
                   "pipeline.py (default: target in djhpc.yaml)")
    p.add_argument("--restrict", action="append", default=[], metavar="SQL",
                   help="populate only keys where this SQL condition on the key source holds (repeatable: all must "
                   "hold); the run is sized to the keys left under it; each task gets it as djhpc work --restrict")
    add_pipeline_arguments(p.add_argument_group("pipelines (TARGET is a module)"))
    return p


def _add_profile_options(p, *, array_flag="--array"):
    g = p.add_argument_group("run")
    if array_flag == "--array":
        g.add_argument("--array", "-a", type=int, metavar="N", help="number of workers (array tasks); capped at the "
                       "keys left (default: array in the profile)")
    g.add_argument("--profile", metavar="NAME", help="profile of djhpc.yaml (env DJHPC_PROFILE; default: profile: "
                   "in djhpc.yaml, else 'default' if defined)")
    g.add_argument("--throttle", type=int, metavar="M", help="most workers running at once (default: all, within "
                   "the database's free connections)")
    g.add_argument("--workdir", metavar="DIR", help="folder the tasks run in (default: where you submit)")
    if array_flag != "--array":
        return
    g.add_argument("--scheduler", metavar="NAME", help="slurm, pbs, torque, sge, lsf, htcondor, parallel or local")
    g.add_argument("--template-dir", metavar="DIR", help="folder searched first for slurm.sh.j2, pbs.sh.j2, ...")
    r = p.add_argument_group("resources (a profile's settings, named the same)")
    r.add_argument("--partition", "--queue", dest="partition", metavar="NAME", help="partition (SLURM) or queue (PBS)")
    r.add_argument("--time", type=_time_limit, metavar="DURATION",
                   help=f"time limit per task: {durations.examples('m')}")
    r.add_argument("--mem", metavar="SIZE", help="memory per task: 4000 (MB), 500M, 4G")
    r.add_argument("--cpus", metavar="N", help="CPUs per task")
    r.add_argument("--gpus", metavar="N|TYPE:N", help="GPUs per task: 1 or a100:1")
    r.add_argument("--nodes", metavar="N", help="nodes per task")
    r.add_argument("--account", metavar="NAME", help="account to charge")
    r.add_argument("--qos", metavar="NAME", help="quality of service (SLURM)")
    r.add_argument("--job-name", metavar="NAME", help="job name (default: djhpc-CLASS, e.g. djhpc-Analysis)")
    r.add_argument("--output", metavar="FILE", help="stdout of each task (default: djhpc-%%A_%%a.out on SLURM)")
    r.add_argument("--error", metavar="FILE", help="stderr of each task (default: djhpc-%%A_%%a.err on SLURM)")
    r.add_argument("--after", action="append", metavar="JOBID", help="start after this job (repeatable)")
    r.add_argument("--after-type", metavar="TYPE", help="afterok (default), afterany, afternotok or after")
    r.add_argument("--mail-user", metavar="ADDRESS", help="mail address for job events")
    r.add_argument("--mail-type", metavar="EVENTS", help="e.g. END,FAIL")
    r.add_argument("--signal-seconds", type=durations.argument(allow_zero=True, whole=True), metavar="DURATION",
                   help="SLURM sends the workers USR1 this long before the time limit so they give their keys back: "
                   "60 (seconds), 2m (default 60 s, half the limit when that is shorter; 0: none)")
    r.add_argument("--setup", action="append", metavar="LINE", help="shell line run before the worker, e.g. "
                   "'module load python' (repeatable)")
    r.add_argument("--directive", action="append", dest="extra_directives", metavar="LINE",
                   help="extra scheduler directive, e.g. --constraint=haswell (repeatable)")
    r.add_argument("--requeue", action="store_true", default=None, help="let the scheduler requeue a task")


def _time_limit(text: str) -> str:
    """--time checked here (one line naming the flag, exit 2); the profile reads the same text with the same
    parser (a bare number is minutes, as sbatch reads it)."""
    durations.argument("m", whole=True)(text)
    return text


FLAG_NAMES = ("partition", "time", "mem", "cpus", "gpus", "nodes", "account", "qos", "job_name", "output", "error",
              "after", "after_type", "mail_user", "mail_type", "signal_seconds", "setup", "extra_directives",
              "requeue", "throttle", "workdir")


def register(sub):
    p = _add_parser(sub, "render", "print the task script submit would submit", RENDER_HELP)
    _add_profile_options(p)
    p.set_defaults(func=run_render)

    p = _add_parser(sub, "submit", "submit an array of populate workers", SUBMIT_HELP)
    _add_profile_options(p)
    p.add_argument("--dry-run", action="store_true", help="write and print the script, submit nothing")
    p.add_argument("--plan", action="store_true", help="a pipeline: print each resource class's keys left, past "
                   "make times, proposed --time/--mem and CPU/GPU-hours; write and submit nothing")
    p.set_defaults(func=run_submit)

    p = _add_parser(sub, "parallel", "print (or --run) the GNU parallel command line for N workers", PARALLEL_HELP)
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="number of workers (default: array in the profile)")
    _add_profile_options(p, array_flag="--jobs")
    p.add_argument("--joblog", default="djhpc-parallel.joblog", metavar="FILE",
                   help="GNU parallel's joblog (default: djhpc-parallel.joblog)")
    p.add_argument("--halt", default="never", metavar="RULE",
                   help="when to stop: never (default), soon,fail=1, now,fail=1, ...")
    p.add_argument("--resume-failed", action="store_true",
                   help="run again only the workers the joblog shows failed or not run")
    p.add_argument("--run", action="store_true", help="run the command here and wait for it")
    p.set_defaults(func=run_parallel)


def _flags(args) -> dict:
    return {name: getattr(args, name, None) for name in FLAG_NAMES}


def _plan(args, *, scheduler=None, array=None, render=True, whole=False, need_array=True):
    """The Run of a table, or the PipelinePlan of a pipeline (one run per resource class; ``whole``: one run)."""
    # stdout is the script, the job ids or the command line: what the pipeline's import prints goes to stderr
    # (DataJoint 2.x logs "connected to ..." on stdout; its handler keeps the stream it finds when imported)
    options = dict(array=array if array is not None else getattr(args, "array", None),
                   scheduler=scheduler or getattr(args, "scheduler", None), profile_name=args.profile,
                   flags=_flags(args), worker_args=_worker_args(args), template_dir=getattr(args, "template_dir", None),
                   render=render)
    with contextlib.redirect_stdout(sys.stderr):
        loaded = target_or_pipeline(args.target)
        if isinstance(loaded, Pipeline):
            return plan_pipeline(loaded, target=resolve_target_name(args.target), tables=args.tables,
                                 downstream_of=args.downstream_of, whole=whole, need_array=need_array, **options)
        if args.tables or args.downstream_of:
            raise UsageError("--tables and --downstream-of need a pipeline TARGET (a module, without :Class)")
        return library.plan(args.target, **options)


def _worker_args(args) -> list[str]:
    """The workers' arguments: each --restrict, then what followed ``--``."""
    return [*(a for sql in args.restrict for a in ("--restrict", sql)), *args.worker_args]


def _tell(run) -> None:
    for note in run.notes:
        log.info("%s", note)
    for warning in run.warnings:
        log.warning("warning: %s", warning)


def _nothing_left(run) -> int:
    log.info("nothing to submit: %s", run.left_message())
    return 0


def _print_scripts(run) -> None:
    for number, (chunk, text) in enumerate(zip(run.chunks, run.scripts, strict=True), start=1):
        if len(run.chunks) > 1:
            first = chunk.index_offset + 1
            print(f"# ==> array {number} of {len(run.chunks)}: tasks {first}-{first + chunk.size - 1} of the run <==")
        sys.stdout.write(text)


def run_render(args) -> int:
    run = _plan(args)
    if isinstance(run, PipelinePlan):
        return _render_pipeline(run)
    if not run.chunks:
        return _nothing_left(run)
    _print_scripts(run)
    _tell(run)
    log.info("%s; %d %s task(s) would be submitted", run.left_message(), run.tasks, run.scheduler.name)
    return 0


def run_submit(args) -> int:
    run = _plan(args, render=not args.plan, need_array=not args.plan)
    if isinstance(run, PipelinePlan):
        return _print_plan(run) if args.plan else _submit_pipeline(run, dry_run=args.dry_run)
    if args.plan:
        raise UsageError("--plan needs a pipeline TARGET (a module, without :Class): for one table, djhpc progress "
                         "shows its past make times")
    if not run.chunks:
        return _nothing_left(run)
    done = library.submit(run, dry_run=args.dry_run)
    if args.dry_run:
        _print_scripts(run)
        _tell(run)
        where = ", ".join(str(p) for p in done.scripts)
        log.info("dry run: nothing submitted; %s; script kept at %s", run.left_message(), where)
        return 0
    for job_id in done.job_ids:
        print(job_id)
    sys.stdout.flush()
    _tell(run)
    ids = ", ".join(done.job_ids)
    log.info("submitted %d %s task(s) for %s as job %s; %s", run.tasks, run.scheduler.name,
             run.name, ids, run.left_message())
    return 0


def run_parallel(args) -> int:
    halt = check_halt(args.halt)
    if args.run:
        check_gnu_parallel()
    run = _plan(args, scheduler="parallel", array=args.jobs, render=False, whole=True)
    if isinstance(run, PipelinePlan):
        for note in run.notes:
            log.info("%s", note)
        [run] = run.runs
    if not run.chunks:
        return _nothing_left(run)
    line = library.parallel_line(run, joblog=args.joblog, halt=halt, resume_failed=args.resume_failed)
    if not args.run:
        print(line)
        _tell(run)
        log.info("%s; %d worker(s)", run.left_message(), run.tasks)
        return 0
    _tell(run)
    log.info("running %d worker(s) with GNU parallel (joblog %s); %s", run.tasks, args.joblog, run.left_message())
    proc = subprocess.Popen(["bash", "-c", line], stdin=subprocess.DEVNULL)
    library.record_parallel(run, str(proc.pid), line)
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        status = proc.wait()  # the workers got the INT too: they give their keys back and stop
    if status == 0:
        log.info("all %d worker(s) finished", run.tasks)
        return 0
    log.warning("GNU parallel reports %s failed worker(s): see %s and djhpc jobs errors; rerun with "
                "--resume-failed", status if 0 < status < 101 else "some", args.joblog)
    return 1


# ------------------------------------------------------------------------------------------- pipelines


def _tell_pipeline(plan: PipelinePlan) -> None:
    for note in plan.notes:
        log.info("%s", note)
    for run in plan.runs:
        _tell(run)
        if not run.chunks:
            log.info("nothing to submit for the %s class: %s", run.share.name, run.left_message())


def _render_pipeline(plan: PipelinePlan) -> int:
    if not plan.submitted:
        _tell_pipeline(plan)
        log.info("nothing to submit: no keys left of %s", plan.pipeline.label)
        return 0
    for run in plan.submitted:
        print(f"# ==> {run.share.name} class: {', '.join(run.share.tables)} <==")
        _print_scripts(run)
    _tell_pipeline(plan)
    for run in plan.submitted:
        log.info("%s; %d %s task(s) would be submitted", run.left_message(), run.tasks, run.scheduler.name)
    return 0


def _submit_pipeline(plan: PipelinePlan, *, dry_run: bool) -> int:
    """One array (or more, split by MaxArraySize) per class with keys left, upstream classes first."""
    if not plan.submitted:
        _tell_pipeline(plan)
        log.info("nothing to submit: no keys left of %s", plan.pipeline.label)
        return 0
    done = []
    for run in plan.submitted:
        try:
            done.append((run, library.submit(run, dry_run=dry_run)))
        except DjhpcError as e:
            before = [f"job {', '.join(d.job_ids)} ({r.share.name} class)" for r, d in done if d.job_ids]
            if before:
                raise type(e)(f"{e} (already submitted: {'; '.join(before)}, which will run)") from e
            raise
    if dry_run:
        for run, _ in done:
            print(f"# ==> {run.share.name} class: {', '.join(run.share.tables)} <==")
            _print_scripts(run)
        _tell_pipeline(plan)
        where = ", ".join(str(p) for _, d in done for p in d.scripts)
        log.info("dry run: nothing submitted; scripts kept at %s", where)
        return 0
    for _, d in done:
        for job_id in d.job_ids:
            print(job_id)
    sys.stdout.flush()
    _tell_pipeline(plan)
    for run, d in done:
        log.info("submitted %d %s task(s) for %s as job %s; %s", run.tasks, run.scheduler.name, run.name,
                 ", ".join(d.job_ids), run.left_message())
    return 0


def _print_plan(plan: PipelinePlan) -> int:
    """--plan: per class, what is left, what past makes took, what to ask for and what it costs."""
    out = display.console()
    classes = len(plan.runs)
    out.print(f"Plan for pipeline {plan.pipeline.label}: {classes} resource class{'es' if classes != 1 else ''}, "
              "from the completion history of past makes (nothing submitted)")
    for cost in estimate(plan):
        run = cost.run
        out.print()
        asks = ", ".join(f"{k} {v}" for k, v in run.share.resources) or "the profile's resources"
        tasks = f"{run.tasks:,} task{'s' if run.tasks != 1 else ''}" if run.tasks else "nothing left: not submitted"
        if run.tasks and not run.array_given:
            tasks = "tasks: give --array N"
        out.print(f"[bold]{display.escape(run.share.name)}[/bold] class ({asks}): {tasks}")
        t = display.table("Table", "Keys left", "Makes", "Time p50", "Time p95", "CPU p50", "CPU p95",
                          "Peak mem p50", "Peak mem p95", right=("Keys left", "Makes", "Time p50", "Time p95",
                                                                 "CPU p50", "CPU p95", "Peak mem p50", "Peak mem p95"))
        for c in cost.tables:
            if c.duration is None:
                t.add_row(c.table, display.number(c.keys_left), "0", "no history", "", "", "", "", "")
                continue
            t.add_row(c.table, display.number(c.keys_left), display.number(c.makes),
                      display.seconds_text(c.duration.median), display.seconds_text(c.duration.p95),
                      display.seconds_text(c.cpu_seconds.median), display.seconds_text(c.cpu_seconds.p95),
                      display.megabytes_text(c.max_rss_mb.median), display.megabytes_text(c.max_rss_mb.p95))
        out.print(t)
        for line in _plan_lines(cost):
            out.print(f"  {line}")
    for note in plan.notes:
        out.print(f"note: {display.escape(note)}")
    return 0


def _plan_lines(cost) -> list[str]:
    from ..profile import format_time_slurm

    if not cost.run.tasks:
        return ["nothing left: no --time, --mem or cost"]
    if cost.missing:
        return [f"no history for {', '.join(cost.missing)} (no make of it recorded yet): no --time, --mem or "
                "cost proposed; make a few keys first (djhpc work with --limit)"]
    lines = []
    proposed = []
    if cost.time_seconds is not None:
        proposed.append(f"--time {format_time_slurm(cost.time_seconds)}")
    if cost.mem_mb is not None:
        proposed.append(f"--mem {cost.mem_mb}M")
    if proposed:
        why = ("give --array N" if not cost.run.array_given else "a class it waits for has no history")
        lines.append("proposed: " + " ".join(proposed) + ("" if cost.time_seconds is not None else
                                                          f" (no --time: {why})"))
    cpu50, cpu95 = cost.cpu_hours
    lines.append(f"cost: {_hours_text(cpu50)} CPU-hours at p50, {_hours_text(cpu95)} at p95 ({cost.cpus} CPU"
                 f"{'s' if cost.cpus != 1 else ''} a task)")
    if cost.gpus:
        gpu50, gpu95 = cost.gpu_hours
        lines.append(f"      {_hours_text(gpu50)} GPU-hours at p50, {_hours_text(gpu95)} at p95 ({cost.gpus} GPU"
                     f"{'s' if cost.gpus != 1 else ''} a task)")
    else:
        lines.append("      no GPU-hours (no gpus asked)")
    return lines


def _hours_text(hours: float) -> str:
    """Three significant figures: 0.00417, 1.25, 312."""
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.3g}"

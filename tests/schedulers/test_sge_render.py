"""Grid Engine without the cell: the directives of `djhpc render --scheduler sge` read back, values qsub cannot
take, bad input refused with one line and nothing submitted, a task script run here as sge_execd would run it,
the task environment, and qstat/qacct/qconf/qsub/qdel output (recorded on the test cell) read by fakes.

The real cell is in test_sge.py.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from support.cluster import cli_env, djhpc, make_project
from support.pipeline import load_items, make_calls
from support.scripts import bash_syntax_ok, directive_args, write_executable
from support.sge import SGE_YAML

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile
from djhpc.schedulers import SiteLimits, TaskState, get_scheduler, taskenv
from djhpc.schedulers.sge import (
    SgeScheduler,
    directive_value,
    expand_tasks,
    job_name,
    output_path,
    parse_qacct,
    parse_qconf,
    parse_qstat_xml,
    qacct_state,
    sge_state,
)

S = TaskState

FLAGS = ["--array", 4, "--throttle", 2, "--queue", "all.q", "--time", "1:30:00", "--mem", "2G", "--cpus", 2,
         "--account", "lab-7", "--after", 123, "--after-type", "afterany", "--job-name", "my run",
         "--mail-user", "me@example.org", "--mail-type", "END,FAIL"]
EXPECTED = ["-N", "my_run", "-S", "/bin/bash", "-cwd", "-t", "1-4", "-tc", "2", "-q", "all.q", "-A", "lab-7",
            "-pe", "smp", "2", "-l", "h_rt=01:30:00", "-l", "s_rt=01:29:00", "-l", "h_vmem=1024M",
            "-o", "djhpc-$JOB_ID_$TASK_ID.out", "-e", "djhpc-$JOB_ID_$TASK_ID.err", "-M", "me@example.org",
            "-m", "ea", "-hold_jid", "123", "-notify", "-r", "n", "-v", "PYTHONPATH",
            "-v", "DJHPC_TEST_SCHEMA,DJHPC_TEST_CALLS,DJHPC_TEST_FAIL,DJHPC_TEST_SLEEP,DJHPC_TEST_SLEEP_MAX"]

FAKE_QSUB = r"""#!/bin/bash
# records each call; prints what qsub -terse prints for an array
printf '%s\n' "$*" >> "${FAKE_LOG:?}"
echo "4711.1-4:1"
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A SQLite project with 30 keys and a fake qsub first on PATH: (folder, env, qsub log)."""
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]
    folder = make_project(tmp_path / "project", "sqlite:///pipeline.db", SGE_YAML)
    load_items(f"sqlite:///{folder}/pipeline.db", schema, 30, monkeypatch, tmp_path)
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    write_executable(fake_bin / "qsub", FAKE_QSUB)
    log = tmp_path / "qsub.log"
    env = cli_env(schema, tmp_path, FAKE_LOG=log, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    return folder, env, log


def test_directives_read_back(project, tmp_path):
    folder, env, _ = project
    out = djhpc(["render", "--scheduler", "gridengine", *FLAGS], folder, env)
    assert out.returncode == 0, out.stderr
    script = out.stdout
    bash_syntax_ok(script, tmp_path)
    assert directive_args(script, "#$") == EXPECTED
    assert "-V" not in directive_args(script, "#$")
    assert 'export DJHPC_JOB_ID="${JOB_ID}"\nexport DJHPC_TASK_ID="${SGE_TASK_ID}"\n' in script
    assert 'export PATH="${SGE_O_PATH:+$SGE_O_PATH:}$PATH"' in script
    assert "export DJHPC_END_TIME=\"$(( $(date +%s) + 5400 ))\"" in script
    assert "# note: job name 'my run' is not a Grid Engine name: submitted as 'my_run'" in script


def test_submit_records_the_job_number(project):
    folder, env, log = project
    out = djhpc(["submit", "--scheduler", "uge", "--array", 4], folder, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "4711\n" and "as job 4711" in out.stderr
    [call] = log.read_text().splitlines()
    assert call.startswith("-terse ") and call.endswith(".sh") and "/.djhpc/scripts/sge-" in call


BAD_INPUT = {
    "gpus": (["--gpus", "a100:1"], "--gpus 1 has no Grid Engine form (each site names its own GPU resource)"),
    "nodes": (["--nodes", "2"], "--nodes 2: a Grid Engine task runs on one host"),
    "after type": (["--after", "12", "--after-type", "afternotok"], "--after-type afternotok has no Grid Engine form"),
    "hash in a path": (["--output", "logs/#1.out"], "holds '#', which qsub reads as the start of a comment"),
    "both quotes": (["--account", "a \"b' c"], "holds both kinds of quote"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_submits_nothing(project, case):
    folder, env, log = project
    flags, message = BAD_INPUT[case]
    for command in ("render", "submit") if case == "gpus" else ("submit",):  # render and submit share plan()
        out = djhpc([command, "--array", 2, "--scheduler", "sge", *flags], folder, env)
        assert out.returncode == 2 and out.stdout == "", (case, out.stderr)
        assert out.stderr.startswith("djhpc: error: ") and out.stderr.count("\n") == 1, out.stderr
        assert message in out.stderr, out.stderr
    assert not log.exists() and not (folder / ".djhpc" / "scripts").exists()


def test_missing_qsub_is_one_line_and_submits_nothing(project, tmp_path):
    folder, env, log = project
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    (bare / "bash").symlink_to("/bin/bash")
    out = djhpc(["submit", "--array", 2, "--scheduler", "sge"], folder, {**env, "PATH": str(bare)})
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr == ("djhpc: error: qsub not found on PATH: run this on a Grid Engine submit host or use "
                          "--scheduler local\n")
    assert not log.exists() and not list((folder / ".djhpc" / "scripts").glob("*"))


def test_task_script_populates(project, tmp_path):
    """One task of the script as sge_execd runs it: a login shell's PATH without djhpc's, in the submit
    folder (-cwd), with Grid Engine's variables."""
    folder, env, _ = project
    env = {**env, "DJHPC_TEST_FAIL": "4"}
    out = djhpc(["render", "--array", 3], folder, env)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "task.sh"
    script.write_text(out.stdout)
    task_env = {**env, "PATH": "/usr/bin:/bin", "SGE_O_PATH": env["PATH"].split(os.pathsep, 1)[1],
                "JOB_ID": "777", "SGE_TASK_ID": "2", "SGE_TASK_FIRST": "1", "SGE_TASK_LAST": "3",
                "SGE_TASK_STEPSIZE": "1"}
    run = subprocess.run(["bash", str(script)], cwd=folder, env=task_env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr  # one make failed on purpose
    made, _ = make_calls(tmp_path)
    assert len(made) == 30 and set(made.values()) == {1}
    pipeline = __import__("pipeline_counts")
    [error] = pipeline.schema.jobs.fetch(as_dict=True)
    assert (error["status"], error["sched_job_id"], error["sched_task_id"]) == ("error", "777", "2")


# ------------------------------------------------------------------------------------- values


def test_directive_values() -> None:
    assert directive_value("djhpc-$JOB_ID_$TASK_ID.out") == "djhpc-$JOB_ID_$TASK_ID.out"
    assert directive_value("logs dir/x.out") == '"logs dir/x.out"'
    assert directive_value('say "hi" there') == "'say \"hi\" there'"
    assert directive_value("C:\\x") == "C:\\x"  # no escapes in a #$ line: a backslash is itself
    assert directive_value("café") == '"café"'
    for bad, message in (("a#b", "holds '#'"), ("a \"b' c", "both kinds of quote"), ("a\nb", "line break")):
        with pytest.raises(UsageError, match=message):
            directive_value(bad)


def test_job_names_and_paths() -> None:
    assert job_name("djhpc") == "djhpc" and job_name("dj analysis") == "dj_analysis"
    assert job_name("7 days") == "j7_days" and job_name("a/b:c@d\\e*f?g#h") == "a_b_c_d_e_f_g_h"
    assert output_path("logs/%x-%A_%a.out") == "logs/$JOB_NAME-$JOB_ID_$TASK_ID.out"
    assert output_path("100%%-%j.log") == "100%-$JOB_ID.log" and output_path("plain.out") == "plain.out"


def render(**settings) -> str:
    profile = Profile.from_dict({"scheduler": "sge", **settings})
    return get_scheduler("sge").render(profile, target="m:T", array_size=3)


def test_render_choices() -> None:
    one = render()
    assert "#$ -t 1-3\n" in one and "-tc" not in one and "h_rt" not in one and "DJHPC_END_TIME" not in one
    # h_vmem per slot, rounded up; no s_rt without a warning; afterok said to behave as afterany
    text = render(mem="1000M", cpus=3, time="2h", signal_seconds=0, after=["5", "6"])
    assert "#$ -l h_vmem=334M\n" in text and "s_rt" not in text and "#$ -hold_jid 5,6\n" in text
    assert "-hold_jid starts this run when those jobs end, whatever their exit status" in text
    assert "#$ -r y\n" in render(requeue=True)
    assert "qos 'long' has no Grid Engine equivalent" in render(qos="long")
    text = render(mail_type="BEGIN,TIME_LIMIT")
    assert "#$ -m b\n" in text and "mail_type TIME_LIMIT has no Grid Engine equivalent" in text


def test_split_refused_when_the_user_may_not_queue_its_arrays() -> None:
    sched = SgeScheduler()
    sched.max_tasks, sched.max_jobs = 5, 2
    profile = Profile(scheduler="sge")
    assert "#$ -t 1-5" in sched.render(profile, target="m:T", array_size=5, total_tasks=10)
    with pytest.raises(UsageError, match=r"--array 11 needs 3 Grid Engine arrays of at most 5 tasks"):
        sched.render(profile, target="m:T", array_size=5, total_tasks=11)


def test_task_environment() -> None:
    env = {"JOB_ID": "27", "SGE_TASK_ID": "3", "SGE_TASK_FIRST": "1", "SGE_TASK_LAST": "11",
           "SGE_TASK_STEPSIZE": "1"}  # fmt: skip
    task = taskenv.current(env)
    assert (task.scheduler, task.ids(), task.task_count, task.task_number) == ("sge", ("27", "3"), 11, 3)
    assert task.position() == 2 / 11
    # djhpc's own variables win, as under every scheduler
    task = taskenv.current({**env, "DJHPC_SCHEDULER": "sge", "DJHPC_JOB_ID": "27", "DJHPC_TASK_ID": "3",
                            "DJHPC_TASK_OFFSET": "10", "DJHPC_TASK_COUNT": "21"})
    assert (task.ids(), task.task_number, task.task_count) == (("27", "3"), 13, 21)


# ------------------------------------------------------------------------- scheduler output

# recorded on the test cell: an array of 6 with -tc 2 (2 running, 3-6 pending) and a held array
QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>23</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>a.sh</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-12-06T18:52:10</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>23</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>a.sh</JB_name>
      <JB_owner>root</JB_owner>
      <state>dr</state>
      <JAT_start_time>2026-12-06T18:52:10</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>23</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>a.sh</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-12-06T18:52:10</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>3-6:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>24</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>a.sh</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-12-06T18:52:11</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>1-3:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>25</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>plain</JB_name>
      <JB_owner>root</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2026-12-06T18:52:11</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
  </job_info>
</job_info>
"""

# qacct -j 23 (abridged: qacct prints some 40 fields a record), then a rerun of task 3 that hit h_rt
QACCT = """==============================================================
qname        all.q
hostname     vm
jobname      a.sh
jobnumber    23
taskid       1
failed       0
exit_status  0
ru_wallclock 5s
maxvmem      9.754MB
==============================================================
qname        all.q
hostname     vm
jobname      a.sh
jobnumber    23
taskid       2
failed       0
exit_status  75
==============================================================
jobnumber    23
taskid       3
failed       0
exit_status  1
==============================================================
jobnumber    23
taskid       3
failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
exit_status  137                  (Killed)
==============================================================
jobnumber    23
taskid       4
failed       100 : assumedly after job
exit_status  137
==============================================================
jobnumber    23
taskid       5
failed       26  : opening output file
exit_status  1
"""

QCONF = """#global:
execd_spool_dir              /var/spool/gridengine/execd
min_uid                      0
reporting_params             accounting=true reporting=false \\
                             flush_time=00:00:15 joblog=false
max_aj_instances             2000
max_aj_tasks                 75000
max_u_jobs                   0
"""


def test_states() -> None:
    table = {"qw": S.PENDING, "hqw": S.PENDING, "Eqw": S.PENDING, "r": S.RUNNING, "t": S.RUNNING,
             "Rr": S.RUNNING, "dr": S.RUNNING, "dt": S.RUNNING, "dqw": S.CANCELLED, "s": S.SUSPENDED,
             "S": S.SUSPENDED, "T": S.SUSPENDED, "z": S.UNKNOWN}  # fmt: skip
    assert {code: sge_state(code) for code in table} == table
    assert qacct_state("0", "0") == S.COMPLETED and qacct_state("0", "1") == S.FAILED
    assert qacct_state("0", "75") == S.CANCELLED and qacct_state("0", "143") == S.CANCELLED
    assert qacct_state("37  : qmaster enforced h_rt", "137") == S.TIMEOUT
    assert qacct_state("100 : assumedly after job", "137") == S.CANCELLED
    assert qacct_state("1   : assumedly before job", "0") == S.FAILED


def test_expand_tasks() -> None:
    assert expand_tasks("7") == [7] and expand_tasks("3-6:1") == [3, 4, 5, 6] and expand_tasks("") == []
    assert expand_tasks("1-9:4") == [1, 5, 9] and expand_tasks("1,4-5:1") == [1, 4, 5]
    with pytest.raises(SchedulerError, match="cannot read Grid Engine task range 'x'"):
        expand_tasks("x")


def test_parse_outputs() -> None:
    assert parse_qstat_xml(QSTAT_XML) == {
        "23_1": S.RUNNING, "23_2": S.RUNNING, "23_3": S.PENDING, "23_4": S.PENDING, "23_5": S.PENDING,
        "23_6": S.PENDING, "24_1": S.PENDING, "24_2": S.PENDING, "24_3": S.PENDING, "25": S.PENDING,
    }  # fmt: skip
    assert set(parse_qstat_xml(QSTAT_XML, {"24"})) == {"24_1", "24_2", "24_3"}
    assert parse_qstat_xml("") == {}
    with pytest.raises(SchedulerError, match="cannot read qstat -xml output"):
        parse_qstat_xml("<job_info><job_list>")
    assert parse_qacct(QACCT) == {"23_1": S.COMPLETED, "23_2": S.CANCELLED, "23_3": S.TIMEOUT, "23_4": S.CANCELLED,
                                  "23_5": S.FAILED}
    assert parse_qacct("error: job id 9 not found\n") == {}
    config = parse_qconf(QCONF)
    assert (config["max_aj_tasks"], config["max_u_jobs"], config["min_uid"]) == ("75000", "0", "0")
    assert config["reporting_params"] == "accounting=true reporting=false"


# ---------------------------------------------------------------------------- fake commands


def fake(bin_dir: Path, name: str, script: str) -> None:
    """A fake command: each call's argv appended to NAME.calls, then the bash script runs."""
    write_executable(bin_dir / name, f'#!/bin/bash\necho "$*" >> "{bin_dir}/{name}.calls"\n{script}\n')


def calls(bin_dir: Path, name: str) -> list[str]:
    path = bin_dir / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_task_states_join_qstat_and_qacct(bin_dir: Path) -> None:
    (bin_dir / "qstat.xml").write_text(QSTAT_XML)
    (bin_dir / "qacct.txt").write_text(QACCT)
    fake(bin_dir, "qstat", f'cat "{bin_dir}/qstat.xml"')
    fake(bin_dir, "qacct", f'[ "$2" = 23 ] && cat "{bin_dir}/qacct.txt" && exit 0\n'
                           'echo "error: job id $2 not found" >&2; exit 1')
    states = SgeScheduler().task_states(["23", "99_1", "not-a-job"])
    assert calls(bin_dir, "qstat") == ["-xml -u *"] and calls(bin_dir, "qacct") == ["-j 23", "-j 99"]
    # qstat is current for what it lists (tasks 1 and 2 run again), qacct fills in the rest
    assert states == {"23_1": S.RUNNING, "23_2": S.RUNNING, "23_3": S.PENDING, "23_4": S.PENDING,
                      "23_5": S.PENDING, "23_6": S.PENDING}
    assert SgeScheduler().task_states([]) == {}


def test_task_states_quote_a_failing_qstat(bin_dir: Path) -> None:
    fake(bin_dir, "qstat", 'echo "error: commlib error: got select error (Connection refused)" >&2; exit 1')
    with pytest.raises(SchedulerError, match=r"qstat -xml -u '\*' failed \(exit 1\): error: commlib error"):
        SgeScheduler().task_states(["1"])


def test_site_limits(bin_dir: Path) -> None:
    fake(bin_dir, "qconf", f"cat <<'EOF'\n{QCONF}EOF")
    sched = SgeScheduler()
    assert sched.site_limits() == SiteLimits(max_array_size=75001)
    assert (sched.max_tasks, sched.max_jobs) == (75000, None)
    assert calls(bin_dir, "qconf") == ["-sconf global"]
    fake(bin_dir, "qconf", "echo 'max_aj_tasks 0'; echo 'max_u_jobs 3'")
    assert sched.site_limits() == SiteLimits() and sched.max_jobs == 3
    fake(bin_dir, "qconf", "echo 'error: unable to contact qmaster' >&2; exit 1")
    assert sched.site_limits() == SiteLimits()


def test_submit_file(bin_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/bash\n")
    fake(bin_dir, "qsub", 'echo "Your job-array 31.1-4:1 (\\"djhpc\\") has been submitted" >&2; echo 31.1-4:1')
    assert SgeScheduler().submit_file(script) == "31"
    fake(bin_dir, "qsub", "echo 'Unable to run job: job rejected: the requested queue \"nope\" does not exist.' >&2;"
                          "echo Exiting. >&2; exit 1")
    with pytest.raises(SchedulerError, match=r"qsub -terse .* failed \(exit 1\): Unable to run job: .* Exiting\.: "
                                             r"fix the profile"):
        SgeScheduler().submit_file(script)
    fake(bin_dir, "qsub", "echo 'submitted!'")
    with pytest.raises(SchedulerError, match="printed 'submitted!', not a job id"):
        SgeScheduler().submit_file(script)


def test_cancel(bin_dir: Path) -> None:
    sched = SgeScheduler()
    assert sched.cancel_argv(["27", "28_3", "27"]) == ["qdel", "27", "28"]
    with pytest.raises(UsageError, match="'x' is not a Grid Engine job id"):
        sched.cancel_argv(["x"])
    # a job that ended in the meantime is no failure; a refusal is
    fake(bin_dir, "qdel", 'echo "root has registered the job 27 for deletion"; '
                          'echo "denied: job \\"28\\" does not exist" >&2; exit 1')
    sched.cancel(["27", "28"])
    assert calls(bin_dir, "qdel") == ["27 28"]
    fake(bin_dir, "qdel", 'echo "denied: job 27 belongs to another user" >&2; exit 1')
    with pytest.raises(SchedulerError, match=r"qdel 27 failed \(exit 1\): denied: job 27 belongs to another user"):
        sched.cancel(["27"])

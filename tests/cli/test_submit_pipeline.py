"""`djhpc render|submit|parallel PIPELINE`: one array per resource class of tests/pipelines/chain.py (Segment asks
for the gpu partition), sized to the keys left of its tables; the settings' precedence; submissions recorded;
a class with nothing left not submitted; --plan from a filled history; bad input refused with one line.

A fake sbatch (and sinfo, qconf, scontrol, sacctmgr) first on PATH records its calls, so "nothing was submitted"
is checked, not assumed; the real cluster runs the same pipeline in tests/schedulers/test_slurm_pipeline.py.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import statistics
import uuid
from pathlib import Path

import pytest
from support.chain import TABLES, ChainProject
from support.scripts import bash_syntax_ok, directive_args

DEFAULT_CLASS = ("Motion", "Trace", "Quality", "Summary")  # chain.py's tables without resources, upstream first

FAKE_SBATCH = r"""#!/bin/bash
log="${FAKE_LOG:?}"
printf '%s\n' "$*" >> "$log"
cp "${@: -1}" "$log.script.$(wc -l < "$log")"
if [ "$(wc -l < "$log")" = "${FAKE_SBATCH_FAIL_AT:-0}" ]; then
    echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2
    exit 1
fi
echo $((4240 + $(wc -l < "$log")))
"""
FAKES = {
    "sbatch": FAKE_SBATCH,
    "sinfo": '#!/bin/bash\n[ "$*" = "-h -o %R" ] && printf "debug\\ngpu\\n"\n',
    "qconf": '#!/bin/bash\n[ "$*" = "-sql" ] && printf "all.q\\n"\nexit 0\n',
    "scontrol": '#!/bin/bash\n[ "$1 $2" = "show config" ] && echo "MaxArraySize            = 1001"\nexit 0\n',
    "sacctmgr": "#!/bin/bash\nexit 0\n",
}


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fakebin")
    for name, text in FAKES.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


class Project(ChainProject):
    """chain.py on SQLite, a fake sbatch first on PATH."""

    def write_config(self, text: str) -> None:
        (self.folder / "djhpc.yaml").write_text(f"database: {self.url}\n{text}", encoding="utf-8")

    def run(self, *args, **env):
        return self.djhpc(*args, **env)

    def work(self, *args, **env):
        out = self.djhpc("work", "chain.py", *args, **env)
        assert out.returncode in (0, 1), out.stderr
        return out

    def kept_scripts(self) -> list[Path]:
        folder = self.folder / ".djhpc" / "scripts"
        return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def chain(tmp_path, fake_bin):
    """chain.py on SQLite with sessions 1-3, a fake sbatch; scheduler slurm."""
    folder = tmp_path / "project"
    p = Project.create(folder, f"sqlite:///{folder}/chain.db", "chain_" + uuid.uuid4().hex[:8],
                       yaml="scheduler: slurm\n", DJHPC_TEST_SLEEP=0.05, FAKE_LOG=tmp_path / "sbatch.log",
                       PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    p.add_sessions([1, 2, 3])
    p.log = tmp_path / "sbatch.log"
    return p


def scripts_by_class(text: str) -> dict[str, str]:
    """`djhpc render PIPELINE` output split at its '# ==> CLASS class: TABLES <==' lines: class -> script."""
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.startswith("# ==> ") and " class: " in line:
            name = line[len("# ==> "):].split(" class: ")[0]
            out[name] = ""
        elif name is not None:
            out[name] += line
    return out


def exec_line(script: str) -> list[str]:
    """The words of the script's ``exec`` line (the worker's command)."""
    [line] = [x for x in script.splitlines() if x.startswith("exec ")]
    return shlex.split(line)[1:]


def sbatch_calls(p) -> list[str]:
    return p.log.read_text().splitlines() if p.log.exists() else []


def submissions(p) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(p.folder / "chain.db") as c:
        try:
            return c.execute(f'SELECT job_id, target, table_name, array_size, settings FROM "{p.schema}.~submissions" '
                             "ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return []


def one_error_line(out) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.startswith("djhpc: error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


# ------------------------------------------------------------------------------------------- render


def test_render_slurm_one_array_per_class(chain, tmp_path):
    out = chain.run("render", "chain.py", "--array", 5, "--time", "10m", "--", "--max-calls", "7")
    assert out.returncode == 0, out.stderr
    scripts = scripts_by_class(out.stdout)
    assert list(scripts) == ["default", "gpu"]
    default, gpu = (directive_args(scripts[c], "#SBATCH") for c in ("default", "gpu"))
    # sessions 1-3: the default class has 12 keys to make (Motion ready, the rest to come), the gpu class 3
    assert "--job-name=djhpc-chain-default" in default and "--array=1-5" in default
    assert "--job-name=djhpc-chain-gpu" in gpu and "--array=1-3" in gpu
    assert "--partition=gpu" in gpu and not any(a.startswith("--partition") for a in default)
    assert "--time=00:10:00" in default and "--time=00:10:00" in gpu
    pipeline = str(chain.folder / "chain.py")
    assert exec_line(scripts["default"])[-6:] == ["work", pipeline, "--tables", ",".join(DEFAULT_CLASS),
                                                  "--max-calls", "7"]
    assert exec_line(scripts["gpu"])[-6:] == ["work", pipeline, "--tables", "Segment", "--max-calls", "7"]
    for text in scripts.values():
        bash_syntax_ok(text, tmp_path)
    assert "12 of 12 keys of chain's default class (Motion, Trace, Quality, Summary) left" in out.stderr
    assert "3 of 3 keys of chain's gpu class (Segment) left" in out.stderr
    assert sbatch_calls(chain) == [] and chain.kept_scripts() == [] and submissions(chain) == []
    # djhpc.yaml's target: chain.py names the same pipeline
    again = chain.run("render", "--array", 5, "--time", "10m", "--", "--max-calls", "7")
    assert again.returncode == 0 and again.stdout == out.stdout, again.stderr


def test_a_restriction_sizes_each_class_and_reaches_its_tasks(chain):
    """--restrict on a pipeline: each class sized to its tables' keys under it, each task's worker given it."""
    out = chain.run("render", "chain.py", "--array", 5, "--restrict", "session >= 3")
    assert out.returncode == 0, out.stderr
    scripts = scripts_by_class(out.stdout)
    assert "--array=1-4" in directive_args(scripts["default"], "#SBATCH")  # one session in four tables
    assert "--array=1-1" in directive_args(scripts["gpu"], "#SBATCH")
    assert exec_line(scripts["gpu"])[-4:] == ["--tables", "Segment", "--restrict", "session >= 3"]
    assert "4 of 4 keys of chain's default class (Motion, Trace, Quality, Summary) left where (session >= 3)" \
        in out.stderr
    assert "1 of 1 keys of chain's gpu class (Segment) left where (session >= 3)" in out.stderr


def test_render_pbs_and_sge(chain):
    out = chain.run("render", "chain.py", "--array", 2, "--scheduler", "pbs")
    assert out.returncode == 0, out.stderr
    scripts = scripts_by_class(out.stdout)
    default, gpu = (directive_args(scripts[c], "#PBS") for c in ("default", "gpu"))
    assert default[default.index("-N") + 1] == "djhpc-chain-default" and "-q" not in default
    assert gpu[gpu.index("-N") + 1] == "djhpc-chain-gpu" and gpu[gpu.index("-q") + 1] == "gpu"
    assert gpu[gpu.index("-J") + 1] == "1-2"
    assert exec_line(scripts["gpu"])[-4:] == ["work", str(chain.folder / "chain.py"), "--tables", "Segment"]
    # Grid Engine is asked for its queues (qconf -sql): the fake one has all.q only
    out = chain.run("render", "chain.py", "--array", 2, "--scheduler", "sge")
    assert "the gpu class (Segment) asks for partition 'gpu', which sge does not have (it has all.q)" in \
        one_error_line(out)
    assert out.stdout == ""


def test_precedence_profile_class_flags(chain):
    chain.write_config("scheduler: slurm\nprofile: default\nprofiles:\n"
                       "  default: {partition: debug, time: 1h, mem: 2G, array: 2}\n")
    out = chain.run("render", "chain.py", "--time", "2h")
    assert out.returncode == 0, out.stderr
    scripts = scripts_by_class(out.stdout)
    default, gpu = (directive_args(scripts[c], "#SBATCH") for c in ("default", "gpu"))
    # the class's resources win over the profile, the flags over both; the profile's array sizes both
    assert "--partition=debug" in default and "--partition=gpu" in gpu
    assert "--time=02:00:00" in default and "--time=02:00:00" in gpu and "--mem=2048M" in gpu
    assert "--array=1-2" in default and "--array=1-2" in gpu
    out = chain.run("render", "chain.py", "--partition", "debug")
    gpu = directive_args(scripts_by_class(out.stdout)["gpu"], "#SBATCH")
    assert "--partition=debug" in gpu
    assert "gpu class: --partition debug overrides its partition=gpu (Segment)" in out.stderr


# ------------------------------------------------------------------------------------------- submit


def test_submit_records_one_array_per_class(chain):
    out = chain.run("submit", "chain.py", "--array", 4)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4241", "4242"]
    assert len(sbatch_calls(chain)) == 2
    rows = submissions(chain)
    pipeline = str(chain.folder / "chain.py")
    assert [r[:4] for r in rows] == [("4241", pipeline, "__motion,__trace,__quality,__summary", 4),
                                     ("4242", pipeline, "__segment", 3)]
    settings = [json.loads(r[4]) for r in rows]
    assert [(s["pipeline"], s["resource_class"], s["tables"]) for s in settings] == [
        ("chain", "default", list(DEFAULT_CLASS)), ("chain", "gpu", ["Segment"])]
    assert len(chain.kept_scripts()) == 2
    out = chain.run("status", "--schema", chain.schema, "--quiet")
    assert out.returncode == 0, out.stderr  # (the fake cluster knows no job: their tasks show as unknown)
    assert [line.split("\t")[:3] for line in out.stdout.splitlines()] == [
        ["4242", "slurm", "Segment"], ["4241", "slurm", "Motion, Trace, Quality, Summary"]]


def test_a_class_with_nothing_left_is_not_submitted(chain):
    chain.work("--tables", "Motion,Segment")  # Motion and Segment made: the gpu class has nothing left
    out = chain.run("submit", "chain.py", "--array", 4)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4241"] and len(sbatch_calls(chain)) == 1
    [row] = submissions(chain)
    assert row[2:4] == ("__motion,__trace,__quality,__summary", 4)  # the class's tables (Motion: nothing left)
    assert "nothing to submit for the gpu class: 0 of 3 keys of chain's gpu class (Segment) left" in out.stderr
    chain.work()
    out = chain.run("submit", "chain.py", "--array", 4)
    assert out.returncode == 0 and out.stdout == "" and len(sbatch_calls(chain)) == 1
    assert "nothing to submit: no keys left of chain" in out.stderr


def test_failed_keys_block_their_dependants_and_are_not_counted(chain):
    chain.work("--tables", "Motion", DJHPC_TEST_FAIL="2")
    out = chain.run("render", "chain.py", "--array", 9)
    scripts = scripts_by_class(out.stdout)
    # Motion: 2 made, session 2 failed; every table below it: 2 keys to come, 1 blocked
    assert "--array=1-6" in directive_args(scripts["default"], "#SBATCH")  # Trace, Quality, Summary: 2 each
    assert "--array=1-2" in directive_args(scripts["gpu"], "#SBATCH")
    assert "2 of 3 keys of chain's gpu class (Segment) left, 1 blocked by a failure upstream" in out.stderr
    assert "1 in error" in out.stderr


def test_a_later_class_rejected_names_what_runs_already(chain):
    out = chain.run("submit", "chain.py", "--array", 2, FAKE_SBATCH_FAIL_AT=2)
    assert "already submitted: job 4241 (default class), which will run" in one_error_line(out)
    assert [r[0] for r in submissions(chain)] == ["4241"]


def test_parallel_runs_one_worker_set_over_the_whole_pipeline(chain):
    out = chain.run("parallel", "chain.py", "--jobs", 20)
    assert out.returncode == 0, out.stderr
    assert f"work {chain.folder / 'chain.py'}'" in out.stdout and "--tables" not in out.stdout
    assert "seq 1 15" in out.stdout  # 15 keys of the five tables
    out = chain.run("parallel", "chain.py", "--jobs", 2, "--run", "--joblog", chain.folder / "joblog")
    assert out.returncode == 0, out.stderr
    assert chain.counts() == {(t, s): 1 for t in TABLES for s in (1, 2, 3)}


# ------------------------------------------------------------------------------------------- --plan


def history(p, table_name: str) -> list[tuple[float, float, float]]:
    import sqlite3

    with sqlite3.connect(p.folder / "chain.db") as c:
        return c.execute(f'SELECT duration, cpu_seconds, max_rss_mb FROM "{p.schema}.~history" WHERE table_name = ?',
                         (table_name,)).fetchall()


def p50_p95(values):
    return statistics.median(values), statistics.quantiles(values, n=100, method="inclusive")[94]


def test_plan_without_history_says_so_and_writes_nothing(chain):
    chain.work("--tables", "Motion,Segment")
    out = chain.run("submit", "--plan")  # the pipeline djhpc.yaml names; no --array: no --time either
    assert out.returncode == 0, out.stderr
    assert "default class (the profile's resources): tasks: give --array N" in out.stdout
    assert "proposed:" not in out.stdout
    out = chain.run("submit", "chain.py", "--array", 2, "--plan")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Plan for pipeline chain: 2 resource classes" in lines[0]
    assert any(line.split()[:4] == ["Trace", "3", "0", "no"] for line in lines), out.stdout
    assert "no history for Trace, Quality, Summary" in out.stdout
    assert "nothing left: no --time, --mem or cost" in out.stdout  # the gpu class
    assert sbatch_calls(chain) == [] and chain.kept_scripts() == [] and submissions(chain) == []


def test_plan_numbers_come_from_the_history(chain):
    from djhpc.cli.submit import _hours_text
    from djhpc.progress import seconds_text

    chain.work()  # sessions 1-3, all five tables: three rows of history each
    chain.add_sessions(range(4, 1004))  # 1000 sessions to come: numbers large enough to show in minutes
    out = chain.run("submit", "chain.py", "--array", 1, "--plan", "--cpus", 2, COLUMNS=200)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    spreads = {}
    for table in TABLES:
        rows = history(chain, "__" + table.lower())
        assert len(rows) == 3
        spreads[table] = [p50_p95([r[i] for r in rows]) for i in range(3)]
        line = next(line for line in text.splitlines() if line.startswith(table + " "))
        duration, cpu, _ = spreads[table]
        assert line.split()[1:3] == ["1,000", "3"], line
        assert f"{seconds_text(duration[0])}" in line and f"{seconds_text(duration[1])}" in line, line
        assert f"{seconds_text(cpu[0])}" in line and f"{seconds_text(cpu[1])}" in line, line

    def p95(t):
        return spreads[t][0][1]

    def proposed_time(own, slowest_above, path):  # a task's share after the slowest above, the way down, x1.25
        return max(60, math.ceil((max(own, slowest_above) + path) * 1.25 / 60) * 60)

    own_default = 1000 * sum(p95(t) for t in DEFAULT_CLASS)
    own_gpu = 1000 * p95("Segment")
    path_default = p95("Motion") + p95("Segment") + p95("Trace") + p95("Summary")  # the longest way down
    path_gpu = p95("Motion") + p95("Segment")
    time_default = proposed_time(own_default, own_gpu, path_default)
    time_gpu = proposed_time(own_gpu, own_default, path_gpu)  # waits for Motion's class
    assert own_gpu * 1.25 < time_gpu - 60  # waiting made it longer than its own share

    def hhmmss(seconds):
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def mem(tables):
        return max(64, math.ceil(max(spreads[t][2][1] for t in tables) * 1.25 / 64) * 64)

    def hours(tables, quantile, cpus=2):
        return sum(1000 * spreads[t][0][quantile] for t in tables) * cpus / 3600

    default_part, gpu_part = text.split("gpu class (partition gpu)")
    assert f"proposed: --time {hhmmss(time_default)} --mem {mem(DEFAULT_CLASS)}M" in default_part
    assert f"proposed: --time {hhmmss(time_gpu)} --mem {mem(['Segment'])}M" in gpu_part
    assert (f"cost: {_hours_text(hours(DEFAULT_CLASS, 0))} CPU-hours at p50, {_hours_text(hours(DEFAULT_CLASS, 1))} "
            f"at p95 (2 CPUs a task)") in default_part
    assert f"cost: {_hours_text(hours(['Segment'], 0))} CPU-hours at p50" in gpu_part
    assert "no GPU-hours (no gpus asked)" in gpu_part
    # without --array the tasks' share is unknown: no --time, the rest the same
    out = chain.run("submit", "chain.py", "--plan", "--cpus", 2, COLUMNS=200)
    assert out.returncode == 0, out.stderr
    assert f"proposed: --mem {mem(DEFAULT_CLASS)}M (no --time: give --array N)" in out.stdout
    assert f"cost: {_hours_text(hours(DEFAULT_CLASS, 0))} CPU-hours at p50" in out.stdout
    assert sbatch_calls(chain) == [] and chain.kept_scripts() == [] and submissions(chain) == []


def test_plan_counts_gpu_hours_of_the_class_gpus(chain):
    chain.write_config("scheduler: slurm\ntables:\n  Segment: {gpus: 2}\n")
    chain.work()
    chain.add_sessions(range(4, 104))
    out = chain.run("submit", "chain.py", "--array", 3, "--plan")
    assert out.returncode == 0, out.stderr
    durations = [r[0] for r in history(chain, "__segment")]
    p50, p95 = p50_p95(durations)
    from djhpc.cli.submit import _hours_text

    gpu_part = out.stdout.split("gpu class (gpus 2, partition gpu)")[1]
    assert f"{_hours_text(100 * p50 * 2 / 3600)} GPU-hours at p50, {_hours_text(100 * p95 * 2 / 3600)} at p95 " \
           "(2 GPUs a task)" in gpu_part


# ---------------------------------------------------------------------------------------- bad input

BAD_INPUT = {
    "unknown partition": ("tables:\n  Quality: {partition: bigmem}\n", ["submit", "chain.py", "--array", 2],
                          "the bigmem class (Quality) asks for partition 'bigmem', which slurm does not have (it has "
                          "debug, gpu): fix the tables' resources"),
    "unknown partition flag": ("", ["submit", "chain.py", "--array", 2, "--partition", "cpu"],
                               "asks for partition 'cpu', which slurm does not have (it has debug, gpu): fix "
                               "--partition or the profile"),
    "unknown partition in --plan": ("tables:\n  Quality: {partition: bigmem}\n",
                                    ["submit", "chain.py", "--array", 2, "--plan"], "asks for partition 'bigmem'"),
    "conflicting resources": ("tables:\n  Segment: {partition: debug}\n", ["submit", "chain.py", "--array", 2],
                              "Segment: resources conflict: the class sets partition='gpu', djhpc.yaml's "
                              "tables.Segment sets partition='debug'; keep one"),
    "no computed tables": ("", ["submit", "manual.py", "--array", 2],
                           "pipeline manual.py declares no Computed or Imported table"),
    "unknown table": ("", ["submit", "chain.py", "--array", 2, "--tables", "Segmnt"],
                      "pipeline chain.py has no computed table Segmnt: did you mean Segment?"),
    "unknown downstream table": ("", ["render", "chain.py", "--array", 2, "--downstream-of", "Motoin"],
                                 "has no computed table Motoin: did you mean Motion?"),
    "tables of one table": ("", ["submit", "chain.py:Motion", "--array", 2, "--tables", "Motion"],
                            "--tables and --downstream-of need a pipeline TARGET"),
    "plan of one table": ("", ["submit", "chain.py:Motion", "--array", 2, "--plan"], "--plan needs a pipeline TARGET"),
    "no array": ("", ["submit", "chain.py"], "give --array N"),
    "class array not a number": ("tables:\n  Segment: {array: many}\n", ["submit", "chain.py"],
                                 "array must be a whole number"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_submits_nothing(chain, case):
    yaml, args, message = BAD_INPUT[case]
    chain.write_config(f"scheduler: slurm\n{yaml}")
    (chain.folder / "manual.py").write_text("import os\nimport djhpc as dj\nschema = dj.Schema(os.environ["
                                            "'DJHPC_TEST_SCHEMA'])\n\n\n@schema\nclass Note(dj.Manual):\n"
                                            "    definition = 'note : int'\n")
    out = chain.run(*args)
    assert message in one_error_line(out)
    assert out.stdout == ""
    assert sbatch_calls(chain) == [] and chain.kept_scripts() == [] and submissions(chain) == []

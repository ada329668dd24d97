"""DataJoint 0.14's own test suite as djhpc's yardstick: run the same selection against DataJoint 0.14.10 itself and
against djhpc through the name shim (``import datajoint`` gives djhpc), and print how many pass of each.

    python -m tests.datajoint_suite [--json FILE] [--only datajoint|djhpc]

Prints ``P of T selected passed (DataJoint 0.14.10 itself: P0 of T)``, a row per test file, and the most common
reasons of djhpc's failures. ``--json`` writes every test's outcome under both.

What it needs, from tests/cluster/ensure-datajoint-suite.sh: the sdists of datajoint 0.14.10 (its tests/test_*.py)
and 0.14.3 (the last one that ships tests/conftest.py, the schema modules and tests/data/; its test files equal
0.14.10's), from PyPI, in $DJHPC_DATAJOINT_SUITE_CACHE; a venv with DataJoint 0.14.10 and pytest
($DJHPC_DATAJOINT_SUITE_PYTHON); MariaDB's server programs. The suite is unpacked into a temporary folder for each
run, never into this repository.

The two runs go at once, each on a private MariaDB server (see private_server) that is gone afterwards, with
DataJoint's default database prefix ``djtest`` (some tests name ``djtest_test1`` literally).
"""

from __future__ import annotations

import argparse
import ast
import collections
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

import pymysql

from .deselected import DESELECTED

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CACHE = Path(os.environ.get("DJHPC_DATAJOINT_SUITE_CACHE", "/var/cache/djhpc-datajoint-suite"))
PYTHON = os.environ.get("DJHPC_DATAJOINT_SUITE_PYTHON", "/opt/djhpc-datajoint/suite-0.14/bin/python")
PORT = 3306
SBIN = os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")])
MEMORY = Path("/dev/shm")
# the Debian server's character set; no fsync (the data is thrown away), no binary log
SERVER_OPTIONS = [
    "--skip-name-resolve",
    "--skip-log-bin",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-use-native-aio=0",
    "--innodb-buffer-pool-size=128M",
    "--max-connections=300",
]
TESTS_FROM = ("datajoint-0.14.10.tar.gz", "28ca76dcf899eef836018ab2fe2fb597868e7eb6bf5771a1fa03393a3088b8a9")
SUPPORT_FROM = ("datajoint-0.14.3.tar.gz", "2e55538cacf9f263dc77d1d636d1d14fdeb5531adceeb5b8b9af56c4ec9a4f00")
PREFIX = "djtest"  # DataJoint's default; some tests name djtest_test1 literally
RUN_SECONDS = 480  # one run's limit; each test phase has its own (plugin/djsuite_report.py)
TARGETS = ("datajoint", "djhpc")
ENSURE = "tests/cluster/ensure-datajoint-suite.sh"


class SuiteError(Exception):
    """What the runner needs is missing; the message names the fix."""


def sdist(name: str, sha256: str) -> Path:
    path = CACHE / name
    if not path.is_file():
        raise SuiteError(f"{path} is missing: run {ENSURE}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise SuiteError(f"{path} does not have the expected sha256: delete it and run {ENSURE}")
    return path


def _extract(archive: Path, dest: Path, keep) -> int:
    """Write the archive's tests/ members for which keep(relative path) holds under dest/tests; how many."""
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if (
                len(parts) < 3
                or parts[1] != "tests"
                or ".." in parts
                or not member.isfile()
                or not keep(Path(*parts[2:]))
            ):
                continue
            target = dest / "tests" / Path(*parts[2:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            count += 1
    return count


# conftest.py compares @@version with packaging, which rejects MariaDB's "10.11.19-MariaDB-0+deb12u1": compare
# the part before the first "-" (MariaDB 10.x then counts as >= 8.0, whose branch MariaDB understands).
VERSION_READ = re.compile(r'(query\("select @@version;"\)\.fetchone\(\)\[0\])')


def assemble(dest: Path) -> Path:
    """The suite's folder: 0.14.10's test files, 0.14.3's conftest, schema modules and data."""
    tests = _extract(sdist(*TESTS_FROM), dest, lambda p: p.parent == Path() and p.name.startswith("test_"))
    support = _extract(sdist(*SUPPORT_FROM), dest, lambda p: not p.name.startswith("test_"))
    if not tests or not support:
        raise SuiteError(f"the sdists in {CACHE} hold no suite ({tests} test files, {support} others)")
    conftest = dest / "tests" / "conftest.py"
    text, n = VERSION_READ.subn(r'\1.split("-")[0]', conftest.read_text())
    if n != 2:
        raise SuiteError(f"{conftest}: expected 2 reads of @@version to adapt to MariaDB, found {n}")
    conftest.write_text(lazy_imports(text))
    (dest / "pytest.ini").write_text("[pytest]\n")
    return dest


def lazy_imports(source: str) -> str:
    """conftest.py with its top-level imports of the suite's schema modules and of datajoint.errors' names made
    lazy (plugin/djsuite_lazy.py says why); every other line as it is."""
    lines = source.splitlines(keepends=True)
    for node in reversed(ast.parse(source).body):
        if isinstance(node, ast.ImportFrom) and (node.level or node.module == "datajoint.errors"):
            module = "." * node.level + (node.module or "")
            names = {alias.asname or alias.name: alias.name for alias in node.names}
            lines[node.lineno - 1 : node.end_lineno] = [
                f"__import__('djsuite_lazy').bind(globals(), {module!r}, {names!r})\n"
            ]
    return "".join(lines)


def die_with_parent(sig: int):
    """A preexec_fn: the child gets sig when the runner dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""

    def set_signal():
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG

    return set_signal


@contextmanager
def private_server(name: str):
    """A MariaDB server of the run's own on a free loopback address, port 3306, its data in memory: its host,
    process and log.

    Each run has its own server because the suite's fixtures create and drop MySQL users and the ``djtest_*``
    databases server-wide: two runs (DataJoint's and djhpc's, or two runners) on one server would drop each
    other's. In memory, because the suite declares and drops some thousand tables."""
    mariadbd, install_db = shutil.which("mariadbd", path=SBIN), shutil.which("mariadb-install-db", path=SBIN)
    if not mariadbd or not install_db:
        raise SuiteError(
            "needs MariaDB's mariadbd and mariadb-install-db (tests/cluster/ensure-mariadb.sh installs them)"
        )
    host = free_loopback()
    sweep_stale()
    base = Path(tempfile.mkdtemp(prefix=f"djhpc-datajoint-suite-{name}-", dir=MEMORY if MEMORY.is_dir() else None))
    user = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses to run as root unless told to
    proc = None
    try:
        out = subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={base}/data",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
                *user,
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise SuiteError(f"mariadb-install-db failed: {(out.stderr or out.stdout)[-300:]}")
        (base / "tmp").mkdir()
        (base / "init.sql").write_text(
            "CREATE USER IF NOT EXISTS 'root'@'%';\nGRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n"
        )
        log = open(base / "server.log", "wb")
        proc = subprocess.Popen(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={base}/data",
                f"--bind-address={host}",
                f"--port={PORT}",
                f"--socket={base}/sock",
                f"--pid-file={base}/pid",
                f"--init-file={base}/init.sql",
                f"--tmpdir={base}/tmp",
                *SERVER_OPTIONS,
                *user,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        wait_for(host, proc, base / "server.log")
        yield SimpleNamespace(host=host, proc=proc, log=base / "server.log")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def sweep_stale() -> None:
    """Remove the data folders of private servers whose runner was killed (SIGKILL leaves them, ~180 MB each)."""
    root = MEMORY if MEMORY.is_dir() else Path(tempfile.gettempdir())
    for folder in root.glob("djhpc-datajoint-suite-*"):
        pid_file = folder / "pid"
        try:
            alive = pid_file.exists() and Path(f"/proc/{int(pid_file.read_text().strip())}").exists()
            if not alive and time.time() - folder.stat().st_mtime > 120:
                shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue


def free_loopback() -> str:
    """A loopback address whose port 3306 is free (the shared server holds 127.0.0.1's)."""
    for last in random.sample(range(2, 255), 253):
        with socket.socket() as probe:
            try:
                probe.bind((f"127.0.0.{last}", PORT))
            except OSError:
                continue
            return f"127.0.0.{last}"
    raise SuiteError(f"no loopback address has port {PORT} free")


def wait_for(host: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SuiteError(f"the suite's MariaDB on {host} stopped at start: {log.read_text()[-400:]}")
        try:
            pymysql.connect(host=host, port=PORT, user="root", connect_timeout=2).close()
            return
        except pymysql.err.Error:
            time.sleep(0.2)
    raise SuiteError(f"the suite's MariaDB on {host} did not answer within 60 s: {log.read_text()[-400:]}")


def child_env(target: str, host: str, work: Path, report: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DJHPC_", "PYTHON", "PYTEST_"))}
    home = work / f"home-{target}"
    home.mkdir(exist_ok=True)
    paths = [str(HERE / "plugin")]
    if target == "djhpc":
        paths += [str(HERE / "shim"), str(ROOT)]
    env.update(
        DJ_HOST=host,
        DJ_USER="root",
        DJ_PASS="",
        DJ_TEST_HOST=host,
        DJ_TEST_USER="datajoint",
        DJ_TEST_PASSWORD="datajoint",
        DJ_TEST_DB_PREFIX=PREFIX,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        PATH=os.pathsep.join([str(Path(PYTHON).parent), env.get("PATH", "/usr/bin:/bin")]),
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONDONTWRITEBYTECODE="1",
        DJSUITE_REPORT=str(report),
    )
    return env


KEYWORD: list[str] = []  # ``-k EXPR`` of a partial run (``--keyword``); empty for the full, counted run


def pytest_args() -> list[str]:
    args = [
        PYTHON,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "djsuite_report",
        "-c",
        "pytest.ini",
        "-W",
        "ignore",
        "--tb=no",
        "--continue-on-collection-errors",
        "tests",
        *KEYWORD,
    ]
    for test in DESELECTED:
        args += [f"--ignore=tests/{test}"] if test.endswith(".py") else [f"--deselect=tests/{test}"]
    return args


def selection(suite: Path) -> list[str]:
    """The node ids the runs will execute, as DataJoint's own collection sees them."""
    out = subprocess.run(
        [*pytest_args(), "--collect-only"],
        cwd=suite,
        capture_output=True,
        text=True,
        env=child_env("datajoint", "127.0.0.1", suite.parent, suite.parent / "collect.jsonl"),
        timeout=120,
    )
    tests = [line.split("tests/", 1)[1] for line in out.stdout.splitlines() if line.startswith("tests/")]
    if not tests:
        raise SuiteError(f"collecting the suite selected nothing: {out.stdout[-500:]}{out.stderr[-500:]}")
    return tests


def run_all(targets: list[str], suite: Path) -> dict[str, dict]:
    """Run the selection against each target at once, each on its own server; each test's outcome and reason."""
    with ExitStack() as stack:
        servers = {target: stack.enter_context(private_server(target)) for target in targets}
        started, procs = time.monotonic(), {}
        for target in targets:
            report = suite.parent / f"report-{target}.jsonl"
            report.unlink(missing_ok=True)
            env = child_env(target, servers[target].host, suite.parent, report)
            log = stack.enter_context(open(suite.parent / f"pytest-{target}.log", "wb"))
            folder = suite.parent / f"suite-{target}"  # its own working directory: tests write dj_local_conf.json
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(suite, folder)
            procs[target] = subprocess.Popen(
                pytest_args(),
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        try:
            return collect(procs, servers, suite, started)
        finally:
            for proc in procs.values():  # a runner stopped midway (SIGTERM, an error) leaves no run behind
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def collect(procs: dict, servers: dict, suite: Path, started: float) -> dict[str, dict]:
    """Wait for each target's run (within the time limit) and read its outcomes."""
    results = {}
    for target, proc in procs.items():
        try:
            proc.wait(timeout=max(1.0, started + RUN_SECONDS - time.monotonic()))
            unrun = crash_line(suite.parent / f"pytest-{target}.log")
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            unrun = f"the run reached its {RUN_SECONDS} s limit before this test"
        outcomes = read_report(suite.parent / f"report-{target}.jsonl")
        results[target] = {"seconds": round(time.monotonic() - started, 1), "outcomes": outcomes, "unrun": unrun}
        if servers[target].proc.poll() is not None:  # see run_targets
            tail = servers[target].log.read_text(errors="replace").strip().splitlines()[-3:]
            results[target]["server_crash"] = f"exit {servers[target].proc.returncode}: " + " | ".join(tail)
    return results


def run_targets(targets: list[str], suite: Path) -> dict[str, dict]:
    """run_all, and once more for a target whose private server died under it: MariaDB 10.11.19 sometimes segfaults
    in create_tmp_table_for_schema on an information_schema query (the shared server did too), and a crashed
    server is not a result."""
    results = run_all(targets, suite)
    crashed = [target for target in targets if "server_crash" in results[target]]
    if crashed:
        for target in crashed:
            print(
                f"{target}: the private MariaDB died ({results[target]['server_crash'][:300]}): running again",
                file=sys.stderr,
            )
        results.update(run_all(crashed, suite))
        for target in crashed:
            results[target]["reruns"] = 1
    return results


def read_report(report: Path) -> dict[str, dict]:
    outcomes = {}
    if report.exists():
        for line in report.read_text().splitlines():
            record = json.loads(line)
            outcomes[record["test"].removeprefix("tests/")] = record
    return outcomes


def crash_line(log: Path) -> str:
    """Why a finished run did not run a test: pytest's own last error line (a conftest that does not import)."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return "the run stopped before this test: " + (errors[-1] if errors else (lines or ["no output"])[-1])[:240]


def outcome_of(results: dict, test: str) -> tuple[str, str]:
    record = results["outcomes"].get(test) or results["outcomes"].get(test.split("::")[0])  # a file's collection
    if record is None:
        return "not run", results["unrun"]
    return record["outcome"], record["reason"]


def reason_key(reason: str) -> str:
    """A failure's reason without the names and numbers that differ between tests."""
    text = re.sub(r"`[^`]*`|'[^']{40,}'|\"[^\"]*\"|\([^()]*/[^()]*\)", "…", reason)  # keeps short 'names'

    text = re.sub(r"\b0x[0-9a-f]+\b|\b\d+\b", "N", text)
    return text[:140]


def summarize(tests: list[str], results: dict) -> dict:
    per_file = collections.OrderedDict()
    totals = collections.Counter()
    reasons = collections.Counter()
    table = {}
    for test in tests:
        row = per_file.setdefault(test.split("::")[0], collections.Counter())
        row["selected"] += 1
        totals["selected"] += 1
        table[test] = {}
        for target in results:
            outcome, reason = outcome_of(results[target], test)
            table[test][target] = {"outcome": outcome, "reason": reason}
            if outcome == "passed":
                row[target] += 1
                totals[target] += 1
            elif target == "djhpc":
                reasons[reason_key(reason)] += 1
    return {"totals": totals, "per_file": per_file, "reasons": reasons, "tests": table}


def render(summary: dict, results: dict) -> str:
    totals, lines = summary["totals"], []
    t = totals["selected"]
    if "djhpc" in results and "datajoint" in results:
        p, p0 = totals["djhpc"], totals["datajoint"]
        lines.append(f"{p} of {t} selected passed (DataJoint 0.14.10 itself: {p0} of {t})")
    for target, result in results.items():
        rerun = " (run again: its private MariaDB died)" if result.get("reruns") else ""
        lines.append(f"{target}: {totals[target]} of {t} passed in {result['seconds']} s{rerun}")
        if result.get("server_crash"):
            lines.append(f"  its private MariaDB died under it again: {result['server_crash'][:300]}")
    lines.append("")
    names = list(results)
    lines.append(f"{'file':34} {'selected':>8} " + " ".join(f"{n:>9}" for n in names))
    for name, row in summary["per_file"].items():
        lines.append(f"{name:34} {row['selected']:>8} " + " ".join(f"{row[n]:>9}" for n in names))
    if "djhpc" in results:
        lines += ["", "djhpc's failures by reason (count, reason):"]
        lines += [f"{count:5}  {reason}" for reason, count in summary["reasons"].most_common(25)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.datajoint_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write every selected test's outcome under each target here")
    parser.add_argument("--only", choices=TARGETS, help="run against this target only")
    parser.add_argument("-k", "--keyword", metavar="EXPR",
                        help="run only the tests pytest's -k EXPR selects (a file's stem works: -k test_fetch)")
    args = parser.parse_args(argv)
    if args.keyword:
        KEYWORD[:] = ["-k", args.keyword]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # stop the servers on the way out
    try:
        if not Path(PYTHON).exists():
            raise SuiteError(f"{PYTHON} is missing: run {ENSURE}")
        with tempfile.TemporaryDirectory(prefix="djhpc-datajoint-suite-") as work:
            suite = assemble(Path(work) / "suite")
            tests = selection(suite)
            results = run_targets([t for t in TARGETS if args.only in (None, t)], suite)
    except SuiteError as exc:
        print(f"datajoint suite: error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(tests, results)
    print(render(summary, results))
    if args.json:
        data = {
            "selected": len(tests),
            "passed": {n: summary["totals"][n] for n in results},
            "seconds": {n: r["seconds"] for n, r in results.items()},
            "reruns": {n: r.get("reruns", 0) for n, r in results.items()},
            "server_crash": {n: r.get("server_crash") for n, r in results.items()},
            "deselected": DESELECTED,
            "tests": summary["tests"],
        }
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0

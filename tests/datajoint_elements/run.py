"""DataJoint Elements as a second yardstick: public pipelines nobody here wrote, activated as their own workflow
packages do, under DataJoint 0.14.10 itself and under djhpc (through the suite's name shim).

    python -m tests.datajoint_elements [--json FILE] [--only datajoint|djhpc] [-k SUBSTRING]

Each pipeline (workflow/element_workflow.py) runs in a fresh process: it imports the Elements' modules, activates
their schemas with a linking module, then inserts a little data. Under DataJoint on MariaDB; under djhpc on MariaDB
and on SQLite. Prints ``N of M pipelines declare (DataJoint 0.14.10 itself: N0 of M)``, then a row per pipeline.

What it needs, from tests/cluster/ensure-datajoint-elements.sh: the Elements' wheels from PyPI in
$DJHPC_DATAJOINT_ELEMENTS_CACHE (put on PYTHONPATH as they are: pure-Python wheels import from the zip, nothing is
installed or unpacked) and a venv with DataJoint 0.14.10 and the Elements' light dependencies
($DJHPC_DATAJOINT_ELEMENTS_PYTHON); MariaDB on 127.0.0.1:3306. Each MariaDB run has a database prefix of its own,
dropped afterwards; each SQLite run a file in a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymysql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIM = ROOT / "tests" / "datajoint_suite" / "shim"
sys.path.insert(0, str(HERE / "workflow"))
from element_workflow import PIPELINES  # noqa: E402  (only the names: the module imports datajoint lazily)

CACHE = Path(os.environ.get("DJHPC_DATAJOINT_ELEMENTS_CACHE", "/var/cache/djhpc-datajoint-elements"))
PYTHON = os.environ.get("DJHPC_DATAJOINT_ELEMENTS_PYTHON", "/opt/djhpc-datajoint/elements-0.14/bin/python")
ENSURE = "tests/cluster/ensure-datajoint-elements.sh"
MARIADB_ENSURE = "tests/cluster/ensure-mariadb.sh"
MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")
# file -> sha256, as ensure-datajoint-elements.sh downloads them (PyPI never changes a released file)
WHEELS = {
    "element_lab-0.3.0-py3-none-any.whl": "1e96cea378df86b37727d7cdcb11cd1b31e2b498ab2a9d268470692e6ba0c55f",
    "element_animal-0.1.8-py3-none-any.whl": "641a15129cad557d8fe7f850a43f3a563a3c134d97dae50cb7320f5046aea3f7",
    "element_session-0.1.6-py3-none-any.whl": "090b613253b02b3a1f29bf6f20c68af195d71885faac377a1dc6d5ddbd807636",
    "element_event-0.2.3-py3-none-any.whl": "b84d74e6c7e48a00e157df5f2764202e632d33d51ccee0f5716f3d48267197dd",
    "element_interface-0.6.1-py3-none-any.whl": "32810de2b507a97837072463258652eebea584b7b5f811287cdfadd2856ba640",
    "element_array_ephys-0.2.11-py3-none-any.whl": "8e4f133d6081c9656211906b9353d140fd3a781fe5481660a358d68ab395293e",
    "element_calcium_imaging-0.7.8-py3-none-any.whl": (
        "63a656d25c2aa721d27b04b06f6b892a3691d462a5b0f65003924c05b75a256b"
    ),
    "element_facemap-0.1.7-py3-none-any.whl": "0c691f6e6acacc3195429a2a610503f626abd5767c2828e3c8f47c5b80a86a64",
    "element_deeplabcut-0.2.8-py3-none-any.whl": "898273e4b992250ae2b69e428cbd99d3a6d55f568c1e120fe90e3fef895f70cc",
}
# (target, backend): DataJoint 0.14 has no SQLite. "handover" is no run of its own: after DataJoint's run has
# reopened its pipeline, djhpc reopens it too (a lab pointing ``import djhpc as dj`` at its DataJoint database)
RUNS = (("datajoint", "mariadb"), ("djhpc", "mariadb"), ("djhpc", "sqlite"))
HANDOVER = ("handover", "mariadb")
COLUMNS = ("DataJoint 0.14.10 (MariaDB)", "djhpc (MariaDB)", "djhpc (SQLite)", "DataJoint's, reopened by djhpc")
PIPELINE_SECONDS = 120
PARALLEL = 3


class ElementsError(Exception):
    """What the runner needs is missing; the message names the fix."""


def wheels() -> list[Path]:
    paths = []
    for name, sha256 in WHEELS.items():
        path = CACHE / name
        if not path.is_file():
            raise ElementsError(f"{path} is missing: run {ENSURE}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            raise ElementsError(f"{path} does not have the expected sha256: delete it and run {ENSURE}")
        paths.append(path)
    if not Path(PYTHON).exists():
        raise ElementsError(f"{PYTHON} is missing: run {ENSURE}")
    return paths


def child_env(target: str, backend: str, folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DJHPC_", "PYTHON"))}
    paths = [str(HERE / "workflow")]
    if target == "djhpc":
        paths += [str(SHIM), str(ROOT)]
    paths += [str(p) for p in wheels()]
    env.update(
        HOME=str(folder),
        XDG_CONFIG_HOME=str(folder / ".config"),
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONDONTWRITEBYTECODE="1",
        MPLCONFIGDIR=str(folder / "mpl"),
    )
    if backend == "sqlite":
        env["DJHPC_DATABASE_URL"] = f"sqlite:///{folder}/pipeline.db"
    else:
        env.update(DJ_HOST=f"{MYSQL['host']}:{MYSQL['port']}", DJ_USER=MYSQL["user"], DJ_PASS=MYSQL["password"])
    return env


def drop_prefix(prefix: str) -> None:
    """Drop every database the pipeline made (its prefix is its own)."""
    conn = pymysql.connect(**MYSQL, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (prefix.replace("_", r"\_") + "%",))
            names = [row[0] for row in cur.fetchall()]
            cur.execute("SET FOREIGN_KEY_CHECKS=0")
            for name in names:
                cur.execute("DROP DATABASE `{}`".format(name.replace("`", "``")))
    finally:
        conn.close()


def run_child(pipeline: str, prefix: str, mode: str, env: dict, folder: Path) -> dict:
    """The pipeline in a fresh process (element_workflow.py); its JSON line, or what stopped it."""
    try:
        out = subprocess.run(
            [PYTHON, "-m", "element_workflow", pipeline, prefix, mode],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=PIPELINE_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return dict(pipeline=pipeline, stage="import", error=f"ran past {PIPELINE_SECONDS} s", answers={})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
    return dict(pipeline=pipeline, stage="import", error=f"the process exited {out.returncode}: {tail}", answers={})


def run_one(target: str, backend: str, pipeline: str, with_handover: bool = True) -> dict:
    """One pipeline on a fresh database, then, when it went through, reopened by a second process (as each later
    session of a workflow does): its outcome (stage, error, schemas, answers, reopen, seconds)."""
    prefix = f"djel{secrets.token_hex(3)}_"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="djhpc-elements-") as tmp:
        folder = Path(tmp)
        try:
            result = run_child(pipeline, prefix, "fresh", child_env(target, backend, folder), folder)
            if result["stage"] == "inserted":
                result["reopen"] = reopen(result, pipeline, prefix, child_env(target, backend, folder), folder)
                if (
                    target == "datajoint" and with_handover
                ):  # then djhpc, last: what it adds cannot change DataJoint's reopen
                    djhpc = child_env("djhpc", backend, folder)
                    result["handover"] = reopen(result, pipeline, prefix, djhpc, folder)
        finally:
            if backend == "mariadb":
                drop_prefix(prefix)
    result.update(target=target, backend=backend, seconds=round(time.monotonic() - started, 1))
    return result


def reopen(result: dict, pipeline: str, prefix: str, env: dict, folder: Path) -> dict:
    """The filled pipeline activated by another process: its stage, error, and whether it read the same."""
    again = run_child(pipeline, prefix, "reopen", env, folder)
    same = again["answers"] == result["answers"] and again.get("schemas") == result["schemas"]
    return dict(stage=again["stage"], error=again["error"], same_answers=same)


def handover(results: dict) -> dict:
    """DataJoint's runs as seen by djhpc's reopen of them (the "handover" column)."""
    runs = results.get(("datajoint", "mariadb"), {})
    return {name: dict(result, reopen=result.get("handover"), error=None) for name, result in runs.items()}


def reopened(result: dict) -> bool:
    """A second process activated the filled pipeline and read the same answers."""
    again = result.get("reopen") or {}
    return again.get("stage") == "reopened" and again.get("same_answers", False)


def declared(result: dict) -> bool:
    return result["stage"] in ("declared", "inserted")


def differences(results: dict, run: tuple, name: str) -> list[str] | None:
    """The answers (and schemas) of a djhpc run that differ from DataJoint's on the same pipeline; None when
    there is nothing to compare (DataJoint not run, or either run stopped before its inserts)."""
    mine, theirs = results[run][name], results.get(("datajoint", "mariadb"), {}).get(name)
    if run[0] in ("datajoint", "handover") or theirs is None or "inserted" not in (mine["stage"], theirs["stage"]):
        return None
    if mine["stage"] != theirs["stage"]:
        return ["stage"]
    wrong = [key for key in theirs["answers"] if mine["answers"].get(key) != theirs["answers"][key]]
    return wrong + (["schemas"] if mine["schemas"] != theirs["schemas"] else [])


def cell(results: dict, run: tuple, name: str) -> str:
    if run not in results:
        return "-"
    wrong = differences(results, run, name)
    text = results[run][name]["stage"]
    if wrong is not None:
        text += ", same answers" if not wrong else f", answers differ: {', '.join(wrong)}"
    if results[run][name]["stage"] == "inserted":
        text += ", reopens" if reopened(results[run][name]) else ", does not reopen"
    return text


def report(results: dict, names: list[str]) -> str:
    def count(run, test=declared):
        return sum(test(results[run][n]) for n in names) if run in results else None

    m = len(names)
    lines = []
    dj0, djm, djs = ("datajoint", "mariadb"), ("djhpc", "mariadb"), ("djhpc", "sqlite")
    if djm in results:
        itself = f"{count(dj0)} of {m}" if dj0 in results else "not run"
        lines.append(f"{count(djm)} of {m} pipelines declare (DataJoint 0.14.10 itself: {itself})")
        lines.append(f"  on SQLite under djhpc: {count(djs)} of {m} declare")
        ran = [run for run in RUNS if run in results]
        inserted = ", ".join(f"{t} on {b}: {count((t, b), lambda r: r['stage'] == 'inserted')}" for t, b in ran)
        lines.append(f"  take their inserts: {inserted}")
        same = ", ".join(
            f"on {b}: {sum(differences(results, (t, b), n) == [] for n in names)}" for t, b in results if t == "djhpc"
        )
        lines.append(f"  give DataJoint's answers to the same queries after the inserts: {same}")
        again = ", ".join(f"{t} on {b}: {count((t, b), reopened)}" for t, b in RUNS if (t, b) in results)
        lines.append(f"  reopen in a second process with the same answers: {again}")
        if HANDOVER in results:
            handed = count(HANDOVER, reopened)
            lines.append(
                f"  a database DataJoint declared and filled, reopened by djhpc, same answers: {handed} of {m}"
            )
    else:
        lines.append(f"DataJoint 0.14.10 itself: {count(dj0)} of {m} pipelines declare")
    lines += ["", "| pipeline | " + " | ".join(COLUMNS) + " |", "| --- " * (len(COLUMNS) + 1) + "|"]
    for name in names:
        cells = [cell(results, run, name) for run in (*RUNS, HANDOVER)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    errors = [
        f"- {t}/{b} {name}{' (reopened)' if again else ''}: {outcome['error']}"
        for (t, b) in results
        for name in names
        for again, outcome in ((False, results[(t, b)][name]), (True, results[(t, b)][name].get("reopen") or {}))
        if outcome.get("error")
    ]
    if errors:
        lines += ["", "First errors:", *errors]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.datajoint_elements", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every pipeline's outcome here")
    parser.add_argument("--only", choices=("datajoint", "djhpc"), help="run under one target only")
    parser.add_argument("-k", dest="keyword", default="", help="only the pipelines whose name holds this")
    args = parser.parse_args(argv)
    names = [n for n in PIPELINES if args.keyword in n]
    runs = [run for run in RUNS if not args.only or run[0] == args.only]  # the handover needs both
    try:
        wheels()
        pymysql.connect(**MYSQL, connect_timeout=3).close()
    except ElementsError as exc:
        print(f"datajoint_elements: error: {exc}", file=sys.stderr)
        return 2
    except pymysql.err.Error:
        print(f"datajoint_elements: error: no MariaDB on 127.0.0.1:3306 ({MARIADB_ENSURE})", file=sys.stderr)
        return 2
    started = time.monotonic()
    jobs = [(run, name) for run in runs for name in names]
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda job: run_one(*job[0], job[1], with_handover=not args.only), jobs))
    results: dict = {}
    for (run, name), outcome in zip(jobs, outcomes, strict=True):
        results.setdefault(run, {})[name] = outcome
    if ("datajoint", "mariadb") in results and ("djhpc", "mariadb") in results:
        results[HANDOVER] = handover(results)
    print(report(results, names))
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json:
        data = dict(
            pipelines=len(names),
            declared={f"{t}/{b}": sum(declared(r) for r in results[(t, b)].values()) for t, b in results},
            inserted={f"{t}/{b}": sum(r["stage"] == "inserted" for r in results[(t, b)].values()) for t, b in results},
            same_answers={
                f"{t}/{b}": sum(differences(results, (t, b), n) == [] for n in names)
                for t, b in results
                if t == "djhpc"
            },
            reopened={f"{t}/{b}": sum(reopened(r) for r in results[(t, b)].values()) for t, b in results},
            results=[r for run in results.values() for r in run.values()],
        )
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0

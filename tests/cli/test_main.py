"""The ``djhpc`` command as a whole, run as the installed command in a subprocess: global options before or after
the command, --no-color, "did you mean" for a mistyped command or choice, the exit codes the README promises
(69 for a database unreachable at start, 2 for every usage error: one line, no traceback)."""

from __future__ import annotations

import argparse
import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cluster import cli_env, make_project
from support.env import ROOT
from support.pipeline import load_items

from djhpc.cli.main import build_parser

DJHPC = Path(sys.executable).with_name("djhpc")
TARGET = "pipeline.py:Square"


def run(args, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    """The installed ``djhpc`` command, as a user runs it."""
    return subprocess.run([str(DJHPC), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("djhpc: error: ") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def bare_env(tmp_path) -> dict:
    """No DJHPC_*/DJ_* settings, a private config folder, the venv's djhpc first on PATH."""
    return cli_env("main", tmp_path, PATH=f"{DJHPC.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Two SQLite databases: the project's (in djhpc.yaml: 3 items) and another (5 items) named only by a flag."""
    other = f"sqlite:///{tmp_path / 'other.db'}"
    load_items(other, "main", 5, monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'project.db'}"
    folder = make_project(tmp_path / "project", url, "scheduler: local\n")
    load_items(url, "main", 3, monkeypatch, tmp_path)
    return folder, bare_env(tmp_path), other


# ------------------------------------------------------------------------------------ item 8: global options


@pytest.mark.parametrize("where", ["before", "after", "between"])
def test_database_url_before_or_after_the_command(project, where):
    folder, env, other = project
    args = {"before": ["--database-url", other, "progress", TARGET, "--json"],
            "after": ["progress", TARGET, "--json", "--database-url", other],
            "between": ["progress", "--database-url", other, TARGET, "--json"]}[where]
    out = run(args, folder, env)
    assert out.returncode == 0, out.stderr
    assert '"total": 5' in out.stdout  # the other database's 5 items, not the project's 3


def test_without_the_flag_the_project_database_counts(project):
    folder, env, _ = project
    out = run(["progress", TARGET, "--json"], folder, env)
    assert out.returncode == 0 and '"total": 3' in out.stdout, out.stderr


def test_global_options_after_nested_commands(project):
    folder, env, other = project
    for args in (["jobs", "list", TARGET, "--database-url", other, "-v", "--no-color"],
                 ["history", "show", TARGET, "--database-url", other, "-q"],
                 ["reap", TARGET, "--dry-run", "--scheduler", "none", "-v", "--database-url", other]):
        out = run(args, folder, env)
        assert out.returncode == 0, (args, out.stderr)


def test_quiet_and_verbose_after_the_command(project):
    folder, env, _ = project
    loud = run(["work", TARGET, "-v"], folder, env)
    assert loud.returncode == 0, loud.stderr
    env2 = {**env, "DJHPC_TEST_CALLS": str(folder / "calls2.log")}
    quiet = run(["work", TARGET, "-q"], folder, env2)
    assert quiet.returncode == 0
    assert "djhpc:" not in quiet.stderr, quiet.stderr  # warnings and errors only
    assert len(loud.stderr.splitlines()) > len(quiet.stderr.splitlines())


def test_a_password_in_database_url_is_refused_wherever_it_stands(tmp_path):
    for args in (["--database-url", "mysql://u:secret@h/db", "progress"], ["progress", "--database-url",
                                                                            "mysql://u:secret@h/db"]):
        out = run(args, tmp_path, bare_env(tmp_path))
        assert out.returncode == 2 and "a password on the command line shows in ps" in one_line_error(out)


def test_every_command_lists_the_global_options_in_its_help(tmp_path):
    for command in ("work", "progress", "submit", "jobs", "history"):
        out = run([command, "--help"], tmp_path, bare_env(tmp_path))
        assert out.returncode == 0
        for flag in ("--database-url", "--quiet", "--verbose", "--no-color"):
            assert flag in out.stdout, (command, flag)


def _on_a_terminal(argv, cwd, env) -> tuple[int, bytes]:
    """Run djhpc with a pseudo-terminal as stdout and stderr: (exit code, what it wrote)."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([str(DJHPC), *argv], cwd=cwd, env={**env, "TERM": "xterm-256color", "COLUMNS": "160"},
                            stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main_fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(main_fd)
    return proc.wait(timeout=60), b"".join(chunks)


def test_no_color_flag_as_no_color_variable(project):
    folder, env, _ = project
    env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    rc, coloured = _on_a_terminal(["progress", TARGET], folder, env)
    assert rc == 0 and b"\x1b[" in coloured, coloured  # a terminal gets colour by default
    for argv, extra in ((["progress", TARGET, "--no-color"], {}), (["--no-color", "progress", TARGET], {}),
                        (["progress", TARGET], {"NO_COLOR": "1"})):
        rc, plain = _on_a_terminal(argv, folder, {**env, **extra})
        assert rc == 0 and b"\x1b[" not in plain and b"Square" in plain, (argv, plain)


# ------------------------------------------------------------------------------------ item 10: did you mean


@pytest.mark.parametrize("typed, meant", [("progres", "progress"), ("sumbit", "submit"), ("hist", "history"),
                                          ("reaper", "reap")])
def test_a_mistyped_command_gets_the_nearest(tmp_path, typed, meant):
    out = run([typed, TARGET], tmp_path, bare_env(tmp_path))
    assert out.returncode == 2
    assert f"invalid choice '{typed}': did you mean '{meant}'?" in one_line_error(out)


def test_a_mistyped_choice_gets_the_nearest(tmp_path):
    out = run(["work", TARGET, "--order", "revrese"], tmp_path, bare_env(tmp_path))
    assert out.returncode == 2
    assert "argument --order: invalid choice 'revrese': did you mean 'reverse'? choose from" in one_line_error(out)
    out = run(["history", "shwo"], tmp_path, bare_env(tmp_path))
    assert out.returncode == 2 and "did you mean 'show'?" in one_line_error(out)


def test_nothing_near_lists_the_choices(tmp_path):
    out = run(["xyzzy"], tmp_path, bare_env(tmp_path))
    assert out.returncode == 2
    line = one_line_error(out)
    assert "invalid choice 'xyzzy': choose from" in line and "did you mean" not in line


# ------------------------------------------------------------------------------------ item 9: exit codes


@pytest.mark.parametrize("where", ["yaml", "flag after the command"])
def test_work_exits_69_when_the_database_stays_unreachable_at_start(tmp_path, where):
    with socket.socket() as closed:  # bound and never listening: every connection to it is refused
        closed.bind(("127.0.0.1", 0))
        url = f"mysql://root@127.0.0.1:{closed.getsockname()[1]}"
        folder = make_project(tmp_path / "p", url if where == "yaml" else "sqlite:///unused.db")
        env = {**bare_env(tmp_path), "DJHPC_RECONNECT_SECONDS": "1"}
        started = time.monotonic()
        out = run(["work", TARGET, *([] if where == "yaml" else ["--database-url", url])], folder, env)
        took = time.monotonic() - started
    assert out.returncode == 69, out.stderr
    assert "trying again for up to 1 s (DJHPC_RECONNECT_SECONDS)" in out.stderr  # it waited before giving up
    assert out.stderr.strip().splitlines()[-1].startswith("djhpc: error: cannot reach the database at 127.0.0.1:")
    assert "Traceback" not in out.stderr and took >= 1.0
    assert not (folder / "unused.db").exists()


def _commands():
    """(words, parser) of every command and subcommand of the real parser."""
    todo, found = [((), build_parser())], []
    while todo:
        words, parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action._name_parser_map.items():
                    found.append(((*words, name), child))
                    todo.append(((*words, name), child))
    return sorted(found, key=lambda c: c[0])


def _bad_values(parser):
    """A wrong value for each option of ``parser`` that argparse checks: a choice, a whole number, a duration."""
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or isinstance(action, argparse._HelpAction):
            continue
        flag = max(action.option_strings, key=len)
        if action.choices is not None and "nosuch" not in action.choices:
            yield flag, "nosuch"
        elif action.type is int or getattr(action.type, "__name__", "") in ("_non_negative",):
            yield flag, "many"
        elif getattr(action.type, "__name__", "") in ("duration", "age_argument", "_time_limit"):
            yield flag, "5x"


def _generic_cases():
    cases = [((), ("--bogus",))]
    for words, parser in _commands():
        cases.append((words, ("--bogus-option",)))
        cases += [(words, (flag, value)) for flag, value in _bad_values(parser)]
    return cases


GENERIC = _generic_cases()


@pytest.mark.parametrize("words, args", GENERIC, ids=[" ".join((*w, *a)) for w, a in GENERIC])
def test_every_option_argparse_checks_refuses_with_one_line_and_exit_2(tmp_path, words, args):
    out = run([*words, *args], tmp_path, bare_env(tmp_path))
    assert out.returncode == 2, out.stderr
    line = one_line_error(out)
    assert args[0] in line or "invalid" in line or "required" in line, line


# mistakes found only once the command runs: each a one-line usage error with exit 2, in the project folder
RUNTIME_MISTAKES = [
    ["work", "nosuchmodule:Square"], ["work", "pipeline.py:Nope"], ["work", "pipeline.py:Item"],
    ["work", "nosuch.py:Square"], ["work", "Square"], ["work", TARGET, "--log", "/nonexistent/dir/keys.log"],
    ["submit", "--array", "0"], ["submit"], ["render", "--array", "2", "--throttle", "5"],
    ["render", "--array", "2", "--profile", "nosuch"], ["render", "--array", "2", "--scheduler", "flux"],
    ["render", "--array", "2", "--mem", "lots"], ["render", "--array", "2", "--template-dir", "/nonexistent"],
    ["parallel", "--jobs", "0"], ["parallel", "--jobs", "2", "--halt", "sometimes"],
    ["progress", "pipeline.py:Nope"], ["progress", "--schema", "no_such_schema_xyz"],
    ["jobs", "show", TARGET, "{not json"], ["jobs", "retry", TARGET], ["jobs", "clear", TARGET],
    ["reap", TARGET, "--scheduler", "bogus"], ["cancel"], ["cancel", "--limit", "0"],
    ["history", "show", "--limit", "0"], ["history", "prune"],
    ["report"], ["status", "--limit", "-1"],
    ["completion"], ["completion", "fish"], ["init", TARGET],
]


@pytest.mark.parametrize("args", RUNTIME_MISTAKES, ids=[" ".join(a) for a in RUNTIME_MISTAKES])
def test_every_usage_mistake_is_one_line_and_exit_2(project, args):
    folder, env, _ = project
    env = {**env, "DJHPC_TEST_FAIL": "1"}  # so that jobs retry/clear have an error row to ask about
    if args[:2] in (["jobs", "retry"], ["jobs", "clear"]):
        assert run(["work", TARGET, "-q"], folder, env).returncode == 1
    out = run(args, folder, env)
    assert out.returncode == 2, (out.returncode, out.stderr)
    one_line_error(out)


def test_the_covered_commands_are_all_the_commands():
    top = {words[0] for words, _ in _commands()}
    covered = {a[0] for a in RUNTIME_MISTAKES}
    assert top - covered <= {"demo", "status", "logs"}, top - covered  # demo, status and logs: options only


def test_no_command_prints_the_help_and_exits_2(tmp_path):
    out = run([], tmp_path, bare_env(tmp_path))
    assert out.returncode == 2 and "usage: djhpc" in out.stdout and "Traceback" not in out.stderr


@pytest.mark.parametrize("typed, hint", [
    ("pipeline.py:Sqare", "pipeline.py has no Sqare: did you mean pipeline.py:Square?"),
    ("pipeline.py:__square", "pipeline.py has no __square: did you mean pipeline.py:Square?"),  # its table name
    ("pipeline.py:square", "pipeline.py has no square: did you mean pipeline.py:Square?"),
    ("pipeline.py:Xyzzy", "pipeline.py has no Xyzzy: its tables with make() are Held, PairSum, Square"),
    ("pipline.py:Square", "target file pipline.py does not exist: did you mean pipeline.py?"),
    ("pipline:Square", "target module pipline does not import (No module named 'pipline'): did you mean pipeline?"),
    ("pipeline.py:Item", "is not a Computed or Imported table: name one that has make() (pipeline.py has Held, "
                         "PairSum, Square)"),
])
def test_a_mistyped_target_gets_the_nearest(project, typed, hint):
    folder, env, _ = project
    out = run(["progress", typed], folder, env)
    assert out.returncode == 2 and hint in one_line_error(out)


def test_python_dash_m_djhpc_is_the_command_line():
    done = subprocess.run([sys.executable, "-m", "djhpc", "--version"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.startswith("djhpc "), done.stderr

"""Bad input at the command line and in configuration: one exact line on stderr, exit code 2, nothing written.

The API's catalogue is tests/test_bad_input.py; submit/render/parallel's is tests/cli/test_submit.py;
jobs/progress/history's are in tests/cli/.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.env import ROOT

PIPELINE = '''
import djhpc as dj
schema = dj.Schema("bad")

@schema
class Thing(dj.Manual):
    definition = """
    id : int
    """

@schema
class Made(dj.Computed):
    definition = """
    -> Thing
    """
    def make(self, key):
        self.insert1(key)
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    return tmp_path


def djhpc(project, *args, env=None, yaml=None):
    if yaml is not None:
        (project / "djhpc.yaml").write_text(yaml)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    environment["PYTHONPATH"] = str(ROOT)
    environment["XDG_CONFIG_HOME"] = str(project / "xdg")
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "djhpc.cli.main", *args], cwd=project, env=environment,
                          capture_output=True, text=True, timeout=60)


CASES = [
    # (id, args, env, yaml, exact stderr line)
    ("target without a colon", ["work", "pipe.Made"], {}, None,
     "djhpc: error: target 'pipe.Made': pipe is a module, not a package: name one table as pipe:Made or the whole "
     "pipeline as pipe"),
    ("target that does not import", ["work", "nosuchmodule:Made"], {}, None,
     "djhpc: error: target module nosuchmodule does not import (No module named 'nosuchmodule'): "
     "check the name and PYTHONPATH"),
    ("target file that does not exist", ["work", "missing.py:Made"], {}, None, None),
    ("target class that does not exist", ["work", "pipe:Nope"], {}, None,
     "djhpc: error: target 'pipe:Nope': pipe has no Nope: its tables with make() are Made"),
    ("target class mistyped", ["work", "pipe:made"], {}, None,
     "djhpc: error: target 'pipe:made': pipe has no made: did you mean pipe:Made?"),
    ("target that is not auto-populated", ["work", "pipe:Thing"], {}, None,
     "djhpc: error: target 'pipe:Thing' is not a Computed or Imported table: name one that has make() "
     "(pipe has Made)"),
    ("no target anywhere", ["work"], {}, None,
     "djhpc: error: no target given and djhpc.yaml sets none: name one as module:Class or pipeline.py:Class"),
    ("unknown order", ["work", "pipe:Made", "--order", "sideways"], {}, None,
     "djhpc: error: argument --order: invalid choice 'sideways': choose from original, reverse, random "
     "(see djhpc work --help)"),
    ("negative max-calls", ["work", "pipe:Made", "--max-calls", "-1"], {}, None,
     "djhpc: error: argument --max-calls: must be >= 0 (got -1) (see djhpc work --help)"),
    ("non-numeric limit", ["work", "pipe:Made", "--limit", "ten"], {}, None,
     "djhpc: error: argument --limit: must be a whole number (got 'ten') (see djhpc work --help)"),
    ("unknown command", ["frobnicate"], {}, None, None),
    ("password on the command line", ["--database-url", "mysql://u:pw123@localhost", "work", "pipe:Made"], {}, None,
     "djhpc: error: a password on the command line shows in ps: set DJHPC_DATABASE_URL or put the URL in a 0600 "
     "file named by DJHPC_DATABASE_URL_FILE"),
    ("unknown URL scheme", ["work", "pipe:Made"], {"DJHPC_DATABASE_URL": "postgres://u@h/db"}, None,
     "djhpc: error: unknown database URL scheme 'postgres': use mysql://user:password@host:port or "
     "sqlite:///path/to/file.db"),
    ("URL that is not a URL", ["work", "pipe:Made"], {"DJHPC_DATABASE_URL": "localhost"}, None,
     "djhpc: error: database URL must look like mysql://user:password@host:port or sqlite:///path/to/file.db"),
    ("port that is not a number", ["work", "pipe:Made"], {"DJHPC_DATABASE_URL": "mysql://u@h:port"}, None,
     "djhpc: error: database URL has a port that is not a number: use mysql://user@host:3306"),
    ("DJ_PORT that is not a number", ["work", "pipe:Made"], {"DJ_HOST": "127.0.0.1", "DJ_PORT": "abc"}, None,
     "djhpc: error: DJ_PORT must be a number (got 'abc')"),
    ("URL file that cannot be read", ["work", "pipe:Made"], {"DJHPC_DATABASE_URL_FILE": "/nonexistent/url"}, None,
     "djhpc: error: DJHPC_DATABASE_URL_FILE=/nonexistent/url: cannot read it (No such file or directory)"),
    ("SQLite file in a missing folder", ["work", "pipe:Made"],
     {"DJHPC_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}, None,
     "djhpc: error: cannot create the SQLite file /nonexistent/dir/x.db: its folder does not exist"),
    ("broken YAML", ["work"], {}, "target: [unclosed\n", None),
    ("YAML that is not a mapping", ["work"], {}, "- a\n- b\n", None),
    ("database setting of the wrong kind", ["work", "pipe:Made"], {}, "database: 5\n",
     "djhpc: error: {project}/djhpc.yaml: setting 'database' must be a URL (mysql://user@host:3306 or "
     "sqlite:///file.db) or a mapping with url (or host, user, password, port); got int 5"),
    ("key log that cannot be written", ["work", "pipe:Made", "--log", "/nonexistent/dir/keys.tsv"], {}, None,
     "djhpc: error: cannot write the key log /nonexistent/dir/keys.tsv (No such file or directory): "
     "choose another --log"),
]


# the module imports (and declares its tables, as importing a pipeline does) before the class is found wanting
PIPELINE_IMPORTED = {"target class that does not exist", "target class mistyped", "target that is not auto-populated"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(project, case):
    _, args, env, yaml, expected = case
    before = sorted(p.name for p in project.iterdir())
    out = djhpc(project, *args, env=env, yaml=yaml)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    if case[0] in PIPELINE_IMPORTED:  # the import made a new djhpc.db, and says so before the error
        assert lines[0] == f"djhpc: created a new, empty SQLite database {project}/djhpc.db (if you meant an " \
                           "existing one, fix the database setting)", out.stderr
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("djhpc: error: "), out.stderr
    assert "Traceback" not in out.stderr
    if expected:
        assert lines[0] == expected.format(project=project)
    for secret in ("pw123",):
        assert secret not in out.stderr
    after = {p.name for p in project.iterdir()} - {"__pycache__"}
    expected_files = set(before) - {"__pycache__"} | ({"djhpc.yaml"} if yaml is not None else set())
    if case[0] in PIPELINE_IMPORTED:
        expected_files.add("djhpc.db")  # the pipeline module imported fine and declared its own schema
    assert after == expected_files, "a failed command left a file behind (e.g. an empty djhpc.db)"


def test_an_unreachable_server_is_waited_for_then_exit_69_and_writes_nothing(project):
    """Not a usage error (issue 15, item 4): a worker waits DJHPC_RECONNECT_SECONDS for the server, saying so
    once, then one error line and exit 69 (EX_UNAVAILABLE), which a scheduler may retry."""
    before = {p.name for p in project.iterdir()}
    out = djhpc(project, "work", "pipe:Made", env={"DJHPC_DATABASE_URL": "mysql://root@127.0.0.1:1",
                                                  "DJHPC_RECONNECT_SECONDS": "1"})
    assert out.returncode == 69, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and "trying again for up to 1 s" in lines[0], lines
    assert lines[1] == ("djhpc: error: cannot reach the database at 127.0.0.1:1: check the host and port, and "
                        "that the server runs")
    assert {p.name for p in project.iterdir()} - {"__pycache__"} == before - {"__pycache__"}


def test_broken_yaml_names_the_file_and_line(project):
    out = djhpc(project, "work", yaml="target: pipe:Made\ndatabase: [oops\n")
    assert out.returncode == 2
    assert out.stderr.startswith(f"djhpc: error: {project}/djhpc.yaml line ")
    assert out.stderr.rstrip().endswith("not valid YAML: fix the file or remove it")

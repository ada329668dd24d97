"""DataJoint's ``dj`` console (djhpc/dj_console.py), ``dj.cli(args)``: version, help, -u/-p/-h into dj.config,
-s SCHEMA:MODULE virtual modules, the console reading stdin, and a bad -s as one line with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.env import ROOT

import djhpc as dj


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        dj.cli(args=["-V"])
    assert e.value.code == 0 and capsys.readouterr().out == f"djhpc {dj.__version__}\n"
    with pytest.raises(SystemExit) as e:
        dj.cli(["--help"])
    assert e.value.code == 0 and "SCHEMA:MODULE" in capsys.readouterr().out
    assert dj.cli.cli is dj.cli.__call__.__globals__["cli"]  # the package and its function run the same console


def console(args, lines, tmp_path, url=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DJHPC_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path), HOME=str(tmp_path))
    if url:
        env["DJHPC_DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "djhpc.dj_console", *args], input="".join(f"{x}\n" for x in lines),
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


def test_user_password_host_go_into_the_config(tmp_path):
    out = console(["-ubob", "-psecret", "-hdb.example"],
                  ["dj.config['database.user']", "dj.config['database.password']", "dj.config['database.host']"],
                  tmp_path)
    assert out.stdout.split("\n")[:3] == [">>> 'bob'", ">>> 'secret'", ">>> 'db.example'"]


def test_schemas_become_modules(schema, backend, tmp_path):
    @schema
    class Item(dj.Lookup):
        definition = "i : int\n"
        contents = [(1,), (2,)]

    out = console(["-s", f"{schema.database}:lab"], ["lab.__name__", "lab.schema", "lab.Item.fetch('i').tolist()"],
                  tmp_path, url=backend)
    assert out.stdout.split("\n")[:4] == [">>> 'lab'", f">>> Schema `{schema.database}`", "", ">>> [1, 2]"], out.stderr
    assert "schema modules:\n\n  - lab" in out.stderr  # the banner


def test_a_bad_schema_mapping_is_one_line(tmp_path):
    out = console(["-s", "nocolon"], [], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "dj: error: -s takes SCHEMA:MODULE, e.g. -s lab_session:session " \
                                                  "(got 'nocolon')"

"""djhpc.config: URL parsing, the precedence of arguments, environment and files, password hygiene."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import djhpc as dj
from djhpc.config import (
    DatabaseURL,
    find_project_file,
    load_settings,
    parse_url,
    resolve_database_url,
)

SECRET = "s3cr:t/p@ss"  # needs quoting in a URL
QUOTED_SECRET = "s3cr%3At%2Fp%40ss"


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """An empty working directory, no djhpc variables, no user config file."""
    for name in list(os.environ):
        if name.startswith(("DJHPC_", "DJ_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# ------------------------------------------------------------------ URL parsing
def test_parse_mysql_url_with_every_part():
    url = parse_url(f"mysql://alice:{QUOTED_SECRET}@db.example.org:3307")
    assert (url.scheme, url.user, url.password, url.host, url.port) == (
        "mysql", "alice", SECRET, "db.example.org", 3307)


def test_parse_mysql_url_defaults_port_and_user():
    url = parse_url("mysql://db.example.org")
    assert (url.user, url.password, url.port) == ("root", "", 3306)


@pytest.mark.parametrize("scheme", ["mariadb", "mysql+pymysql", "MySQL"])
def test_mysql_scheme_aliases(scheme):
    assert parse_url(f"{scheme}://u@h:1234").scheme == "mysql"


@pytest.mark.parametrize(
    ("text", "path"),
    [("sqlite:///pipeline.db", "pipeline.db"), ("sqlite:////abs/dir/p.db", "/abs/dir/p.db")],
)
def test_parse_sqlite_url(text, path):
    url = parse_url(text)
    assert (url.scheme, url.path) == ("sqlite", path)
    assert url.host == "" and url.password == ""


def test_password_is_never_shown():
    url = parse_url(f"mysql://alice:{QUOTED_SECRET}@h:3306")
    for shown in (str(url), repr(url), url.redacted, repr(dj.Connection(url)), f"{url}", f"{url!r}"):
        assert SECRET not in shown and QUOTED_SECRET not in shown
        assert "***" in shown
    assert parse_url(url.full) == url  # the full form is for child environments only, and round-trips


def test_ipv6_host_round_trips():
    url = parse_url(f"mysql://u:{QUOTED_SECRET}@[::1]:3307")
    assert (url.host, url.port, url.password) == ("::1", 3307, SECRET)
    assert str(url) == "mysql://u:***@[::1]:3307"
    assert parse_url(url.full) == url


def test_url_without_password_shows_no_stars():
    assert str(parse_url("mysql://bob@h:3306")) == "mysql://bob@h:3306"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("postgres://u:pw@h:5432", "unknown database URL scheme 'postgres'"),
        ("not a url", "must look like mysql://"),
        ("sqlite://", "names no file"),
        ("mysql://u:pw@h:port", "port that is not a number"),
        ("mysql://:3306", "names no host"),
    ],
)
def test_bad_urls_are_one_line_config_errors(text, fragment):
    with pytest.raises(dj.ConfigError) as e:
        parse_url(text)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
    assert "pw" not in str(e.value).replace("password", "")


# ------------------------------------------------------------------ precedence
def test_default_is_sqlite_file_in_working_directory(clean):
    url = resolve_database_url()
    assert url.scheme == "sqlite"
    assert Path(url.path) == clean / "djhpc.db"


def test_argument_beats_everything(clean, monkeypatch):
    monkeypatch.setenv("DJHPC_DATABASE_URL", "mysql://env@envhost")
    monkeypatch.setenv("DJ_HOST", "djhost")
    write(clean / "djhpc.yaml", "database: mysql://project@projecthost\n")
    assert resolve_database_url("sqlite:///arg.db").path == "arg.db"


def test_env_url_beats_url_file_dj_vars_and_files(clean, monkeypatch, tmp_path):
    monkeypatch.setenv("DJHPC_DATABASE_URL", "mysql://env@envhost:3310")
    monkeypatch.setenv("DJHPC_DATABASE_URL_FILE", str(write(tmp_path / "url", "mysql://file@filehost")))
    monkeypatch.setenv("DJ_HOST", "djhost")
    write(clean / "djhpc.yaml", "database: mysql://project@projecthost\n")
    url = resolve_database_url()
    assert (url.user, url.host, url.port) == ("env", "envhost", 3310)


def test_url_file_beats_dj_vars(clean, monkeypatch, tmp_path):
    monkeypatch.setenv("DJHPC_DATABASE_URL_FILE", str(write(tmp_path / "url", f"mysql://f:{QUOTED_SECRET}@fh\n")))
    monkeypatch.setenv("DJ_HOST", "djhost")
    url = resolve_database_url()
    assert (url.user, url.password, url.host) == ("f", SECRET, "fh")


def test_missing_url_file_is_config_error(clean, monkeypatch, tmp_path):
    monkeypatch.setenv("DJHPC_DATABASE_URL_FILE", str(tmp_path / "absent"))
    with pytest.raises(dj.ConfigError, match="DJHPC_DATABASE_URL_FILE=.*cannot read it"):
        resolve_database_url()


def test_datajoint_variables(clean, monkeypatch):
    monkeypatch.setenv("DJ_HOST", "djhost")
    monkeypatch.setenv("DJ_USER", "carol")
    monkeypatch.setenv("DJ_PASS", SECRET)
    monkeypatch.setenv("DJ_PORT", "3399")
    write(clean / "djhpc.yaml", "database: mysql://project@projecthost\n")
    url = resolve_database_url()
    assert (url.scheme, url.host, url.user, url.password, url.port) == ("mysql", "djhost", "carol", SECRET, 3399)
    assert SECRET not in repr(url)


def test_dj_host_may_carry_the_port(clean, monkeypatch):
    monkeypatch.setenv("DJ_HOST", "djhost:3401")
    url = resolve_database_url()
    assert (url.host, url.port, url.user) == ("djhost", 3401, "root")


def test_dj_port_must_be_a_number(clean, monkeypatch):
    monkeypatch.setenv("DJ_HOST", "djhost")
    monkeypatch.setenv("DJ_PORT", "abc")
    with pytest.raises(dj.ConfigError, match="DJ_PORT must be a number"):
        resolve_database_url()


def test_project_file_beats_user_file(clean, tmp_path):
    write(tmp_path / "xdg" / "djhpc" / "config.yaml", "database: mysql://user@userhost\n")
    write(clean / "djhpc.yaml", "database:\n  url: mysql://project@projecthost:3311\n")
    url = resolve_database_url()
    assert (url.user, url.host, url.port) == ("project", "projecthost", 3311)


def test_user_file_under_xdg_config_home(clean, tmp_path):
    write(tmp_path / "xdg" / "djhpc" / "config.yaml",
          "database:\n  host: userhost\n  user: dave\n  password: pw\n  port: 3312\n")
    url = resolve_database_url()
    assert (url.host, url.user, url.password, url.port) == ("userhost", "dave", "pw", 3312)


def test_user_file_defaults_to_dot_config(clean, monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path / "home" / ".config" / "djhpc" / "config.yaml", "database: mysql://homeuser@homehost\n")
    assert resolve_database_url().host == "homehost"


def test_project_file_found_upward(clean):
    write(clean / "djhpc.yaml", "database: sqlite:///data/pipeline.db\n")
    deep = clean / "a" / "b" / "c"
    deep.mkdir(parents=True)
    os.chdir(deep)
    assert find_project_file() == clean / "djhpc.yaml"
    url = resolve_database_url()
    # a relative SQLite path in a file is relative to that file's folder, not to the working directory
    assert Path(url.path) == clean / "data" / "pipeline.db"
    assert load_settings().project_dir == clean


def test_nearest_project_file_wins(clean):
    write(clean / "djhpc.yaml", "database: mysql://outer@outerhost\n")
    write(clean / "inner" / "djhpc.yaml", "database: mysql://inner@innerhost\n")
    os.chdir(clean / "inner")
    assert resolve_database_url().host == "innerhost"


def test_project_file_without_database_falls_through_to_user_file(clean, tmp_path):
    write(clean / "djhpc.yaml", "scheduler: slurm\n")
    write(tmp_path / "xdg" / "djhpc" / "config.yaml", "database: mysql://u@userhost\n")
    assert resolve_database_url().host == "userhost"
    settings = load_settings()
    assert settings.get("scheduler") == "slurm"
    assert settings.get("database") == "mysql://u@userhost"


def test_broken_yaml_names_file_and_line(clean):
    write(clean / "djhpc.yaml", "database:\n  url: [unclosed\n")
    with pytest.raises(dj.ConfigError) as e:
        resolve_database_url()
    message = str(e.value)
    assert "djhpc.yaml" in message and "line" in message and "not valid YAML" in message
    assert "\n" not in message


def test_yaml_that_is_not_a_mapping(clean):
    write(clean / "djhpc.yaml", "- a\n- b\n")
    with pytest.raises(dj.ConfigError, match="must be a mapping"):
        resolve_database_url()


def test_database_setting_of_wrong_type(clean):
    write(clean / "djhpc.yaml", "database: 5\n")
    with pytest.raises(dj.ConfigError, match="setting 'database'"):
        resolve_database_url()


# ------------------------------------------------------------------ password files
def test_world_readable_yaml_with_password_warns(clean, caplog):
    path = write(clean / "djhpc.yaml", f"database: mysql://u:{QUOTED_SECRET}@h\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="djhpc.config"):
        resolve_database_url()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "readable by others" in warnings[0] and f"chmod 600 {path}" in warnings[0]
    assert SECRET not in warnings[0] and QUOTED_SECRET not in warnings[0]


def test_private_yaml_with_password_does_not_warn(clean, caplog):
    write(clean / "djhpc.yaml", f"database: mysql://u:{QUOTED_SECRET}@h\n", mode=0o600)
    with caplog.at_level(logging.WARNING, logger="djhpc.config"):
        resolve_database_url()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_world_readable_yaml_without_password_does_not_warn(clean, caplog):
    write(clean / "djhpc.yaml", "database: mysql://u@h\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="djhpc.config"):
        resolve_database_url()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_world_readable_password_in_mapping_warns(clean, caplog):
    write(clean / "djhpc.yaml", "database:\n  host: h\n  password: hunter2\n", mode=0o604)
    with caplog.at_level(logging.WARNING, logger="djhpc.config"):
        resolve_database_url()
    assert any("readable by others" in r.getMessage() for r in caplog.records)


def test_world_readable_url_file_with_password_warns(clean, monkeypatch, tmp_path, caplog):
    path = write(tmp_path / "dburl", f"mysql://u:{QUOTED_SECRET}@h\n", mode=0o644)
    monkeypatch.setenv("DJHPC_DATABASE_URL_FILE", str(path))
    with caplog.at_level(logging.WARNING, logger="djhpc.config"):
        assert resolve_database_url().password == SECRET
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "readable by others" in warnings[0]
    assert SECRET not in warnings[0] and QUOTED_SECRET not in warnings[0]


def test_private_url_file_does_not_warn(clean, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("DJHPC_DATABASE_URL_FILE", str(write(tmp_path / "dburl", f"mysql://u:{QUOTED_SECRET}@h\n")))
    with caplog.at_level(logging.WARNING, logger="djhpc.config"):
        resolve_database_url()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------ one connection per process
def test_conn_is_one_per_process(clean):
    first = dj.conn("sqlite:///one.db", reset=True)
    try:
        assert dj.conn() is first
        assert dj.conn("sqlite:///one.db") is first
        other = dj.conn("sqlite:///two.db")
        assert other is not first and other.url.path == "two.db"
        assert dj.conn() is other
    finally:
        dj.conn().close()


def test_conn_defaults_to_sqlite_file_in_working_directory(clean):
    connection = dj.conn(reset=True)
    try:
        assert connection.is_sqlite
        assert connection.query("SELECT 1").fetchone()[0] == 1
        assert (clean / "djhpc.db").is_file()
    finally:
        connection.close()


def test_conn_uses_environment_when_given_nothing(clean, monkeypatch):
    monkeypatch.setenv("DJHPC_DATABASE_URL", "sqlite:///fromenv.db")
    connection = dj.conn(reset=True)
    try:
        assert connection.url == DatabaseURL("sqlite", path="fromenv.db")
        assert connection.query("SELECT 1").fetchone()[0] == 1
        assert (clean / "fromenv.db").exists()
    finally:
        connection.close()


# ------------------------------------------------------------------ the whole file checked at load
@pytest.mark.parametrize(("text", "fragment"), [
    ("databse: sqlite:///p.db\n", "unknown key 'databse': did you mean 'database'?"),
    ("targte: p.py:A\n", "unknown key 'targte': did you mean 'target'?"),
    ("colour: blue\n", "unknown key 'colour': known: target, scheduler, database, profile, profiles"),
    ("database:\n  hots: h\n", "unknown key 'database.hots': did you mean 'database.host'?"),
    ("database:\n  host: h\n  password: 0123\n", "setting 'database.password' must be text: put it in quotes"),
    ("database:\n  host: h\n  port: abc\n", "setting 'database.port' must be a port number like 3306"),
    ("database:\n  url: postgres://h\n", "unknown database URL scheme 'postgres'"),
    ("database: [a]\n", "setting 'database' must be a URL"),
    ("target: [a, b]\n", "setting 'target' must be text (got list"),
    ("scheduler: slrum\n", "unknown scheduler 'slrum' (choose slurm,"),
    ("profile: {a: 1}\n", "setting 'profile' must be text"),
    ("profiles: [a]\n", "setting 'profiles' must map profile names to settings (got list)"),
    ("profiles:\n  gpu: 4\n", "profile 'gpu' must be a mapping of settings (got int)"),
    ("profiles:\n  gpu:\n    partiton: gpu\n", "profiles.gpu: unknown key 'partiton': did you mean 'partition'?"),
    ("profiles:\n  gpu:\n    time: banana\n", "profiles.gpu: time limit 'banana' does not parse"),
    ("profiles:\n  gpu:\n    mem: lots\n", "profiles.gpu: memory 'lots' does not parse"),
    ("profiles:\n  gpu:\n    array: 0\n", "profiles.gpu: array must be a whole number >= 1 (got 0)"),
    ("profiles:\n  gpu:\n    time: 2h\n    signal_seconds: 7200\n", "profiles.gpu: signal_seconds 7200 is not shorter"),
])
def test_a_mistake_anywhere_in_the_file_is_one_line_naming_file_and_key(clean, text, fragment):
    path = write(clean / "djhpc.yaml", text)
    for load in (load_settings, resolve_database_url):
        with pytest.raises(dj.ConfigError) as e:
            load()
        assert str(e.value).startswith(f"{path}: ") and fragment in str(e.value), str(e.value)
        assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_the_user_file_is_checked_too(clean, tmp_path):
    path = write(tmp_path / "xdg" / "djhpc" / "config.yaml", "sheduler: slurm\n")
    with pytest.raises(dj.ConfigError, match=f"^{path}: unknown key 'sheduler': did you mean 'scheduler'\\?$"):
        load_settings()


def test_every_documented_setting_loads(clean):
    write(clean / "djhpc.yaml", """target: pipeline.py:Analysis
scheduler: slurm
database:
  host: db.example.org
  port: 3307
  user: me
profile: default
profiles:
  default: {time: 30m, mem: 1G, cpus: 1}
  quick: {time: 30s}                 # submit fits the 60 s warning to a short limit itself
  gpu: {partition: gpu, gpus: "a100:1", array: 4, setup: [module load cuda], walltime: "1:00:00"}
  empty:
""")
    settings = load_settings()
    assert settings.get("profiles")["gpu"]["array"] == 4
    assert resolve_database_url() == DatabaseURL("mysql", host="db.example.org", port=3307, user="me")


def test_examples_settings_load():
    from support.env import ROOT

    from djhpc.config import check_settings, read_yaml

    for path in sorted((ROOT / "examples").glob("*/djhpc.yaml")):
        check_settings(read_yaml(path), path)  # read_yaml checks too; an example must pass its own check


# ------------------------------------------------------------------ through the real CLI
def _cli() -> list[str]:
    script = Path(sys.executable).with_name("djhpc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "djhpc.cli.main"]


def _run_cli(folder: Path, *args) -> subprocess.CompletedProcess:
    from support.env import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(folder / "xdg"))
    return subprocess.run([*_cli(), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


PIPELINE = '''
import djhpc as dj
schema = dj.Schema("cfg")

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


@pytest.mark.parametrize(("yaml", "line"), [
    ("target: pipe.py:Made\ndatabse: sqlite:///pipe.db\n",
     "{path}: unknown key 'databse': did you mean 'database'?"),
    ("target: pipe.py:Made\ndatabase: sqlite:///pipe.db\nprofiles:\n  default:\n    partiton: short\n",
     "{path}: profiles.default: unknown key 'partiton': did you mean 'partition'?"),
    ("target: pipe.py:Made\ndatabase:\n  url: sqlite:///pipe.db\n  pasword: x\n",
     "{path}: unknown key 'database.pasword': did you mean 'database.password'?"),
    ("target: pipe.py:Made\ndatabase: sqlite:///pipe.db\nscheduler: 5\n",
     "{path}: unknown scheduler '5' (choose slurm, pbs, torque, sge, lsf, htcondor, parallel, local)"),
])
@pytest.mark.parametrize("command", [["progress"], ["work"], ["submit", "--array", "2", "--dry-run"], ["jobs"]])
def test_cli_refuses_a_bad_file_before_doing_anything(tmp_path, yaml, line, command):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    path = tmp_path / "djhpc.yaml"
    path.write_text(yaml)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = _run_cli(tmp_path, *command)
    assert out.returncode == 2 and out.stdout == "", out.stdout + out.stderr
    assert out.stderr == f"djhpc: error: {line.format(path=path)}\n"
    after = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")
    assert after == before, "nothing may run: no database file, no script"


def test_cli_says_when_it_created_the_sqlite_file(tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "djhpc.yaml").write_text("target: pipe.py:Made\ndatabase: sqlite:///pipeline.db\n")
    first = _run_cli(tmp_path, "progress")
    created = (f"djhpc: created a new, empty SQLite database {tmp_path}/pipeline.db (if you meant an existing one, "
               "fix the database setting)")
    assert first.returncode == 0 and created in first.stderr.splitlines(), first.stderr
    again = _run_cli(tmp_path, "progress")
    assert again.returncode == 0 and "created" not in again.stderr, again.stderr


def test_library_logs_a_created_sqlite_file_once(clean, caplog):
    with caplog.at_level(logging.WARNING, logger="djhpc"):
        dj.conn("sqlite:///new.db", reset=True).query("SELECT 1")
        dj.conn().close()
        dj.conn("sqlite:///new.db", reset=True).query("SELECT 1")
        dj.conn().close()
    created = [r.getMessage() for r in caplog.records if "created a new, empty SQLite database" in r.getMessage()]
    assert created == [f"created a new, empty SQLite database {clean}/new.db (if you meant an existing one, fix the "
                       "database setting)"]

"""djhpc.config: URL parsing, the precedence of arguments, environment and files, password hygiene."""

from __future__ import annotations

import logging
import os
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

"""djhpc.settings (``dj.config``): DataJoint's keys and defaults, files, environment, checks, masking, and where
its database.* keys stand among djhpc's own settings. Files live in tmp dirs; HOME is a tmp dir."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest
from support.datajoint import datajoint_pythons
from support.env import unavailable

import djhpc as dj
from djhpc import settings
from djhpc.config import resolve_database_url
from djhpc.settings import Config

SECRET = "pw-Zq81xv3"
DATAJOINT_PYTHONS = datajoint_pythons()  # read before the fixtures clear DJHPC_* variables


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A working directory and a HOME in tmp_path, no DJ_*/DJHPC_* variables, no user config file."""
    for name in list(os.environ):
        if name.startswith(("DJHPC_", "DJ_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def restore_config():
    """dj.config as it was before the test."""
    saved = dict(dj.config._ready()), dict(dj.config._source)
    yield dj.config
    dj.config._conf, dj.config._source = saved


def fresh() -> Config:
    """A settings object that reads its files and environment on first use, as dj.config does."""
    return Config.separate(load_files=True)


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------ keys and defaults
def test_defaults_are_datajoint_014s(home):
    c = fresh()
    assert (c["database.host"], c["database.user"], c["database.password"], c["database.port"]) == (
        "localhost",
        None,
        None,
        3306,
    )
    assert (c["safemode"], c["loglevel"], c["fetch_format"], c["display.limit"], c["display.width"]) == (
        True,
        "INFO",
        "array",
        12,
        14,
    )
    assert c["display.show_tuple_count"] is True and c["enable_python_native_blobs"] is True
    assert c["database.reconnect"] is True and c["database.use_tls"] is None and c["stores"] == {}
    assert c.get("nothing here", 7) == 7 and "database.host" in c and len(c) == len(list(c))


def test_setting_and_update_and_delete(home):
    c = fresh()
    c["database.host"] = "db.example.org:3307"
    c.update({"display.limit": 5}, safemode=False)
    assert (c["database.host"], c["display.limit"], c["safemode"]) == ("db.example.org:3307", 5, False)
    c["custom"] = {"database.prefix": "lab_"}  # a key of the caller's own, as DataJoint 0.14 keeps them
    assert c["custom"] == {"database.prefix": "lab_"}
    del c["custom"]
    assert "custom" not in c
    del c["safemode"]  # a known key goes back to its default
    assert c["safemode"] is True


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        (
            "database.port",
            "3306",
            "dj.config['database.port'] must be a port number (an int from 1 to 65535) (got str '3306')",
        ),
        ("database.port", 0, "must be a port number"),
        ("database.port", True, "must be a port number"),
        ("safemode", "no", "dj.config['safemode'] must be True or False (got str 'no')"),
        ("loglevel", "LOUD", "must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'"),
        ("fetch_format", "dict", "must be one of 'array', 'frame'"),
        ("display.limit", -1, "must be an int ≥ 0"),
        ("database.use_tls", "yes", "must be True, False, None or a dict"),
        ("stores", {"raw": "/data"}, "must be a dict of store name -> dict"),
        ("database.hots", "db", "dj.config has no setting 'database.hots': did you mean 'database.host'?"),
        ("safe_mode", False, "did you mean 'safemode'?"),
        ("display.colour", "red", "dj.config has no setting 'display.colour': known keys: display.limit"),
        ("database.password", 1234, "dj.config['database.password'] must be a string or None (got int ***)"),
    ],
)
def test_bad_values_and_misspelled_keys_are_one_line_errors(home, key, value, fragment):
    c = fresh()
    with pytest.raises(dj.ConfigError) as e:
        c[key] = value
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(dj.ConfigError):
        c.update({key: value})


def test_datajoint_2_keys_are_known(home):
    c = fresh()
    assert (c["database.database_prefix"], c["jobs.stale_timeout"], c["database.create_tables"]) == ("", 3600, True)
    c.update({"database.database_prefix": "lab_", "jobs.keep_completed": True, "display.diagram_direction": "TB"})
    assert c["database.database_prefix"] == "lab_"
    with pytest.raises(dj.ConfigError, match="did you mean 'jobs.stale_timeout'"):
        c["jobs.stale_timeot"] = 10
    c["stores"]["raw"] = {"protocol": "file", "location": "/data"}
    del c["stores"]
    assert c["stores"] == {} and Config.separate()["stores"] == {}  # defaults are not shared


def test_temporary_settings_in_a_with_block(home, restore_config):
    dj.config["safemode"] = True
    dj.config["display.limit"] = 3
    with dj.config(safemode=False, display__limit=20) as c:
        assert c is dj.config
        assert (dj.config["safemode"], dj.config["display.limit"]) == (False, 20)
    assert (dj.config["safemode"], dj.config["display.limit"]) == (True, 3)
    with pytest.raises(RuntimeError), dj.config(safemode=False):
        raise RuntimeError("the block failed")
    assert dj.config["safemode"] is True
    with pytest.raises(dj.ConfigError, match="did you mean 'safemode'"), dj.config(safemod=False):
        pass
    assert dj.config["safemode"] is True


def test_safemode_is_what_tables_read(home, restore_config):
    from djhpc import tables

    assert tables.config is dj.config is settings.config
    with dj.config(safemode=False):
        assert tables.config["safemode"] is False


def test_djhpc_safemode_variable_still_sets_safemode(home, monkeypatch):
    monkeypatch.setenv("DJHPC_SAFEMODE", "0")
    assert fresh()["safemode"] is False
    monkeypatch.setenv("DJHPC_SAFEMODE", "1")
    assert fresh()["safemode"] is True


def test_loglevel_sets_the_djhpc_logger(home, restore_config):
    logger = logging.getLogger("djhpc")
    before = logger.level
    try:
        with dj.config(loglevel="DEBUG"):
            assert logger.level == logging.DEBUG
        dj.config["loglevel"] = "ERROR"
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(before)


# ------------------------------------------------------------------ files and environment
def test_local_file_first_then_global_file(home):
    write_json(Path.home() / ".datajoint_config.json", {"database.host": "global-host", "display.limit": 4})
    c = fresh()
    assert (c["database.host"], c["display.limit"]) == ("global-host", 4)
    assert c.source("database.host") == "global file"
    write_json(home / "dj_local_conf.json", {"database.host": "local-host"})
    c = fresh()  # DataJoint reads one file: the local one when there is one
    assert (c["database.host"], c["display.limit"]) == ("local-host", 12)
    assert c.source("database.host") == "local file" and c.source("display.limit") == "default"


def test_environment_beats_the_file(home, monkeypatch):
    write_json(home / "dj_local_conf.json", {"database.host": "file-host", "database.user": "file-user"})
    monkeypatch.setenv("DJ_HOST", "env-host")
    monkeypatch.setenv("DJ_PASS", SECRET)
    monkeypatch.setenv("DJ_LOG_LEVEL", "WARNING")
    c = fresh()
    assert (c["database.host"], c["database.user"], c["database.password"], c["loglevel"]) == (
        "env-host",
        "file-user",
        SECRET,
        "WARNING",
    )
    assert c.source("database.host") == "environment"
    logging.getLogger("djhpc").setLevel(logging.NOTSET)


def test_files_are_read_on_first_use_not_at_import(home):
    c = fresh()
    write_json(home / "dj_local_conf.json", {"database.user": "late"})
    assert c["database.user"] == "late"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"database.port": "x"', "dj_local_conf.json line 1: not valid JSON: fix the file or remove it"),
        ('["database.host"]', "dj_local_conf.json: must be a JSON object of settings, not a list"),
        ('{"database.port": "3306"}', "dj_local_conf.json: dj.config['database.port'] must be a port number"),
        (
            '{"dispaly.limit": 3}',
            "dj_local_conf.json: dj.config has no setting 'dispaly.limit': did you mean 'display.limit'?",
        ),
    ],
)
def test_a_broken_file_is_a_one_line_error_where_used(home, text, fragment):
    (home / "dj_local_conf.json").write_text(text, encoding="utf-8")
    c = fresh()
    for _ in range(2):  # and stays one: the settings are not left half read
        with pytest.raises(dj.ConfigError) as e:
            c["safemode"]
        assert fragment in str(e.value) and "\n" not in str(e.value)


def test_a_bad_environment_value_is_a_one_line_error(home, monkeypatch):
    monkeypatch.setenv("DJ_LOG_LEVEL", "LOUD")
    with pytest.raises(dj.ConfigError, match=r"^environment variable DJ_LOG_LEVEL: dj.config\['loglevel'\] must"):
        fresh()["loglevel"]


def test_save_local_save_global_and_load(home):
    c = fresh()
    c["database.host"] = "saved-host"
    c["display.limit"] = 9
    c.save_local()
    c.save_global(verbose=True)
    local, global_ = home / "dj_local_conf.json", Path.home() / ".datajoint_config.json"
    assert json.loads(local.read_text())["database.host"] == "saved-host"
    assert json.loads(global_.read_text())["display.limit"] == 9
    other = Config.separate()
    other.load(local)
    assert other == c and other["database.host"] == "saved-host" and other.source("database.host") == "local file"
    again = Config.separate()
    again.load()  # no name: dj_local_conf.json
    assert again == c
    with pytest.raises(dj.ConfigError, match="cannot read .*absent.json"):
        again.load(home / "absent.json")


def test_every_config_is_the_process_settings_as_datajoints_singleton(home, restore_config):
    """DataJoint 0.14's Config is a singleton: Config() is dj.config's settings, its arguments update them."""
    dj.config.save("saved.json")
    conf = Config()
    conf.load("saved.json")
    conf["dummy.val"] = 2
    assert conf == dj.config and dj.config["dummy.val"] == 2
    Config({"display.limit": 5})
    assert dj.config["display.limit"] == 5
    with dj.config(display__limit=7):
        assert Config()["display.limit"] == 7
    assert conf["display.limit"] == 5
    own = Config.separate({"display.limit": 9})
    assert own["display.limit"] == 9 and dj.config["display.limit"] == 5 and "dummy.val" not in own
    with pytest.raises(dj.ConfigError, match="display.limit"):
        Config({"display.limit": "many"})


def test_a_saved_password_is_readable_by_its_owner_only(home):
    c = fresh()
    c["database.password"] = SECRET
    path = home / "dj_local_conf.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o644)
    c.save_local()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["database.password"] == SECRET  # as DataJoint saves it


# ------------------------------------------------------------------ the password never shows
def test_repr_and_str_mask_secrets(home, monkeypatch, caplog):
    monkeypatch.setenv("DJ_PASS", SECRET)
    monkeypatch.setenv("DJ_AWS_SECRET_ACCESS_KEY", "aws-" + SECRET)
    c = fresh()
    caplog.set_level(logging.DEBUG)
    c["database.password"] = SECRET
    shown = (repr(c), str(c), f"{c}")
    assert all(SECRET not in s for s in shown)
    assert "'database.password': '***'" in repr(c) and "'external.aws_secret_access_key': '***'" in repr(c)
    assert "'database.password': None" in repr(Config.separate())  # nothing to mask
    assert SECRET not in caplog.text
    with pytest.raises(dj.ConfigError) as e:
        c["database.password"] = ["a", SECRET]
    assert SECRET not in str(e.value)


# ------------------------------------------------------------------ where database.* stands (config.py)
def test_database_keys_left_at_defaults_choose_nothing(home):
    assert resolve_database_url(datajoint=fresh()).scheme == "sqlite"


def test_database_keys_set_in_code_beat_dj_host_and_files(home, monkeypatch):
    (home / "djhpc.yaml").write_text("database: mysql://project@projecthost\n", encoding="utf-8")
    monkeypatch.setenv("DJ_HOST", "djhost")
    c = fresh()
    c["database.host"] = "codehost:3310"
    c["database.user"] = "carol"
    c["database.password"] = SECRET
    url = resolve_database_url(datajoint=c)
    assert (url.scheme, url.host, url.port, url.user, url.password) == ("mysql", "codehost", 3310, "carol", SECRET)
    monkeypatch.setenv("DJHPC_DATABASE_URL", "sqlite:///env.db")  # djhpc's own variable still wins
    assert resolve_database_url(datajoint=c).path == "env.db"


def test_local_file_is_below_dj_host_and_above_djhpc_yaml(home, monkeypatch):
    write_json(home / "dj_local_conf.json", {"database.host": "localfilehost", "database.port": 3311})
    (home / "djhpc.yaml").write_text("database: mysql://project@projecthost\n", encoding="utf-8")
    assert resolve_database_url(datajoint=fresh()).host == "localfilehost"
    assert resolve_database_url(datajoint=fresh()).port == 3311
    monkeypatch.setenv("DJ_HOST", "djhost")
    assert resolve_database_url(datajoint=fresh()).host == "djhost"


def test_global_file_is_below_djhpc_yaml_and_above_sqlite(home):
    write_json(Path.home() / ".datajoint_config.json", {"database.host": "globalhost", "database.user": "g"})
    url = resolve_database_url(datajoint=fresh())
    assert (url.host, url.user, url.password) == ("globalhost", "g", "")
    (home / "djhpc.yaml").write_text("database: sqlite:///project.db\n", encoding="utf-8")
    assert resolve_database_url(datajoint=fresh()).scheme == "sqlite"


def test_dj_conn_with_no_arguments_follows_dj_config(home, restore_config):
    dj.config["database.host"] = "127.0.0.1:1"  # nothing listens on port 1
    dj.config["database.password"] = SECRET
    with pytest.raises(dj.ConnectError) as e:
        dj.conn(reset=True).query("SELECT 1")
    assert "127.0.0.1:1" in str(e.value) and SECRET not in str(e.value)
    del dj.config["database.host"], dj.config["database.password"]
    assert dj.conn(reset=True).is_sqlite


# ------------------------------------------------------------------ DataJoint reads djhpc's file and back
def test_datajoint_014_reads_the_file_djhpc_saves_and_back(home):
    python = DATAJOINT_PYTHONS.get("0.14")
    if not python:
        unavailable("DataJoint 0.14 is not set up (DJHPC_DATAJOINT_PYTHONS; tests/cluster/ensure-datajoint.sh)")
    c = fresh()
    c.update({"database.host": "db.example.org", "database.user": "alice", "display.limit": 7, "safemode": False})
    c.save_local()
    code = (
        "import datajoint as dj, json; c = dj.config; print(json.dumps([c['database.host'], "
        "c['database.user'], c['display.limit'], c['safemode']])); c['display.width'] = 33; c.save_local()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DJHPC_"))}
    done = subprocess.run([python, "-c", code], cwd=home, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["db.example.org", "alice", 7, False]
    back = fresh()
    assert (back["display.width"], back["database.user"], back["safemode"]) == (33, "alice", False)

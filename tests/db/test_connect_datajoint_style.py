"""Connecting as DataJoint users do (``dj.conn(host=, user=, password=)``, ``dj.Connection(host, user, password,
port)``, dj.config's database.* keys) on the real MariaDB, with djhpc's URL forms kept; ``%`` in ``conn.query``
as DataJoint reads it; a dropped schema declared and populated again in the same process, on both backends.
The password never shows in a message, repr, log line or exception text."""

from __future__ import annotations

import logging
import os
import traceback
import uuid

import pytest
from support.cluster import root_query

import djhpc as dj
from djhpc.errors import LostConnectionError
from djhpc.settings import Config


@pytest.fixture
def account(mysql_user):
    """(user, password) of a MariaDB user with a password."""
    url, password = mysql_user
    return url.split("//", 1)[1].split(":", 1)[0], password


@pytest.fixture
def clean_config(monkeypatch, tmp_path):
    """dj.config back as it was after the test; HOME and the working directory in tmp_path."""
    for name in list(os.environ):
        if name.startswith(("DJHPC_", "DJ_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    saved = dict(dj.config._ready()), dict(dj.config._source)
    yield dj.config
    dj.config._conf, dj.config._source = saved
    dj.conn(f"sqlite:///{tmp_path}/after.db", reset=True).close()  # the process connection leaves no server one


def connected_as(connection) -> str:
    return connection.query("SELECT CURRENT_USER()").fetchone()[0].split("@")[0]


def everything_shown(*objects, error=None) -> str:
    text = " ".join(f"{o!r} {o}" for o in objects)
    if error is not None:
        text += "".join(traceback.format_exception(error))
    return text


# ------------------------------------------------------------------ the forms
@pytest.mark.mysql
def test_conn_with_host_user_password(account, clean_config, caplog):
    user, password = account
    caplog.set_level(logging.DEBUG)
    c = dj.conn(host="127.0.0.1", user=user, password=password, reset=True)
    assert c.is_connected  # connected at once, as DataJoint's is
    assert connected_as(c) == user and c.get_user().startswith(user + "@")
    assert dj.conn() is c  # the process's connection from now on
    assert dj.conn(host="127.0.0.1", user=user, password=password) is c  # the same database: no new one
    assert (c.conn_info["host"], c.conn_info["port"], c.conn_info["user"]) == ("127.0.0.1", 3306, user)
    assert c.conn_info["passwd"] == password  # DataJoint's conn_info holds it ...
    assert password not in everything_shown(c, c.conn_info, c.url) + caplog.text  # ... and never shows it
    assert dj.conn(host="127.0.0.1", user=user, password=password, reset=True) is not c


@pytest.mark.mysql
def test_connection_with_host_port_forms(account, clean_config):
    user, password = account
    for c in (
        dj.Connection("127.0.0.1:3306", user, password),
        dj.Connection("127.0.0.1", user, password, 3306),
        dj.Connection("127.0.0.1:3306", user, password, port=1),
    ):  # a port in the host wins, as in DataJoint
        assert c.is_connected and connected_as(c) == user
        assert "connected" in repr(c) and "disconnected" not in repr(c)  # what DataJoint's suite asks of repr
        c.close()
        assert not c.is_connected and "disconnected" in repr(c)


@pytest.mark.mysql
def test_url_forms_are_kept(account, clean_config):
    user, password = account
    c = dj.conn(f"mysql://{user}:{password}@127.0.0.1:3306", reset=True)
    assert connected_as(c) == user
    assert connected_as(dj.Connection(f"mysql://{user}:{password}@127.0.0.1")) == user
    with pytest.raises(dj.ConfigError, match="give the user, password and port inside the URL, or a host name"):
        dj.Connection("mysql://127.0.0.1", user, password)


@pytest.mark.mysql
def test_conn_without_arguments_follows_dj_config_keys(account, clean_config):
    user, password = account
    dj.config["database.host"] = "127.0.0.1"
    dj.config["database.user"] = user
    dj.config["database.password"] = password
    c = dj.conn(reset=True)
    assert connected_as(c) == user
    assert connected_as(dj.conn(host="127.0.0.1", reset=True)) == user  # user and password from dj.config


@pytest.mark.mysql
def test_conn_without_arguments_follows_dj_local_conf(account, clean_config, tmp_path):
    user, password = account
    settings = Config.separate()
    settings.update({"database.host": "127.0.0.1", "database.user": user, "database.password": password})
    settings.save_local()
    dj.config.load()  # what dj.config does with the file at first use
    assert connected_as(dj.conn(reset=True)) == user


@pytest.mark.mysql
def test_a_wrong_password_is_a_one_line_error_without_it(account, clean_config, caplog):
    user, password = account
    wrong = password + "-wrong"
    caplog.set_level(logging.DEBUG)
    for attempt in (
        lambda: dj.conn(host="127.0.0.1", user=user, password=wrong, reset=True),
        lambda: dj.Connection("127.0.0.1", user, wrong),
    ):
        with pytest.raises(dj.ConnectError) as e:
            attempt()
        assert str(e.value) == f"the database at 127.0.0.1:3306 refused user '{user}': check the user name and password"
        assert wrong not in everything_shown(error=e.value) + caplog.text


@pytest.mark.mysql
def test_init_fun_runs_after_each_connect(account, clean_config):
    user, password = account
    c = dj.Connection("127.0.0.1", user, password, init_fun="SET @djhpc_init = 42")
    assert c.query("SELECT @djhpc_init").fetchone()[0] == 42
    c.reconnect()
    assert c.query("SELECT @djhpc_init").fetchone()[0] == 42
    with pytest.raises(dj.ConnectError, match=r"^init_fun failed: .*: fix the SQL given as init_fun") as e:
        dj.Connection("127.0.0.1", user, password, init_fun="SET nonsense")
    assert password not in everything_shown(error=e.value)


@pytest.mark.mysql
def test_use_tls(account, clean_config):
    user, password = account
    plain = dj.Connection("127.0.0.1", user, password, use_tls=False)
    assert plain.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'").fetchone()[1] == ""
    offers_tls = plain.query("SHOW VARIABLES LIKE 'have_ssl'").fetchone()[1] == "YES"
    if offers_tls:
        secure = dj.Connection("127.0.0.1", user, password, use_tls=True)
        assert secure.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'").fetchone()[1] != ""
    else:
        with pytest.raises(dj.ConnectError, match="offers no TLS but use_tls asks for it: set use_tls=False"):
            dj.Connection("127.0.0.1", user, password, use_tls=True)
    with pytest.raises(dj.ConfigError, match="use_tls must be True, False, None or a dict"):
        dj.Connection("127.0.0.1", user, password, use_tls="yes")


@pytest.mark.mysql
def test_database_reconnect_setting(account, clean_config):
    user, password = account
    c = dj.Connection("127.0.0.1", user, password)
    root_query(f"KILL CONNECTION {int(c.connection_id)}")
    assert c.query("SELECT 1").fetchone()[0] == 1  # reconnected and ran again: database.reconnect is True
    with dj.config(database__reconnect=False):
        root_query(f"KILL CONNECTION {int(c.connection_id)}")
        with pytest.raises(dj.LostConnectionError):
            c.query("SELECT 1")
    assert c.query("SELECT 1").fetchone()[0] == 1


@pytest.mark.mysql
@pytest.mark.parametrize(
    "host, fragment",
    [
        ("127.0.0.1:abc", "database host '127.0.0.1:abc' has a port that is not a port number: write host:3306"),
        ("", "database host must be a name like 'db.example.org' or 'db:3306'"),
    ],
)
def test_bad_hosts_are_one_line_errors(account, clean_config, host, fragment):
    user, password = account
    with pytest.raises(dj.ConfigError) as e:
        dj.conn(host=host, user=user, password=password, reset=True)
    assert fragment in str(e.value) and "\n" not in str(e.value) and password not in str(e.value)


# ------------------------------------------------------------------ % in statements
@pytest.mark.mysql
def test_percent_as_datajoint_reads_it_on_mysql(clean_config):
    c = dj.conn(host="127.0.0.1", user="root", password="", reset=True)
    # values DataJoint 0.14.10 gives for the same statements on this server
    assert c.query("SELECT '%%', 'a%%b'").fetchall() == (("%", "a%b"),)
    assert c.query("SELECT '%%', %s", ("x%",)).fetchall() == (("%", "x%"),)
    assert c.query("SELECT '%%', %(a)s", {"a": "1%"}).fetchall() == (("%", "1%"),)
    assert c.query("SELECT '%%'", None).fetchall() == (("%%",),)
    assert c.query("SELECT 'a%'").fetchall() == (("a%",),)  # DataJoint refuses a lone % without args
    assert c.query("SELECT 1 AS one, 'x' AS two", as_dict=True).fetchall() == [{"one": 1, "two": "x"}]
    user = "djhpc_pct_" + uuid.uuid4().hex[:8]
    try:
        c.query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'not-used-7'")  # DataJoint's suite does this
        assert root_query("SELECT Host FROM mysql.user WHERE User = %s", (user,)) == (("%",),)
    finally:
        root_query(f"DROP USER IF EXISTS '{user}'@'%'")
        root_query(f"DROP USER IF EXISTS '{user}'@'%%'")


def test_percent_as_datajoint_reads_it_on_sqlite(clean_config, tmp_path):
    c = dj.conn(f"sqlite:///{tmp_path}/pct.db", reset=True)
    assert c.query("SELECT '%%', 'a%%b'").fetchall() == [("%", "a%b")]
    assert c.query("SELECT '%%', ?", ("x%",)).fetchall() == [("%", "x%")]
    assert c.query("SELECT '%%'", None).fetchall() == [("%%",)]
    assert c.query("SELECT 'a%', strftime('%Y', '2020-01-01')").fetchall() == [("a%", "2020")]
    assert c.query("SELECT 1 AS one", as_dict=True).fetchone() == {"one": 1}


# ------------------------------------------------------------------ drop, then declare and populate again
def test_a_dropped_schema_is_declared_and_populated_again(db, schema_name, clean_config):
    for _ in range(2):
        schema = dj.Schema(schema_name, connection=db)

        @schema
        class Source(dj.Manual):
            definition = """
            n : int
            """

        @schema
        class Double(dj.Computed):
            definition = """
            -> Source
            ---
            twice : int
            """

            def make(self, key):
                self.insert1(dict(key, twice=2 * key["n"]))

        Source.insert([{"n": 1}, {"n": 2}])
        Double().populate(reserve_jobs=True)
        assert sorted(Double().fetch("twice")) == [2, 4]
        assert len(schema.jobs) == 0
        schema.drop(force=True)


def test_a_connection_closed_inside_a_transaction_loses_it(db, target):
    """As DataJoint: the next statement raises LostConnectionError (it does not run, committed alone, on a new
    connection); the transaction's writes are gone; outside a transaction the connection opens again."""
    with pytest.raises(LostConnectionError, match="closed during a transaction"), db.transaction:
        db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (1,))
        db.close()
        db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (2,), reconnect=True)
    assert not db.in_transaction
    assert db.query(f"SELECT COUNT(*) FROM {target}").fetchone()[0] == 0


def test_a_commit_after_closing_inside_the_transaction_raises(db, target):
    db.start_transaction()
    db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (1,))
    db.close()
    with pytest.raises(LostConnectionError):
        db.commit()
    db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (3,))  # outside: opens again
    assert [r[0] for r in db.query(f"SELECT k FROM {target}").fetchall()] == [3]


def test_closing_outside_a_transaction_reconnects_on_the_next_statement(db):
    db.query("SELECT 1")
    db.close()
    assert not db.is_connected
    assert db.query("SELECT 1", reconnect=True).fetchone()[0] == 1

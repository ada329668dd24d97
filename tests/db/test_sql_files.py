"""Both dialects define the same named statements, each with a body; a statement of one dialect alone says so."""

from djhpc.db.dialects import load_queries, one_dialect_names


def test_both_sql_files_define_the_same_names_except_those_marked_as_one_dialects():
    mysql, sqlite = load_queries("mysql.sql"), load_queries("sqlite.sql")
    only_mysql, only_sqlite = one_dialect_names("mysql.sql"), one_dialect_names("sqlite.sql")
    assert set(only_mysql.values()) <= {"mysql"} and set(only_sqlite.values()) <= {"sqlite"}
    assert sorted(set(mysql) - set(sqlite)) == sorted(only_mysql), "named in mysql.sql only, not marked so"
    assert sorted(set(sqlite) - set(mysql)) == sorted(only_sqlite), "named in sqlite.sql only, not marked so"


def test_the_statements_of_one_dialect_are_known():
    """The parity test knows which statements exist in one dialect: a new one must be added here on purpose."""
    assert sorted(one_dialect_names("mysql.sql")) == [
        "fence_check", "is_free_lock", "made_meanwhile", "read_committed_next", "record_history_checked",
        "release_reserve_lock",
        "release_session_lock", "reserve_returning", "server_uptime", "session_holder", "take_reserve_lock",
        "take_session_lock"]
    assert sorted(one_dialect_names("sqlite.sql")) == ["create_jobs_index"]


def test_no_placeholder_statements():
    """A statement that does nothing in one dialect (``SELECT 1``) is not defined there at all."""
    for filename in ("mysql.sql", "sqlite.sql"):
        idle = [n for n, sql in load_queries(filename).items() if sql.strip().upper() in ("SELECT 1", "SELECT 0",
                                                                                           "SELECT ?", "SELECT ?, ?")]
        assert idle == [], f"{filename}: placeholder statements {idle}"


def test_every_named_statement_has_a_body():
    for filename in ("mysql.sql", "sqlite.sql"):
        empty = [name for name, sql in load_queries(filename).items() if not sql.strip()]
        assert empty == [], f"{filename}: empty statements {empty}"


def test_placeholders_match_the_dialect():
    assert not [n for n, sql in load_queries("sqlite.sql").items() if "%s" in sql]
    assert not [n for n, sql in load_queries("mysql.sql").items() if "?" in sql.replace("'?'", "")]


def test_the_reserve_statement_has_slots_for_names_only():
    """The reserve block's slots are filled with quoted identifiers and placeholders, never values."""
    import re

    for filename, returning in (("mysql.sql", {"returning"}), ("sqlite.sql", set())):
        queries = load_queries(filename)
        assert set(re.findall(r"{(\w+)}", queries["reserve"])) == {"jobs", "offer", "skip_done", "limit"} | returning
        assert set(re.findall(r"{(\w+)}", queries["reserve_skip_done"])) == {"done", "match"}

"""Both dialects define the same named statements, each with a body."""

from djhpc.db.dialects import load_queries


def test_both_sql_files_define_the_same_names():
    mysql, sqlite = load_queries("mysql.sql"), load_queries("sqlite.sql")
    assert sorted(set(mysql) - set(sqlite)) == [], "named in mysql.sql only"
    assert sorted(set(sqlite) - set(mysql)) == [], "named in sqlite.sql only"


def test_every_named_statement_has_a_body():
    for filename in ("mysql.sql", "sqlite.sql"):
        empty = [name for name, sql in load_queries(filename).items() if not sql.strip()]
        assert empty == [], f"{filename}: empty statements {empty}"


def test_placeholders_match_the_dialect():
    assert not [n for n, sql in load_queries("sqlite.sql").items() if "%s" in sql]
    assert not [n for n, sql in load_queries("mysql.sql").items() if "?" in sql.replace("'?'", "")]

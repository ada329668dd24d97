"""djhpc history prune/show and the terminal conventions (colour only on a terminal, never
with NO_COLOR; thousands separators). Ages are parsed by djhpc.durations (tests/test_durations.py)."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
from support.env import worker_env
from support.jobstate import TARGET, cli, one_line_error
from support.narrow import djhpc_at, fits, uncut

from djhpc.cli import display
from djhpc.history import History
from djhpc.reservation import Worker, key_hash

DAY = 86400


@pytest.fixture
def history_rows(pipeline, db, schema_name):
    """The pipeline with item 1 and six history rows of Square, made 40, 35, 31, 20, 1 and 0 days ago."""
    p = pipeline
    p.Item.insert1((1, 1))
    history = History(db, schema_name)
    history.ensure_table()
    now = time.time()
    with db.transaction:
        for i, age_days in enumerate([40, 35, 31, 20, 1, 0]):
            history.record("__square", key_hash({"item": 100 + i}), Worker(host=f"node{i}", sched_job_id="5",
                                                                          sched_task_id=str(i)),
                           now - age_days * DAY - 60, 2.5, 2.0, 1500.0)
    return p


def _count(db, schema_name) -> int:
    return len(History(db, schema_name).recent_durations("__square", 1000))


def test_prune_asks_then_deletes_only_old_rows(history_rows, db, schema_name, capsys, monkeypatch):
    assert _count(db, schema_name) == 6
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc, _, err = cli(capsys, "history", "prune", "--older-than", "30d", TARGET)
    assert rc == 2 and one_line_error(err) and "delete 3 history rows" in err and "--yes" in err
    assert _count(db, schema_name) == 6
    rc, _, err = cli(capsys, "history", "prune", "--older-than", "30 days", "--schema", schema_name, "--yes")
    assert rc == 2 and one_line_error(err) and _count(db, schema_name) == 6
    rc, out, err = cli(capsys, "history", "prune", "--older-than", "30d", "--schema", schema_name, "--yes")
    assert rc == 0 and "deleted 3 history rows older than 30d 00h" in out, err
    assert _count(db, schema_name) == 3
    rc, out, _ = cli(capsys, "history", "prune", "--older-than", "30d", TARGET)
    assert rc == 0 and "no history rows" in out
    rc, out, _ = cli(capsys, "history", "prune", "--older-than", "12h", TARGET, "--yes")
    assert rc == 0 and "deleted 2 history rows" in out and _count(db, schema_name) == 1


def test_show_recent_makes(history_rows, capsys):
    rc, out, err = cli(capsys, "history", "show", TARGET, "--limit", "2", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["host"] for r in rows] == ["node5", "node4"] and rows[0]["task"] == "5_5"
    rc, out, _ = cli(capsys, "history", "show", TARGET)
    assert rc == 0 and "node0" in out and "1.5 GB" in out and "2.50 s" in out


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for stream, coloured in ((io.StringIO(), False), (_Terminal(), True)):
        monkeypatch.setattr(sys, "stdout", stream)
        display.console().print("[red]failed[/red] 1,234")
        assert ("\x1b[" in stream.getvalue()) == coloured, stream.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    stream = _Terminal()
    monkeypatch.setattr(sys, "stdout", stream)
    display.console().print("[red]failed[/red]")
    assert "\x1b[3" not in stream.getvalue() and "failed" in stream.getvalue()


def test_numbers_and_times():
    assert display.number(1234567) == "1,234,567" and display.number(None) == "—"
    assert display.seconds_text(0.0042) == "4.2 ms" and display.seconds_text(95) == "1m 35s"
    assert display.seconds_text(3 * 3600 + 120) == "3h 02m" and display.megabytes_text(2048) == "2.0 GB"


@pytest.mark.parametrize("columns", [80, 200])
def test_history_show_at_80_and_200_columns(history_rows, backend, schema_name, tmp_path, columns):
    """Issue 18 item 3 through the real CLI: every column at 80 columns, no line wider, nothing cut."""
    out = djhpc_at(columns, ["history", "show", TARGET], worker_env(backend, schema_name), tmp_path)
    assert out.returncode == 0, out.stderr
    assert fits(out.stdout, columns) and uncut(out.stdout), out.stdout
    for word in ("Started", "Host", "Task", "Duration", "CPU", "Peak mem"):
        assert word in out.stdout, (word, out.stdout)


def test_console_width_follows_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert display.console().width == 80
    monkeypatch.setenv("COLUMNS", "not a number")
    assert display.console().width == display.PIPED_WIDTH  # piped under pytest: wide lines
    monkeypatch.delenv("COLUMNS")
    assert display.console().width == display.PIPED_WIDTH

"""djhpc.durations, the one parser of every duration flag: its forms, its bare-number unit per flag, and every
duration flag of the real ``djhpc`` command (a subprocess) refusing a bad value with one line, exit 2."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cluster import cli_env, make_project
from support.pipeline import load_items

from djhpc import durations
from djhpc.cli import display
from djhpc.cli.main import build_parser
from djhpc.errors import UsageError

DJHPC = Path(sys.executable).with_name("djhpc")
DAY = 86400


def run(args, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    """The installed ``djhpc`` command, as a user runs it."""
    return subprocess.run([str(DJHPC), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("djhpc: error: ") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ the parser


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", DAY), ("2w", 14 * DAY), ("1h30m", 5400), ("1d12h", 1.5 * DAY),
    ("1.5h", 5400), (" 45S ", 45), ("2 h", 7200), ("1d 2h", DAY + 7200), ("0.5s", 0.5),
    ("5:30", 330), ("90:00", 5400), ("1:30:00", 5400), ("48:00:00", 48 * 3600), ("00:00:01", 1),
    ("2-12", 2 * DAY + 12 * 3600), ("2-12:30", 2 * DAY + 12 * 3600 + 1800), ("1-12:00:00", 1.5 * DAY),
    ("0-00:00:05", 5),
])
def test_forms_mean_the_same_for_every_flag(text, seconds):
    assert durations.parse_duration(text, bare="s") == seconds
    assert durations.parse_duration(text, bare="m") == seconds


@pytest.mark.parametrize("text, bare, seconds", [
    ("90", "m", 5400), ("90", "s", 90), ("1.5", "m", 90), ("0.2", "s", 0.2), (30, "m", 1800), (600, "s", 600),
])
def test_a_bare_number_is_in_the_flags_unit(text, bare, seconds):
    assert durations.parse_duration(text, bare=bare) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "2 hours", "30 days", "1:60:00", "1:00:60", "2-24", "1:2:3:4",
                                  "-5", "-1d", "1-", "h", "d", "1d 2", "1.2.3h", "1e3s", "UNLIMITED", "inf", "nan"])
def test_what_is_not_a_duration(text):
    assert durations.parse_duration(text) is None
    with pytest.raises(UsageError) as info:
        durations.parse_seconds(text, what="--lease")
    assert str(info.value) == (f"--lease {text.strip()!r} is not a duration: use e.g. 600 (seconds), 90s, 15m, 2h, "
                               "1d, 1h30m, 1:30:00 or 1-12:00:00")


def test_zero_is_refused_unless_the_flag_allows_it():
    for text in ("0", "0s", "0m", "00:00:00"):
        with pytest.raises(UsageError, match="is zero: give at least one second"):
            durations.parse_seconds(text)
        assert durations.parse_seconds(text, allow_zero=True) == 0


def test_whole_seconds_round_up():
    assert durations.parse_seconds("0.1s", whole=True) == 1
    assert durations.parse_seconds("1.01m", bare="m", whole=True) == 61


def test_written_back_as_a_user_would():
    assert [durations.text(s) for s in (90, 900, 5400, DAY, 0.5, 600)] == ["1m30s", "15m", "1h30m", "1d", "0.5s",
                                                                             "10m"]


def test_ages_are_durations_in_seconds():
    assert display.parse_age("30d") == 30 * DAY and display.parse_age("3600") == 3600
    with pytest.raises(UsageError, match="age '30 days' is not a duration"):
        display.parse_age("30 days")


# ------------------------------------------------------------------------------------ every flag, for real


def _duration_flags():
    """(command words, flag, bare unit) of every option whose type is the duration parser, found by walking
    the real parser; any option whose metavar or name says it is a time must be one of them."""
    found, suspects = [], []
    todo = [((), build_parser())]
    while todo:
        words, parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [((*words, name), p) for name, p in action._name_parser_map.items()]
                continue
            flag = max(action.option_strings, key=len, default=None)
            if flag is None:
                continue
            parsed = getattr(action.type, "__name__", "") in ("duration", "age_argument", "_time_limit")
            timely = str(action.metavar) in ("SECONDS", "S", "AGE", "DURATION", "LIMIT") or any(
                w in flag for w in ("time", "seconds", "lease", "delay", "interval", "window", "older", "timeout"))
            if parsed:
                found.append((words, flag, "m" if flag == "--time" else "s", action.help or ""))
            elif timely:
                suspects.append((words, flag))
    return sorted(set((w, f, b) for w, f, b, _ in found)), suspects, {(w, f): h for w, f, _, h in found}


FLAGS, SUSPECTS, HELP = _duration_flags()


def test_every_time_flag_uses_the_parser_and_shows_its_unit():
    assert SUSPECTS == [], "these flags take a time but not through djhpc.durations"
    names = {f for _, f, _ in FLAGS}
    assert {"--time", "--older-than", "--window", "--lease", "--retry-delay", "--interval", "--signal-seconds",
            "--make-timeout"} <= names, names
    for (words, flag), help_text in HELP.items():
        unit = "(minutes)" if flag == "--time" else "(seconds)"
        assert unit in help_text, (words, flag, help_text)


@pytest.mark.parametrize("words, flag, bare", FLAGS, ids=[" ".join((*w, f)) for w, f, _ in FLAGS])
def test_a_bad_duration_is_one_line_naming_flag_value_and_examples(words, flag, bare, tmp_path):
    out = run([*words, flag, "5x"], tmp_path)
    assert out.returncode == 2, out.stderr
    line = one_line_error(out)
    assert f"argument {flag}: '5x' is not a duration: use e.g. {durations.examples(bare)}" in line, line
    if flag not in ("--signal-seconds", "--retry-delay"):  # 0 means none / at once there
        out = run([*words, flag, "0"], tmp_path)
        assert out.returncode == 2 and f"argument {flag}: '0' is zero" in one_line_error(out)


def test_time_0_exits_2_on_every_command_that_takes_it(tmp_path):
    for command in ("submit", "render"):
        out = run([command, "--array", 2, "--time", "0"], tmp_path)
        assert out.returncode == 2 and "argument --time: '0' is zero" in one_line_error(out)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project on SQLite with 4 items, and the environment its commands run in."""
    url = f"sqlite:///{tmp_path / 'project.db'}"
    folder = make_project(tmp_path / "project", url, "scheduler: slurm\n")
    load_items(url, "durations", 4, monkeypatch, tmp_path)
    return folder, cli_env("durations", tmp_path, PATH=f"{DJHPC.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize("given, directive", [
    ("90", "01:30:00"), ("1h30m", "01:30:00"), ("1:30:00", "01:30:00"), ("5400s", "01:30:00"),
    ("1-12:00:00", "1-12:00:00"), ("36h", "1-12:00:00"), ("1.5d", "1-12:00:00"), ("45:30", "00:45:30"),
])
def test_time_forms_reach_sbatch_as_one_limit(project, given, directive):
    folder, env = project
    out = run(["render", "--array", 2, "--time", given], folder, env)
    assert out.returncode == 0, out.stderr
    assert f"#SBATCH --time={directive}\n" in out.stdout


def test_signal_seconds_takes_units_and_bare_seconds(project):
    folder, env = project
    for given, seconds in (("2m", 120), ("90", 90), ("1:30", 90)):
        out = run(["render", "--array", 2, "--time", "1h", "--signal-seconds", given], folder, env)
        assert out.returncode == 0 and f"#SBATCH --signal=B:USR1@{seconds}\n" in out.stdout, out.stderr


def test_every_other_flag_takes_units_and_bare_seconds(project):
    folder, env = project
    for args in (["reap", "--lease", "10m", "--dry-run", "--scheduler", "none"],
                 ["reap", "--lease", "600", "--dry-run", "--scheduler", "none"],
                 ["progress", "--window", "1h", "--interval", "1m"],
                 ["progress", "--window", "3600", "--interval", "0.5"],
                 ["jobs", "--older-than", "1h30m"], ["jobs", "list", "--older-than", "5400"],
                 ["history", "prune", "--older-than", "1d12h", "--yes"],
                 ["history", "prune", "--older-than", "129600", "--yes"],
                 ["work", "--retry-delay", "1m", "--make-timeout", "10m"],
                 ["work", "--retry-delay", "0", "--make-timeout", "1:00:00"]):
        out = run(args, folder, env)
        assert out.returncode == 0, (args, out.stderr)

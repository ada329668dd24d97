"""Profile: validation, time and memory parsing, merging CLI flags over YAML."""

from __future__ import annotations

import pytest
from support.scripts import FULL_SETTINGS

from djhpc.errors import UsageError
from djhpc.profile import (
    Profile,
    format_time_slurm,
    format_walltime,
    parse_gpus,
    parse_mail_type,
    parse_memory,
    parse_time,
    pbs_mail_points,
)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30", 30 * 60),  # sbatch: a bare number is minutes
        (30, 30 * 60),
        ("90", 90 * 60),
        ("5:30", 5 * 60 + 30),  # MM:SS
        ("90:00", 90 * 60),
        ("1:00:00", 3600),  # HH:MM:SS
        ("48:00:00", 48 * 3600),
        ("00:00:01", 1),
        ("2-12", 2 * 86400 + 12 * 3600),  # D-HH
        ("2-12:30", 2 * 86400 + 12 * 3600 + 30 * 60),  # D-HH:MM
        ("2-12:30:15", 2 * 86400 + 12 * 3600 + 30 * 60 + 15),  # D-HH:MM:SS
        ("0-00:00:05", 5),
        ("90m", 5400),
        ("2h", 7200),
        ("1d", 86400),
        ("45s", 45),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("1.5h", 5400),
        (" 2H ", 7200),
        ("2 h", 7200),
    ],
)
def test_parse_time(text: str | int, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text", ["2 hours", "", "abc", "1:60:00", "1:00:60", "2-24", "1:2:3:4", "-5", "1-", "h", "UNLIMITED", "0", "0m"]
)
def test_bad_time(text: str) -> None:
    with pytest.raises(UsageError, match=r"time limit .* use HH:MM:SS, D-HH:MM:SS or 90m/2h/1d"):
        parse_time(text)


def test_bad_time_message_is_exact() -> None:
    with pytest.raises(UsageError) as info:
        parse_time("2 hours")
    assert str(info.value) == "time limit '2 hours' does not parse: use HH:MM:SS, D-HH:MM:SS or 90m/2h/1d"


@pytest.mark.parametrize(
    "seconds,slurm,pbs",
    [
        (1, "00:00:01", "00:00:01"),
        (3600, "01:00:00", "01:00:00"),
        (93784, "1-02:03:04", "26:03:04"),
        (86400 * 10, "10-00:00:00", "240:00:00"),
    ],
)
def test_format_time(seconds: int, slurm: str, pbs: str) -> None:
    assert format_time_slurm(seconds) == slurm
    assert format_walltime(seconds) == pbs
    assert parse_time(slurm) == seconds


@pytest.mark.parametrize(
    "text,mb",
    [
        ("4000", 4000),
        (4000, 4000),
        ("500M", 500),
        ("4G", 4096),
        ("4g", 4096),
        ("4GB", 4096),
        ("4GiB", 4096),
        ("1.5G", 1536),
        ("1T", 1048576),
        ("512K", 1),
        ("2048k", 2),
        ("100 MB", 100),
    ],
)
def test_parse_memory(text: str | int, mb: int) -> None:
    assert parse_memory(text) == mb


@pytest.mark.parametrize("text", ["4 lots", "G", "-1G", "4X", "", "0", "0.0K", True, 4.5])
def test_bad_memory(text: object) -> None:
    with pytest.raises(UsageError, match="memory"):
        parse_memory(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text,parsed",
    [
        ("2", (2, None)),
        (2, (2, None)),
        ("a100:2", (2, "a100")),
        ("gpu:a100:2", (2, "a100")),
        ("gpu:1", (1, None)),
        ("0", (0, None)),
    ],
)
def test_parse_gpus(text: str | int, parsed: tuple[int, str | None]) -> None:
    assert parse_gpus(text) == parsed


@pytest.mark.parametrize("text", ["two", "a100", "a100:", ":2", "a b:2"])
def test_bad_gpus(text: str) -> None:
    with pytest.raises(UsageError, match="gpus"):
        parse_gpus(text)


def test_mail_types() -> None:
    assert parse_mail_type("end,fail") == "END,FAIL"
    assert parse_mail_type("abe") == "BEGIN,END,FAIL"
    assert parse_mail_type("n") == "NONE"
    assert pbs_mail_points("BEGIN,END,FAIL") == ("bea", [])
    assert pbs_mail_points("ALL,TIME_LIMIT") == ("abe", ["TIME_LIMIT"])
    with pytest.raises(UsageError, match="mail_type 'SOMETIMES' is not known"):
        parse_mail_type("SOMETIMES")


def test_from_dict_names_unknown_settings() -> None:
    with pytest.raises(UsageError) as info:
        Profile.from_dict({"partiton": "debug"})
    message = str(info.value)
    assert message.startswith("unknown profile setting 'partiton' (known: account, after, ")
    assert message.endswith("did you mean 'partition'?")
    assert "\n" not in message


def test_from_dict_full_profile() -> None:
    p = Profile.from_dict(FULL_SETTINGS)
    assert (p.time, p.mem, p.gpus, p.gpu_type) == (26 * 3600, 8192, 1, "a100")
    assert p.after == ["1234"] and p.after_type == "afterany"
    assert p.extra_directives == ["--constraint=haswell", "# a comment kept as it is"]
    assert Profile.from_dict(p.to_dict()) == p


def test_from_dict_spellings() -> None:
    p = Profile.from_dict({"job-name": "x", "queue": "short", "walltime": "01:00:00", "mail-type": "ALL"})
    assert (p.job_name, p.partition, p.time, p.mail_type) == ("x", "short", 3600, "ALL")
    with pytest.raises(UsageError, match="given twice"):
        Profile.from_dict({"queue": "a", "partition": "b"})


def test_yaml_style_values() -> None:
    # YAML hands over ints for numbers and None for empty settings
    p = Profile.from_dict({"time": 90, "mem": 4000, "account": 12345, "cpus": "8", "partition": None, "qos": ""})
    assert (p.time, p.mem, p.account, p.cpus, p.partition, p.qos) == (5400, 4000, "12345", 8, None, None)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"cpus": 0}, "cpus must be a whole number >= 1"),
        ({"cpus": "four"}, "cpus must be a whole number >= 1"),
        ({"cpus": True}, "cpus must be a whole number"),
        ({"nodes": 1.5}, "nodes must be a whole number"),
        ({"throttle": 0}, "throttle must be a whole number >= 1"),
        ({"account": ["a"]}, "account must be text"),
        ({"setup": {"a": 1}}, "setup must be a list of lines"),
        ({"setup": [1]}, "setup must be a list of lines"),
        ({"requeue": "maybe"}, "requeue must be yes or no"),
        ({"after": "12 13"}, "is not a job id"),
        ({"after": "$(x)"}, "is not a job id"),
        ({"after_type": "afterwards"}, "after_type 'afterwards' is not known"),
        ({"scheduler": "flux"}, r"unknown scheduler 'flux' \(choose slurm, .*lsf, htcondor, .*local\)"),
        ({"signal_seconds": 70000}, "at most 65535"),
        ({"signal_seconds": 120, "time": "2"}, "not shorter than the time limit"),
        ({"time": "2 hours"}, "does not parse"),
        ({"mem": "lots"}, "does not parse"),
    ],
)
def test_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Profile.from_dict(settings)


def test_after_ids() -> None:
    assert Profile.from_dict({"after": "12:13,14"}).after == ["12", "13", "14"]
    assert Profile.from_dict({"after": [12, "13[].pbs01"]}).after == ["12", "13[].pbs01"]


def test_merge_lays_flags_over_yaml() -> None:
    yaml_profile = Profile.from_dict({"partition": "long", "time": "2-00:00:00", "setup": ["module load x"]})
    merged = yaml_profile.merge({"partition": "short", "time": "90m", "account": None, "throttle": "3"})
    assert (merged.partition, merged.time, merged.throttle) == ("short", 5400, 3)
    assert merged.setup == ["module load x"]
    assert yaml_profile.partition == "long"  # a new profile
    with pytest.raises(UsageError, match="unknown profile setting 'partion'"):
        yaml_profile.merge({"partion": "x"})
    with pytest.raises(UsageError, match="throttle must be"):
        yaml_profile.merge({"throttle": -1})


def test_scheduler_aliases() -> None:
    assert Profile(scheduler="PBSPro").scheduler == "pbs"
    assert Profile(scheduler="SLURM").scheduler == "slurm"


def test_constructor_takes_text_too() -> None:
    p = Profile(time="2h", mem="1G", gpus="v100:2")
    assert (p.time, p.mem, p.gpus, p.gpu_type) == (7200, 1024, 2, "v100")
    assert Profile(time=90).time == 90  # in Python, a number is already seconds
    assert Profile(signal_seconds=0).signal_seconds is None
    assert Profile(job_name="  ").job_name == "djhpc"

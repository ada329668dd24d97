"""Submission settings of a run (a "profile"): validated once, rendered by each scheduler.

Precedence is the caller's business (config.py): it builds a Profile from the YAML section with
`Profile.from_dict` and lays CLI flags on top with `Profile.merge`. Values here are normalised:
`time` in seconds, `mem` in megabytes; `to_dict` gives them back as text that `from_dict` reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from djhpc.durations import parse_duration
from djhpc.errors import UsageError

SCHEDULER_NAMES = ("slurm", "pbs", "torque", "sge", "lsf", "htcondor", "parallel", "local")
SCHEDULER_ALIASES = {"pbspro": "pbs", "openpbs": "pbs", "condor": "htcondor", "gridengine": "sge", "uge": "sge"}
AFTER_TYPES = ("afterok", "afterany", "afternotok", "after")
# sbatch --mail-type names; PBS gets letters (see pbs_mail_points)
MAIL_TYPES = (
    "NONE", "BEGIN", "END", "FAIL", "REQUEUE", "ALL", "INVALID_DEPEND", "STAGE_OUT",
    "TIME_LIMIT", "TIME_LIMIT_90", "TIME_LIMIT_80", "TIME_LIMIT_50", "ARRAY_TASKS",
)  # fmt: skip
_PBS_MAIL_LETTERS = {"BEGIN": "b", "END": "e", "FAIL": "a", "ALL": "abe", "NONE": "n"}
_SLURM_FROM_LETTER = {"b": "BEGIN", "e": "END", "a": "FAIL", "n": "NONE"}

_TIME_HELP = "use HH:MM:SS, D-HH:MM:SS or 90m/2h/1d"
_JOB_ID = re.compile(r"[A-Za-z0-9_.\[\]-]+")
_BREAKS = ("\n", "\r", "\x00")


def check_line(value: str, what: str) -> str:
    """Refuse a value with a line break or NUL: in a directive it would start a new directive."""
    if any(ch in value for ch in _BREAKS):
        raise UsageError(f"{what} {value!r} contains a line break or NUL: a value must be one line")
    return value


def parse_time(value: str | int) -> int:
    """Time limit as whole seconds, read by djhpc.durations (the parser of every duration flag): SLURM forms
    (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; a bare number means minutes, as in sbatch) and unit forms
    (90m, 2h, 1d, 1h30m, 1.5h, 45s)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"time limit {value!r} does not parse: {_TIME_HELP}")
    seconds = parse_duration(value, bare="m")
    if seconds is None:
        raise UsageError(f"time limit {str(value)!r} does not parse: {_TIME_HELP}")
    if seconds <= 0:
        raise UsageError(f"time limit {str(value)!r} is zero: {_TIME_HELP}, at least one second")
    return math.ceil(seconds)


def format_time_slurm(seconds: int) -> str:
    """sbatch --time: HH:MM:SS, or D-HH:MM:SS from one day on."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def format_walltime(seconds: int) -> str:
    """PBS walltime: HH:MM:SS with hours past 24 (48:00:00)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


_MEM_UNITS = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory(value: str | int) -> int:
    """Memory as megabytes: 4000 (MB), 500M, 4G, 1.5G, 4GB, 4GiB, 1T."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"memory {value!r} does not parse: use megabytes (4000) or a size like 500M or 4G")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", str(value).strip().lower())
    if not m:
        raise UsageError(f"memory {str(value)!r} does not parse: use megabytes (4000) or a size like 500M or 4G")
    mb = math.ceil(float(m.group(1)) * _MEM_UNITS[m.group(2)])
    if mb < 1:
        raise UsageError(f"memory {str(value)!r} is less than 1 MB: use megabytes (4000) or a size like 4G")
    return mb


def parse_gpus(value: str | int) -> tuple[int, str | None]:
    """GPU request: a count (2) or TYPE:COUNT (a100:2, gpu:a100:2) -> (count, type)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"gpus {value!r} does not parse: use a count (2) or TYPE:COUNT (a100:2)")
    text = str(value).strip()
    if text.startswith("gpu:"):
        text = text[4:]
    m = re.fullmatch(r"(?:([A-Za-z0-9_.-]+):)?(\d+)", text)
    if not m:
        raise UsageError(f"gpus {str(value)!r} does not parse: use a count (2) or TYPE:COUNT (a100:2)")
    return int(m.group(2)), m.group(1)


def parse_mail_type(value: str) -> str:
    """Mail events as sbatch names joined by commas; PBS letters (abe, n) are accepted too."""
    text = str(value).strip()
    if re.fullmatch(r"[abe]+|n", text):
        names = {_SLURM_FROM_LETTER[ch] for ch in text}
        return ",".join(n for n in MAIL_TYPES if n in names)
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in MAIL_TYPES]
    if bad or not names:
        raise UsageError(f"mail_type {text!r} is not known: use {', '.join(MAIL_TYPES)} (comma-separated)")
    return ",".join(names)


def pbs_mail_points(mail_type: str) -> tuple[str, list[str]]:
    """PBS -m letters for sbatch-style mail events, and the events PBS cannot express."""
    letters = ""
    dropped = []
    for name in mail_type.split(","):
        if name in _PBS_MAIL_LETTERS:
            letters += _PBS_MAIL_LETTERS[name]
        else:
            dropped.append(name)
    letters = "".join(dict.fromkeys(letters))
    if "n" in letters and len(letters) > 1:
        letters = letters.replace("n", "")
    return letters, dropped


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UsageError(f"profile setting {name} must be text (got {type(value).__name__} {value!r})")
    text = str(value)
    check_line(text, f"profile setting {name}")
    return text if text.strip() else None


def _count(name: str, value: Any, minimum: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value))
    ):
        raise UsageError(f"profile setting {name} must be a whole number >= {minimum} (got {value!r})")
    number = int(value)
    if number < minimum:
        raise UsageError(f"profile setting {name} must be a whole number >= {minimum} (got {number})")
    return number


def _lines(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"profile setting {name} must be a list of lines (got {type(value).__name__})")
    lines = []
    for item in value:
        if not isinstance(item, str):
            raise UsageError(f"profile setting {name} must be a list of lines (got item {item!r})")
        lines.append(check_line(item, f"a line of {name}"))
    return lines


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "on", "1", "no", "false", "off", "0"):
        return value.strip().lower() in ("yes", "true", "on", "1")
    raise UsageError(f"profile setting {name} must be yes or no (got {value!r})")


def _job_ids(value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)):
        raise UsageError(f"profile setting after must be a job id or a list of them (got {value!r})")
    ids: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise UsageError(f"profile setting after must be a job id or a list of them (got {item!r})")
        for part in re.split(r"[,:]", str(item)):
            part = part.strip()
            if not part:
                continue
            if not _JOB_ID.fullmatch(part):
                raise UsageError(f"after {part!r} is not a job id: give the id sbatch or qsub printed (12345)")
            ids.append(part)
    return ids


def _scheduler_name(value: Any) -> str | None:
    name = _text("scheduler", value)
    if name is None:
        return None
    name = SCHEDULER_ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in SCHEDULER_NAMES:
        raise UsageError(f"unknown scheduler {value!r} (choose {', '.join(SCHEDULER_NAMES)})")
    return name


@dataclass
class Profile:
    """Submission settings. `time` is seconds and `mem` megabytes once constructed; strings such as
    "2h" or "4G" are parsed on construction too. Empty values mean: leave it to the scheduler."""

    scheduler: str | None = None
    job_name: str = "djhpc"
    partition: str | None = None  # the queue on PBS
    account: str | None = None
    qos: str | None = None
    time: int | None = None  # walltime, seconds
    cpus: int | None = None
    mem: int | None = None  # megabytes
    gpus: int | None = None
    gpu_type: str | None = None
    nodes: int | None = None
    output: str | None = None  # None: the scheduler's default, e.g. djhpc-%A_%a.out on SLURM
    error: str | None = None
    mail_user: str | None = None
    mail_type: str | None = None  # sbatch names joined by commas
    extra_directives: list[str] = field(default_factory=list)  # verbatim; "--x=y" gets the prefix
    setup: list[str] = field(default_factory=list)  # verbatim shell lines
    workdir: str | None = None
    throttle: int | None = None  # most tasks running at once
    after: list[str] = field(default_factory=list)  # job ids this run waits for
    after_type: str = "afterok"
    signal_seconds: int | None = 60  # USR1 this long before the time limit (SLURM); 0/None: none
    requeue: bool = False

    def __post_init__(self) -> None:
        self.scheduler = _scheduler_name(self.scheduler)
        self.job_name = _text("job_name", self.job_name) or "djhpc"
        for name in ("partition", "account", "qos", "gpu_type", "workdir", "output", "error", "mail_user"):
            setattr(self, name, _text(name, getattr(self, name)))
        if isinstance(self.time, str):
            self.time = parse_time(self.time) if self.time.strip() else None
        self.time = _count("time", self.time, 1)
        if isinstance(self.mem, str):
            self.mem = parse_memory(self.mem) if self.mem.strip() else None
        self.mem = _count("mem", self.mem, 1)
        if isinstance(self.gpus, str):
            count, gpu_type = parse_gpus(self.gpus)
            self.gpus, self.gpu_type = count, gpu_type or self.gpu_type
        self.gpus = _count("gpus", self.gpus, 0) or None
        self.cpus = _count("cpus", self.cpus, 1)
        self.nodes = _count("nodes", self.nodes, 1)
        self.throttle = _count("throttle", self.throttle, 1)
        self.signal_seconds = _count("signal_seconds", self.signal_seconds, 0) or None
        if self.signal_seconds is not None and self.signal_seconds > 65535:
            raise UsageError(f"signal_seconds {self.signal_seconds} is too large: sbatch takes at most 65535")
        if self.signal_seconds and self.time and self.signal_seconds >= self.time:
            raise UsageError(
                f"signal_seconds {self.signal_seconds} is not shorter than the time limit ({self.time} s): "
                "lower signal_seconds or raise time"
            )
        mail_type = _text("mail_type", self.mail_type)
        self.mail_type = parse_mail_type(mail_type) if mail_type else None
        self.extra_directives = _lines("extra_directives", self.extra_directives)
        self.setup = _lines("setup", self.setup)
        self.after = _job_ids(self.after)
        after_type = (_text("after_type", self.after_type) or "afterok").strip().lower()
        if after_type not in AFTER_TYPES:
            raise UsageError(f"after_type {self.after_type!r} is not known: choose {', '.join(AFTER_TYPES)}")
        self.after_type = after_type
        self.requeue = _flag("requeue", self.requeue)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """A profile from user settings (a YAML section): unknown names are errors, a bare number
        for time means minutes (as in sbatch), for mem megabytes."""
        if not isinstance(data, Mapping):
            raise UsageError(f"a profile must be a mapping of settings (got {type(data).__name__})")
        return cls(**_user_settings(data))

    def merge(self, other: Mapping[str, Any]) -> Profile:
        """A new profile with `other` (CLI flags) on top; None values in `other` are skipped."""
        settings = _user_settings({k: v for k, v in other.items() if v is not None})
        return dataclasses.replace(self, **settings)

    def to_dict(self) -> dict[str, Any]:
        """User-facing settings that `from_dict` reads back to an equal profile."""
        data = dataclasses.asdict(self)
        data["time"] = format_time_slurm(self.time) if self.time else None
        data["mem"] = f"{self.mem}M" if self.mem else None
        data["signal_seconds"] = self.signal_seconds or 0
        return data


_FIELDS = tuple(f.name for f in dataclasses.fields(Profile))
_ALIASES = {"queue": "partition", "walltime": "time"}


def _user_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).strip().lower().replace("-", "_")
        name = _ALIASES.get(name, name)
        if name not in _FIELDS:
            hint = difflib.get_close_matches(name, _FIELDS + tuple(_ALIASES), n=1)
            suggestion = f": did you mean {hint[0]!r}?" if hint else ""
            raise UsageError(f"unknown profile setting {key!r} (known: {', '.join(sorted(_FIELDS))}){suggestion}")
        if name in settings:
            raise UsageError(f"profile setting {name} is given twice (as {key!r}): keep one")
        if name == "time" and isinstance(value, (int, str)) and not isinstance(value, bool):
            value = parse_time(value) if str(value).strip() else None
        elif name == "mem" and isinstance(value, (int, str)) and not isinstance(value, bool):
            value = parse_memory(value) if str(value).strip() else None
        settings[name] = value
    return settings


def known_settings() -> Iterable[str]:
    """Names `from_dict` accepts (aliases queue and walltime too)."""
    return _FIELDS + tuple(_ALIASES)


def check_scheduler_name(value: Any) -> str | None:
    """A scheduler name (or alias) as its canonical name; an unknown one is a UsageError listing the choices."""
    return _scheduler_name(value)


def check_section(data: Mapping[str, Any]) -> None:
    """Check one ``profiles:`` section of djhpc.yaml as submit reads it (``array:`` included), when the file is
    loaded: a mistake shows in every command, not only in the submit that would have used the section."""
    settings = dict(data)
    known = (*_FIELDS, *_ALIASES, "array")
    for key in settings:
        if str(key).strip().lower().replace("-", "_") not in known:
            close = difflib.get_close_matches(str(key).strip().lower().replace("-", "_"), known, n=1)
            raise UsageError(f"unknown key {key!r}: " + (f"did you mean {close[0]!r}?" if close
                                                          else f"known: {', '.join(sorted(known))}"))
    for key in [k for k in settings if str(k).strip().lower() == "array"]:
        array = settings.pop(key)
        if isinstance(array, bool) or not isinstance(array, int) or array < 1:
            raise UsageError(f"array must be a whole number >= 1 (got {array!r})")
    if not any(str(k).strip().lower().replace("-", "_") == "signal_seconds" for k in settings):
        settings["signal_seconds"] = 0  # submit fits its default warning to a short time limit itself
    Profile.from_dict(settings)

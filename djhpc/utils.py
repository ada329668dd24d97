"""Small helpers DataJoint code imports from ``datajoint.utils``: table-name casing, a yes/no prompt, part-table
names, writes that never leave a half-written file."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError

_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*")


class ClassProperty:
    """A read-only property of the class itself (``Table.full_table_name`` without an instance)."""

    def __init__(self, f):
        self.f = f

    def __get__(self, obj, owner):
        return self.f(owner)


def is_camel_case(s: str) -> bool:
    """Whether ``s`` is a CamelCase class name: a capital ASCII letter, then ASCII letters and digits."""
    return isinstance(s, str) and _CAMEL.fullmatch(s) is not None


def from_camel_case(s: str) -> str:
    """``TableName`` -> ``table_name``, as DataJoint names a table after its class."""
    if not is_camel_case(s):
        raise UsageError(f"class name {s!r} must be alphanumeric in CamelCase, beginning with a capital letter: "
                         "rename the class (e.g. 'SessionTrial')")
    return re.sub(r"(?<!^)([A-Z])", r"_\1", s).lower()


def to_camel_case(s: str) -> str:
    """``table_name`` -> ``TableName``: each letter after the start or a run of separators is capitalised."""
    return re.sub(r"(?:^|[_\W])+([a-zA-Z])", lambda m: m.group(1).upper(), s)


def user_choice(prompt: str, choices=("yes", "no"), default=None) -> str:
    """Ask until one of ``choices`` is typed (the default, shown capitalised, for an empty answer)."""
    if default is not None and default not in choices:
        raise UsageError(f"user_choice: default {default!r} is not one of the choices {list(choices)}")
    shown = ", ".join(c.title() if c == default else c for c in choices)
    answer = None
    while answer not in choices:
        answer = input(f"{prompt} [{shown}]: ")
        answer = answer.lower() if answer else default
    return answer


def confirm(prompt: str, what: str, fix: str) -> str:
    """``user_choice(prompt, default="no")`` for a safemode question of ``what``; a UsageError naming ``fix`` when no
    answer can be read (stdin closed, or not readable here: a batch job, a test)."""
    try:
        return user_choice(prompt, default="no")
    except (EOFError, OSError) as exc:
        raise UsageError(f"{what} asks for confirmation but no answer can be read from stdin: {fix}") from exc


def get_master(full_table_name: str) -> str:
    """The master's full name of a part table's full name (```s`.`m__p``` -> ```s`.`m```), else ''."""
    m = re.fullmatch(r"(`\w+`\.`\w+)__\w+`", full_table_name)
    return m.group(1) + "`" if m else ""


def write_whole(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file of a unique name beside it, moved into place, so that a
    reader (another worker, a crash) never sees half of it. The one atomic write of the query cache and the stores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".saving")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def safe_write(filepath, data: bytes) -> None:
    """Write ``data`` to a new file through a temporary name, so the file is whole or absent; an existing file is
    kept as it is."""
    path = Path(filepath)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(path.suffix + ".saving")
    temp.write_bytes(data)
    temp.replace(path)


def safe_copy(src, dest, overwrite: bool = False) -> None:
    """Copy ``src`` to ``dest`` through a temporary name; an existing ``dest`` is kept unless ``overwrite``."""
    src, dest = Path(src), Path(dest)
    if dest.exists() and src.samefile(dest) or (dest.is_file() and not overwrite):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_suffix(dest.suffix + ".copying")
    shutil.copyfile(src, temp)
    temp.replace(dest)

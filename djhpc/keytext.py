"""The one text form of a key, printed and read back: ``subject='r1', session_id=7``.

Every command prints keys with ``format_key`` and reads them with ``parse_key_text``. The form is Python's
keyword-argument syntax (the way a table row reads), so a value is a Python literal: text in quotes (any
quotes, commas or unicode inside), numbers bare. Dates, times, decimals and UUIDs print as their text
(``day='2024-03-01'``): read back, the table's attribute types turn them into what they were. Reading goes
through ``ast`` (never ``eval``): only literals are taken.
"""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import uuid

from .errors import UsageError

EXAMPLE = "subject='r1', session_id=7"


def _value_text(value) -> str:
    if isinstance(value, dt.datetime):
        return repr(value.isoformat(sep=" "))
    if isinstance(value, dt.date | dt.time | uuid.UUID):
        return repr(str(value))
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):  # numpy scalars
        value = value.item()
    return repr(value)


def format_key(key: dict | None) -> str:
    """``{'subject': 'r1', 'session_id': 7}`` -> ``subject='r1', session_id=7`` (attribute order kept)."""
    return ", ".join(f"{name}={_value_text(value)}" for name, value in (key or {}).items())


def looks_like_key_text(text: str) -> bool:
    """Whether ``text`` is meant as ``name=value, ...`` (an ``=`` outside JSON): for choosing the parser."""
    t = str(text).strip()
    return "=" in t and not t.startswith(("{", "["))


def parse_key_text(text: str) -> dict:
    """``subject='r1', session_id=7`` -> a dict; anything else is a UsageError naming the problem and the fix."""
    t = str(text).strip()
    if not t:
        raise UsageError(f"the key is empty: write it as {EXAMPLE}")
    try:
        tree = ast.parse(f"_({t})", mode="eval").body
    except SyntaxError as e:
        raise UsageError(f"key {t!r} does not parse ({e.msg}): write it as {EXAMPLE}, text in quotes") from None
    if (not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name) or tree.func.id != "_"
            or tree.args or not tree.keywords):
        raise UsageError(f"key {t!r} is not name=value pairs: write it as {EXAMPLE}, text in quotes")
    key: dict = {}
    for keyword in tree.keywords:
        name = keyword.arg
        if name is None:
            raise UsageError(f"key {t!r}: ** is not a value: write it as {EXAMPLE}")
        if name in key:
            raise UsageError(f"key {t!r} names {name} twice: give each attribute once")
        key[name] = _literal(name, keyword.value, t)
    return key


def _literal(name: str, node: ast.expr, text: str):
    source = ast.get_source_segment(f"_({text})", node) or "?"
    try:
        value = ast.literal_eval(node)
    except ValueError:
        raise UsageError(f"key value {name}={source} is not a literal: quote text, e.g. {name}='{source}'") from None
    if value is None:
        raise UsageError(f"key value {name}=None: a primary-key attribute is never NULL: give its value")
    if not isinstance(value, str | int | float | bool):
        raise UsageError(f"key value {name}={source} is a {type(value).__name__}: give text in quotes or a number")
    return value

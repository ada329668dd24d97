"""keytext: the printed key form reads back to the same key (quotes, commas, unicode, numbers, dates through the
table's types), and what is not a key is refused with one line naming the fix."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

import djhpc as dj
from djhpc.errors import UsageError
from djhpc.jobrows import parse_key
from djhpc.keytext import format_key, looks_like_key_text, parse_key_text
from djhpc.reservation import key_hash


@pytest.mark.parametrize("key", [
    {"subject": "r1", "session_id": 7},
    {"name": "it's"},
    {"name": 'say "hi", then leave'},
    {"name": "a, b=c', d"},
    {"name": "Zoë 🐭 ß"},
    {"name": "back\\slash\nnewline\ttab"},
    {"name": ""},
    {"n": -3, "x": 0.1, "big": 12345678901234567890, "tiny": 1e-300},
    {"flag": True},
])
def test_round_trip(key):
    text = format_key(key)
    assert parse_key_text(text) == key
    assert looks_like_key_text(text)
    assert format_key(parse_key_text(text)) == text


def test_the_printed_form():
    assert format_key({"subject": "r1", "session_id": 7}) == "subject='r1', session_id=7"
    assert format_key({"day": dt.date(2024, 3, 1)}) == "day='2024-03-01'"
    assert format_key({"at": dt.datetime(2024, 3, 1, 12, 5)}) == "at='2024-03-01 12:05:00'"
    assert format_key({"d": decimal.Decimal("1.50")}) == "d=1.50"
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert format_key({"u": u}) == "u='12345678-1234-5678-1234-567812345678'"
    assert format_key({}) == "" and format_key(None) == ""


def test_dates_come_back_through_the_tables_types(schema):
    @schema
    class Day(dj.Manual):
        definition = """
        subject : varchar(16)
        day     : date
        ---
        """

    key = {"subject": "r1, 'x'", "day": dt.date(2024, 3, 1)}
    back, h = parse_key(format_key(key), Day)
    assert back == key and h == key_hash(key)
    json_back, json_hash = parse_key('{"subject": "r1, \'x\'", "day": "2024-03-01"}', Day)
    assert json_back == key and json_hash == h


@pytest.mark.parametrize("text, words", [
    ("subject=None", "never NULL"),
    ("subject=r1", "quote text"),
    ("subject='r1' session_id=7", "does not parse"),
    ("subject='r1', subject='r2'", "twice"),
    ("'r1', 7", "not name=value"),
    ("subject=[1, 2]", "is a list"),
    ("a=1), b=(2", "does not parse"),
    ("a=1)(b=2", "not name=value"),
    ("a=__import__('os').system('true')", "not a literal"),
    ("", "empty"),
])
def test_what_is_not_a_key_is_refused(text, words):
    with pytest.raises(UsageError) as e:
        parse_key_text(text)
    message = str(e.value)
    assert words in message and "\n" not in message


def test_json_null_is_refused_too():
    with pytest.raises(UsageError, match="never NULL"):
        parse_key('{"subject": null}')

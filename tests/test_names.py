"""charaid.names: file names in any bytes, and the one rule for character names."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from charaid.names import MAX_NAME_CHARS, character_name, from_db, json_line, name_from_folder, shown, to_db

SJIS = os.fsdecode(b"\x83n\x83\x8b\x83q.png")  # Shift-JIS bytes: lone surrogates in a str


def test_shown_is_one_printable_line():
    assert shown(SJIS) == "\\x83n\\x83\\x8b\\x83q.png"
    assert shown("new\nline\r\t.png") == "new\\nline\\r\\t.png"
    assert shown("\u30ad\u30e3\u30e9.png") == "\u30ad\u30e3\u30e9.png", "unicode stays readable"
    assert shown(b"a\x00b") == "a\\x00b"
    assert "\n" not in shown("a\u2028b") and shown("a\u2028b").isprintable()


def test_json_line_is_utf8_and_gives_the_bytes_back():
    line = json_line({"path": "/x/" + SJIS, "name": "\u30ad\u30e3\u30e9\n"})
    assert "\n" not in line
    back = json.loads(line.encode("utf-8").decode("utf-8"))
    assert os.fsencode(back["path"]) == b"/x/\x83n\x83\x8b\x83q.png"
    assert back["name"] == "\u30ad\u30e3\u30e9\n"


def test_names_survive_sqlite_exactly():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (p TEXT)")
    for name in [SJIS, "plain.png", "\u30ad\u30e3\u30e9.png", None]:
        db.execute("INSERT INTO t VALUES (?)", (to_db(name),))
        assert db.execute("SELECT count(*) FROM t WHERE p IS ?", (to_db(name),)).fetchone()[0] == 1
    assert [from_db(r[0]) for r in db.execute("SELECT p FROM t")] == [SJIS, "plain.png", "\u30ad\u30e3\u30e9.png", None]


@pytest.mark.parametrize("name", ["AC/DC", "  padded  ", "\u30ad\u30e3\u30e9", "x" * MAX_NAME_CHARS])
def test_good_names(name):
    assert character_name(name) == name.strip()


@pytest.mark.parametrize(
    "name, why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * (MAX_NAME_CHARS + 1), "at most"),
        ("x" * 100_000, "at most"),
        ("a\x00b", "control"),
        ("two\nlines", "control"),
        ("bell\x07", "control"),
        (SJIS, "UTF-8"),
        (None, "text"),
    ],
)
def test_bad_names_say_why_in_one_short_line(name, why):
    with pytest.raises(ValueError, match=why) as e:
        character_name(name)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_a_folder_that_is_not_utf8_still_names_a_character():
    assert name_from_folder(os.fsdecode(b"\x83~\x83h\x83\x8a")) == "\\x83~\\x83h\\x83\\x8a"

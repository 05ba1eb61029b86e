"""Names as users have them: file names in any bytes, character names typed by anyone.

File names on Linux are bytes. Python hands the ones that are not UTF-8 (Shift-JIS archives, old
Windows zips) over as ``str`` with lone surrogates (``\\udc80``-``\\udcff``, "surrogateescape"),
which SQLite, JSON encoders and terminals refuse or mangle. This module is the one place that
knows how to carry such a name:

- :func:`shown` prints it the way a terminal should show it, on one line (``\\x83``, ``\\n``);
- :func:`json_line` writes a record as one line of valid UTF-8 JSON: a byte that is not UTF-8 is
  written as the JSON escape ``\\udc83`` (Python's ``json.loads`` + ``os.fsencode`` give the
  original bytes back);
- :func:`to_db` / :func:`from_db` store it in SQLite (UTF-8 names as text, others as a BLOB of
  their bytes), so a journal or gallery keeps the exact name.

Character names follow one rule everywhere (CLI, web, enrolment folders): :func:`character_name`.
"""

from __future__ import annotations

import json
import os
import re
from typing import overload

#: The longest character name accepted, in characters.
MAX_NAME_CHARS = 200

_SURROGATE = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(name: object) -> str:
    """``name`` as one printable line: undecodable bytes as ``\\xNN``, control characters escaped."""
    s = os.fspath(name) if isinstance(name, os.PathLike) else name
    if isinstance(s, bytes):
        s = s.decode("utf-8", "surrogateescape")
    s = str(s)
    s = _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", s)
    return _CONTROL.sub(_escape_control, s)


def _escape_control(m: re.Match) -> str:
    c = m.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def one_line(message: str) -> str:
    """A message that may hold names, made safe to print as exactly one line."""
    return shown(message)


def json_line(record: object, **kw) -> str:
    """``record`` as one line of valid UTF-8 JSON, whatever bytes its file names hold."""
    text = json.dumps(record, ensure_ascii=False, **kw)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def is_utf8(name: str) -> bool:
    return _SURROGATE.search(name) is None


def to_db(name: str | None) -> str | bytes | None:
    """A name as SQLite can hold it exactly: text when it is UTF-8, else a BLOB of its bytes."""
    if name is None or is_utf8(name):
        return name
    return os.fsencode(name)


@overload
def from_db(value: str | bytes) -> str: ...
@overload
def from_db(value: None) -> None: ...
def from_db(value: str | bytes | None) -> str | None:
    """The inverse of :func:`to_db`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def character_name(raw: object) -> str:
    """A character's name, checked: the same rule for the CLI, the web pages and enrolment folders.

    Leading and trailing spaces go; the rest must be 1 to 200 characters with no control
    characters. ``/`` is allowed (the web pages reach every name). Raises ValueError naming the
    problem.
    """
    if not isinstance(raw, str):
        raise ValueError(f"a character name must be text, not {type(raw).__name__}")
    name = raw.strip()
    if not name:
        raise ValueError("a character name cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(
            f"character name {shown(name[:40])}... is {len(name):,} characters; at most {MAX_NAME_CHARS} are allowed"
        )
    if not is_utf8(name):
        raise ValueError(f"character name {shown(name)!r} holds bytes that are not UTF-8")
    bad = _CONTROL.search(name)
    if bad:
        raise ValueError(
            f"character name {shown(name)!r} holds a control character ({shown(bad.group())}); names are one line of text"
        )
    return name


def name_from_folder(folder: str) -> str:
    """A character name for an enrolment folder: the folder's name, with bytes that are not UTF-8
    written as ``\\xNN`` (so a Shift-JIS folder still enrols, under a name the user can rename)."""
    return character_name(shown(folder))


def folder_name(character: str) -> str:
    """A character's name as a safe folder name (sort's folders, export's): no separators, no
    leading dot, not empty; any script kept."""
    name = re.sub(r"[/\\\x00-\x1f]", "_", character).strip().lstrip(".")
    return name[:200] or "_unnamed"

"""Safe file operations and the journal that makes ``charaid sort`` resumable and undoable.

Every action is written to the journal (SQLite, in ``DST/.charaid/journal.sqlite``) *before* it
touches a file, and marked done after. A file is never overwritten: it is first copied to a
temporary name in the destination folder, flushed to disk, its hash checked, and only then
linked under its final name (``os.link`` fails rather than replace an existing file). A move
deletes the source only after that. So a process killed at any moment leaves every file in
its source, its destination, or both, never neither, and a resume can tell which.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from charaid.errors import GalleryError
from charaid.names import from_db, one_line, to_db
from charaid.pipeline.images import sha256_file
from charaid.storage.schema import inserted_id, migrate

JOURNAL_DIR = ".charaid"
#: The folders `charaid sort` files pictures into beside the characters' own: none of them names a
#: character, so enrolling or evaluating a sorted folder skips them (charaid.jobs.enroll.labelled_images).
NO_FACE, UNKNOWN, GROUP, MAYBE = "_no_face", "_unknown", "_group", "_maybe"
SORT_FOLDERS = (NO_FACE, UNKNOWN, GROUP, MAYBE)
TMP_PREFIX = ".charaid-tmp-"


class SortError(OSError):
    """A file operation that could not be done safely (the files are left as they were)."""


class DestinationBusy(RuntimeError):
    """Another charaid sort (or undo) is working in this destination right now."""


_held: dict[str, tuple[int, int]] = {}  # lock file -> (fd, depth): one process may nest its own


@contextlib.contextmanager
def exclusive(dst: str | Path):
    """Hold ``DST/.charaid/sort.lock`` while a sort, resume or undo changes DST: a second one
    started meanwhile is refused in one line instead of racing the first. The lock is the
    kernel's (flock), so it goes with the process however that ends; no stale lock file."""
    d = Path(dst) / JOURNAL_DIR
    d.mkdir(parents=True, exist_ok=True)
    key = str((d / "sort.lock").resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DestinationBusy(
                f"{dst}: another charaid sort or undo is using this destination; run again once it has ended"
            ) from None
        _held[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            os.close(fd)  # closing releases the flock


def fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def place_copy(src: Path, dst: Path, expected_hash: str, tag: str) -> None:
    """Copy ``src`` to ``dst`` (which must not exist): temp file, fsync, verify, link."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f"{TMP_PREFIX}{tag}"
    try:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            while block := fi.read(1 << 20):
                fo.write(block)
            fo.flush()
            os.fsync(fo.fileno())
        if sha256_file(tmp) != expected_hash:
            raise SortError(errno.EIO, f"copy of {src} does not match its hash (source changed or disk error)")
        try:
            shutil.copystat(src, tmp)
        except OSError:
            pass
        try:
            os.link(tmp, dst)  # never replaces an existing file
        except FileExistsError:
            raise SortError(errno.EEXIST, f"{dst} appeared meanwhile; not overwritten") from None
        fsync_dir(dst.parent)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def place_move(src: Path, dst: Path, expected_hash: str, tag: str) -> None:
    """Move ``src`` to ``dst`` without ever having neither: on one file system a hard link then
    unlink; across file systems a verified copy, then the source is deleted."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        fsync_dir(dst.parent)
    except FileExistsError:
        raise SortError(errno.EEXIST, f"{dst} exists; not overwritten") from None
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        place_copy(src, dst, expected_hash, tag)
    os.unlink(src)
    fsync_dir(src.parent)


SCHEMA = [
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL, src TEXT NOT NULL, dst TEXT NOT NULL,
        options TEXT NOT NULL, status TEXT NOT NULL)""",
    """CREATE TABLE actions (
        id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), src TEXT NOT NULL, dst TEXT,
        hash TEXT, kind TEXT NOT NULL, folder TEXT, state TEXT NOT NULL, detail TEXT, at REAL NOT NULL)""",
    "CREATE INDEX actions_run ON actions(run_id, state)",
    """CREATE TABLE seen (
        src TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL,
        run_id INTEGER NOT NULL, outcome TEXT NOT NULL)""",
]


@dataclass(frozen=True)
class Action:
    id: int
    run_id: int
    src: str
    dst: str | None
    hash: str | None
    kind: str  # copy | move | duplicate | error | skipped
    folder: str | None
    state: str  # planned | done | undone | failed
    detail: str | None


@dataclass(frozen=True)
class Run:
    id: int
    started: float
    finished: float | None
    src: str
    dst: str
    options: dict
    status: str  # running | done | undone | undoing


class Journal:
    """The record of sort runs in one destination folder."""

    def __init__(self, dst: str | Path):
        self.dst = Path(dst)
        d = self.dst / JOURNAL_DIR
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / "journal.sqlite"
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")  # an action is on disk before its file moves
            migrate(self.db, [";\n".join(SCHEMA)], self.path, "sort journal")
        except sqlite3.Error as e:
            raise GalleryError(f"{self.path}: cannot use the sort journal ({e})") from None

    def close(self) -> None:
        self.db.close()

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, src: str, options: dict) -> int:
        cur = self.db.execute(
            "INSERT INTO runs(started, src, dst, options, status) VALUES(?,?,?,?, 'running')",
            (time.time(), to_db(src), to_db(str(self.dst)), json.dumps(options, sort_keys=True)),
        )
        return inserted_id(cur)

    def set_status(self, run_id: int, status: str) -> None:
        self.db.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, time.time(), run_id))

    def runs(self) -> list[Run]:
        rows = self.db.execute("SELECT id, started, finished, src, dst, options, status FROM runs ORDER BY id").fetchall()
        return [Run(r[0], r[1], r[2], from_db(r[3]), from_db(r[4]), json.loads(r[5]), r[6]) for r in rows]

    def run(self, run_id: int) -> Run:
        for r in self.runs():
            if r.id == run_id:
                return r
        raise KeyError(f"no sort run {run_id} in {self.path} (runs: {', '.join(str(r.id) for r in self.runs()) or 'none'})")

    def last_unfinished(self) -> Run | None:
        open_runs = [r for r in self.runs() if r.status in ("running", "undoing")]
        return open_runs[-1] if open_runs else None

    # -- actions ----------------------------------------------------------------------------
    def plan(
        self, run_id: int, src: str, dst: str | None, h: str | None, kind: str, folder: str | None, detail: str | None = None
    ) -> int:
        state = "done" if kind in ("duplicate", "error", "skipped") else "planned"
        cur = self.db.execute(
            "INSERT INTO actions(run_id, src, dst, hash, kind, folder, state, detail, at) VALUES(?,?,?,?,?,?,?,?,?)",
            (run_id, to_db(src), to_db(dst), h, kind, folder, state, detail and one_line(detail), time.time()),
        )
        return inserted_id(cur)

    def mark(self, action_id: int, state: str, detail: str | None = None) -> None:
        self.db.execute(
            "UPDATE actions SET state = ?, detail = coalesce(?, detail), at = ? WHERE id = ?",
            (state, detail and one_line(detail), time.time(), action_id),
        )

    def actions(self, run_id: int, states: tuple[str, ...] | None = None) -> list[Action]:
        q = "SELECT id, run_id, src, dst, hash, kind, folder, state, detail FROM actions WHERE run_id = ?"
        args: list = [run_id]
        if states:
            q += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return [
            Action(i, r, from_db(s), from_db(d), *rest)
            for i, r, s, d, *rest in self.db.execute(q + " ORDER BY id", args).fetchall()
        ]

    # -- incremental cache ------------------------------------------------------------------
    def seen_unchanged(self, src: str, size: int, mtime_ns: int) -> bool:
        row = self.db.execute("SELECT size, mtime_ns FROM seen WHERE src = ?", (to_db(src),)).fetchone()
        return row is not None and row[0] == size and row[1] == mtime_ns

    def seen_hash(self, h: str) -> bool:
        return self.db.execute("SELECT 1 FROM seen WHERE hash = ? LIMIT 1", (h,)).fetchone() is not None

    def remember(self, src: str, size: int, mtime_ns: int, h: str, run_id: int, outcome: str) -> None:
        self.db.execute(
            "INSERT INTO seen(src, size, mtime_ns, hash, run_id, outcome) VALUES(?,?,?,?,?,?) "
            "ON CONFLICT(src) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, hash=excluded.hash, "
            "run_id=excluded.run_id, outcome=excluded.outcome",
            (to_db(src), size, mtime_ns, h, run_id, outcome),
        )

    def forget_run(self, run_id: int) -> None:
        self.db.execute("DELETE FROM seen WHERE run_id = ?", (run_id,))

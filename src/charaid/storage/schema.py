"""Schema migrations and transactions shared by charaid's SQLite files (gallery, face store, sort journal).

Each file records its schema version in SQLite's ``user_version``; each migration moves it one
step, in its own transaction, so a file is never left half-migrated. A file of a newer charaid
is refused rather than misread, and so is an SQLite file that is not charaid's.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from charaid.errors import GalleryError

#: Any error of the database files (a locked, corrupt or read-only gallery): the CLI names it.
DatabaseError = sqlite3.Error

# Each entry moves the schema from version i to i + 1; append, never edit.
GALLERY_MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE characters (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE samples (
        id INTEGER PRIMARY KEY,
        character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
        source_path TEXT,
        content_hash TEXT NOT NULL,
        box TEXT NOT NULL,
        crop BLOB,
        created_at REAL NOT NULL,
        UNIQUE (content_hash, box)
    );
    CREATE INDEX samples_character ON samples(character_id);
    CREATE TABLE embeddings (
        sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (sample_id, model_id)
    );
    """,
    # 2: the labelling assistant's queue (charaid serve, /label)
    """
    CREATE TABLE label_faces (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        box TEXT NOT NULL,
        crop BLOB NOT NULL,
        detector_score REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        character TEXT,
        sample_id INTEGER,
        model_id TEXT,
        vector BLOB,
        added_at REAL NOT NULL,
        UNIQUE (content_hash, box)
    );
    CREATE INDEX label_faces_status ON label_faces(status);
    CREATE TABLE label_rejections (
        face_id INTEGER NOT NULL REFERENCES label_faces(id) ON DELETE CASCADE,
        character TEXT NOT NULL,
        PRIMARY KEY (face_id, character)
    );
    CREATE TABLE label_actions (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, at REAL NOT NULL);
    """,
    # 3: whole enrolled pictures (charaid.recognition.picture), the fallback when no face is named
    """
    CREATE TABLE pictures (
        id INTEGER PRIMARY KEY,
        character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
        content_hash TEXT NOT NULL,
        source_path TEXT,
        model_id TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (content_hash, model_id)
    );
    CREATE INDEX pictures_character ON pictures(character_id);
    """,
    # 4: the detector that cut the gallery's faces (Gallery.detector): a gallery that already
    # holds faces was cut by animeface-2009, charaid's only detector until then
    """
    INSERT OR IGNORE INTO meta(key, value) SELECT 'detector', 'animeface' WHERE EXISTS (SELECT 1 FROM samples)
    """,
    # 5: facedet got versions ("facedet@N"); a gallery cut by plain "facedet" before was cut
    # by version 1, and keeps it
    """
    UPDATE meta SET value = 'facedet@1' WHERE key = 'detector' AND value = 'facedet'
    """,
    # 6: the files enrol has read (storage.files): an unchanged file is skipped by its size and
    # modification time before it is hashed or decoded, its outcome (a face, none) remembered
    """
    CREATE TABLE IF NOT EXISTS enrol_files (
        path BLOB NOT NULL, character TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        content_hash TEXT NOT NULL, outcome TEXT NOT NULL, detector TEXT, at REAL NOT NULL,
        PRIMARY KEY (path, character)
    );
    """,
]
SCHEMA_VERSION = len(GALLERY_MIGRATIONS)


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The row id an INSERT just made (sqlite3 types it as optional; after an INSERT it is set)."""
    rowid = cursor.lastrowid
    if rowid is None:
        raise RuntimeError("no row was inserted")
    return rowid


def migrate(db: sqlite3.Connection, migrations: Sequence[str], path: Path, kind: str) -> None:
    """Bring ``db`` (the file at ``path``, a charaid ``kind``) up to ``len(migrations)``.

    Each step reads the version again inside its own write transaction, so two processes that
    open a new file at once (two sorts into one new DST) cannot both create its tables."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise GalleryError(f"{path}: made by a newer charaid (schema {version}, this one reads up to {len(migrations)})")
    if version == len(migrations):
        return  # up to date: nothing to write (the file may be read-only)
    while True:
        with transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(migrations):
                raise GalleryError(f"{path}: made by a newer charaid (schema {version}, this one reads up to {len(migrations)})")
            if version == len(migrations):
                return
            if version == 0 and db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]:
                raise GalleryError(f"{path}: an SQLite file, but not a charaid {kind}")
            for stmt in split_sql(migrations[version]):
                db.execute(stmt)
            db.execute(f"PRAGMA user_version = {version + 1}")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with transaction(db):`` all or nothing, even if the process is killed (the connection
    must be in autocommit mode, ``isolation_level=None``, as all of charaid's are)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def split_sql(script: str) -> Iterator[str]:
    """The statements of a migration script (none of charaid's contain a ';' in a literal)."""
    for stmt in script.split(";"):
        if stmt.strip():
            yield stmt

"""The files ``enroll`` has read (the gallery's ``enrol_files`` table), so that enrolling an
unchanged folder again costs a ``stat`` per file: no hashing, no decoding, no warning repeated.

A file is skipped when its size and modification time are those recorded for the same
character and, for a face it gave, that face is still in the gallery; a file that gave no face
is looked at again only when it changes or the gallery's detector does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from charaid.names import to_db
from charaid.storage.gallery import Gallery

#: What reading a file gave: a face enrolled (or already there), or no face.
OUTCOMES = ("face", "no_face")


@dataclass(frozen=True)
class SeenFile:
    path: str
    character: str
    size: int
    mtime_ns: int
    content_hash: str
    outcome: str
    detector: str | None = None


class EnrolFiles:
    def __init__(self, gallery: Gallery):
        self.g = gallery
        self.db = gallery._db

    def unchanged(self, path: str, character: str, size: int, mtime_ns: int, detector: str | None) -> SeenFile | None:
        """The record of ``path`` for ``character`` if the file has not changed since and what it
        gave still holds (its face still enrolled; no face: the same detector); else None."""
        row = self.db.execute(
            "SELECT size, mtime_ns, content_hash, outcome, detector FROM enrol_files WHERE path = ? AND character = ?",
            (to_db(path), character),
        ).fetchone()
        if row is None or row[0] != size or row[1] != mtime_ns:
            return None
        seen = SeenFile(path, character, size, mtime_ns, row[2], row[3], row[4])
        if seen.outcome == "face" and character not in {c for c, _ in self.g.content_faces(seen.content_hash)}:
            return None  # removed from the gallery since: enrol it again
        if seen.outcome == "no_face" and seen.detector != detector:
            return None  # another detector may find its face
        return seen

    def record(self, files: Iterable[SeenFile]) -> None:
        rows: Sequence[SeenFile] = list(files)
        if not rows:
            return
        bad = [f.outcome for f in rows if f.outcome not in OUTCOMES]
        if bad:
            raise ValueError(f"unknown enrol outcome {bad[0]!r}; choose one of: {', '.join(OUTCOMES)}")
        now = time.time()
        with self.g.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO enrol_files(path, character, size, mtime_ns, content_hash, outcome, detector, at) "
                "VALUES(?,?,?,?,?,?,?,?)",
                [(to_db(f.path), f.character, f.size, f.mtime_ns, f.content_hash, f.outcome, f.detector, now) for f in rows],
            )

"""The face store: every face of a big folder, embedded once, for search by image.

``charaid index PATH...`` fills it and ``charaid search IMAGE`` queries it. One SQLite file
(default: ``faces.sqlite`` in the user's data folder, or ``$CHARAID_STORE``) holds each image
seen (path, size, modification time, error) and each face (box, detector score, vector with
its model id and dimension); the nearest-neighbour index lives beside it in ``<store>.index/``
and is brought up to date (only what changed) before each search.

Indexing resumes: an image already stored with the same size and modification time is not
looked at again, and results are committed every ``commit_every`` images, so a killed run
loses at most that many. A changed image is indexed again and its old faces leave the index.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charaid.errors import EmbeddingSpaceError, GalleryError
from charaid.models.detectors import Box
from charaid.names import from_db, one_line, to_db
from charaid.storage.gallery import rows_for_ids
from charaid.storage.index import SyncedIndex
from charaid.storage.schema import migrate, transaction

MIGRATIONS = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE images (
        id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime REAL,
        width INTEGER, height INTEGER, error TEXT, indexed_at REAL NOT NULL
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL, score REAL NOT NULL,
        model_id TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL
    );
    CREATE INDEX faces_image ON faces(image_id);
    """,
]


@dataclass
class IndexedImage:
    """One image's result of the per-image work (the same for every engine)."""

    path: str
    size: int | None = None
    mtime: float | None = None
    image_size: tuple[int, int] | None = None
    boxes: list[Box] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    vectors: np.ndarray | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "faces": [{"box": b.as_list(), "score": round(float(s), 4)} for b, s in zip(self.boxes, self.scores)],
            "error": self.error,
        }


@dataclass(frozen=True)
class Hit:
    """An indexed face similar to a query face."""

    path: str
    box: Box
    similarity: float

    def to_dict(self) -> dict:
        return {"path": self.path, "box": self.box.as_list(), "similarity": round(float(self.similarity), 4)}


def file_stamp(path: str | Path) -> tuple[int, float] | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime


class FaceStore:
    """Faces of many images in one SQLite file, all from one embedding model."""

    def __init__(self, path: str | Path, model_id: str, dim: int, exact_limit: int | None = None):
        from charaid.config import default_settings

        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder, not a face store file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.model_id, self.dim = model_id, dim
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
            stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise GalleryError(f"{self.path}: not a charaid face store ({e})") from None
        if not stored:
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", [("model_id", model_id), ("dim", str(dim))])
        elif stored.get("model_id") != model_id or int(stored.get("dim", 0)) != dim:
            raise EmbeddingSpaceError(
                f"{self.path}: holds faces embedded by {stored.get('model_id')!r} (dim {stored.get('dim')}); "
                f"refusing {model_id!r} (dim {dim}): index into another store"
            )
        limit = exact_limit if exact_limit is not None else default_settings().exact_search_limit
        self._index = SyncedIndex(self.path.with_name(self.path.name + ".index"), model_id, exact_limit=limit)
        self._current = None  # the synced index, until the next write

    def _migrate(self) -> None:
        migrate(self._db, MIGRATIONS, self.path, "face store")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FaceStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def is_current(self, path: str) -> bool:
        """True when ``path`` was indexed and has not changed since (same size and mtime)."""
        row = self._db.execute("SELECT size, mtime FROM images WHERE path = ?", (to_db(path),)).fetchone()
        return row is not None and tuple(row) == file_stamp(path)

    def write(self, batch: Sequence[IndexedImage]) -> None:
        """Store a batch in one transaction (replacing earlier results for the same paths)."""
        now = time.time()
        self._current = None
        with transaction(self._db):
            for r in batch:
                self._db.execute("DELETE FROM images WHERE path = ?", (to_db(r.path),))
                w, h = r.image_size or (None, None)
                cur = self._db.execute(
                    "INSERT INTO images(path, size, mtime, width, height, error, indexed_at) VALUES (?,?,?,?,?,?,?)",
                    (to_db(r.path), r.size, r.mtime, w, h, r.error and one_line(r.error), now),
                )
                if r.vectors is not None and len(r.boxes):
                    if r.vectors.shape != (len(r.boxes), self.dim):
                        raise EmbeddingSpaceError(f"{r.path}: vectors of shape {r.vectors.shape} for a store of dim {self.dim}")
                    self._db.executemany(
                        "INSERT INTO faces(image_id, x, y, w, h, score, model_id, dim, vector) VALUES (?,?,?,?,?,?,?,?,?)",
                        [
                            (cur.lastrowid, *b.as_list(), float(s), self.model_id, self.dim, np.asarray(v, np.float32).tobytes())
                            for b, s, v in zip(r.boxes, r.scores, r.vectors)
                        ],
                    )

    # -- reading ----------------------------------------------------------------------------
    def counts(self) -> dict:
        q = lambda sql: self._db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "images": q("SELECT count(*) FROM images"),
            "failed": q("SELECT count(*) FROM images WHERE error IS NOT NULL"),
            "faces": q("SELECT count(*) FROM faces"),
        }

    def face_ids(self) -> np.ndarray:
        return np.array([r[0] for r in self._db.execute("SELECT id FROM faces ORDER BY id")], np.int64)

    def vectors_for(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        out = {
            fid: np.frombuffer(blob, np.float32, count=self.dim)
            for fid, blob in rows_for_ids(self._db, "SELECT id, vector FROM faces WHERE id IN ({})", ids)
        }
        return np.stack([out[i] for i in ids]) if ids else np.zeros((0, self.dim), np.float32)

    def faces_info(self, ids: Sequence[int]) -> dict[int, tuple[str, Box]]:
        q = "SELECT f.id, i.path, f.x, f.y, f.w, f.h FROM faces f JOIN images i ON i.id = f.image_id WHERE f.id IN ({})"
        return {fid: (from_db(path), Box(x, y, w, h)) for fid, path, x, y, w, h in rows_for_ids(self._db, q, ids)}

    def sync_index(self):
        """Bring the ANN index up to date with the stored faces (only what changed) and return it."""
        if self._current is None:
            self._current = self._index.sync(self.face_ids(), self.vectors_for, self.dim)
        return self._current

    def search(self, Q: np.ndarray, k: int = 10, per_image: bool = True) -> list[list[Hit]]:
        """For each query vector, the ``k`` most similar faces (one per image when ``per_image``)."""
        ix = self.sync_index()
        Q = np.atleast_2d(np.asarray(Q, np.float32))
        ids, sims = ix.search(Q, k * 4 if per_image else k)
        info = self.faces_info(ids[ids >= 0])
        out = []
        for row_i, row_s in zip(ids, sims):
            hits, seen = [], set()
            for i, s in zip(row_i, row_s):
                if i < 0 or int(i) not in info:
                    continue
                path, box = info[int(i)]
                if per_image and path in seen:
                    continue
                seen.add(path)
                hits.append(Hit(path, box, float(s)))
                if len(hits) == k:
                    break
            out.append(hits)
        return out


def pending_paths(store: FaceStore, paths: Iterable[str], rescan: bool = False) -> Iterator[str]:
    """The paths that still need indexing (all of them with ``rescan``)."""
    for p in paths:
        if rescan or not store.is_current(str(p)):
            yield str(p)

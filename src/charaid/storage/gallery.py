"""The gallery: one SQLite file of characters, their face samples and the samples' vectors.

Each vector is stored with the id and dimension of the model that made it, and the gallery has
one active model: adding vectors of another model is refused (:class:`EmbeddingSpaceError`), so
two spaces are never compared. Each sample keeps a small JPEG of its face crop, so the gallery
can be re-embedded (after ``charaid train``) and shown without the original files.

Every batch is one transaction: a process killed mid-enrol leaves the gallery as it was before
the batch. Re-enrolling the same face (same file content, same box) is a no-op.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.errors import EmbeddingSpaceError, GalleryError, UnknownCharacterError
from charaid.names import character_name, from_db, shown, to_db
from charaid.storage.journal import SORT_FOLDERS
from charaid.storage.schema import GALLERY_MIGRATIONS, inserted_id, migrate, transaction


@dataclass(frozen=True)
class NewSample:
    """A face to enrol: whose it is, where it came from, and its vector."""

    character: str
    content_hash: str
    vector: np.ndarray
    source_path: str | None = None
    #: The face's box in the source image; None when the whole image is the face.
    box: tuple[int, int, int, int] | None = None
    crop: Image.Image | None = None


@dataclass
class EnrollReport:
    added: int = 0
    #: Faces already in the gallery under the same character.
    duplicates: int = 0
    #: Faces already in the gallery under another character: (source, existing character).
    conflicts: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class CharacterInfo:
    name: str
    samples: int


@dataclass(frozen=True)
class SampleInfo:
    id: int
    character: str
    source_path: str | None
    box: tuple[int, int, int, int] | None
    content_hash: str


def _box_key(box: tuple[int, int, int, int] | None) -> str:
    return "" if box is None else ",".join(str(int(v)) for v in box)


def _parse_box(key: str) -> tuple[int, int, int, int] | None:
    if not key:
        return None
    x, y, w, h = (int(v) for v in key.split(","))
    return (x, y, w, h)


def decode_crop(data: bytes) -> Image.Image:
    """A stored crop as an RGB image."""
    return Image.open(io.BytesIO(data)).convert("RGB")


def encode_crop(im: Image.Image, side: int) -> bytes:
    im = im.convert("RGB")
    if max(im.size) > side:
        im = im.copy()
        im.thumbnail((side, side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def check_character_name(name: str) -> None:
    """Refuse a name no character may have: empty, padded with spaces, or one of the folders
    `charaid sort` files pictures into (its ``_unknown`` folder must never mean a character)."""
    if not isinstance(name, str) or name != name.strip():
        raise ValueError(f"bad character name {shown(str(name))!r}: padded with spaces")
    character_name(name)  # the one rule: 1-200 characters, no control characters
    if name in SORT_FOLDERS:
        raise ValueError(f"bad character name {name!r}: reserved for charaid sort's folders ({', '.join(SORT_FOLDERS)})")


class Gallery:
    """A character gallery stored in one SQLite file; create it by opening a new path."""

    def __init__(self, path: str | Path, crop_side: int = 256):
        self.path = Path(path).expanduser()
        self.crop_side = crop_side
        self.lock = threading.RLock()
        if self.path.exists() and self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder, not a gallery file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection may serve several threads of a web server; Gallery.lock serialises them.
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise GalleryError(f"{self.path}: not a charaid gallery ({e})") from None

    # -- life cycle -------------------------------------------------------------------------
    def _migrate(self) -> None:
        migrate(self._db, GALLERY_MIGRATIONS, self.path, "gallery")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The raw connection, for modules that keep their own tables in the gallery (labelling)."""
        return self._db

    def transaction(self):
        """``with gallery.transaction():`` — all or nothing, even if the process is killed."""
        return transaction(self._db)

    # -- meta -------------------------------------------------------------------------------
    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
        )

    def _bump(self) -> None:
        self._set_meta("revision", str(self.revision + 1))

    def mark_changed(self) -> None:
        """Bump the revision (inside a transaction), for modules that keep their own tables here."""
        self._bump()

    @property
    def revision(self) -> int:
        """Goes up by one with every change, so cached classifiers and thresholds know they are stale."""
        return int(self._get_meta("revision") or 0)

    @property
    def model_id(self) -> str | None:
        """The model whose vectors this gallery holds and compares (None while empty)."""
        return self._get_meta("model_id")

    @property
    def detector(self) -> str | None:
        """The detector that cut this gallery's faces, so recognition crops the way enrolment
        did: recorded at the first enrolment with detection (galleries that held faces before it
        was recorded were given animeface-2009 by migration 4); None until then."""
        return self._get_meta("detector")

    def set_detector(self, name: str) -> None:
        with self.transaction():
            self._set_meta("detector", name)
            self._bump()

    @property
    def dim(self) -> int | None:
        v = self._get_meta("dim")
        return int(v) if v else None

    def get_json(self, key: str) -> dict | None:
        raw = self._get_meta("json:" + key)
        return json.loads(raw) if raw else None

    def keep_json(self, key: str, value: dict | None) -> bool:
        """:meth:`set_json`, except that a read-only gallery keeps nothing and says so (False):
        what is derived from the gallery (calibrations, decision models) is then recomputed in memory."""
        try:
            self.set_json(key, value)
        except sqlite3.OperationalError:
            return False
        return True

    def model_counts(self) -> list[tuple[str, int]]:
        """(model id, samples with its vector) for every model that has embedded this gallery."""
        return [
            tuple(r) for r in self._db.execute("SELECT model_id, count(*) FROM embeddings GROUP BY model_id ORDER BY model_id")
        ]

    def set_json(self, key: str, value: dict | None) -> None:
        with self.transaction():
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", ("json:" + key,))
            else:
                self._set_meta("json:" + key, json.dumps(value, sort_keys=True))

    # -- reading ----------------------------------------------------------------------------
    def characters(self) -> list[CharacterInfo]:
        rows = self._db.execute(
            "SELECT c.name, count(s.id) FROM characters c LEFT JOIN samples s ON s.character_id = c.id "
            "GROUP BY c.id ORDER BY c.name"
        ).fetchall()
        return [CharacterInfo(n, k) for n, k in rows]

    def names(self) -> list[str]:
        return [c.name for c in self.characters()]

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM samples").fetchone()[0]

    def samples(self, character: str | None = None) -> list[SampleInfo]:
        q = "SELECT s.id, c.name, s.source_path, s.box, s.content_hash FROM samples s JOIN characters c ON c.id = s.character_id"
        args: tuple = ()
        if character is not None:
            self._character_id(character)
            q += " WHERE c.name = ?"
            args = (character,)
        rows = self._db.execute(q + " ORDER BY s.id", args).fetchall()
        return [SampleInfo(i, n, from_db(p), _parse_box(b), h) for i, n, p, b, h in rows]

    def content_faces(self, content_hash: str) -> list[tuple[str, tuple[int, int, int, int] | None]]:
        """(character, box) of every face already enrolled from this file content."""
        rows = self._db.execute(
            "SELECT c.name, s.box FROM samples s JOIN characters c ON c.id = s.character_id WHERE s.content_hash = ? ORDER BY s.id",
            (content_hash,),
        ).fetchall()
        return [(n, _parse_box(b)) for n, b in rows]

    def crop(self, sample_id: int) -> Image.Image:
        return decode_crop(self.crop_bytes(sample_id))

    def crop_bytes(self, sample_id: int) -> bytes:
        """The stored crop of a sample, as its JPEG bytes."""
        row = self._db.execute("SELECT crop FROM samples WHERE id = ?", (sample_id,)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"sample {sample_id} has no stored crop")
        return row[0]

    def vectors(self, model_id: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, vectors, sample ids) of every sample embedded by ``model_id`` (default: active)."""
        mid = model_id or self.model_id
        if mid is None:
            return np.array([], dtype=object), np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        rows = self._db.execute(
            "SELECT c.name, e.vector, e.dim, s.id FROM embeddings e JOIN samples s ON s.id = e.sample_id "
            "JOIN characters c ON c.id = s.character_id WHERE e.model_id = ? ORDER BY s.id",
            (mid,),
        ).fetchall()
        if not rows:
            return np.array([], dtype=object), np.zeros((0, self.dim or 0), np.float32), np.zeros(0, np.int64)
        labels = np.array([r[0] for r in rows], dtype=object)
        X = np.stack([np.frombuffer(r[1], dtype=np.float32, count=r[2]) for r in rows])
        return labels, X, np.array([r[3] for r in rows], dtype=np.int64)

    def labels_ids(self, model_id: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, sample ids) of every sample embedded by ``model_id``, without the vectors."""
        rows = self._db.execute(
            "SELECT c.name, s.id FROM embeddings e JOIN samples s ON s.id = e.sample_id "
            "JOIN characters c ON c.id = s.character_id WHERE e.model_id = ? ORDER BY s.id",
            (model_id or self.model_id,),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int64)

    def vectors_for(self, ids: Sequence[int], model_id: str | None = None) -> np.ndarray:
        """The vectors of samples ``ids`` (in that order) from ``model_id`` (default: active)."""
        mid, ids = model_id or self.model_id, [int(i) for i in ids]
        q = "SELECT sample_id, vector, dim FROM embeddings WHERE model_id = ? AND sample_id IN ({})"
        out = {sid: np.frombuffer(blob, dtype=np.float32, count=dim) for sid, blob, dim in rows_for_ids(self._db, q, ids, (mid,))}
        missing = [i for i in ids if i not in out]
        if missing:
            raise KeyError(f"samples without a vector of {mid!r}: {missing[:5]}")
        return np.stack([out[i] for i in ids]) if ids else np.zeros((0, self.dim or 0), np.float32)

    def missing_vectors(self, model_id: str) -> list[int]:
        """Samples with no vector from ``model_id`` (to re-embed after a model change)."""
        rows = self._db.execute(
            "SELECT s.id FROM samples s WHERE NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.sample_id = s.id AND e.model_id = ?) ORDER BY s.id",
            (model_id,),
        ).fetchall()
        return [r[0] for r in rows]

    # -- writing ----------------------------------------------------------------------------
    def check_space(self, model_id: str, dim: int) -> None:
        """Raise EmbeddingSpaceError unless vectors of (model_id, dim) may be stored here."""
        if self.model_id is None or len(self) == 0:
            return
        if self.model_id != model_id or self.dim != dim:
            raise EmbeddingSpaceError(
                f"{self.path}: holds vectors of model {self.model_id!r} (dim {self.dim}); "
                f"refusing vectors of {model_id!r} (dim {dim})"
            )

    def add(self, samples: Sequence[NewSample], model_id: str, dim: int) -> EnrollReport:
        """Enrol a batch in one transaction; faces already present are skipped, not duplicated."""
        report = EnrollReport()
        if not samples:
            return report
        for s in samples:
            if s.vector.shape != (dim,):
                raise EmbeddingSpaceError(f"vector of shape {s.vector.shape} for a model of dim {dim}")
            check_character_name(s.character)
        with self.transaction():
            self.check_space(model_id, dim)
            if self.model_id is None or len(self) == 0:
                self._set_meta("model_id", model_id)
                self._set_meta("dim", str(dim))
            now = time.time()
            for s in samples:
                key = _box_key(s.box)
                row = self._db.execute(
                    "SELECT c.name FROM samples x JOIN characters c ON c.id = x.character_id "
                    "WHERE x.content_hash = ? AND x.box = ?",
                    (s.content_hash, key),
                ).fetchone()
                if row is not None:
                    if row[0] == s.character:
                        report.duplicates += 1
                    else:
                        report.conflicts.append((s.source_path or s.content_hash, row[0]))
                    continue
                cid = self._ensure_character(s.character, now)
                crop = encode_crop(s.crop, self.crop_side) if s.crop is not None else None
                cur = self._db.execute(
                    "INSERT INTO samples(character_id, source_path, content_hash, box, crop, created_at) VALUES(?,?,?,?,?,?)",
                    (cid, to_db(s.source_path), s.content_hash, key, crop, now),
                )
                self._db.execute(
                    "INSERT INTO embeddings(sample_id, model_id, dim, vector) VALUES(?,?,?,?)",
                    (cur.lastrowid, model_id, dim, np.asarray(s.vector, np.float32).tobytes()),
                )
                report.added += 1
            if report.added:
                self._bump()
        return report

    def set_vectors(self, model_id: str, dim: int, rows: Iterable[tuple[int, np.ndarray]]) -> int:
        """Store vectors of another model for existing samples (re-embedding); one transaction."""
        n = 0
        with self.transaction():
            for sid, v in rows:
                if v.shape != (dim,):
                    raise EmbeddingSpaceError(f"vector of shape {v.shape} for a model of dim {dim}")
                self._db.execute(
                    "INSERT OR REPLACE INTO embeddings(sample_id, model_id, dim, vector) VALUES(?,?,?,?)",
                    (sid, model_id, dim, np.asarray(v, np.float32).tobytes()),
                )
                n += 1
            self._bump()
        return n

    def recut_faces(
        self, rows: Iterable[tuple[int, tuple[int, int, int, int], Image.Image, np.ndarray]], model_id: str, dim: int
    ) -> int:
        """Give samples a new box and crop (a face cut again by another detector) with its vector
        in ``model_id``; their vectors of other models, made from the old crop, go. One transaction."""
        n = 0
        with self.transaction():
            for sid, box, crop, v in rows:
                if v.shape != (dim,):
                    raise EmbeddingSpaceError(f"vector of shape {v.shape} for a model of dim {dim}")
                self._db.execute(
                    "UPDATE samples SET box = ?, crop = ? WHERE id = ?", (_box_key(box), encode_crop(crop, self.crop_side), sid)
                )
                self._db.execute("DELETE FROM embeddings WHERE sample_id = ?", (sid,))
                self._db.execute(
                    "INSERT INTO embeddings(sample_id, model_id, dim, vector) VALUES(?,?,?,?)",
                    (sid, model_id, dim, np.asarray(v, np.float32).tobytes()),
                )
                n += 1
            self._bump()
        return n

    def activate_model(self, model_id: str, dim: int) -> None:
        """Make ``model_id`` the space this gallery compares in; every sample must have its vector."""
        with self.transaction():
            missing = self._db.execute(
                "SELECT count(*) FROM samples s WHERE NOT EXISTS "
                "(SELECT 1 FROM embeddings e WHERE e.sample_id = s.id AND e.model_id = ?)",
                (model_id,),
            ).fetchone()[0]
            if missing:
                raise EmbeddingSpaceError(f"{missing} samples have no vector of model {model_id!r}; embed them first")
            self._set_meta("model_id", model_id)
            self._set_meta("dim", str(dim))
            self._bump()

    def remove_character(self, name: str) -> int:
        """Delete a character and all its samples; returns how many samples went."""
        with self.transaction():
            cid = self._character_id(name)
            n = self._db.execute("SELECT count(*) FROM samples WHERE character_id = ?", (cid,)).fetchone()[0]
            self._db.execute("DELETE FROM characters WHERE id = ?", (cid,))
            self._bump()
        return n

    def rename_character(self, old: str, new: str, merge: bool = False) -> None:
        """Rename ``old`` to ``new``; if ``new`` exists, its samples are merged only with ``merge``."""
        new = character_name(new)
        check_character_name(new)
        with self.transaction():
            cid = self._character_id(old)
            row = self._db.execute("SELECT id FROM characters WHERE name = ?", (new,)).fetchone()
            if row is not None and row[0] != cid:
                if not merge:
                    raise ValueError(f"a character named {new!r} exists already; merge them instead")
                self._db.execute("UPDATE samples SET character_id = ? WHERE character_id = ?", (row[0], cid))
                self._db.execute("UPDATE OR IGNORE pictures SET character_id = ? WHERE character_id = ?", (row[0], cid))
                self._db.execute("DELETE FROM characters WHERE id = ?", (cid,))
            else:
                self._db.execute("UPDATE characters SET name = ? WHERE id = ?", (new, cid))
            self._bump()

    def remove_sample(self, sample_id: int) -> None:
        with self.transaction():
            cur = self._db.execute("DELETE FROM samples WHERE id = ?", (sample_id,))
            if cur.rowcount == 0:
                raise KeyError(f"no sample with id {sample_id}")
            self._db.execute(
                "DELETE FROM characters WHERE id NOT IN "
                "(SELECT character_id FROM samples UNION SELECT character_id FROM pictures)"
            )
            self._bump()

    def character_id(self, name: str, create: bool = False) -> int:
        """The row id of character ``name`` (created if missing with ``create``, else an error)."""
        return self._ensure_character(name, time.time()) if create else self._character_id(name)

    def _character_id(self, name: str) -> int:
        row = self._db.execute("SELECT id FROM characters WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownCharacterError(name, self.names())
        return row[0]

    def _ensure_character(self, name: str, now: float) -> int:
        row = self._db.execute("SELECT id FROM characters WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        check_character_name(name)
        return inserted_id(self._db.execute("INSERT INTO characters(name, created_at) VALUES(?, ?)", (name, now)))


def rows_for_ids(db: sqlite3.Connection, query: str, ids: Sequence[int], args: tuple = ()) -> Iterator[tuple]:
    """Rows of ``query`` (whose ``{}`` becomes the ``IN`` list) for any number of ids, in chunks
    that stay under SQLite's limit on bound parameters."""
    ids = [int(i) for i in ids]
    for i in range(0, len(ids), 900):
        part = ids[i : i + 900]
        yield from db.execute(query.format(",".join("?" * len(part))), (*args, *part))

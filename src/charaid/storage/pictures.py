"""The enrolled whole pictures in the gallery file (the ``pictures`` table): the fallback of
charaid.recognition.picture for pictures whose faces are not found or not known."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from charaid.names import to_db
from charaid.storage.gallery import Gallery, check_character_name


@dataclass(frozen=True)
class NewPicture:
    character: str
    content_hash: str
    vector: np.ndarray
    source_path: str | None = None


def add_pictures(gallery: Gallery, pictures: Sequence[NewPicture], model_id: str, dim: int) -> int:
    """Store enrolled pictures' vectors in one transaction; a picture already there is skipped."""
    added, now = 0, time.time()
    with gallery.transaction():
        for p in pictures:
            check_character_name(p.character)
            if p.vector.shape != (dim,):
                raise ValueError(f"picture vector of shape {p.vector.shape} for a model of dim {dim}")
            cid = gallery.character_id(p.character, create=True)
            cur = gallery._db.execute(
                "INSERT OR IGNORE INTO pictures(character_id, content_hash, source_path, model_id, dim, vector, created_at) "
                "VALUES(?,?,?,?,?,?,?)",
                (cid, p.content_hash, to_db(p.source_path), model_id, dim, np.asarray(p.vector, np.float32).tobytes(), now),
            )
            added += cur.rowcount
        if added:
            gallery.mark_changed()
    return added


def has_picture(gallery: Gallery, content_hash: str) -> bool:
    return gallery._db.execute("SELECT 1 FROM pictures WHERE content_hash = ? LIMIT 1", (content_hash,)).fetchone() is not None


def picture_vectors(gallery: Gallery, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, vectors) of every enrolled picture embedded by ``model_id``."""
    rows = gallery._db.execute(
        "SELECT c.name, p.vector, p.dim FROM pictures p JOIN characters c ON c.id = p.character_id "
        "WHERE p.model_id = ? ORDER BY p.id",
        (model_id,),
    ).fetchall()
    if not rows:
        return np.array([], dtype=object), np.zeros((0, 0), np.float32)
    return np.array([r[0] for r in rows], dtype=object), np.stack([np.frombuffer(r[1], np.float32, count=r[2]) for r in rows])

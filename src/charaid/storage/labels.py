"""The labelling queue's tables in the gallery file (``label_faces``, ``label_rejections``,
``label_actions``): every SQL statement of ``/label`` lives here; the decisions about what to
show and what an action means live in charaid.jobs.labelling.

Callers hold ``gallery.lock`` (one connection serves the web server's threads); each method
that writes is one transaction, unless the caller opened one around several.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from charaid.storage.gallery import Gallery, encode_crop


@dataclass(frozen=True)
class QueuedFace:
    """One queued face as stored."""

    id: int
    source: str
    content_hash: str
    box: str  # "x,y,w,h"
    crop: bytes
    status: str


class LabelStore:
    def __init__(self, gallery: Gallery):
        self.g = gallery
        self.db = gallery._db

    def transaction(self):
        return self.g.transaction()

    # -- faces ------------------------------------------------------------------------------------
    def has_content(self, content_hash: str) -> bool:
        return self.db.execute("SELECT 1 FROM label_faces WHERE content_hash = ? LIMIT 1", (content_hash,)).fetchone() is not None

    def add_faces(
        self,
        source: str,
        content_hash: str,
        faces: Sequence[tuple[list[int], Image.Image, float, np.ndarray]],
        model_id: str,
    ) -> None:
        """Queue the faces of one picture: (box, crop, detector score, vector) each."""
        now = time.time()
        with self.transaction():
            for box, crop, score, v in faces:
                self.db.execute(
                    "INSERT OR IGNORE INTO label_faces(source, content_hash, box, crop, detector_score, model_id, vector, added_at) "
                    "VALUES(?,?,?,?,?,?,?,?)",
                    (
                        source,
                        content_hash,
                        ",".join(map(str, box)),
                        encode_crop(crop, self.g.crop_side),
                        float(score),
                        model_id,
                        np.asarray(v, np.float32).tobytes(),
                        now,
                    ),
                )

    def stored_vectors(self, ids: Sequence[int]) -> dict[int, tuple[str, np.ndarray, bytes]]:
        """id -> (model id, vector, crop bytes) of queued faces."""
        rows = self.db.execute(
            f"SELECT id, model_id, vector, crop FROM label_faces WHERE id IN ({','.join('?' * len(ids))})", list(ids)
        )
        return {r[0]: (r[1], np.frombuffer(r[2], np.float32), r[3]) for r in rows}

    def set_vectors(self, model_id: str, vectors: dict[int, np.ndarray]) -> None:
        with self.transaction():
            for i, v in vectors.items():
                self.db.execute(
                    "UPDATE label_faces SET model_id = ?, vector = ? WHERE id = ?",
                    (model_id, np.asarray(v, np.float32).tobytes(), i),
                )

    def open_faces(self) -> list[tuple[int, str, str, float, str]]:
        """(id, source, box, detector score, status) of pending and skipped faces, oldest first."""
        return self.db.execute(
            "SELECT id, source, box, detector_score, status FROM label_faces WHERE status IN ('pending', 'skipped') ORDER BY id"
        ).fetchall()

    def faces(self, face_ids: Sequence[int]) -> list[QueuedFace]:
        rows = self.db.execute(
            f"SELECT id, source, content_hash, box, crop, status FROM label_faces WHERE id IN ({','.join('?' * len(face_ids))})",
            list(face_ids),
        ).fetchall()
        return [QueuedFace(*r) for r in rows]

    def crop(self, face_id: int) -> bytes:
        row = self.db.execute("SELECT crop FROM label_faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise KeyError(f"no queued face {face_id}")
        return row[0]

    def status(self, face_id: int) -> str:
        row = self.db.execute("SELECT status FROM label_faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise KeyError(f"no queued face {face_id}")
        return row[0]

    def status_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, count(*) FROM label_faces GROUP BY status").fetchall())

    def set_status(self, face_id: int, status: str) -> None:
        self.db.execute("UPDATE label_faces SET status = ? WHERE id = ?", (status, face_id))

    def mark_done(self, face_id: int, character: str, sample_id: int | None) -> None:
        self.db.execute(
            "UPDATE label_faces SET status = 'done', character = ?, sample_id = ? WHERE id = ?", (character, sample_id, face_id)
        )

    def reopen(self, face_id: int) -> None:
        self.db.execute("UPDATE label_faces SET status = 'pending', character = NULL, sample_id = NULL WHERE id = ?", (face_id,))

    def sample_of(self, content_hash: str, box: str) -> int | None:
        """The gallery sample enrolled from this picture's face at ``box``."""
        row = self.db.execute("SELECT id FROM samples WHERE content_hash = ? AND box = ?", (content_hash, box)).fetchone()
        return row[0] if row else None

    # -- rejected suggestions -------------------------------------------------------------------
    def rejections(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for fid, ch in self.db.execute("SELECT face_id, character FROM label_rejections"):
            out.setdefault(fid, set()).add(ch)
        return out

    def reject(self, face_id: int, character: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO label_rejections(face_id, character) VALUES(?, ?)", (face_id, character))

    def unreject(self, face_id: int, character: str) -> None:
        self.db.execute("DELETE FROM label_rejections WHERE face_id = ? AND character = ?", (face_id, character))

    # -- the undo stack -------------------------------------------------------------------------
    def push_action(self, kind: str, payload: dict) -> None:
        self.db.execute("INSERT INTO label_actions(kind, payload, at) VALUES(?,?,?)", (kind, json.dumps(payload), time.time()))

    def last_action(self) -> tuple[int, str, dict] | None:
        row = self.db.execute("SELECT id, kind, payload FROM label_actions ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def drop_action(self, action_id: int) -> None:
        self.db.execute("DELETE FROM label_actions WHERE id = ?", (action_id,))

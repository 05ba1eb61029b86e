"""The labelling assistant behind ``/label``: a queue of unlabelled faces, most uncertain first.

Faces come from a folder (only inside the root the server was started with) or from uploads.
Each is detected, cropped and embedded once, and kept in the gallery's ``label_*`` tables, so a
restart loses nothing. Every confirmation enrols the face at once, so the next suggestions
improve; a rejected suggestion is never made again for that face; every action can be undone,
several steps back. Unknown faces that look alike are grouped so a whole group can be named in
one action.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.names import character_name, shown
from charaid.pipeline.images import iter_image_paths, load_image_bytes, sha256_bytes
from charaid.pipeline.match import Candidate
from charaid.recognition.recognize import Recognizer
from charaid.storage.gallery import Gallery, NewSample, encode_crop


class OutsideRootError(PermissionError):
    """A path that would leave the folder the labelling assistant was given."""


@dataclass
class QueueItem:
    id: int
    source: str
    box: list[int]
    detector_score: float
    suggestions: list[Candidate]
    score: float
    status: str
    group: int | None = None
    group_size: int = 1
    #: "probably X": the recogniser's first guess when it is likely but not sure (shown first,
    #: to confirm or correct with one click).
    probable: str | None = None
    probability: float | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "box": self.box,
            "detector_score": round(self.detector_score, 4),
            "suggestions": [{"character": c.character, "score": round(c.score, 4)} for c in self.suggestions],
            "score": round(self.score, 4),
            "status": self.status,
            "group": self.group,
            "group_size": self.group_size,
            "probable": self.probable,
            "probability": None if self.probability is None else round(self.probability, 4),
        }


@dataclass
class Progress:
    done: int = 0
    left: int = 0
    not_face: int = 0
    skipped: int = 0
    total: int = 0
    errors: list[str] = field(default_factory=list)


def complete_linkage_groups(X: np.ndarray, link: float) -> list[list[int]]:
    """Indices of ``X``'s rows grouped so that every pair within a group has a cosine >= ``link``
    (agglomerative, complete linkage); singletons included."""
    if len(X) < 2:
        return [[i] for i in range(len(X))]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = np.clip(1.0 - np.asarray(X, np.float64) @ np.asarray(X, np.float64).T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    tree = linkage(squareform((D + D.T) / 2, checks=False), method="complete")
    ids = fcluster(tree, t=1.0 - link, criterion="distance")
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(ids):
        groups.setdefault(int(g), []).append(i)
    return list(groups.values())


def resolve_inside(root: Path, rel: str) -> Path:
    """``root/rel`` if it stays inside ``root`` once resolved (no ``..``, no link out), else raise."""
    base = root.resolve()
    p = (base / rel).resolve()
    if p != base and base not in p.parents:
        raise OutsideRootError(f"{rel!r} is outside the labelling folder")
    return p


class LabelSession:
    def __init__(self, gallery: Gallery, recognizer: Recognizer, root: str | Path | None = None):
        self.g = gallery
        self.rec = recognizer
        self.root = Path(root).resolve() if root else None
        self.db = gallery.db

    # -- adding faces -------------------------------------------------------------------------------
    def scan(self, rel: str = "") -> Progress:
        """Queue every face in the images under ``root/rel`` (images already queued are skipped)."""
        if self.root is None:
            raise OutsideRootError("no labelling folder was given (charaid serve --label-dir DIR)")
        folder = resolve_inside(self.root, rel)
        prog = Progress()
        for p in iter_image_paths([folder]):
            if p.is_symlink():
                continue
            try:
                data = p.read_bytes()
            except OSError as e:
                prog.errors.append(f"{p.relative_to(self.root)}: {e.strerror or e}")
                continue
            err = self.add_image(data, str(p.relative_to(self.root)))
            if err:
                prog.errors.append(err)
        return prog

    def add_image(self, data: bytes, source: str) -> str | None:
        """Queue the faces of one image; returns an error line, or None."""
        source = shown(source)  # shown on the page and in messages: one line of UTF-8 whatever the file's name
        h = sha256_bytes(data)
        with self.g.lock:
            if self.db.execute("SELECT 1 FROM label_faces WHERE content_hash = ? LIMIT 1", (h,)).fetchone():
                return None
        try:
            im = load_image_bytes(data, source)
        except ValueError as e:
            return str(e)
        prep = self.rec.pipeline.prepare(source, image=im)
        if prep.error:
            return f"{source}: {prep.error}"
        if not prep.crops:
            return None
        vecs = self.rec.pipeline.embed([prep])[0].vectors[0]
        now = time.time()
        with self.g.lock, self.g.transaction():
            for i, (crop, v) in enumerate(zip(prep.crops, vecs)):
                self.db.execute(
                    "INSERT OR IGNORE INTO label_faces(source, content_hash, box, crop, detector_score, model_id, vector, added_at) "
                    "VALUES(?,?,?,?,?,?,?,?)",
                    (
                        source,
                        h,
                        ",".join(map(str, prep.box(i).as_list())),
                        encode_crop(crop.image, self.g.crop_side),
                        prep.score(i),
                        self.rec.embedder.model_id,
                        v.astype(np.float32).tobytes(),
                        now,
                    ),
                )
        return None

    # -- reading ------------------------------------------------------------------------------------
    def _vectors(self, ids: list[int]) -> np.ndarray:
        """Vectors of queued faces in the recogniser's current space (re-embedded if the model changed)."""
        mid = self.rec.embedder.model_id
        rows = {
            r[0]: r
            for r in self.db.execute(
                f"SELECT id, model_id, vector, crop FROM label_faces WHERE id IN ({','.join('?' * len(ids))})", ids
            )
        }
        stale = [i for i in ids if rows[i][1] != mid]
        if stale:
            crops = [Image.open(io.BytesIO(rows[i][3])).convert("RGB") for i in stale]
            vecs = self.rec.embedder.embed_batch(crops)
            with self.g.transaction():
                for i, v in zip(stale, vecs):
                    self.db.execute("UPDATE label_faces SET model_id = ?, vector = ? WHERE id = ?", (mid, v.tobytes(), i))
            fresh = dict(zip(stale, vecs))
        else:
            fresh = {}
        return np.stack([fresh[i] if i in fresh else np.frombuffer(rows[i][2], np.float32) for i in ids])

    def queue(self, limit: int = 20) -> list[QueueItem]:
        """Pending faces, most uncertain first (skipped ones last), with suggestions and groups."""
        with self.g.lock:
            rows = self.db.execute(
                "SELECT id, source, box, detector_score, status FROM label_faces WHERE status IN ('pending', 'skipped') ORDER BY id"
            ).fetchall()
            if not rows:
                return []
            ids = [r[0] for r in rows]
            X = self._vectors(ids)
            rejected: dict[int, set[str]] = {}
            for fid, ch in self.db.execute("SELECT face_id, character FROM label_rejections"):
                rejected.setdefault(fid, set()).add(ch)
            m = self.rec.matcher
            S = m.scores(X) if len(m.classes) else np.zeros((len(ids), 0))
            threshold = self.rec.threshold
            decisions = self.rec.decide(X) if len(m.classes) else []
        items = []
        for k, (fid, src, box, ds, status) in enumerate(rows):
            order = np.argsort(-S[k]) if S.shape[1] else np.zeros(0, int)
            sug = [
                Candidate(str(m.classes[j]), float(S[k, j])) for j in order if str(m.classes[j]) not in rejected.get(fid, set())
            ][:5]
            score = sug[0].score if sug else 0.0
            item = QueueItem(fid, src, [int(v) for v in box.split(",")], ds, sug, score, status)
            if decisions:
                d = decisions[k][1]
                if d.probable is not None and d.probable not in rejected.get(fid, set()):
                    item.probable, item.probability = d.probable, d.probability
            items.append(item)
        self._group(items, X, threshold)
        # probable faces first (likeliest first: one click confirms or corrects each), then the most
        # uncertain: unknown-looking faces by their best score, then the rest; skipped last
        items.sort(key=lambda it: (it.status == "skipped", it.probable is None, -(it.probability or 0.0), it.score, it.id))
        return items[:limit]

    def _group(self, items: list[QueueItem], X: np.ndarray, threshold: float) -> None:
        """Groups of unknown-looking faces in which *every* pair is closer than the gallery's
        typical same-character similarity (complete linkage): naming a group in one go must not
        enrol another character's face. Single linkage chained look-alikes of several characters
        into one group (issue 26: Shanks, Usopp and Sanji together)."""
        unk = [i for i, it in enumerate(items) if it.score < threshold]
        if len(unk) < 2:
            return
        for members in complete_linkage_groups(X[unk], self.group_similarity()):
            if len(members) > 1:
                gid = min(items[unk[i]].id for i in members)
                for i in members:
                    items[unk[i]].group, items[unk[i]].group_size = gid, len(members)

    def group_similarity(self) -> float:
        """The similarity above which two unknown faces may share a group: the
        ``label_group_quantile`` of same-character pairs in the gallery (0.9 while the gallery has
        no such pairs)."""
        labels, X, _ = self.g.vectors(self.rec.embedder.model_id)
        sims = []
        for c in set(labels.tolist()):
            V = X[labels == c]
            if len(V) > 1:
                S = V @ V.T
                sims.append(S[np.triu_indices(len(V), 1)])
        return float(np.quantile(np.concatenate(sims), self.rec.settings.thresholds.label_group_quantile)) if sims else 0.9

    def progress(self) -> Progress:
        with self.g.lock:
            counts = dict(self.db.execute("SELECT status, count(*) FROM label_faces GROUP BY status").fetchall())
        p = Progress(
            counts.get("done", 0),
            counts.get("pending", 0) + counts.get("skipped", 0),
            counts.get("not_face", 0),
            counts.get("skipped", 0),
        )
        p.total = sum(counts.values())
        return p

    def crop(self, face_id: int) -> bytes:
        with self.g.lock:
            row = self.db.execute("SELECT crop FROM label_faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise KeyError(f"no queued face {face_id}")
        return row[0]

    # -- actions ------------------------------------------------------------------------------------
    def confirm(self, face_ids: list[int], character: str) -> int:
        """Name these faces ``character`` (a new one if needed) and enrol them now."""
        character = character_name(character)
        with self.g.lock:
            rows = self._pending(face_ids)
            X = self._vectors([r[0] for r in rows])
            samples = [
                NewSample(
                    character,
                    h,
                    v,
                    f"label:{src}",
                    _box(box),
                    Image.open(io.BytesIO(crop)).convert("RGB"),
                )
                for (fid, src, h, box, crop), v in zip(rows, X)
            ]
            self.g.add(samples, self.rec.embedder.model_id, self.rec.embedder.dim)
            sample_ids = []
            for _fid, _src, h, box, _crop in rows:
                sid = self.db.execute("SELECT id FROM samples WHERE content_hash = ? AND box = ?", (h, box)).fetchone()
                sample_ids.append(sid[0] if sid else None)
            with self.g.transaction():
                for (fid, *_), sid in zip(rows, sample_ids):
                    self.db.execute(
                        "UPDATE label_faces SET status = 'done', character = ?, sample_id = ? WHERE id = ?", (character, sid, fid)
                    )
                self._push("confirm", {"faces": [r[0] for r in rows], "samples": sample_ids})
        return len(rows)

    def reject(self, face_id: int, character: str) -> None:
        """Never suggest ``character`` for this face again."""
        with self.g.lock:
            self._pending([face_id])
            with self.g.transaction():
                self.db.execute("INSERT OR IGNORE INTO label_rejections(face_id, character) VALUES(?, ?)", (face_id, character))
                self._push("reject", {"face": face_id, "character": character})

    def set_status(self, face_id: int, status: str) -> None:
        """``not_face`` or ``skipped``."""
        if status not in ("not_face", "skipped"):
            raise ValueError(f"unknown status {status!r}; choose one of: not_face, skipped")
        with self.g.lock:
            old = self._status(face_id)
            with self.g.transaction():
                self.db.execute("UPDATE label_faces SET status = ? WHERE id = ?", (status, face_id))
                self._push("status", {"face": face_id, "old": old})

    def undo(self) -> str | None:
        """Take back the last action; returns what was undone, or None when there is nothing."""
        with self.g.lock:
            row = self.db.execute("SELECT id, kind, payload FROM label_actions ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return None
            aid, kind, payload = row[0], row[1], json.loads(row[2])
            if kind == "confirm":
                for sid in payload["samples"]:
                    if sid is not None:
                        try:
                            self.g.remove_sample(sid)
                        except KeyError:
                            pass  # removed meanwhile from the gallery page
            with self.g.transaction():
                if kind == "confirm":
                    for fid in payload["faces"]:
                        self.db.execute(
                            "UPDATE label_faces SET status = 'pending', character = NULL, sample_id = NULL WHERE id = ?", (fid,)
                        )
                elif kind == "reject":
                    self.db.execute(
                        "DELETE FROM label_rejections WHERE face_id = ? AND character = ?",
                        (payload["face"], payload["character"]),
                    )
                elif kind == "status":
                    self.db.execute("UPDATE label_faces SET status = ? WHERE id = ?", (payload["old"], payload["face"]))
                self.db.execute("DELETE FROM label_actions WHERE id = ?", (aid,))
            return kind

    def _push(self, kind: str, payload: dict) -> None:
        self.db.execute("INSERT INTO label_actions(kind, payload, at) VALUES(?,?,?)", (kind, json.dumps(payload), time.time()))

    def _status(self, face_id: int) -> str:
        row = self.db.execute("SELECT status FROM label_faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise KeyError(f"no queued face {face_id}")
        return row[0]

    def _pending(self, face_ids: list[int]):
        if not face_ids:
            raise ValueError("no faces given")
        rows = self.db.execute(
            f"SELECT id, source, content_hash, box, crop, status FROM label_faces WHERE id IN ({','.join('?' * len(face_ids))})",
            face_ids,
        ).fetchall()
        found = {r[0] for r in rows}
        missing = [i for i in face_ids if i not in found]
        if missing:
            raise KeyError(f"no queued face {missing[0]}")
        done = [r[0] for r in rows if r[5] == "done"]
        if done:
            raise ValueError(f"face {done[0]} is labelled already (undo it first)")
        return [r[:5] for r in rows]


def _box(text: str) -> tuple[int, int, int, int]:
    """A box stored as "x,y,w,h"."""
    x, y, w, h = (int(v) for v in text.split(","))
    return x, y, w, h

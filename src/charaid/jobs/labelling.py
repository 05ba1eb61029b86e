"""The labelling assistant behind ``/label``: a queue of unlabelled faces, most uncertain first.

Faces come from a folder (only inside the root the server was started with) or from uploads.
Each is detected, cropped and embedded once, and kept in the gallery's ``label_*`` tables, so a
restart loses nothing. Every confirmation enrols the face at once, so the next suggestions
improve; a rejected suggestion is never made again for that face; every action can be undone,
several steps back. Unknown faces that look alike are grouped so a whole group can be named in
one action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charaid.names import character_name, shown
from charaid.pipeline.images import iter_image_paths, load_image_bytes, sha256_bytes
from charaid.pipeline.match import Candidate
from charaid.recognition.recognize import Recognizer
from charaid.storage.gallery import Gallery, NewSample, decode_crop
from charaid.storage.labels import LabelStore, QueuedFace


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


def complete_linkage_groups(X: np.ndarray, link: float | None = None, parts: int | None = None) -> list[list[int]]:
    """Indices of ``X``'s rows grouped so that every pair within a group has a cosine >= ``link``
    (agglomerative, complete linkage), or cut into ``parts`` groups where the tree joined them
    last; singletons included."""
    if (link is None) == (parts is None):
        raise ValueError("give a link or a number of parts, not both or neither")
    if len(X) < 2:
        return [[i] for i in range(len(X))]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = np.clip(1.0 - np.asarray(X, np.float64) @ np.asarray(X, np.float64).T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    tree = linkage(squareform((D + D.T) / 2, checks=False), method="complete")
    if link is None:
        ids = fcluster(tree, t=parts, criterion="maxclust")
    else:
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
        self.store = LabelStore(gallery)

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
            if self.store.has_content(h):
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
        faces = [(prep.box(i).as_list(), crop.image, prep.score(i), v) for i, (crop, v) in enumerate(zip(prep.crops, vecs))]
        with self.g.lock:
            self.store.add_faces(source, h, faces, self.rec.embedder.model_id)
        return None

    # -- reading ------------------------------------------------------------------------------------
    def _vectors(self, ids: list[int]) -> np.ndarray:
        """Vectors of queued faces in the recogniser's current space (re-embedded if the model changed)."""
        mid = self.rec.embedder.model_id
        rows = self.store.stored_vectors(ids)
        stale = [i for i in ids if rows[i][0] != mid]
        fresh: dict[int, np.ndarray] = {}
        if stale:
            vecs = self.rec.embedder.embed_batch([decode_crop(rows[i][2]) for i in stale])
            fresh = dict(zip(stale, vecs))
            self.store.set_vectors(mid, fresh)
        return np.stack([fresh[i] if i in fresh else rows[i][1] for i in ids])

    def queue(self, limit: int = 20) -> list[QueueItem]:
        """Pending faces, most uncertain first (skipped ones last), with suggestions and groups."""
        with self.g.lock:
            rows = self.store.open_faces()
            if not rows:
                return []
            ids = [r[0] for r in rows]
            X = self._vectors(ids)
            rejected = self.store.rejections()
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
            counts = self.store.status_counts()
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
            return self.store.crop(face_id)

    # -- actions ------------------------------------------------------------------------------------
    def confirm(self, face_ids: list[int], character: str) -> int:
        """Name these faces ``character`` (a new one if needed) and enrol them now."""
        character = character_name(character)
        with self.g.lock:
            rows = self._pending(face_ids)
            X = self._vectors([r.id for r in rows])
            samples = [
                NewSample(character, r.content_hash, v, f"label:{r.source}", _box(r.box), decode_crop(r.crop))
                for r, v in zip(rows, X)
            ]
            self.g.add(samples, self.rec.embedder.model_id, self.rec.embedder.dim)
            sample_ids = [self.store.sample_of(r.content_hash, r.box) for r in rows]
            with self.store.transaction():
                for r, sid in zip(rows, sample_ids):
                    self.store.mark_done(r.id, character, sid)
                self.store.push_action("confirm", {"faces": [r.id for r in rows], "samples": sample_ids})
        return len(rows)

    def split(self, face_ids: list[int]) -> list[list[int]]:
        """A group that mixes characters, in two: where complete linkage joined its faces last
        (the two parts whose least alike pairs are least alike). The part that holds the first
        face comes first. Nothing is stored: naming a part enrols it, and the faces left group
        again in the next queue."""
        ids = list(dict.fromkeys(face_ids))
        with self.g.lock:
            self._pending(ids)
            X = self._vectors(ids)
        parts = [[ids[i] for i in p] for p in complete_linkage_groups(X, parts=2)]
        return sorted(parts, key=lambda p: ids[0] not in p)

    def reject(self, face_id: int, character: str) -> None:
        """Never suggest ``character`` for this face again."""
        with self.g.lock:
            self._pending([face_id])
            with self.store.transaction():
                self.store.reject(face_id, character)
                self.store.push_action("reject", {"face": face_id, "character": character})

    def set_status(self, face_id: int, status: str) -> None:
        """``not_face`` or ``skipped``."""
        if status not in ("not_face", "skipped"):
            raise ValueError(f"unknown status {status!r}; choose one of: not_face, skipped")
        with self.g.lock:
            old = self.store.status(face_id)
            with self.store.transaction():
                self.store.set_status(face_id, status)
                self.store.push_action("status", {"face": face_id, "old": old})

    def undo(self) -> str | None:
        """Take back the last action; returns what was undone, or None when there is nothing."""
        with self.g.lock:
            last = self.store.last_action()
            if last is None:
                return None
            aid, kind, payload = last
            if kind == "confirm":
                for sid in payload["samples"]:
                    if sid is not None:
                        try:
                            self.g.remove_sample(sid)
                        except KeyError:
                            pass  # removed meanwhile from the gallery page
            with self.store.transaction():
                if kind == "confirm":
                    for fid in payload["faces"]:
                        self.store.reopen(fid)
                elif kind == "reject":
                    self.store.unreject(payload["face"], payload["character"])
                elif kind == "status":
                    self.store.set_status(payload["face"], payload["old"])
                self.store.drop_action(aid)
            return kind

    def _pending(self, face_ids: list[int]) -> list[QueuedFace]:
        if not face_ids:
            raise ValueError("no faces given")
        rows = self.store.faces(face_ids)
        found = {r.id for r in rows}
        missing = [i for i in face_ids if i not in found]
        if missing:
            raise KeyError(f"no queued face {missing[0]}")
        done = [r.id for r in rows if r.status == "done"]
        if done:
            raise ValueError(f"face {done[0]} is labelled already (undo it first)")
        return rows


def _box(text: str) -> tuple[int, int, int, int]:
    """A box stored as "x,y,w,h"."""
    x, y, w, h = (int(v) for v in text.split(","))
    return x, y, w, h

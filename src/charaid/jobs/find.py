"""``charaid search --character NAME``: every indexed picture in which a gallery's character is found.

The face store (``charaid index``) holds every face of a big folder in the ImageNet space
(EfficientNet-Lite0 + colour histogram), the gallery its samples in its own. So the gallery's
samples are embedded once in the store's space too, from their stored crops (kept in the
gallery beside its own vectors, so the next search starts at once); a matcher of the gallery's
characters is fitted there and calibrated as the gallery's own threshold is.

Candidates come from the store's nearest-neighbour index: the faces nearest each of the
character's samples. Each candidate is then named against *every* character of the gallery: it
is kept when that character is its first guess and the score clears the calibrated threshold,
so a look-alike that another enrolled character explains better is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charaid.errors import UnknownCharacterError
from charaid.models.detectors import Box
from charaid.models.embedders import Embedder
from charaid.names import json_line
from charaid.pipeline.match import DEFAULT_METHOD, Matcher, calibrate
from charaid.storage.gallery import Gallery
from charaid.storage.store import FaceStore

#: Store faces looked at for each of the character's samples (before naming them).
NEIGHBOURS = 200


@dataclass(frozen=True)
class Found:
    """A picture of the character: its best face there, and that face's score."""

    path: str
    box: Box
    score: float

    def to_dict(self) -> dict:
        return {"path": self.path, "box": self.box.as_list(), "score": round(self.score, 4)}

    def to_json(self) -> str:
        return json_line(self.to_dict())


def gallery_in_space(gallery: Gallery, embedder: Embedder, on_progress: Callable[[int], None] | None = None):
    """(labels, vectors) of every gallery sample in ``embedder``'s space, embedding from the
    stored crops those that have no vector of it yet (and keeping them in the gallery)."""
    have = set(gallery.labels_ids(embedder.model_id)[1].tolist())
    todo = [s for s in gallery.samples() if s.id not in have]
    for i in range(0, len(todo), 32):
        part = todo[i : i + 32]
        V = embedder.embed_batch([gallery.crop(s.id) for s in part])
        gallery.set_vectors(embedder.model_id, embedder.dim, [(s.id, v) for s, v in zip(part, V)])
        if on_progress:
            on_progress(len(part))
    labels, X, _ = gallery.vectors(embedder.model_id)
    return labels, X


def find_character(
    store: FaceStore,
    gallery: Gallery,
    embedder: Embedder,
    character: str,
    method: str = DEFAULT_METHOD,
    threshold: float | None = None,
    neighbours: int = NEIGHBOURS,
) -> list[Found]:
    """The store's pictures in which ``character``'s face is found, best score first."""
    if character not in gallery.names():
        raise UnknownCharacterError(character, gallery.names())
    labels, X = gallery_in_space(gallery, embedder)
    m = Matcher(method).fit(labels, X)
    if threshold is None:
        threshold = calibrate(labels, X, method, embedder.model_id).threshold
    col = int(np.flatnonzero(m.classes == character)[0])
    ix = store.sync_index()
    if len(ix) == 0:
        return []
    ids, _ = ix.search(X[labels == character], min(neighbours, len(ix)))
    cand = np.unique(ids[ids >= 0])
    if not len(cand):
        return []
    S = m.scores(store.vectors_for(cand.tolist()))
    keep = (S.argmax(axis=1) == col) & (S[:, col] >= threshold)
    info = store.faces_info(cand[keep].tolist())
    best: dict[str, Found] = {}
    for fid, s in zip(cand[keep], S[keep, col]):
        path, box = info[int(fid)]
        if path not in best or s > best[path].score:
            best[path] = Found(path, box, float(s))
    return sorted(best.values(), key=lambda f: -f.score)

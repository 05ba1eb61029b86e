"""``charaid discover DIR``: the characters of a pile of pictures, found without labelled folders.

Every face of the pictures goes through the one pipeline; faces a gallery already knows (when
one is given) are named as ``recognize`` names them, and the rest are clustered into proposed
characters, biggest first, for the user to name a cluster at a time (``/label``).

Clustering is agglomerative with average linkage on cosine distance, cut where two clusters'
mean similarity falls below a link. The link comes from the impostor cohort of the embedder's
space (charaid.models.cohort: thousands of faces of different characters): it is the
similarity that only ``Thresholds.discover_cohort_quantile`` of different-character pairs
reach, so it needs no labels, and a gallery's own characters do not move it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charaid.config import Thresholds
from charaid.names import json_line
from charaid.pipeline.faces import EmbeddedImage, FacePipeline, RunOptions


@dataclass
class DiscoveredFace:
    path: str
    box: list[int]
    #: The proposed character (1 is the biggest); None for a face the gallery named.
    cluster: int | None
    #: The gallery's name for it, when it knows the face.
    character: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "box": self.box, "cluster": self.cluster, "character": self.character}

    def to_json(self) -> str:
        return json_line(self.to_dict())


def cohort_link(cohort: np.ndarray | None, quantile: float, sample: int = 3000, seed: int = 0) -> float:
    """The cosine that only ``1 - quantile`` of different-character pairs of the cohort exceed
    (0.8 without a cohort)."""
    if cohort is None or len(cohort) < 2:
        return 0.8
    rng = np.random.default_rng(seed)
    C = np.asarray(cohort, np.float32)
    C = C[rng.permutation(len(C))[:sample]]
    S = C @ C.T
    return float(np.quantile(S[np.triu_indices(len(C), 1)], quantile))


def average_linkage(X: np.ndarray, link: float) -> np.ndarray:
    """Cluster ids (0.., biggest first) of ``X``'s unit rows: average linkage, cut at cosine ``link``."""
    n = len(X)
    if n == 0:
        return np.zeros(0, int)
    if n == 1:
        return np.zeros(1, int)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = np.clip(1.0 - np.asarray(X, np.float64) @ np.asarray(X, np.float64).T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    tree = linkage(squareform((D + D.T) / 2, checks=False), method="average")
    raw = fcluster(tree, t=1.0 - link, criterion="distance")
    ids, counts = np.unique(raw, return_counts=True)
    order = ids[np.lexsort((ids, -counts))]  # biggest first, ties by first appearance
    rank = {int(c): r for r, c in enumerate(order)}
    return np.array([rank[int(c)] for c in raw], int)


def bcubed(truth: Iterable, clusters: Iterable) -> tuple[float, float, float]:
    """BCubed precision, recall and F of a clustering against the true labels."""
    t, c = np.asarray(list(truth), dtype=object), np.asarray(list(clusters))
    same_c = c[:, None] == c[None, :]
    same_t = t[:, None] == t[None, :]
    both = (same_c & same_t).sum(axis=1)
    p = float(np.mean(both / same_c.sum(axis=1)))
    r = float(np.mean(both / same_t.sum(axis=1)))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def clicks_to_name(truth: Iterable, clusters: Iterable, share: float = 0.9) -> int:
    """Clicks to name ``share`` of the faces right, clusters biggest first: one to name a
    cluster by its majority character, one per face of another character in it (taken out and
    named on its own); a face alone is one click."""
    t, c = np.asarray(list(truth), dtype=object), np.asarray(list(clusters))
    need, right, clicks = int(np.ceil(share * len(t))), 0, 0
    ids, counts = np.unique(c, return_counts=True)
    for cid in ids[np.argsort(-counts, kind="stable")]:
        members = t[c == cid]
        _, k = np.unique(members, return_counts=True)
        majority = int(k.max())
        for _ in range(len(members) - majority + 1):  # the cluster, then each outsider
            if right >= need:
                return clicks
            clicks += 1
            right += majority if _ == 0 else 1
    return clicks


def discover(
    paths: Iterable[str | Path],
    pipeline: FacePipeline,
    recognizer=None,
    options: RunOptions | None = None,
    link: float | None = None,
    cohort: np.ndarray | None = None,
    thresholds: Thresholds | None = None,
) -> list[DiscoveredFace]:
    """Every face of ``paths``: named by ``recognizer`` (a charaid.recognition.Recognizer) when
    it knows it, else in a proposed cluster. ``link``: the cosine to cut at (default: from the cohort)."""
    t = thresholds or Thresholds()
    opts = options or RunOptions()
    faces: list[DiscoveredFace] = []
    vectors: list[np.ndarray] = []
    for batch in pipeline.batches(paths, opts):
        named = recognizer.name_faces(batch) if recognizer is not None else None
        for k, e in enumerate(batch):
            _collect(e, None if named is None else named[k], faces, vectors)
    free = [i for i, f in enumerate(faces) if f.character is None]
    if free:
        cut = link if link is not None else cohort_link(cohort, t.discover_cohort_quantile)
        ids = average_linkage(np.stack([vectors[i] for i in free]), cut)
        for i, cid in zip(free, ids):
            faces[i].cluster = int(cid) + 1
    return faces


def _collect(e: EmbeddedImage, named, faces: list[DiscoveredFace], vectors: list[np.ndarray]) -> None:
    if not e.ok:
        return
    for j, i in enumerate(e.chosen):
        character = None if named is None else named.faces[j].character
        faces.append(DiscoveredFace(e.path, e.prep.box(i).as_list(), None, character))
        vectors.append(e.vectors[0, j])

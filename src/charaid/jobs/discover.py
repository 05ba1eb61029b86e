"""``charaid discover DIR``: the characters of a pile of pictures, found without labelled folders.

Every face of the pictures goes through the one pipeline; faces a gallery already knows (when
one is given) are named as ``recognize`` names them, and the rest are clustered into proposed
characters, biggest first, for the user to name a cluster at a time (``/label``).

Clustering is agglomerative with average linkage on shared nearest neighbours: two faces are
as close as the share of their ``discover_neighbours`` nearest faces they have in common (the
Jaccard index of the two lists), and clusters stop merging below ``discover_link``. Shared
neighbours adapt to how tight a series' faces are, where one cosine threshold cannot: on the
development sets a cosine cut set from the impostor cohort joined whole series or split every
character (BCubed F 0.04-0.66, benchmarks/discover.py). Above ``DENSE_LIMIT`` faces the
clusters are the connected faces at that link (single linkage, in sparse memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


#: Faces clustered with average linkage over a dense matrix (N^2 floats); above, single linkage.
DENSE_LIMIT = 8000


def shared_neighbours(X: np.ndarray, k: int):
    """The sparse matrix of Jaccard indices of the ``k``-nearest-neighbour lists of ``X``'s unit
    rows (a face counts among its own neighbours)."""
    from scipy import sparse

    n = len(X)
    k = max(1, min(k, n))
    rows = []
    for i in range(0, n, 2048):  # in blocks: memory stays n x 2048
        S = X[i : i + 2048] @ X.T
        rows.append(np.argpartition(-S, k - 1, axis=1)[:, :k])
    nn = np.concatenate(rows)
    M = sparse.csr_matrix((np.ones(n * k, np.float32), (np.repeat(np.arange(n), k), nn.ravel())), shape=(n, n))
    inter = (M @ M.T).tocoo()
    J = inter.data / (2 * k - inter.data)
    return sparse.csr_matrix((J, (inter.row, inter.col)), shape=(n, n))


def neighbours_for(n: int, k: int) -> int:
    """Neighbours compared among ``n`` faces: ``k``, but at most a 20th of them (at least 3), so
    that a face's neighbours fit inside its character in a small pile."""
    return max(1, min(k, max(3, n // 20), n - 1))


def snn_clusters(X: np.ndarray, k: int, link: float) -> np.ndarray:
    """Cluster ids (0.., biggest first) of ``X``'s unit rows, cut at shared-neighbour share ``link``."""
    n = len(X)
    if n < 2:
        return np.zeros(n, int)
    J = shared_neighbours(np.asarray(X, np.float32), neighbours_for(n, k))
    if n <= DENSE_LIMIT:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        D = 1.0 - J.toarray().astype(np.float64)
        D = (D + D.T) / 2
        np.fill_diagonal(D, 0.0)
        raw = fcluster(linkage(squareform(D, checks=False), method="average"), t=1.0 - link, criterion="distance")
    else:
        from scipy.sparse.csgraph import connected_components

        J.data[J.data < link] = 0
        J.eliminate_zeros()
        raw = connected_components(J, directed=False)[1]
    return _biggest_first(raw)


def _biggest_first(raw: np.ndarray) -> np.ndarray:
    ids, first, counts = np.unique(raw, return_index=True, return_counts=True)
    order = ids[np.lexsort((first, -counts))]  # biggest first, ties by first appearance
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
    thresholds: Thresholds | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[DiscoveredFace]:
    """Every face of ``paths``: named by ``recognizer`` (a charaid.recognition.Recognizer) when
    it knows it, else in a proposed cluster. ``link``: the shared-neighbour share to cut at."""
    t = thresholds or Thresholds()
    opts = options or RunOptions()
    faces: list[DiscoveredFace] = []
    vectors: list[np.ndarray] = []
    for batch in pipeline.batches(paths, opts):
        named = recognizer.name_faces(batch) if recognizer is not None else None
        for k, e in enumerate(batch):
            _collect(e, None if named is None else named[k], faces, vectors)
        if on_progress:
            on_progress(len(batch))
    free = [i for i, f in enumerate(faces) if f.character is None]
    if free:
        ids = snn_clusters(np.stack([vectors[i] for i in free]), t.discover_neighbours, t.discover_link if link is None else link)
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

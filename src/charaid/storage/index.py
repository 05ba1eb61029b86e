"""Nearest-neighbour search over face vectors: exact for small sets, approximate for big ones.

One interface over two backends (unit vectors, inner product = cosine similarity):

- ``exact``: numpy matrix product; right and fast enough below some tens of thousands of vectors.
- ``ivf``: faiss inverted lists (k-means cells, vectors stored as float16, scanned exactly in the
  ``nprobe`` cells nearest the query). Kept for large sets: face vectors come in tight
  per-character clusters, which is what cells are good at and what graph search is bad at. At a
  million vectors of dimension 1472 (20,000 characters) HNSW could not reach recall@10 0.99 within
  5 ms (usearch ef 256: 0.983 at 7.5 ms p95); inverted lists scanning 16 of 4,096 cells gave
  recall@10 0.999 at 2.1 ms p95, built 13 times faster;
  docs/benchmarks.md@aef98b0, "Nearest-neighbour index", has every number. Adds and removes in place; trained (k-means) on a
  sample when first filled, and rebuilt by :class:`SyncedIndex` when the set outgrows its cells.

The HNSW libraries it was compared with (usearch, hnswlib, faiss' HNSW) live with that
comparison in ``benchmarks/ann_backends.py``, not in the product.

:class:`SyncedIndex` keeps an index on disk in step with rows stored elsewhere (a gallery's
samples, a face store's faces): updated incrementally when rows come and go, rebuilt when
missing, torn or made for another model. :class:`GalleryIndex` is that for a gallery file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from charaid.config import Settings

BACKENDS = ("exact", "ivf")

#: Sets with fewer vectors than this are searched exactly; ``CHARAID_EXACT_SEARCH_LIMIT`` sets
#: the limit the product passes in (Settings.exact_search_limit), this is its default.
EXACT_LIMIT = Settings().exact_search_limit
#: The backend for sets above that limit.
LARGE_BACKEND = "ivf"


#: An ``ivf`` index is rebuilt (new cells) when its set has grown this many times past the
#: size its cells were learnt for: its cells would hold too many vectors to scan quickly.
OUTGROWN = 4


def ivf_cells(count: int) -> int:
    """Cells for an inverted-list index over ``count`` vectors: about 4 sqrt(n), a power of two,
    and at least 39 training vectors each (what k-means needs)."""
    target = 2 ** int(round(np.log2(max(4.0 * np.sqrt(max(count, 1)), 1.0))))
    return int(max(1, min(target, count // 39, 65536)))


class VectorIndex:
    """Top-k inner-product search over (id, unit vector) pairs."""

    #: the backend's own index (faiss' for ivf)
    _ix: Any

    def __init__(
        self, dim: int, backend: str = LARGE_BACKEND, capacity: int = 1024, nprobe: int = 16, threads: int = 2, **params
    ):
        self._check_backend(backend)
        self.dim, self.backend, self.threads = dim, backend, threads
        self.params: dict[str, Any] = dict(nprobe=nprobe, **params)
        self._n = 0
        if backend == "exact":
            self._ids = np.zeros(0, np.int64)
            self._X = np.zeros((0, dim), np.float32)
        elif backend == "ivf":
            self._ix = None  # made by train(): its cells come from the data (k-means)
            self.trained_for = 0
        else:
            self._open(capacity)

    def _check_backend(self, backend: str) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown index backend {backend!r}; choose one of: {', '.join(BACKENDS)}")

    def _open(self, capacity: int) -> None:
        """A subclass's own backend (benchmarks/ann_backends.py)."""
        raise NotImplementedError

    @property
    def needs_training(self) -> bool:
        return self.backend == "ivf" and self._ix is None

    def train(self, X: np.ndarray, count: int | None = None) -> None:
        """Learn the cells of an ``ivf`` index from a sample X of the vectors it will hold
        (``count`` of them in all; default len(X)). Other backends need no training."""
        if self.backend != "ivf":
            return
        import faiss

        faiss.omp_set_num_threads(self.threads)
        X = np.ascontiguousarray(X, np.float32)
        count = max(count or 0, len(X))
        nlist = min(ivf_cells(count), max(1, len(X) // 39))
        quantizer = faiss.IndexFlatIP(self.dim)
        ix = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        ix.cp.max_points_per_centroid = 40
        ix.train(X)
        ix.nprobe = self.params["nprobe"]
        self._ix, self._quantizer, self.trained_for = ix, quantizer, count

    def describe(self) -> str:
        if self.backend == "exact":
            return "float32"
        cells = self._ix.nlist if self._ix is not None else 0
        return f"IVF f16, {cells} cells, nprobe={self.params['nprobe']}"

    def __len__(self) -> int:
        return self._n

    def set_nprobe(self, nprobe: int) -> None:
        """Cells an ``ivf`` index scans per query: higher finds more true neighbours, slower."""
        self.params["nprobe"] = nprobe
        if self.backend == "ivf" and self._ix is not None:
            self._ix.nprobe = nprobe

    def _checked(self, ids: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ids`` and ``X`` as the backends take them; a ValueError for vectors of another size."""
        X = np.ascontiguousarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {X.shape} for an index of dim {self.dim}")
        return np.asarray(ids, np.int64), X

    def add(self, ids: np.ndarray, X: np.ndarray) -> None:
        ids, X = self._checked(ids, X)
        if not len(ids):
            return
        if self.backend == "exact":
            self._ids = np.concatenate([self._ids, ids])
            self._X = np.concatenate([self._X, X])
        else:
            if self._ix is None:
                self.train(X)
            self._ix.add_with_ids(X, ids)
        self._n += len(ids)

    def remove(self, ids) -> None:
        ids = np.asarray(list(ids), np.int64)
        if not len(ids):
            return
        if self.backend == "exact":
            keep = ~np.isin(self._ids, ids)
            self._n -= int((~keep).sum())
            self._ids, self._X = self._ids[keep], self._X[keep]
        elif self._ix is not None:
            import faiss

            self._n -= int(self._ix.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, similarities), each (n_queries, k), best first; missing slots have id -1."""
        Q = np.ascontiguousarray(np.atleast_2d(Q), np.float32)
        k_eff = min(k, self._n)
        out_i = np.full((len(Q), k), -1, np.int64)
        out_s = np.full((len(Q), k), -np.inf, np.float32)
        if k_eff == 0:
            return out_i, out_s
        if self.backend == "exact":
            S = Q @ self._X.T
            part = np.argpartition(-S, k_eff - 1, axis=1)[:, :k_eff]
            order = np.argsort(-np.take_along_axis(S, part, 1), axis=1)
            top = np.take_along_axis(part, order, 1)
            out_i[:, :k_eff], out_s[:, :k_eff] = self._ids[top], np.take_along_axis(S, top, 1)
        else:
            sims, lab = self._ix.search(Q, k_eff)
            out_i[:, :k_eff], out_s[:, :k_eff] = lab, sims
            out_s[out_i < 0] = -np.inf  # ivf: fewer than k in the cells scanned
        return out_i, out_s

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if self.backend == "exact":
            with open(tmp, "wb") as fh:
                np.savez(fh, ids=self._ids, X=self._X)
        else:
            import faiss

            if self._ix is None:
                raise ValueError("an ivf index with no vectors cannot be saved")
            faiss.write_index(self._ix, str(tmp))
            tmp.with_name(tmp.name + ".trained").write_text(str(self.trained_for))
            tmp.with_name(tmp.name + ".trained").replace(path.with_name(path.name + ".trained"))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, dim: int, backend: str, count: int, **params) -> VectorIndex:
        ix = cls(dim, backend, capacity=max(count, 16), **params)
        if backend == "exact":
            z = np.load(path)
            ix._ids, ix._X = z["ids"], z["X"]
        else:
            import faiss

            ix._ix = faiss.read_index(str(path))
            ix._ix.nprobe = ix.params["nprobe"]
            ix.trained_for = int(Path(str(path) + ".trained").read_text())
        ix._n = count
        return ix


class SyncedIndex:
    """A persisted index kept in step with a table of (id, vector) rows that it does not own.

    ``sync(ids, fetch)`` loads the index from ``folder``, removes the ids that are gone, adds the
    new ones (``fetch(ids)`` returns their vectors) and saves it; a missing, unreadable or
    foreign-model index is rebuilt. The ids it holds are saved beside it, so a restart never
    re-reads every vector. Galleries below :data:`EXACT_LIMIT` vectors get the exact backend.
    """

    def __init__(self, folder: str | Path, model_id: str, backend: str | None = None, exact_limit: int = EXACT_LIMIT):
        self.dir, self.model_id, self.backend, self.exact_limit = Path(folder), model_id, backend, exact_limit
        self.index: VectorIndex | None = None
        self._have: np.ndarray | None = None

    def sync(self, ids: np.ndarray, fetch: Callable[[np.ndarray], np.ndarray], dim: int, chunk: int = 20_000) -> VectorIndex:
        ids = np.asarray(ids, np.int64)
        backend = self.backend or ("exact" if len(ids) < self.exact_limit else LARGE_BACKEND)
        data_f, ids_f, meta_f = self.dir / f"vectors.{backend}", self.dir / "ids.npy", self.dir / "meta.json"
        ix, have = self.index, None
        if ix is not None and ix.backend == backend:
            have = self._have
        else:
            ix = None
            try:
                meta = json.loads(meta_f.read_text())
                if meta.get("model_id") == self.model_id and meta.get("backend") == backend and meta.get("dim") == dim:
                    have = np.load(ids_f)
                    ix = VectorIndex.load(data_f, dim, backend, len(have))
            except (OSError, ValueError, RuntimeError, KeyError):  # missing, torn or foreign: rebuild
                ix, have = None, None
        if ix is not None and backend == "ivf" and len(ids) > OUTGROWN * max(ix.trained_for, 1):
            ix = None  # its cells were learnt for a much smaller set: relearn them
        if ix is None:
            ix, have = VectorIndex(dim, backend, capacity=max(16, len(ids))), np.zeros(0, np.int64)
        assert have is not None  # set with ix on every path above
        gone = np.setdiff1d(have, ids, assume_unique=True)
        if len(gone):
            try:
                ix.remove(gone)
            except NotImplementedError:
                ix, have = VectorIndex(dim, backend, capacity=max(16, len(ids))), np.zeros(0, np.int64)
        new = np.setdiff1d(ids, have, assume_unique=True)
        if ix.needs_training and len(new):
            sample = np.random.default_rng(0).choice(new, min(len(new), 40 * ivf_cells(len(ids))), replace=False)
            ix.train(fetch(np.sort(sample)), count=len(ids))
        for i in range(0, len(new), chunk):
            part = new[i : i + chunk]
            ix.add(part, fetch(part))
        self.index, self._have = ix, np.sort(ids)
        if len(gone) or len(new) or not data_f.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            meta_f.unlink(missing_ok=True)  # written last: a crash mid-save means "rebuild"
            ix.save(data_f)
            with open(ids_f.with_name("ids.tmp.npy"), "wb") as fh:
                np.save(fh, self._have)
            ids_f.with_name("ids.tmp.npy").replace(ids_f)
            meta_f.with_name("meta.tmp").write_text(
                json.dumps({"model_id": self.model_id, "backend": backend, "dim": dim, "count": len(ids)})
            )
            meta_f.with_name("meta.tmp").replace(meta_f)
        return ix


class GalleryIndex:
    """The index of one gallery's active vectors, kept in ``<gallery>.index/`` and in step with it."""

    def __init__(self, gallery, backend: str | None = None, exact_limit: int = EXACT_LIMIT):
        self.g = gallery
        self.dir = gallery.path.with_name(gallery.path.name + ".index")
        self.backend, self.exact_limit = backend, exact_limit
        self._synced: SyncedIndex | None = None
        self._revision = -1

    def ensure(self) -> VectorIndex:
        """The up-to-date index: loaded, updated with what changed, or rebuilt."""
        if self._synced is not None and self._synced.index is not None and self._revision == self.g.revision:
            return self._synced.index
        model = self.g.model_id or ""
        if self._synced is None or self._synced.model_id != model:
            self._synced = SyncedIndex(self.dir, model, self.backend, self.exact_limit)
        _, ids = self.g.labels_ids()
        ix = self._synced.sync(ids, self.g.vectors_for, self.g.dim or 1)
        self._revision = self.g.revision
        return ix

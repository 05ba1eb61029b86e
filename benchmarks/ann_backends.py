"""The HNSW libraries charaid's index was compared with (benchmarks/ann.py), kept here with the
comparison rather than in the product: usearch (vectors as float16), hnswlib and faiss' HNSW
(which cannot remove a vector). charaid.storage.index keeps ``exact`` and ``ivf``, the winner at
scale (docs/experiments.md, the `ann` block).

usearch and hnswlib come with the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charaid.storage.index import BACKENDS as PRODUCT_BACKENDS
from charaid.storage.index import LARGE_BACKEND, VectorIndex

HNSW = ("usearch", "hnswlib", "faiss")
BACKENDS = PRODUCT_BACKENDS + HNSW


def make_index(dim: int, backend: str = LARGE_BACKEND, capacity: int = 1024, **params) -> VectorIndex:
    """An index of any backend compared: the product's, or an HNSW library's."""
    if backend in HNSW:
        return HnswIndex(dim, backend, capacity=capacity, **params)
    return VectorIndex(dim, backend, capacity=capacity, **params)


class HnswIndex(VectorIndex):
    """:class:`VectorIndex`'s interface over an HNSW library."""

    def __init__(
        self,
        dim: int,
        backend: str = "usearch",
        capacity: int = 1024,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 128,
        threads: int = 2,
        **params,
    ):
        self._hnsw = dict(connectivity=connectivity, expansion_add=expansion_add, expansion_search=expansion_search)
        super().__init__(dim, backend, capacity, threads=threads, **self._hnsw, **params)

    def _check_backend(self, backend: str) -> None:
        if backend not in HNSW:
            raise ValueError(f"unknown HNSW backend {backend!r}; choose one of: {', '.join(HNSW)}")

    def _open(self, capacity: int) -> None:
        p = self._hnsw
        if self.backend == "usearch":
            from usearch.index import Index

            self._ix = Index(
                ndim=self.dim,
                metric="ip",
                dtype="f16",
                connectivity=p["connectivity"],
                expansion_add=p["expansion_add"],
                expansion_search=p["expansion_search"],
            )
        elif self.backend == "hnswlib":
            import hnswlib

            self._ix = hnswlib.Index(space="ip", dim=self.dim)
            self._ix.init_index(
                max_elements=max(capacity, 16),
                ef_construction=p["expansion_add"],
                M=p["connectivity"],
                allow_replace_deleted=True,
            )
            self._ix.set_ef(p["expansion_search"])
            self._ix.set_num_threads(self.threads)
        else:
            import faiss

            faiss.omp_set_num_threads(self.threads)
            hnsw = faiss.IndexHNSWFlat(self.dim, p["connectivity"] * 2, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = p["expansion_add"]
            hnsw.hnsw.efSearch = p["expansion_search"]
            self._ix = faiss.IndexIDMap2(hnsw)

    @property
    def needs_training(self) -> bool:
        return False

    def train(self, X: np.ndarray, count: int | None = None) -> None:
        return None

    def describe(self) -> str:
        p = self.params
        kind = {"usearch": "HNSW f16", "hnswlib": "HNSW f32", "faiss": "HNSW f32"}[self.backend]
        m = p["connectivity"] * (2 if self.backend == "faiss" else 1)
        return f"{kind}, M={m}, ef_add={p['expansion_add']}, ef_search={p['expansion_search']}"

    def set_expansion_search(self, ef: int) -> None:
        """Candidates kept while searching: higher finds more true neighbours, slower."""
        self.params["expansion_search"] = ef
        if self.backend == "usearch":
            self._ix.expansion_search = ef
        elif self.backend == "hnswlib":
            self._ix.set_ef(ef)
        else:
            import faiss

            faiss.downcast_index(self._ix.index).hnsw.efSearch = ef

    def add(self, ids: np.ndarray, X: np.ndarray) -> None:
        ids, X = self._checked(ids, X)
        if not len(ids):
            return
        if self.backend == "usearch":
            self._ix.add(ids, X, threads=self.threads)
        elif self.backend == "hnswlib":
            need = self._ix.get_current_count() + len(ids)
            if need > self._ix.get_max_elements():
                self._ix.resize_index(max(need, 2 * self._ix.get_max_elements()))
            self._ix.add_items(X, ids, num_threads=self.threads, replace_deleted=True)
        else:
            self._ix.add_with_ids(X, ids)
        self._n += len(ids)

    def remove(self, ids) -> None:
        ids = np.asarray(list(ids), np.int64)
        if not len(ids):
            return
        if self.backend == "usearch":
            self._n -= int(self._ix.remove(ids))
        elif self.backend == "hnswlib":
            for i in ids:
                self._ix.mark_deleted(int(i))
            self._n -= len(ids)
        else:
            raise NotImplementedError("faiss' HNSW index cannot remove vectors; rebuild it")

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        Q = np.ascontiguousarray(np.atleast_2d(Q), np.float32)
        k_eff = min(k, self._n)
        out_i = np.full((len(Q), k), -1, np.int64)
        out_s = np.full((len(Q), k), -np.inf, np.float32)
        if k_eff == 0:
            return out_i, out_s
        if self.backend == "usearch":
            m = self._ix.search(Q, k_eff, threads=self.threads)
            keys = np.asarray(m.keys).reshape(len(Q), -1)
            dist = np.asarray(m.distances).reshape(len(Q), -1)
            # one query gives a Matches (no counts), several a BatchMatches
            counts = np.asarray(m.counts).reshape(-1) if hasattr(m, "counts") else np.array([len(m.keys)])
            for r in range(len(Q)):
                c = int(counts[r])
                out_i[r, :c], out_s[r, :c] = keys[r, :c], 1.0 - dist[r, :c]
        elif self.backend == "hnswlib":
            lab, dist = self._ix.knn_query(Q, k=k_eff, num_threads=self.threads)
            out_i[:, :k_eff], out_s[:, :k_eff] = lab, 1.0 - dist
        else:
            sims, lab = self._ix.search(Q, k_eff)
            out_i[:, :k_eff], out_s[:, :k_eff] = lab, sims
        return out_i, out_s

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if self.backend == "usearch":
            self._ix.save(str(tmp))
        elif self.backend == "hnswlib":
            self._ix.save_index(str(tmp))
        else:
            import faiss

            faiss.write_index(self._ix, str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, dim: int, backend: str, count: int, **params) -> HnswIndex:
        ix = cls(dim, backend, capacity=max(count, 16), **params)
        if backend == "usearch":
            ix._ix.load(str(path))
        elif backend == "hnswlib":
            ix._ix.load_index(str(path), max_elements=max(count, 16))
            ix._ix.set_ef(ix.params["expansion_search"])
        else:
            import faiss

            ix._ix = faiss.read_index(str(path))
        ix._n = count
        return ix

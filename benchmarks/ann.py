"""Approximate nearest neighbours for big galleries: hnswlib, usearch and faiss on our vectors.

    python benchmarks/ann.py --n 100000 --backends exact,ivf,usearch,hnswlib,faiss   # the comparison
    python benchmarks/ann.py --n 1000000 --backends ivf --nprobe 1,4,16,64           # the kept one at scale
    python benchmarks/ann.py --n 1000000 --backends usearch --ef 64,128,256,512      # HNSW at scale

Synthetic vectors clustered like real characters: ``--centres`` unit centres (default n/50,
i.e. 20,000 for a million), members spread so that a member's cosine to its centre is about
0.9 and two members of one character meet at about 0.8 (what real same-character faces give in
charaid's default space). Dimension: the default embedder's (1472). 1,000 held-out queries;
recall@10 against exact search (brute force); single-query latency, one query at a time;
build time with both cores (for ``ivf`` including learning its cells); the index's memory.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ann_backends import BACKENDS, make_index  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.storage.index import ivf_cells  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def centres_of(count: int, dim: int, seed: int = 0) -> np.ndarray:
    C = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return C / np.linalg.norm(C, axis=1, keepdims=True)


def clustered(n: int, C: np.ndarray, seed: int, chunk: int = 50_000):
    """Yield (ids, vectors) chunks of n unit vectors around the unit centres C."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(0.23 / C.shape[1])  # cos(member, centre) ~ 0.9, two members ~ 0.8
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        X = C[rng.integers(len(C), size=m)] + sigma * rng.standard_normal((m, C.shape[1])).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        yield np.arange(start, start + m, dtype=np.int64), X


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1472)
    ap.add_argument("--centres", type=int, default=0, help="default: n / 50")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--backends", default=",".join(b for b in BACKENDS if b != "exact"))
    ap.add_argument("--ef", default="128", help="HNSW search expansions to measure, one build (e.g. 64,128,256)")
    ap.add_argument("--nprobe", default="16", help="ivf cells scanned per query to measure, one build (e.g. 1,4,16)")
    args = ap.parse_args()
    centres = args.centres or max(1, args.n // 50)
    print(f"# ANN: {args.n:,} vectors, dim {args.dim}, {centres:,} centres; {machine()}; {time.strftime('%Y-%m-%d')}\n")

    # held-out queries (new members of the same characters) and their exact answer, streamed
    C = centres_of(centres, args.dim)
    _, Q = next(clustered(args.queries, C, seed=1))
    best_s = np.full((args.queries, 10), -np.inf, np.float32)
    best_i = np.zeros((args.queries, 10), np.int64)
    t = time.time()
    for ids, X in clustered(args.n, C, seed=2):
        S = Q @ X.T
        part = np.argpartition(-S, 10, axis=1)[:, :10]
        cand_s = np.concatenate([best_s, np.take_along_axis(S, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, ids[part]], axis=1)
        top = np.argsort(-cand_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    exact_ms = (time.time() - t) / args.queries * 1000
    rows = [["exact (numpy, streamed)", "-", "-", f"{exact_ms:.1f} (batched)", "-", "1.000", "-"]]
    for backend in args.backends.split(","):
        gc.collect()
        m0 = rss_mb()
        idx = make_index(args.dim, backend=backend, capacity=args.n)
        t = time.time()
        if idx.needs_training:  # learn the cells from a sample of the vectors, as SyncedIndex does
            want = min(args.n, 40 * ivf_cells(args.n))
            sample = np.concatenate([X for _, X in clustered(want, C, seed=2)])  # drawn like the vectors
            idx.train(sample, count=args.n)
            del sample
        for ids, X in clustered(args.n, C, seed=2):
            idx.add(ids, X)
        build = time.time() - t
        mem = rss_mb() - m0
        efforts = {"exact": ["-"], "ivf": args.nprobe.split(",")}.get(backend, args.ef.split(","))
        for effort in efforts:
            if backend == "ivf":
                idx.set_nprobe(int(effort))
            elif backend != "exact":
                idx.set_expansion_search(int(effort))
            lat = []
            found = np.zeros((args.queries, 10), np.int64)
            for qi in range(args.queries):
                t = time.perf_counter()
                ids, _ = idx.search(Q[qi : qi + 1], 10)
                lat.append(time.perf_counter() - t)
                found[qi] = ids[0]
            recall = np.mean([len(set(found[i]) & set(best_i[i])) / 10 for i in range(args.queries)])
            lat_ms = np.array(lat) * 1000
            rows.append(
                [
                    f"{backend} ({idx.describe()})",
                    f"{build:.0f}",
                    f"{args.n / build:,.0f}",
                    f"{np.percentile(lat_ms, 50):.2f}",
                    f"{np.percentile(lat_ms, 95):.2f}",
                    f"{recall:.4f}",
                    f"{mem:,.0f}",
                ]
            )
            print("  [" + " | ".join(map(str, rows[-1])) + "]", file=sys.stderr, flush=True)
        print(f"  [{backend} done]", file=sys.stderr, flush=True)
        del idx
    print(table(["index", "build s", "vectors/s", "query p50 ms", "query p95 ms", "recall@10", "memory MB"], rows))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()

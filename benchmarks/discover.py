"""``charaid discover`` with the labels hidden: does it find the characters, and save clicks?

    python benchmarks/discover.py [--neighbours 10,15,20] [--links 0.05,0.1,0.15,0.2]

Each set's faces (the default embedder, as enrol cuts them) are clustered as ``discover`` does:
average linkage on shared nearest neighbours, cut at a link; and, for comparison, average
linkage on the cosine cut where only 1% or 20% of the impostor cohort's pairs lie above. BCubed precision, recall and F against the hidden labels; and clicks to name 90% of the
faces right, biggest clusters first (one click names a cluster by its majority character, one
more per face of another character in it), against one click per face in today's queue.

The link is chosen on moeimouto10's training half (the tuning set) and reported on the others,
which never chose it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds  # noqa: E402
from charaid.jobs.discover import bcubed, clicks_to_name, snn_clusters  # noqa: E402
from charaid.models.cohort import load_cohort  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402

TUNE = "moeimouto10 train (tuning)"


def cosine_link(cohort, quantile: float) -> float:
    rng = np.random.default_rng(0)
    C = np.asarray(cohort, np.float32)[rng.permutation(len(cohort))[:3000]]
    return float(np.quantile((C @ C.T)[np.triu_indices(len(C), 1)], quantile))


def cosine_clusters(X: np.ndarray, link: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = np.clip(1.0 - X.astype(np.float64) @ X.T.astype(np.float64), 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    return fcluster(linkage(squareform((D + D.T) / 2, checks=False), "average"), t=1.0 - link, criterion="distance")


def measure(d, ids) -> tuple[float, float, float, float]:
    """BCubed P, R, F and the clicks ratio (to 90% right, against one by one)."""
    p, r, f = bcubed(d.labels, ids)
    return p, r, f, clicks_to_name(d.labels, ids) / np.ceil(0.9 * len(d.labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neighbours", default="10,15,20")
    ap.add_argument("--links", default="0.05,0.1")
    args = ap.parse_args()
    emb = default_embedder()
    sets = load_sets(emb, DetectorSpec(), only={"moeimouto10 (split)", "danbooru6 (5-fold)", "newgame8 (5-fold)"})
    data = {
        TUNE: sets["moeimouto10 (split)"][0],
        "moeimouto10 test": sets["moeimouto10 (split)"][1],
        "danbooru6": sets["danbooru6 (5-fold)"][0],
        "newgame8": sets["newgame8 (5-fold)"][0],
    }
    t = Thresholds()
    print(f"# discover: {machine()}; {time.strftime('%Y-%m-%d')}; default k={t.discover_neighbours}, link={t.discover_link}\n")
    parts = []
    for name, d in data.items():
        ids = snn_clusters(d.X, t.discover_neighbours, t.discover_link)
        p, r, _, _ = measure(d, ids)
        parts.append(f"{name} {len(set(ids.tolist()))} clusters of {len(set(d.labels.tolist()))} characters, P {p:.3f} R {r:.3f}")
    print("Default: " + "; ".join(parts) + ".\n")
    held = list(data)[1:]
    grid = []
    settings = [
        (
            f"shared neighbours k={k}, link {x}" + (" (default)" if (k, x) == (t.discover_neighbours, t.discover_link) else ""),
            lambda X, k=k, x=x: snn_clusters(X, k, x),
        )
        for k in map(int, args.neighbours.split(","))
        for x in map(float, args.links.split(","))
    ]
    cohort = load_cohort(emb.model_id)
    if cohort is not None:
        link = cosine_link(cohort, 0.8)
        settings.append((f"cosine {link:.3f} (cohort's 80th percentile)", lambda X, link=link: cosine_clusters(X, link)))
    for label, fn in settings:
        m = {name: measure(d, fn(d.X)) for name, d in data.items()}
        grid.append([label, f"{m[TUNE][2]:.3f} / {m[TUNE][3]:.2f}"] + [f"{m[h][2]:.3f} / {m[h][3]:.2f}" for h in held])
    print(table(["clustering (F / clicks ratio)", "tuning: moeimouto10 train", *held], grid))


if __name__ == "__main__":
    main()

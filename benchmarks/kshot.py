"""K faces per character with the default (frozen) features: issue 3's K-shot protocol, every set.

    python benchmarks/kshot.py [--ks 5,10,30] [--seeds 5] [--method hybrid]

For each development set, K training faces per character are drawn with each of 5 fixed seeds
(the draw of benchmarks/finetune.py's kshot part, so its "before" column is reproduced here) and
the set's test faces are asked: moeimouto10's fixed test split, fold 0 of the k-fold sets (tla
6 folds, danbooru6 and newgame8 5 folds). A K larger than a character's training faces is
skipped for that set. Reports top-1 and top-5, mean and standard deviation over the seeds.
Vectors come from the cache that benchmarks/accuracy.py fills, so no training and little time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import kshot_draw, machine, table, topk_accuracy  # noqa: E402

from charaid.config import default_settings  # noqa: E402
from charaid.jobs.evaluate import subset  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.match import (
    METHODS,  # noqa: E402
    stratified_folds,  # noqa: E402
)
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402


def train_test(a, b, folds):
    if b is not None:
        return a, b
    fold = stratified_folds(a.labels, folds, 0)
    return subset(a, fold != 0), subset(a, fold == 0)


def kshot(tr, te, K: int, seed: int, method: str) -> tuple[float, float]:
    pick = kshot_draw(tr.labels, K, seed)
    return topk_accuracy(tr.X[pick], tr.labels[pick], te.X, te.labels, method)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="5,10,30")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--method", default="hybrid", choices=list(METHODS))
    args = ap.parse_args()
    emb = default_embedder()
    spec = DetectorSpec(max_side=default_settings().max_detect_side)
    print(
        f"# K faces per character, frozen default features: {emb.model_id}, matcher {args.method}; "
        f"{machine()}; {time.strftime('%Y-%m-%d')}\n"
    )
    ks = [int(k) for k in args.ks.split(",")]
    rows = []
    for name, (a, b, folds) in load_sets(emb, spec).items():
        if name == "tla (author split)":
            continue  # tla (6-fold) stands for tla
        tr, te = train_test(a, b, folds)
        fewest = min(int((tr.labels == c).sum()) for c in set(tr.labels))
        row: list = [name.split(" ")[0], len(te.labels)]
        for K in ks:
            if K > fewest:
                row.append("-")  # a character has fewer training faces than K
                continue
            r = np.array([kshot(tr, te, K, s, args.method) for s in range(args.seeds)])
            row.append(f"{r[:, 0].mean():.3f} ± {r[:, 0].std():.3f} / {r[:, 1].mean():.3f}")
        rows.append(row)
    print(f"Top-1 (mean ± sd over {args.seeds} draws of K faces) / top-5 (mean).\n")
    print(table(["set", "test faces", *(f"K={K}" for K in ks)], rows))


if __name__ == "__main__":
    main()

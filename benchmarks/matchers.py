"""Matchers and unknown scores side by side on the default features (issue 3, item 3).

    python benchmarks/matchers.py [--methods prototype,knn,logreg,hybrid]

For each matcher: closed-set top-1 (issue 2's protocols) and, with issue 2's leave-3-characters-out
draws, the AUROC of known against unknown faces for three ways to score "how known" a face is:
  max        the best character's score (what charaid thresholds)
  margin     the best score minus the second best (a face between two characters is doubtful)
  typical    the cosine to the best character's mean vector, whatever the matcher
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import closed_set, load_sets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import default_settings  # noqa: E402
from charaid.embed import default_embedder  # noqa: E402
from charaid.evaluate import split_holdout  # noqa: E402
from charaid.match import Matcher, auroc  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402

SCORES = ("max", "margin", "typical")


def unknown_aurocs(train, test, method: str, n_out: int = 3, draws: int = 5, seed: int = 0) -> dict[str, float]:
    """Mean AUROC per score over the same held-out draws as charaid.evaluate.leave_out_unknowns."""
    classes = sorted(set(train.labels.tolist()))
    n_out = min(n_out, len(classes) - 2) if len(classes) > 3 else 1
    combos = list(itertools.combinations(classes, n_out))
    chosen = [combos[i] for i in np.random.default_rng(seed).permutation(len(combos))[:draws]]
    out: dict[str, list[float]] = {s: [] for s in SCORES}
    for held in chosen:
        keep, known = ~np.isin(train.labels, held), ~np.isin(test.labels, held)
        m = Matcher(method).fit(train.labels[keep], train.X[keep])
        Qk, Qu = test.X[known], np.r_[train.X[~keep], test.X[~known]]
        for name, Q in (("k", Qk), ("u", Qu)):
            S = m.scores(Q)
            top2 = np.sort(S, axis=1)[:, -2:] if S.shape[1] > 1 else np.c_[np.zeros(len(S)), S[:, -1]]
            best = S.argmax(axis=1)
            vals = {"max": top2[:, 1], "margin": top2[:, 1] - top2[:, 0],
                    "typical": m.prototype_similarity(Q)[np.arange(len(Q)), best]}
            if name == "k":
                kv = vals
            else:
                for s in SCORES:
                    out[s].append(auroc(kv[s], vals[s]))
    return {s: float(np.mean(v)) for s, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="prototype,knn,logreg,hybrid")
    args = ap.parse_args()
    emb = default_embedder()
    sets = load_sets(emb, DetectorSpec(max_side=default_settings().max_detect_side))
    print(f"# matchers and unknown scores: {emb.model_id}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    closed, unk = [], []
    for method in args.methods.split(","):
        closed.append([method] + [r[3] for r in closed_set(sets, method)])
        per_set = []
        for name, (a, b, folds) in sets.items():
            if name == "tla (6-fold)":
                continue  # the author split stands for tla, as in benchmarks/accuracy.py
            tr, te = (a, b) if b is not None else split_holdout(a, 0.2)
            per_set.append(unknown_aurocs(tr, te, method))
        for s in SCORES:
            vals = [d[s] for d in per_set]
            unk.append([method, s] + vals + [float(np.mean(vals))])
    names = list(sets)
    print("## closed-set top-1\n")
    print(table(["matcher"] + names, closed))
    print("\n## unknowns: AUROC of known vs held-out faces (3 characters out, 1 for tla; 5 draws)\n")
    print(table(["matcher", "score"] + [n for n in names if n != "tla (6-fold)"] + ["mean"], unk))


if __name__ == "__main__":
    main()

"""Whitening within-character variation of the default features (issue 3, item 3): measured.

    python benchmarks/whitening.py [--lams 1,10] [--method hybrid]

Within-character covariance whitening (WCCN): x -> (Sw + lam I)^(-1/2) x, then unit length,
where Sw is the covariance of faces around their character's mean (scaled to unit mean
eigenvalue), so directions in which one character's faces vary (pose, background, crop)
count less. Two ways to learn Sw:

- ``cross``: from the other sets' characters (leave one set out; takimoto_hifumi, in both tla
  and newgame8, is left out of the other's), as a matrix shipped with charaid would be;
- ``own``: each matcher from the faces it is fitted on (held-out characters never count).

Issue 2's protocols (`benchmarks/accuracy.py`): closed-set top-1 and leave-3-out unknowns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import machine, table  # noqa: E402

import charaid.evaluate as ev  # noqa: E402
import charaid.match as match  # noqa: E402
from charaid.config import default_settings  # noqa: E402
from charaid.embed import default_embedder, l2_normalise  # noqa: E402
from charaid.evaluate import EmbeddedSet, evaluate_folds, evaluate_split, leave_out_unknowns, split_holdout  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402

SHORT = {"tla (author split)": "tla", "tla (6-fold)": "tla", "moeimouto10 (split)": "moe", "danbooru6 (5-fold)": "dan", "newgame8 (5-fold)": "ng8"}


def wccn(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    mus = {c: X[y == c].mean(0) for c in np.unique(y)}
    R = X - np.stack([mus[c] for c in y])
    Sw = R.T @ R / len(R)
    Sw *= Sw.shape[0] / np.trace(Sw)
    w, V = np.linalg.eigh(Sw + lam * np.eye(len(Sw)))
    return ((V / np.sqrt(w)) @ V.T).astype(np.float32)


class OwnWhitening(match.Matcher):
    """A matcher that whitens with the covariance of the faces it is fitted on."""

    lam = 1.0

    def fit(self, labels, X):
        labels, X = np.asarray(labels, dtype=object), np.asarray(X, np.float32)
        self._W = wccn(X, labels, self.lam) if len(set(labels.tolist())) >= 2 else np.eye(X.shape[1], dtype=np.float32)
        return super().fit(labels, l2_normalise(X @ self._W))

    def scores(self, Q):
        return super().scores(l2_normalise(np.asarray(Q, np.float32) @ self._W))

    def prototype_similarity(self, Q):
        return super().prototype_similarity(l2_normalise(np.asarray(Q, np.float32) @ self._W))


def run(sets, method, transform) -> list:
    top1, unk = [], []
    for name, (a, b, folds) in sets.items():
        a, b = transform(name, a), (transform(name, b) if b is not None else None)
        r = evaluate_split(a, b, method) if b is not None else evaluate_folds(a, folds, method)
        top1.append(r.top1)
        if name != "tla (6-fold)":
            tr, te = (a, b) if b is not None else split_holdout(a, 0.2)
            u = leave_out_unknowns(tr, te, n_out=3, draws=5, method=method)
            unk.append((u.auroc, u.rejected, u.known_accuracy))
    m = np.mean(unk, axis=0)
    return top1 + [u[0] for u in unk] + list(m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lams", default="1,10")
    ap.add_argument("--modes", default="cross,own")
    ap.add_argument("--method", default="hybrid")
    args = ap.parse_args()
    s = default_settings()
    sets = load_sets(default_embedder(), DetectorSpec(max_side=s.max_detect_side, thresholds=s.thresholds))
    whole = {SHORT[n]: a for n, (a, b, f) in sets.items() if n != "tla (author split)"}
    print(f"# whitening within-character variation; matcher {args.method}; {machine()}\n")
    rows = [["none", ""] + run(sets, args.method, lambda n, e: e)]
    for mode in args.modes.split(","):
        for lam in (float(v) for v in args.lams.split(",")):
            if mode == "cross":
                mats = {}
                for key in set(SHORT.values()):
                    Xs, ys = [], []
                    for k, e in whole.items():
                        if k == key:
                            continue
                        keep = np.array([not (lab == "takimoto_hifumi" and key in ("tla", "ng8")) for lab in e.labels])
                        Xs.append(e.X[keep])
                        ys.append(np.array([f"{k}:{lab}" for lab in e.labels[keep]], dtype=object))
                    mats[key] = wccn(np.concatenate(Xs), np.concatenate(ys), lam)
                rows.append([mode, lam] + run(sets, args.method, lambda n, e: EmbeddedSet(e.labels, e.paths, l2_normalise(e.X @ mats[SHORT[n]]))))
            else:
                OwnWhitening.lam = lam
                # evaluate and calibrate build their matchers by these names
                plain, match.Matcher = match.Matcher, OwnWhitening
                ev_plain, ev.Matcher = ev.Matcher, OwnWhitening
                try:
                    rows.append([mode, lam] + run(sets, args.method, lambda n, e: e))
                finally:
                    match.Matcher, ev.Matcher = plain, ev_plain
    names = list(sets)
    print(table(["whitening", "lam"] + [f"top-1 {n}" for n in names] + [f"AUROC {n}" for n in names if n != "tla (6-fold)"]
                + ["mean AUROC", "unknowns rejected", "known accuracy"], rows))


if __name__ == "__main__":
    main()

"""Matchers and unknown scores side by side on the default features (issue 3, item 3).

    python benchmarks/matchers.py [--methods prototype,knn,logreg,hybrid]

For each matcher: closed-set top-1 (issue 2's protocols) and, with issue 2's leave-3-characters-out
draws, the AUROC of known against unknown faces for three ways to score "how known" a face is:
  max        the best character's score (what charaid thresholds)
  margin     the best score minus the second best (a face between two characters is doubtful)
  typical    the cosine to the best character's mean vector, whatever the matcher
and, for the default matcher, unknowns rejected and known accuracy at one calibrated threshold
against one threshold per predicted character.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import closed_set, load_sets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import default_settings  # noqa: E402
from charaid.embed import default_embedder  # noqa: E402
from charaid.evaluate import held_out_draws, split_holdout  # noqa: E402
from charaid.match import Matcher, auroc  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402

SCORES = ("max", "margin", "typical")


def unknown_aurocs(train, test, method: str, n_out: int = 3, draws: int = 5, seed: int = 0) -> dict[str, float]:
    """Mean AUROC per score over the same held-out draws as charaid.evaluate.leave_out_unknowns."""
    chosen = held_out_draws(train.labels, n_out, draws, seed)
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


def _oof_and_stand_ins(labels, X, method, folds=5, seed=0):
    """(score, predicted, correct) out of fold for the gallery's faces, and (score, predicted) of each
    character's faces against a matcher fitted without it: calibrate()'s two samples, with the
    predicted character kept."""
    from charaid.evaluate import stratified_folds

    fold = stratified_folds(labels, folds, seed)
    ks, kp, kc = np.empty(len(labels)), np.empty(len(labels), object), np.empty(len(labels), bool)
    for f in range(folds):
        te = fold == f
        m = Matcher(method).fit(labels[~te], X[~te])
        S = m.scores(X[te])
        ks[te], kp[te] = S.max(1), m.classes[S.argmax(1)]
        kc[te] = kp[te] == labels[te]
    us, up = [], []
    for c in np.unique(labels):
        out = labels == c
        m = Matcher(method).fit(labels[~out], X[~out])
        S = m.scores(X[out])
        us.append(S.max(1))
        up.append(m.classes[S.argmax(1)])
    return ks, kp, kc, np.concatenate(us), np.concatenate(up)


def per_character_thresholds(train, test, method: str, n_out: int = 3, draws: int = 5, seed: int = 0, least: int = 5) -> dict[str, float]:
    """Unknowns rejected and known accuracy at one calibrated threshold and at one threshold per
    predicted character (calibrated the same way on the faces predicted as it; the global one
    where fewer than ``least`` known or stand-in faces were)."""
    from charaid.match import best_threshold, calibrate

    chosen = held_out_draws(train.labels, n_out, draws, seed)
    r: dict[str, list[float]] = {"global rejected": [], "global known": [], "per-char rejected": [], "per-char known": []}
    for held in chosen:
        keep, known = ~np.isin(train.labels, held), ~np.isin(test.labels, held)
        lab, X = train.labels[keep], train.X[keep]
        glob = calibrate(lab, X, method).threshold
        thr = {}
        if len(set(lab.tolist())) >= 3:
            ks, kp, kc, us, up = _oof_and_stand_ins(lab, X, method)
            for c in set(lab.tolist()):
                k, u = kp == c, up == c
                thr[c] = best_threshold(ks[k], kc[k], us[u])[0] if k.sum() >= least and u.sum() >= least else glob
        m = Matcher(method).fit(lab, X)
        Sk, Su = m.scores(test.X[known]), m.scores(np.r_[train.X[~keep], test.X[~known]])
        pk, pu = m.classes[Sk.argmax(1)], m.classes[Su.argmax(1)]
        ok = pk == test.labels[known]
        for name, tk, tu in (("global", np.full(len(pk), glob), np.full(len(pu), glob)),
                             ("per-char", np.array([thr.get(c, glob) for c in pk]), np.array([thr.get(c, glob) for c in pu]))):
            r[f"{name} rejected"].append(float((Su.max(1) < tu).mean()))
            r[f"{name} known"].append(float((ok & (Sk.max(1) >= tk)).mean()))
    return {k: float(np.mean(v)) for k, v in r.items()}


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
    thr_rows = []
    for name, (a, b, folds) in sets.items():
        if name == "tla (6-fold)":
            continue
        tr, te = (a, b) if b is not None else split_holdout(a, 0.2)
        d = per_character_thresholds(tr, te, "hybrid")
        thr_rows.append([name, d["global rejected"], d["global known"], d["per-char rejected"], d["per-char known"]])
    m = np.mean([r[1:] for r in thr_rows], axis=0)
    thr_rows.append(["mean"] + [float(v) for v in m])
    names = list(sets)
    print("## closed-set top-1\n")
    print(table(["matcher"] + names, closed))
    print("\n## unknowns: AUROC of known vs held-out faces (3 characters out, 1 for tla; 5 draws)\n")
    print(table(["matcher", "score"] + [n for n in names if n != "tla (6-fold)"] + ["mean"], unk))
    print("\n## hybrid: one threshold, or one per predicted character (same draws)\n")
    print(table(["set", "one: unknowns rejected", "one: known accuracy", "per character: rejected", "per character: known accuracy"], thr_rows))


if __name__ == "__main__":
    main()

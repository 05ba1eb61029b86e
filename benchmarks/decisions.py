"""Open-set decisions (issue 26): one calibrated threshold against the decision model.

    python benchmarks/decisions.py [--sets tla,moe,dan,ng8] [--no-cohort]

Issue 2's unknowns protocol on every set (3 characters held out, 1 of tla's 3; 5 draws): the
gallery is the rest of the training faces; known test faces and the held-out characters' faces
are asked. For each draw it fits the gallery's decision model (charaid.pipeline.decide: cohort
S-norm, margins, agreement, few-samples) on the gallery alone and reports:
- raw: AUROC of the matcher's best score, and named right / rejected at the gallery's threshold;
- decision: AUROC of the probability, known faces named right (confident), unknowns rejected
  (not confident), the probable tier (its names right, and the share of today's "unknown"
  known faces it holds), and calibration (mean promised probability of the confident names
  against their measured share right).
The probability thresholds are the shipped ``Thresholds.decision_named/decision_probable``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.jobs.evaluate import held_out_draws, split_holdout  # noqa: E402
from charaid.models.cohort import load_cohort  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.decide import CohortNorm, GalleryView, fit_decision  # noqa: E402
from charaid.pipeline.match import auroc, calibrate  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402

SHORT = {"tla": "tla (author split)", "moe": "moeimouto10 (split)", "dan": "danbooru6 (5-fold)", "ng8": "newgame8 (5-fold)"}


def run_set(tr, te, cohort, method, t: Thresholds, seed=0, **fit):
    """Issue 2's draws on one set; recognition's answer is the model's where the gallery has one
    and the calibrated threshold's where it is too small (2 characters: tla)."""
    acc = {k: [] for k in ("auc_raw", "named_raw", "rej_raw", "auc_p", "named", "rej", "wrong")}
    prob_right = prob_wrong = unk_today = unk_today_in_prob = 0
    conf_p, conf_ok, conf_w = [], [], []
    for held in held_out_draws(tr.labels, 3, 5, seed):
        keep = ~np.isin(tr.labels, held)
        kn = ~np.isin(te.labels, held)
        unk_X = np.r_[tr.X[~keep], te.X[~kn]]
        gl, gX = tr.labels[keep], tr.X[keep]
        cal = calibrate(gl, gX, method, seed=seed)
        model = fit_decision(gl, gX, method, cohort, seed=seed, **fit)
        view = GalleryView.build(gl, gX, method, CohortNorm(cohort))
        use = model.use if model else (0,)
        Fk, jk = view.features(te.X[kn], use=use)
        Fu, _ = view.features(unk_X, use=use)
        ks, us = Fk[:, 0], Fu[:, 0]
        ok = view.matcher.classes[jk] == te.labels[kn]
        acc["auc_raw"].append(auroc(ks, us))
        acc["named_raw"].append(float((ok & (ks >= cal.threshold)).mean()))
        acc["rej_raw"].append(float((us < cal.threshold).mean()))
        if model is None:  # too small a gallery: the threshold names, nothing is probable
            nk, nu = ks >= cal.threshold, us >= cal.threshold
            probk, probu = np.zeros(len(ks), bool), np.zeros(len(us), bool)
            acc["auc_p"].append(auroc(ks, us))
        else:
            pk, pu = model.probability(Fk), model.probability(Fu)
            acc["auc_p"].append(auroc(pk, pu))
            nk, nu = pk >= t.decision_named, pu >= t.decision_named
            probk = (pk >= t.decision_probable) & ~nk
            probu = (pu >= t.decision_probable) & ~nu
            # known and unknown faces weigh half each, the prior the model is fitted for
            conf_p += [pk[nk], pu[nu]]
            conf_ok += [ok[nk], np.zeros(int(nu.sum()), bool)]
            conf_w += [np.full(int(nk.sum()), 0.5 / len(pk)), np.full(int(nu.sum()), 0.5 / len(pu))]
        acc["named"].append(float((ok & nk).mean()))
        acc["wrong"].append(float((~ok & nk).mean()))
        acc["rej"].append(float((~nu).mean()))
        # the probable tier on the same half-and-half weighing
        prob_right += (probk & ok).sum() / len(ks)
        prob_wrong += (probk & ~ok).sum() / len(ks) + probu.sum() / len(us)
        today_unknown = ks < cal.threshold
        unk_today += int((today_unknown & ok).sum())
        unk_today_in_prob += int((today_unknown & ok & probk).sum())
    m = {k: float(np.mean(v)) for k, v in acc.items()}
    m["prob_precision"] = prob_right / max(1e-9, prob_right + prob_wrong)
    m["prob_holds"] = unk_today_in_prob / max(1, unk_today)
    if conf_p:
        cp, co, cw = np.concatenate(conf_p), np.concatenate(conf_ok), np.concatenate(conf_w)
        m["promised"], m["measured"] = float((cp * cw).sum() / cw.sum()), float((co * cw).sum() / cw.sum())
    else:
        m["promised"] = m["measured"] = float("nan")
    return m


def sizes_table(sets, cohort, method, t: Thresholds, sizes=(3, 8, 20), draws=10, seed=0) -> list[list]:
    """Calibration across gallery sizes: galleries of ``n`` characters drawn from every set's
    characters pooled (27); 80% of each character's faces enrolled, the other 20% asked, and as
    many faces of characters outside the gallery. Among the confident names: the mean
    probability the model promised against the share that was right (known and unknown faces
    weighed as they come: half and half)."""
    X = np.concatenate([a.X for name, (a, b, _) in sets.items() if name != "tla (6-fold)"])
    y = np.concatenate(
        [np.array([f"{name}:{v}" for v in a.labels], dtype=object) for name, (a, b, _) in sets.items() if name != "tla (6-fold)"]
    )
    chars = sorted(set(y.tolist()))
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        promised, right, named_known, n_known, rejected, n_unknown = [], [], 0, 0, 0, 0
        for _ in range(draws):
            pick = set(rng.choice(chars, n, replace=False).tolist())
            inside = np.isin(y, list(pick))
            fold = np.zeros(len(y), bool)
            for c in sorted(pick):  # a set's order changes from process to process (hash seeds): sorted, the draws repeat
                idx = np.flatnonzero(y == c)
                fold[rng.choice(idx, max(1, len(idx) // 5), replace=False)] = True
            gal, ask = inside & ~fold, inside & fold
            outside = np.flatnonzero(~inside)
            unk = rng.choice(outside, min(len(outside), int(ask.sum())), replace=False)
            model = fit_decision(y[gal], X[gal], method, cohort, seed=seed)
            view = GalleryView.build(y[gal], X[gal], method, CohortNorm(cohort))
            assert model is not None
            Fk, jk = view.features(X[ask], use=model.use)
            Fu, _ = view.features(X[unk], use=model.use)
            pk, pu = model.probability(Fk), model.probability(Fu)
            ok = view.matcher.classes[jk] == y[ask]
            nk, nu = pk >= t.decision_named, pu >= t.decision_named
            promised += [pk[nk], pu[nu]]
            right += [ok[nk], np.zeros(int(nu.sum()), bool)]
            named_known += int((ok & nk).sum())
            n_known += len(pk)
            rejected += int((~nu).sum())
            n_unknown += len(pu)
        p, r = np.concatenate(promised), np.concatenate(right)
        rows.append(
            [n, draws, n_known, n_unknown, named_known / n_known, rejected / n_unknown, len(p), float(p.mean()), float(r.mean())]
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="tla,moe,dan,ng8")
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--no-cohort", action="store_true", help="decide without the cohort (k-NN cosines stand in)")
    ap.add_argument("--use", help="features the model reads (indices into charaid.pipeline.decide.FEATURES)")
    ap.add_argument("--share", type=float, help="weight of held-out characters among the unknowns")
    ap.add_argument("--sizes", action="store_true", help="also calibration across gallery sizes (3, 8, 20 characters)")
    args = ap.parse_args()
    fit = {}
    if args.use:
        fit["use"] = [int(v) for v in args.use.split(",")]
    if args.share is not None:
        fit["held_out_share"] = args.share
    emb = default_embedder()
    s = default_settings()
    t = s.thresholds
    cohort = None if args.no_cohort else load_cohort(emb.model_id)
    if cohort is None and not args.no_cohort:
        raise SystemExit(f"no cohort shipped for {emb.model_id}: charaid build-cohort")
    names = [SHORT[k] for k in args.sets.split(",")]
    sets = load_sets(emb, DetectorSpec(max_side=s.max_detect_side, thresholds=t), only=names)
    print(
        f"Cohort {0 if cohort is None else len(cohort)} faces; named from p >= {t.decision_named}, probable from {t.decision_probable}.\n"
    )
    rows, agg = [], []
    for name in names:
        a, b, _ = sets[name]
        tr, te = (a, b) if b is not None else split_holdout(a, 0.2)
        m = run_set(tr, te, cohort, args.method, t, **fit)
        agg.append(m)
        rows.append(
            [
                name,
                m["auc_raw"],
                m["named_raw"],
                m["rej_raw"],
                m["auc_p"],
                m["named"],
                m["wrong"],
                m["rej"],
                m["prob_precision"],
                m["prob_holds"],
                f"{m['promised']:.3f} / {m['measured']:.3f}",
            ]
        )
    mean = {k: float(np.mean([m[k] for m in agg])) for k in ("auc_raw", "named_raw", "rej_raw", "auc_p", "named", "wrong", "rej")}
    rows.append(
        [
            "mean",
            mean["auc_raw"],
            mean["named_raw"],
            mean["rej_raw"],
            mean["auc_p"],
            mean["named"],
            mean["wrong"],
            mean["rej"],
            "",
            "",
            "",
        ]
    )
    print(
        table(
            [
                "set",
                "AUROC raw",
                "named right (threshold)",
                "rejected (threshold)",
                "AUROC decision",
                "named right",
                "named wrong",
                "unknowns rejected",
                "probable tier right (half known, half unknown faces)",
                "right first guesses answered unknown today: probable now",
                "confident: promised / measured (half and half)",
            ],
            rows,
        )
    )
    if args.sizes:
        print("\n#### calibration across gallery sizes (every set's characters pooled)\n")
        print(
            table(
                [
                    "characters",
                    "galleries",
                    "known faces",
                    "unknown faces",
                    "named right",
                    "unknowns rejected",
                    "confident names",
                    "promised (mean p)",
                    "measured right",
                ],
                sizes_table(sets, cohort, args.method, t),
            )
        )


if __name__ == "__main__":
    main()

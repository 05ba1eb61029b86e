"""Accuracy after ``charaid train`` (issue 3's protocol), beside the ImageNet features it replaces.

    python benchmarks/finetune.py [--parts closed,kshot,unknown] [--sets tla,moe,dan,ng8]
                                  [--draws 3] [--ks 5,10,30] [--kshot-sets moe] [--init PT]

Every fine-tuning here trains only on the training part of its split (never on a test face).
  closed:  tla 6-fold, moeimouto10 fixed split, danbooru6 5-fold, newgame8 5-fold; top-1/top-5
           before (ImageNet EfficientNet-Lite0 + colour, hybrid matcher) and after fine-tuning;
  kshot:   K in {5, 10, 30} faces per character (where the set has them) over 5 fixed seeds,
           tested on the set's test split (fold 0 for the k-fold sets); mean and spread;
  unknown: 3 characters held out (1 for tla) over 3 draws; the model is trained on the others
           exactly as `charaid train` does it (calibration run included), and the threshold it
           calibrates is the one measured.
The detector's colour cues (charaid.models.colours) are also joined to the tuned network at CUE_WEIGHTS:
closed-set "top-1 after + cues W" and unknowns' "AUROC tuned + cues W" (the tuned network alone,
"top-1 after" and "AUROC tuned alone", is what `charaid train` made before the colours joined
its space; since then its space is the tuned network + cues at Thresholds.tuned_cue_weight).
Results are cached per run in bench-out/finetune/, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import kshot_draw, machine, table, topk_accuracy  # noqa: E402

from charaid.config import Thresholds  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.match import (  # noqa: E402
    Matcher,
    auroc,
    best_threshold,
    stratified_folds,  # noqa: E402
)
from charaid.pipeline.prepare import DetectorSpec, prepare_many  # noqa: E402
from charaid.training.tune import TrainConfig, TunedEmbedder, fine_tune  # noqa: E402

OUT = datasets.ROOT / "bench-out" / "finetune"
CFG = TrainConfig()
#: --init: the top starts from experiments/selfsup.py's weights (and results are cached apart).
INIT: dict = {"top": None, "tag": ""}
#: Weights at which the detector's colour cues (charaid.models.colours) are joined to the tuned network,
#: as the default embedder joins them to the ImageNet one (issue 3, item 2).
CUE_WEIGHTS = (0.25, 0.5)


def with_cues(X: np.ndarray, C: np.ndarray, w: float) -> np.ndarray:
    """The tuned vectors joined with the cue block at weight ``w`` (as charaid.models.embedders.ConcatEmbedder joins blocks)."""
    return np.concatenate([X, C * w], axis=1) / np.sqrt(1 + w * w)


def cue_vectors(crops) -> np.ndarray:
    from charaid.models.embedders import CueColourEmbedder

    return CueColourEmbedder().embed_batch(crops)


def load_crops(name: str, items, detect: bool):
    """(labels, crops) of a set, the largest face of each image, as charaid would enrol them."""
    labels, crops = [], []
    for (c, _), prep in zip(items, prepare_many([p for _, p in items], detect, DetectorSpec(), workers=2, with_hash=False)):
        if prep.crops:
            labels.append(c)
            crops.append(prep.crops[prep.largest()])
    return np.array(labels, dtype=object), crops


def sets(names):
    out = {}
    if "tla" in names:
        out["tla"] = (load_crops("tla", datasets.tla_faces(), False), None, 6)
    if "moe" in names:
        tr, te = datasets.moeimouto10()
        out["moe"] = (load_crops("moe-train", tr, False), load_crops("moe-test", te, False), 0)
    if "dan" in names:
        out["dan"] = (load_crops("danbooru6", datasets.danbooru6(), False), None, 5)
    if "ng8" in names:
        out["ng8"] = (load_crops("newgame8", datasets.newgame8_singles(), True), None, 5)
    return out


def cached(key: str, fn):
    f = OUT / f"{INIT['tag']}{key}.json"
    if f.exists():
        return json.loads(f.read_text())
    r = fn()
    OUT.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(r))
    return r


def train_and_embed(la, ca, others):
    t = time.time()
    state, st = fine_tune(ca, list(la), CFG, init_top=INIT["top"])
    secs = time.time() - t
    emb = TunedEmbedder(state, CFG, "bench")
    return secs, emb.embed_batch(ca), [emb.embed_batch(o) for o in others]


def splits(data, folds):
    (la, ca), test, k = data
    if test is not None:
        yield 0, (la, ca), test
        return
    fold = stratified_folds(la, k, 0)
    for f in range(k):
        tr, te = fold != f, fold == f
        yield f, (la[tr], [c for c, x in zip(ca, tr) if x]), (la[te], [c for c, x in zip(ca, te) if x])


def part_closed(S):
    rows = []
    base = default_embedder()
    for name, data in S.items():
        res = []
        for f, (la, ca), (lb, cb) in splits(data, None):

            def run():
                Xa0, Xb0 = base.embed_batch(ca), base.embed_batch(cb)
                before = topk_accuracy(Xa0, la, Xb0, lb, Thresholds().default_matcher)
                secs, Xa, (Xb,) = train_and_embed(la, ca, [cb])
                after = topk_accuracy(Xa, la, Xb, lb, Thresholds().tuned_matcher)
                Ca, Cb = cue_vectors(ca), cue_vectors(cb)
                cues = {
                    str(w): topk_accuracy(with_cues(Xa, Ca, w), la, with_cues(Xb, Cb, w), lb, Thresholds().tuned_matcher)
                    for w in CUE_WEIGHTS
                }
                return {
                    "n": len(lb),
                    "before": before,
                    "after": after,
                    "after_cues": cues,
                    "train_s": secs,
                    "train_faces": len(la),
                }

            res.append(cached(f"closed-c-{name}-{f}", run))
        n = sum(r["n"] for r in res)
        w = lambda key, i: sum(r[key][i] * r["n"] for r in res) / n  # noqa: E731
        cue_top1 = [sum(r["after_cues"][str(cw)][0] * r["n"] for r in res) / n for cw in CUE_WEIGHTS]
        rows.append(
            [
                name,
                len(res),
                n,
                w("before", 0),
                w("after", 0),
                *cue_top1,
                w("before", 1),
                w("after", 1),
                f"{np.mean([r['train_s'] for r in res]):.0f} s / {np.mean([r['train_faces'] for r in res]):.0f} faces",
            ]
        )
    return rows


def part_kshot(S, ks=(5, 10, 30), only=None):
    rows = []
    base = default_embedder()
    for name, data in S.items():
        if name == "tla" or (only and name not in only):
            continue  # tla: 36 faces a character, K=30 would leave almost nothing to test
        _, (la, ca), (lb, cb) = next(iter(splits(data, None)))
        Xb0 = base.embed_batch(cb)
        for K in ks:
            counts = {c: (la == c).sum() for c in set(la)}
            if min(counts.values()) < K:
                continue
            accs, accs0 = [], []
            for seed in range(5):
                pick = kshot_draw(la, K, seed)
                lk, ck = la[pick], [ca[i] for i in pick]

                def run():
                    before = topk_accuracy(base.embed_batch(ck), lk, Xb0, lb, Thresholds().default_matcher)[0]
                    secs, Xa, (Xb,) = train_and_embed(lk, ck, [cb])
                    return {
                        "before": before,
                        "after": topk_accuracy(Xa, lk, Xb, lb, Thresholds().tuned_matcher)[0],
                        "train_s": secs,
                    }

                r = cached(f"kshot-{name}-{K}-{seed}", run)
                accs.append(r["after"])
                accs0.append(r["before"])
            rows.append(
                [name, K, len(accs), f"{np.mean(accs0):.3f} ± {np.std(accs0):.3f}", f"{np.mean(accs):.3f} ± {np.std(accs):.3f}"]
            )
    return rows


def part_unknown(S, draws=3):
    import tempfile

    from charaid.storage.gallery import Gallery, NewSample
    from charaid.training.tune import train_gallery

    rows, agg = [], []
    for name, data in S.items():
        _, (la, ca), (lb, cb) = next(iter(splits(data, None)))
        classes = sorted(set(la))
        n_out = 3 if len(classes) > 3 else 1
        combos = list(itertools.combinations(classes, n_out))
        order = np.random.default_rng(0).permutation(len(combos))[:draws]
        res = []
        for d, ci in enumerate(order):
            held = list(combos[ci])

            def run():
                keep = ~np.isin(la, held)
                with tempfile.TemporaryDirectory() as tmp:
                    with Gallery(Path(tmp) / "g.sqlite") as g:
                        g.add(
                            [
                                NewSample(str(c), f"{i}", np.zeros(1, np.float32), crop=im)
                                for i, (c, im) in enumerate(zip(la, ca))
                                if keep[i]
                            ],
                            "none",
                            1,
                        )
                        t = time.time()
                        train_gallery(g, CFG)
                        secs = time.time() - t
                        from charaid.recognition.recognize import Recognizer

                        rec = Recognizer(g)
                        thr = rec.threshold
                        kt = ~np.isin(lb, held)
                        Xk = rec.embedder.embed_batch([c for c, x in zip(cb, kt) if x])
                        Xu = rec.embedder.embed_batch([c for c, x in zip(ca, ~keep) if x] + [c for c, x in zip(cb, ~kt) if x])
                        Sk, Su = rec.matcher.scores(Xk), rec.matcher.scores(Xu)
                        ks, us = Sk.max(axis=1), Su.max(axis=1)
                        ok = rec.matcher.classes[Sk.argmax(axis=1)] == lb[kt]
                        o = best_threshold(ks, ok, us)
                        # the tuned network alone and joined with the colour cues at each weight:
                        # AUROC and the best threshold in hindsight
                        core = getattr(rec.embedder, "parts", [rec.embedder])[0]
                        Xk, Xu = (
                            core.embed_batch([c for c, x in zip(cb, kt) if x]),
                            core.embed_batch([c for c, x in zip(ca, ~keep) if x] + [c for c, x in zip(cb, ~kt) if x]),
                        )
                        Xg = core.embed_batch([c for c, x in zip(ca, keep) if x])
                        Cg = cue_vectors([c for c, x in zip(ca, keep) if x])
                        Ck = cue_vectors([c for c, x in zip(cb, kt) if x])
                        Cu = cue_vectors([c for c, x in zip(ca, ~keep) if x] + [c for c, x in zip(cb, ~kt) if x])
                        cues = {}
                        for w in (0.0, *CUE_WEIGHTS):  # 0: the tuned network alone
                            mj = Matcher(Thresholds().tuned_matcher).fit(la[keep], with_cues(Xg, Cg, w))
                            Sk2, Su2 = mj.scores(with_cues(Xk, Ck, w)), mj.scores(with_cues(Xu, Cu, w))
                            ok2 = mj.classes[Sk2.argmax(axis=1)] == lb[kt]
                            cues[str(w)] = {
                                "auroc": auroc(Sk2.max(axis=1), Su2.max(axis=1)),
                                "oracle": best_threshold(Sk2.max(axis=1), ok2, Su2.max(axis=1)),
                            }
                        return {
                            "auroc": auroc(ks, us),
                            "rejected": float((us < thr).mean()),
                            "known_acc": float((ok & (ks >= thr)).mean()),
                            "threshold": thr,
                            "oracle": o,
                            "n_unknown": int(len(us)),
                            "train_s": secs,
                            "held": held,
                            "cues": cues,
                        }

            res.append(cached(f"unknown-c2-{name}-{d}", run))
        m = [float(np.mean([r[k] for r in res])) for k in ("auroc", "rejected", "known_acc", "threshold")]
        cue_auc = [float(np.mean([r["cues"][str(w)]["auroc"] for r in res])) for w in (0.0, *CUE_WEIGHTS)]
        rows.append(
            [
                name,
                len(res),
                sum(r["n_unknown"] for r in res),
                m[0],
                *cue_auc,
                *m[1:],
                f"{np.mean([r['train_s'] for r in res]):.0f} s",
            ]
        )
        agg.append([m[0], *cue_auc, *m[1:3]])
    a = np.mean(agg, axis=0)
    rows.append(["mean", "", "", *map(float, a), "", ""])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="closed,kshot,unknown")
    ap.add_argument("--sets", default="tla,moe,dan,ng8")
    ap.add_argument("--draws", type=int, default=3, help="held-out draws per set for the unknowns part")
    ap.add_argument("--ks", default="5,10,30", help="K values of the kshot part")
    ap.add_argument("--init", metavar="PT", help="start the top from an embedder.pt of experiments/selfsup.py")
    ap.add_argument("--kshot-sets", default="", help="restrict the kshot part to these sets (default: all but tla)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if args.init:
        import hashlib

        import torch

        INIT["top"] = torch.load(args.init, map_location="cpu", weights_only=False)["top"]
        INIT["tag"] = f"init-{hashlib.sha1(Path(args.init).read_bytes()).hexdigest()[:10]}-"
        print(f"# the top starts from {args.init} (experiments/selfsup.py), not ImageNet\n")
    S = sets(args.sets.split(","))
    print(f"# fine-tuning: {CFG}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    if "closed" in parts:
        print("## closed set, before and after fine-tuning\n")
        print(
            table(
                [
                    "set",
                    "folds",
                    "test faces",
                    "top-1 before",
                    "top-1 after",
                    *[f"top-1 after + cues {w:g}" for w in CUE_WEIGHTS],
                    "top-5 before",
                    "top-5 after",
                    "training time (mean)",
                ],
                part_closed(S),
            )
        )
    if "kshot" in parts:
        print("\n## K faces per character (5 seeds: mean ± standard deviation of top-1)\n")
        print(
            table(
                ["set", "K", "seeds", "top-1 before", "top-1 after"],
                part_kshot(S, [int(k) for k in args.ks.split(",")], set(filter(None, args.kshot_sets.split(",")))),
            )
        )
    if "unknown" in parts:
        print("\n## unknowns: characters held out of training; threshold from charaid train's calibration run\n")
        print(
            table(
                [
                    "set",
                    "draws",
                    "unknown faces",
                    "AUROC (charaid train's space)",
                    "AUROC tuned alone",
                    *[f"AUROC tuned + cues {w:g}" for w in CUE_WEIGHTS],
                    "unknowns rejected",
                    "known accuracy",
                    "threshold",
                    "train time",
                ],
                part_unknown(S, args.draws),
            )
        )


if __name__ == "__main__":
    main()

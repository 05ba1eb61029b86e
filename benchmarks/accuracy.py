"""Recognition accuracy on the real sets of ../shared/data (issue 2's protocol).

    python benchmarks/accuracy.py [--method logreg|prototype|knn] [--margin 0.25]

Prints one table per protocol:
  closed-set top-1/top-5: tla author split, tla 6-fold, moeimouto10 split, danbooru6 5-fold,
      newgame8 5-fold (faces detected in its single-character illustrations);
  unknowns: 3 characters held out of each set (1 of tla's 3), threshold calibrated on the rest;
  photos: how many of 64 photos of real people get a known character's name;
  end to end: enrol tla faces 1-30, recognise the full illustrations 31-36.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import embedded, machine, table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.jobs.evaluate import (  # noqa: E402
    EmbeddedSet,
    evaluate_folds,
    evaluate_split,
    leave_out_unknowns,
    split_holdout,
)
from charaid.models.cohort import load_cohort  # noqa: E402
from charaid.models.detectors import DEFAULT_DETECTOR  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.decide import CohortNorm, GalleryView, decide_faces, fit_decision  # noqa: E402
from charaid.pipeline.match import Matcher, calibrate  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec, prepare_many  # noqa: E402


def load_sets(embedder, spec, only=None) -> dict[str, tuple[EmbeddedSet, EmbeddedSet | None, int]]:
    """name -> (train or whole set, fixed test set or None, folds); ``only``: these names alone."""
    tr, te = datasets.tla_author_split()
    mtr, mte = datasets.moeimouto10()
    build = {
        "tla (author split)": lambda: (embedded("tla-train", tr, embedder, False), embedded("tla-test", te, embedder, False), 0),
        "tla (6-fold)": lambda: (embedded("tla", datasets.tla_faces(), embedder, False), None, 6),
        "moeimouto10 (split)": lambda: (
            embedded("moe-train", mtr, embedder, False),
            embedded("moe-test", mte, embedder, False),
            0,
        ),
        "danbooru6 (5-fold)": lambda: (embedded("danbooru6", datasets.danbooru6(), embedder, False), None, 5),
        "newgame8 (5-fold)": lambda: (embedded("newgame8", datasets.newgame8_singles(), embedder, True, spec), None, 5),
    }
    return {name: make() for name, make in build.items() if only is None or name in only}


def closed_set(sets, method) -> list[list]:
    rows = []
    for name, (a, b, folds) in sets.items():
        r = evaluate_split(a, b, method) if b is not None else evaluate_folds(a, folds, method)
        rows.append([name, r.n, len(r.classes), r.top1, r.top5])
    return rows


def unknowns(sets, method) -> tuple[list[list], list[float]]:
    rows, agg = [], []
    for name, (a, b, _folds) in sets.items():
        if name == "tla (6-fold)":
            continue  # the author split stands for tla
        tr, te = (a, b) if b is not None else split_holdout(a, 0.2)
        u = leave_out_unknowns(tr, te, n_out=3, draws=5, method=method)
        rows.append([name, u.draws, u.n_unknown, u.auroc, u.rejected, u.known_accuracy, u.threshold])
        agg.append((u.auroc, u.rejected, u.known_accuracy))
    m = np.mean(agg, axis=0)
    rows.append(["mean", "", "", float(m[0]), float(m[1]), float(m[2]), ""])
    return rows, list(m)


def variant_row(name, sets, method: str = "hybrid") -> tuple[list[str], list]:
    """One table row for a variant of the features: every set's closed-set top-1 and unknown
    AUROC, then the means of the unknowns part; returns (headers, row)."""
    cs = closed_set(sets, method)
    un, mean = unknowns(sets, method)
    heads = [
        "variant",
        *(f"top-1 {r[0]}" for r in cs),
        *(f"AUROC {r[0]}" for r in un[:-1]),
        "mean AUROC",
        "unknowns rejected",
        "known accuracy",
    ]
    return heads, [name] + [r[3] for r in cs] + [r[3] for r in un[:-1]] + list(mean)


def gallery_of_all(sets) -> tuple[np.ndarray, np.ndarray]:
    parts = [(a.labels, a.X) for name, (a, b, f) in sets.items() if name != "tla (6-fold)"]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def photos(sets, embedder, spec, method) -> list[list]:
    labels, X = gallery_of_all(sets)
    m = Matcher(method).fit(labels, X)
    thr = calibrate(labels, X, method).threshold
    paths = datasets.photos()
    with_face, named, faces = 0, [], 0
    for prep in prepare_many(paths, True, spec, workers=2, with_hash=False):
        if not prep.crops:
            continue
        with_face += 1
        faces += len(prep.crops)
        for mt in m.match(embedder.embed_batch(prep.crops), thr):
            if mt.character:
                named.append(f"{Path(prep.path).name}->{mt.character}({mt.score:.2f})")
    return [[len(paths), with_face, faces, len(set(n.split("->")[0] for n in named)), ", ".join(named) or "-"]]


def end_to_end(sets, embedder, spec, method) -> list[list]:
    """tla's end-to-end check, answered as ``charaid recognize`` answers: the gallery's decision
    model (charaid.pipeline.decide) names, says "probably X" or unknown."""
    a = sets["tla (author split)"][0]
    thresholds = default_settings().thresholds
    cohort = load_cohort(embedder.model_id)
    view = GalleryView.build(a.labels, a.X, method, CohortNorm(cohort))
    model = fit_decision(a.labels, a.X, method, cohort)
    thr = calibrate(a.labels, a.X, method).threshold
    items = datasets.tla_raw_test()
    found = largest_ok = any_ok = top1 = probable_ok = wrong = 0
    t = time.time()
    spec = replace(spec, framings=thresholds.recognition_framings)  # as Recognizer cuts them
    for (truth, _), prep in zip(items, prepare_many([p for _, p in items], True, spec, workers=2, with_hash=False)):
        if not prep.crops:
            continue
        found += 1
        framings = [
            decide_faces(view.matcher, view, model, embedder.embed_batch(c), 5, thresholds, fallback=thr)
            for c in [prep.crops, *prep.framings]
        ]
        res = [max(options, key=lambda a: a[1].probability or a[0].score) for options in zip(*framings)]
        big = prep.largest()
        m, d = res[big]
        largest_ok += d.character == truth
        wrong += d.character is not None and d.character != truth
        probable_ok += d.probable == truth
        top1 += m.top[0].character == truth
        any_ok += any(d.character == truth for _, d in res)
    return [[len(items), found, top1, largest_ok, wrong, probable_ok, any_ok, f"{time.time() - t:.1f}"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="logreg", choices=["hybrid", "logreg", "prototype", "knn"])
    ap.add_argument("--margin", type=float, default=Thresholds().crop_margin, help="crop margin for detected faces")
    ap.add_argument(
        "--detector", default=DEFAULT_DETECTOR, help=f"detector of newgame8, photos and end to end (default {DEFAULT_DETECTOR})"
    )
    args = ap.parse_args()
    embedder = default_embedder()
    s = default_settings()
    spec = DetectorSpec(args.detector, max_side=s.max_detect_side, thresholds=replace(s.thresholds, crop_margin=args.margin))
    print(
        f"# accuracy: {embedder.model_id}, matcher {args.method}, crop margin {args.margin}; {machine()}; "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    sets = load_sets(embedder, spec)
    print("## closed set\n")
    print(table(["set", "test faces", "characters", "top-1", "top-5"], closed_set(sets, args.method)))
    print("\n## photos of real people, gallery = all sets' training faces (29 characters)\n")
    print(table(["photos", "with a 'face'", "faces", "photos named", "names given"], photos(sets, embedder, spec, args.method)))
    print("\n## end to end: enrol tla faces 1-30, recognise full illustrations 31-36\n")
    print(
        table(
            [
                "illustrations",
                "face found",
                "largest face top-1",
                "largest face named right",
                "named wrong",
                "probably right",
                "any face named right",
                "seconds",
            ],
            end_to_end(sets, embedder, spec, args.method),
        )
    )


if __name__ == "__main__":
    main()

"""Look-alike groups of the /label page: are they pure, and do they still save clicks?

    python benchmarks/label_groups.py

For newgame8 and moeimouto10 faces: the gallery holds half the characters (their training
faces); the queue holds every other face. Faces the gallery calls unknown-looking (best score
under its calibrated threshold) are grouped, as charaid.jobs.labelling does, at the gallery's
lower-quartile same-character similarity, by single linkage (before issue 26) and by complete
linkage (now). Purity: the share of grouped faces that belong to their group's majority
character. Clicks: one per group (named in one go) plus one per face outside a group, against
one per face.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import table  # noqa: E402

from charaid.config import default_settings  # noqa: E402
from charaid.jobs.evaluate import split_holdout  # noqa: E402
from charaid.jobs.labelling import complete_linkage_groups  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.match import Matcher, calibrate  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402


def single_linkage_groups(X: np.ndarray, link: float) -> list[list[int]]:
    """The grouping /label used before issue 26 (union-find over pairs above ``link``)."""
    parent = list(range(len(X)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    S = X @ X.T
    for a, b in zip(*np.nonzero(np.triu(S >= link, k=1))):
        parent[find(a)] = find(b)
    out: dict[int, list[int]] = {}
    for i in range(len(X)):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def link_at(labels, X, quantile: float) -> float:
    sims = []
    for c in set(labels.tolist()):
        V = X[labels == c]
        if len(V) > 1:
            sims.append((V @ V.T)[np.triu_indices(len(V), 1)])
    return float(np.quantile(np.concatenate(sims), quantile))


def measure(groups: list[list[int]], truth: np.ndarray) -> tuple[float, float, int, int, int]:
    multi = [g for g in groups if len(g) > 1]
    grouped = sum(len(g) for g in multi)
    majority = sum(max(np.unique(truth[g], return_counts=True)[1]) for g in multi)
    # one click a group, one a face outside any group, one more for each face a group got wrong
    clicks = len(multi) + (grouped - majority) + (len(truth) - grouped)
    return majority / max(1, grouped), grouped / max(1, len(multi)), len(multi), clicks, len(truth)


def group_clicks(members: list[int], X: np.ndarray, truth: np.ndarray, split: bool) -> int:
    """Clicks to name one group's faces right: one to name it by its majority character and one
    for each face of another character (left out and named alone); with ``split``, or one to
    split it in two (charaid.jobs.labelling.LabelSession.split) and each part's clicks, whichever is fewer."""
    if len(members) == 1:
        return 1
    plain = 1 + len(members) - int(np.unique(truth[members], return_counts=True)[1].max())
    if not split or plain == 1:
        return plain
    parts = complete_linkage_groups(X[members], parts=2)
    return min(plain, 1 + sum(group_clicks([members[i] for i in p], X, truth, split) for p in parts))


QUANTILES = (0.25, 0.75)


def main() -> None:
    emb = default_embedder()
    s = default_settings()
    names = ["moeimouto10 (split)", "newgame8 (5-fold)"]
    sets = load_sets(emb, DetectorSpec(max_side=s.max_detect_side, thresholds=s.thresholds), only=names)
    rows = []
    for name in names:
        a, b, _ = sets[name]
        tr, te = (a, b) if b is not None else split_holdout(a, 0.2)
        chars = sorted(set(tr.labels.tolist()))
        known = chars[::2]
        keep = np.isin(tr.labels, known)
        gl, gX = tr.labels[keep], tr.X[keep]
        qX = np.r_[tr.X[~keep], te.X]
        qy = np.r_[tr.labels[~keep], te.labels]
        m = Matcher("hybrid").fit(gl, gX)
        thr = calibrate(gl, gX, "hybrid").threshold
        unk = m.scores(qX).max(axis=1) < thr
        runs = [("single (before)", single_linkage_groups, 0.25)] + [("complete", complete_linkage_groups, q) for q in QUANTILES]
        for how, fn, q in runs:
            groups = fn(qX[unk], link_at(gl, gX, q))
            purity, per, n_groups, clicks, faces = measure(groups, qy[unk])
            split = sum(group_clicks(g, qX[unk], qy[unk], True) for g in groups)
            rows.append([name, how, q, faces, n_groups, per, purity, f"{clicks} of {faces}", f"{split} of {faces}"])
    print(
        table(
            [
                "set",
                "linkage",
                "link: quantile of same-character cosines",
                "unknown-looking faces",
                "groups",
                "faces per group",
                "purity",
                "clicks to name them (a group, a lone face, a correction: one each)",
                "the same with /label's split (one click)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

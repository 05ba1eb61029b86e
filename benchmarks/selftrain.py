"""Should `charaid sort` learn from what it has sorted? Self-training the whole-picture fallback.

    python benchmarks/selftrain.py [--enrol 20] [--rounds 5] [--rows FILE]

The question: after a first pass, the pictures sort placed under a character could join that
character's enrolled pictures (with the name sort gave them), and the pictures left in
`_unknown`/`_no_face` be asked again, until nothing changes. More pictures a character should
name more of the rest; a wrong placement, or an unknown character taken for a known one, could
snowball.

Simulated on whole-picture vectors (charaid.picture's space; benchmarks/pictures.py's cache and
its split): the first --enrol pictures of each character enrolled, the rest asked together with
the unknowns (cartoonface300's 300 pictures for the development sets, the 64 photos for web4).
Held-out characters: each enrolled character left out of the gallery in turn, every query asked
(same series), its pictures counted when named. Variants: `first pass` (what sort does today),
then self-training with the threshold and floor kept as calibrated from the enrolled pictures
(`keep`), the floor computed again from the grown set (`floor again`), or both (`both again`).

The development sets' first pass is by the whole picture alone (no faces). For web4, `--rows`
(written by `benchmarks/sort_web4.py --rows FILE`) gives sort's real first pass, faces
included, and web4 is reported for reading, never for choosing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402
from pictures import embed_pictures, split  # noqa: E402

from charaid.config import Thresholds  # noqa: E402
from charaid.match import Matcher, calibrate  # noqa: E402
from charaid.picture import METHOD, typical_similarity  # noqa: E402

VARIANTS = {"first pass": (0, False, False), "keep": (None, False, False), "floor again": (None, False, True),
            "both again": (None, True, True)}


def self_train(ytr, Xtr, Xq, rounds: int, again_t: bool, again_floor: bool, first=None) -> np.ndarray:
    """Each query's name (None: not named) after ``rounds`` rounds of self-training; ``first``
    gives the first pass's names instead of asking the pictures."""
    q = Thresholds().picture_similarity_quantile
    t0, fl0 = calibrate(ytr, Xtr, METHOD).threshold, typical_similarity(ytr, Xtr, q)
    names = np.array([None] * len(Xq), dtype=object) if first is None else np.asarray(first, dtype=object).copy()
    for r in range(rounds + 1):
        if r == 0 and first is not None:
            continue
        placed = names != None  # noqa: E711 (elementwise)
        y, X = np.r_[ytr, names[placed]], np.r_[Xtr, Xq[placed]]
        m = Matcher(METHOD).fit(y, X)
        t = calibrate(y, X, METHOD).threshold if (again_t and r) else t0
        fl = typical_similarity(y, X, q) if (again_floor and r) else fl0
        todo = np.flatnonzero(~placed)
        if not len(todo):
            break
        S = m.scores(Xq[todo])
        j = S.argmax(axis=1)
        ok = (S[np.arange(len(todo)), j] >= t) & (m.prototype_similarity(Xq[todo])[np.arange(len(todo)), j] >= fl)
        names[todo[ok]] = m.classes[j[ok]]
        if not ok.any():
            break
    return names


def measure(ytr, Xtr, yte, Xte, Xu, rounds, again_t, again_floor, first=None, held=True) -> list[float]:
    names = self_train(ytr, Xtr, np.r_[Xte, Xu], rounds, again_t, again_floor, first)
    k, u = names[: len(Xte)], names[len(Xte) :]
    named = k != None  # noqa: E711
    out = [float(np.mean(k == yte)), float(np.mean(named & (k != yte))), float(np.mean(u != None))]  # noqa: E711
    if held:
        h = []
        for c in np.unique(ytr):
            n = self_train(ytr[ytr != c], Xtr[ytr != c], np.r_[Xte, Xu], rounds, again_t, again_floor)
            h.append(n[: len(Xte)][yte == c] != None)  # noqa: E711
        out.append(float(np.concatenate(h).mean()))
    else:
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--enrol", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", help="sort's JSON lines with truth (benchmarks/sort_web4.py --rows): adds web4 with sort's own first pass")
    args = ap.parse_args()
    datasets.require()
    print(f"# self-training sort's whole-picture fallback; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    Xcf = embed_pictures("cartoonface300", [p for p, _ in datasets.cartoonface300()])
    rows = []
    for name, items in {"tla/raw": datasets.tla_raw(), "newgame8 singles": datasets.newgame8_singles()}.items():
        tr, te = split(items, args.enrol)
        y = np.array([c for c, _ in tr + te], dtype=object)
        X = embed_pictures(name.split()[0].replace("/", "-"), [p for _, p in tr + te])
        for v, (rounds, again_t, again_floor) in VARIANTS.items():
            r = measure(y[: len(tr)], X[: len(tr)], y[len(tr) :], X[len(tr) :], Xcf, args.rounds if rounds is None else 0, again_t, again_floor)
            rows.append([name, len(te), v, *r])
            print(f"  [{name}: {v} done]", file=sys.stderr, flush=True)
    if args.rows:
        items = datasets.web4()
        tr, te = split(items, args.enrol)
        y = np.array([c for c, _ in tr + te], dtype=object)
        X = embed_pictures("web4", [p for _, p in tr + te])
        Xp = embed_pictures("photos", datasets.photos())
        sorted_as = {}
        for line in Path(args.rows).read_text().splitlines():
            row = json.loads(line)
            if "path" in row:
                known = [f for f in row["folders"] if not f.startswith("_")]
                sorted_as[Path(row["path"]).name] = known[0] if len(known) == 1 else None
        first = [sorted_as[f"{c}__{p.name}"] for c, p in te] + [sorted_as[f"photo__{p.name}"] for p in datasets.photos()]
        for v, (rounds, again_t, again_floor) in VARIANTS.items():
            r = measure(y[: len(tr)], X[: len(tr)], y[len(tr) :], X[len(tr) :], Xp, args.rounds if rounds is None else 0,
                        again_t, again_floor, first=first, held=False)
            rows.append(["web4 (test; sort's first pass)", len(te), v, *r])
    print(table(["set", "queries", "variant", "named right", "named wrong", "unknowns named", "held-out characters named"], rows))
    print("\nunknowns: cartoonface300's 300 pictures for the development sets, the 64 photos for web4.")


if __name__ == "__main__":
    main()

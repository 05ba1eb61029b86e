"""Whole-picture recognition (charaid.recognition.picture, sort's fallback) on development sets.

    python benchmarks/pictures.py [--enrol 20] [--methods hybrid,knn,...] [--test]

Development sets (web4 is not among them, so rules are chosen without sort's test set):
tla/raw (3 characters) and newgame8's single-character illustrations (8 look-alikes). For each,
the first --enrol pictures of a character by name (at most half of them) are enrolled whole, as
`charaid enroll` does (centre square, default ImageNet features); the rest are known queries.
Unknown queries: the 300 cartoonface300 pictures (other anime characters), which every gallery
should refuse. Each variant is a picture matcher (`charaid.pipeline.match` method) with its threshold
calibrated from the enrolled pictures (`charaid.pipeline.match.calibrate`), with and without the
typical-similarity floor (`Thresholds.picture_similarity_quantile`).

`--test` adds web4 (first 20 by name enrolled, the other 206 known, the 64 photos unknown): the
sort benchmark's test set, reported for reading, never for choosing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds  # noqa: E402
from charaid.models.embedders import imagenet_embedder, l2_normalise  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402
from charaid.pipeline.match import Matcher, calibrate  # noqa: E402
from charaid.pipeline.prepare import picture_crop  # noqa: E402
from charaid.recognition.picture import typical_similarity  # noqa: E402

CACHE = datasets.ROOT / "bench-out" / "cache"


def top_square(image: Image.Image, side: int = 256) -> Image.Image:
    """The square at the top of a picture (centred across): where a portrait's head is."""
    im = image.convert("RGB")
    w, h = im.size
    s = min(w, h)
    x0 = (w - s) // 2
    return im.crop((x0, 0, x0 + s, s)).resize((side, side), Image.BICUBIC)


def letterbox(image: Image.Image, side: int = 256) -> Image.Image:
    """The whole picture on a white square."""
    im = image.convert("RGB")
    w, h = im.size
    s = max(w, h)
    sq = Image.new("RGB", (s, s), (255, 255, 255))
    sq.paste(im, ((s - w) // 2, (s - h) // 2))
    return sq.resize((side, side), Image.BICUBIC)


CROPS = {"centre": picture_crop, "top": top_square, "letterbox": letterbox}


def embed_pictures(name: str, paths: list[Path], crop: str = "centre") -> np.ndarray:
    if "+" in crop:  # the parts' vectors averaged
        return l2_normalise(sum(embed_pictures(name, paths, c) for c in crop.split("+")))
    emb = imagenet_embedder()  # the whole-picture space (charaid.recognition.picture.picture_embedder)
    f = CACHE / f"pictures-{name}-{crop}-{emb.model_id.replace('*', 'x').replace('+', '_')}-{len(paths)}.npz"
    if crop == "centre" and not f.exists():  # caches written before crops were compared
        f = CACHE / f"pictures-{name}-{emb.model_id.replace('*', 'x').replace('+', '_')}-{len(paths)}.npz"
    if f.exists():
        return np.load(f)["X"]
    X = np.concatenate(
        [emb.embed_batch([CROPS[crop](load_image(p)) for p in paths[i : i + 32]]) for i in range(0, len(paths), 32)]
    )
    f.parent.mkdir(parents=True, exist_ok=True)
    np.savez(f, X=X)
    return X


def split(items, enrol: int):
    by: dict[str, list[Path]] = {}
    for c, p in items:
        by.setdefault(c, []).append(p)
    tr, te = [], []
    for c, ps in sorted(by.items()):
        ps = sorted(ps, key=lambda p: p.name)
        k = min(enrol, len(ps) // 2)
        tr += [(c, p) for p in ps[:k]]
        te += [(c, p) for p in ps[k:]]
    return tr, te


GATES = {"threshold + floor": (True, True), "threshold": (True, False), "floor": (False, True)}


def variant(method: str, gate: str, ytr, Xtr, yte, Xte, Xu) -> dict:
    use_t, use_floor = GATES[gate]

    def namer(ytr, Xtr):
        m = Matcher(method).fit(ytr, Xtr)
        t = calibrate(ytr, Xtr, method).threshold if use_t else -np.inf
        lo = typical_similarity(ytr, Xtr, Thresholds().picture_similarity_quantile) if use_floor else -np.inf

        def named(X):
            S = m.scores(X)
            j = S.argmax(axis=1)
            cos = m.prototype_similarity(X)[np.arange(len(X)), j]
            return m.classes[j], (S[np.arange(len(X)), j] >= t) & (cos >= lo)

        return named

    named = namer(ytr, Xtr)
    c, ok = named(Xte)
    _, oku = named(Xu)
    right = (c == yte) & ok
    held = []  # same-series unknowns: each character's test pictures against a gallery without it
    for h in np.unique(ytr):
        _, okh = namer(ytr[ytr != h], Xtr[ytr != h])(Xte[yte == h])
        held.append(okh)
    return {
        "top1": float(np.mean(c == yte)),
        "right": float(right.mean()),
        "wrong": float((ok & ~(c == yte)).mean()),
        "unknown_named": float(oku.mean()),
        "held_named": float(np.concatenate(held).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--enrol", type=int, default=20)
    ap.add_argument("--methods", default="hybrid,logreg,prototype,knn")
    ap.add_argument(
        "--crops",
        default="centre",
        help="picture crops to compare: centre, top, letterbox, or parts joined by + (vectors averaged)",
    )
    ap.add_argument("--gates", default=",".join(GATES), help=f"gates to compare ({', '.join(GATES)})")
    ap.add_argument("--test", action="store_true", help="also report web4 + photos (sort's test set; read, do not choose on it)")
    args = ap.parse_args()
    datasets.require()
    sets = {"tla/raw": datasets.tla_raw(), "newgame8 singles": datasets.newgame8_singles()}
    if args.test:
        sets["web4 (test)"] = datasets.web4()
    print(f"# whole-picture matchers; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for name, items in sets.items():
        tr, te = split(items, args.enrol)
        y = np.array([c for c, _ in tr + te], dtype=object)
        test = "test" in name
        for crop in args.crops.split(","):
            X = embed_pictures(name.split()[0].replace("/", "-"), [p for _, p in tr + te], crop)
            Xu = (
                embed_pictures("photos", datasets.photos(), crop)
                if test
                else embed_pictures("cartoonface300", [p for p, _ in datasets.cartoonface300()], crop)
            )
            for method in args.methods.split(","):
                for gate in args.gates.split(","):
                    r = variant(method, gate, y[: len(tr)], X[: len(tr)], y[len(tr) :], X[len(tr) :], Xu)
                    rows.append(
                        [
                            name,
                            len(te),
                            crop,
                            method,
                            gate,
                            r["top1"],
                            r["right"],
                            r["wrong"],
                            r["unknown_named"],
                            r["held_named"],
                        ]
                    )
    print(
        table(
            [
                "set",
                "queries",
                "crop",
                "matcher",
                "gate",
                "top-1",
                "named right",
                "named wrong",
                "unknowns named",
                "held-out characters named",
            ],
            rows,
        )
    )
    print(
        "\nunknowns: cartoonface300's 300 pictures (other series) for the development sets, the 64 photos for web4."
        "\nheld-out characters: each character left out of the gallery in turn, its queries asked (same series)."
    )


if __name__ == "__main__":
    main()

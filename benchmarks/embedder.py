"""Self-supervised features (``experiments/selfsup.py``) against today's default (issue 17).

    python benchmarks/embedder.py --weights artifacts/embedder-simclr/embedder.pt [--weights ...]
                                  [--join 0.5,1] [--seeds 5] [--ks 5,10,30]

Issue 3's protocol on every development set (benchmarks/accuracy.py and benchmarks/kshot.py):
closed-set top-1, leave-3-characters-out unknowns with the gallery's own calibrated threshold
(AUROC, unknowns rejected, known accuracy), and K-shot top-1 at K = 5, 10, 30 over 5 seeds.

Variants, for each weights file (named by its file's folder):
  default            today's default: ImageNet Lite0 (with mirror) + HSV histogram 0.5 + cue colours 0.25
  X alone            the self-supervised features alone (pooled head, with mirror)
  X + colours        the default with the ImageNet block replaced by X
  default + X*w      the default joined with X at weight w (--join)

The default's blocks are taken apart from its cached vectors (each block is unit-length and
weighted, charaid.models.embedders.ConcatEmbedder), so a join costs no new embedding. Then the issue's
ship rule: (a) mean unknown AUROC >= default + 0.03, (b) no set loses more than 0.02 top-1 at
any K, (c) enrolling 30 face crops <= 5 s (timed: a cold process-like start, model load included).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets, variant_row  # noqa: E402
from common import kshot_draw, machine, table, topk_accuracy  # noqa: E402
from kshot import train_test  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.jobs.evaluate import EmbeddedSet  # noqa: E402
from charaid.models.embedders import default_embedder, l2_normalise  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from selfsup import load_embedder  # noqa: E402

KSHOT_SETS = ("tla (6-fold)", "moeimouto10 (split)", "danbooru6 (5-fold)", "newgame8 (5-fold)")


#: The default's block weights (charaid.models.embedders.default_embedder): CNN, histogram, cue colours.
DEFAULT_WEIGHTS = [1.0, Thresholds().colour_weight, Thresholds().cue_colour_weight]


def default_blocks(X: np.ndarray) -> list[np.ndarray]:
    """The default vector's three unit-length blocks (CNN 1280, histogram 192, cue colours 9)."""
    w = np.array(DEFAULT_WEIGHTS)
    norm = float(np.sqrt((w**2).sum()))
    cuts = np.cumsum([0, 1280, 192, 9])
    return [X[:, a:b] * (norm / wi) for a, b, wi in zip(cuts[:-1], cuts[1:], w)]


def join(blocks: list[np.ndarray], weights: list[float]) -> np.ndarray:
    norm = float(np.sqrt(sum(w * w for w in weights)))
    return np.concatenate([b * (w / norm) for b, w in zip(blocks, weights)], axis=1).astype(np.float32)


def compose(base_sets, ssl_sets, make) -> dict:
    """Sets whose vectors are ``make(default blocks, ssl vectors)``, over the same samples."""
    out = {}
    for name, (a, b, folds) in base_sets.items():
        sa, sb, _ = ssl_sets[name]

        def one(d: EmbeddedSet, s: EmbeddedSet) -> EmbeddedSet:
            if list(d.paths) != list(s.paths):
                raise SystemExit(f"{name}: the two embeddings hold different faces; clear the cache")
            return EmbeddedSet(d.labels, d.paths, make(default_blocks(d.X), s.X))

        out[name] = (one(a, sa), one(b, sb) if b is not None else None, folds)
    return out


def kshot_rows(label: str, sets, ks, seeds: int, method: str) -> dict[tuple[str, int], float]:
    res = {}
    for name in KSHOT_SETS:
        a, b, folds = sets[name]
        tr, te = train_test(a, b, folds)
        fewest = min(int((tr.labels == c).sum()) for c in set(tr.labels))
        for K in ks:
            if K <= fewest:
                res[(name.split(" ")[0], K)] = float(
                    np.mean(
                        [
                            topk_accuracy(tr.X[p], tr.labels[p], te.X, te.labels, method)[0]
                            for p in (kshot_draw(tr.labels, K, s) for s in range(seeds))
                        ]
                    )
                )
    return res


def enrol_seconds(weights: str | None, weight: float = 1.0) -> float:
    """Embedding 30 tla face crops with the default features joined with ``weights`` (alone
    when None), in a new process: imports and model loads included, as an enrolment pays them."""
    import subprocess

    code = f"""
import time; t = time.time()
import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import datasets
from PIL import Image
from charaid.models.embedders import ConcatEmbedder, default_embedder
sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "experiments")!r})
from selfsup import load_embedder
crops = [Image.open(p).convert("RGB") for _, p in datasets.tla_faces()[:30]]
w = {weights!r}
emb = default_embedder() if w is None else ConcatEmbedder([default_embedder(), load_embedder(w, "timing")], [1.0, {weight!r}])
emb.embed_batch(crops)
print(time.time() - t)
"""
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", action="append", required=True, help="an embedder.pt of experiments/selfsup.py (repeatable)")
    ap.add_argument("--join", default="0.5,1", help="weights of the joined block (default 0.5,1)")
    ap.add_argument("--ks", default="5,10,30")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--method", default=Thresholds().default_matcher)
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    spec = DetectorSpec(max_side=default_settings().max_detect_side)
    print(f"# self-supervised features against the default; matcher {args.method}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    base = load_sets(default_embedder(), spec)
    variants = {"default": base}
    for w in args.weights:
        tag = Path(w).parent.name
        digest = hashlib.sha1(Path(w).read_bytes()).hexdigest()[:10]
        t = time.time()
        ssl = load_sets(load_embedder(w, f"ssl-{digest}"), spec)
        print(f"  [{tag}: sets embedded or read in {time.time() - t:.0f} s]", file=sys.stderr)
        variants[f"{tag} alone"] = compose(base, ssl, lambda d, s: s)
        variants[f"{tag} + colours"] = compose(base, ssl, lambda d, s: join([s, d[1], d[2]], DEFAULT_WEIGHTS))
        for jw in map(float, args.join.split(",")):
            variants[f"default + {tag}*{jw:g}"] = compose(
                base, ssl, lambda d, s, jw=jw: join([l2_normalise(join(d, DEFAULT_WEIGHTS)), s], [1.0, jw])
            )
    rows, heads, kshots = [], None, {}
    for name, sets in variants.items():
        t = time.time()
        heads, row = variant_row(name, sets, args.method)
        rows.append(row)
        kshots[name] = kshot_rows(name, sets, ks, args.seeds, args.method)
        print(f"  [{name}: {time.time() - t:.0f} s; mean AUROC {row[heads.index('mean AUROC')]:.3f}]", file=sys.stderr)
    print("## closed set top-1 and unknowns\n")
    print(table(heads, rows))
    cells = list(kshots["default"])
    print(f"\n## K-shot top-1 (mean of {args.seeds} seeds)\n")
    print(
        table(
            ["variant", *(f"{s} K={k}" for s, k in cells), "worst change"],
            [[n, *(r[c] for c in cells), f"{min(r[c] - kshots['default'][c] for c in cells):+.3f}"] for n, r in kshots.items()],
        )
    )
    print("\n## ship rule (a: mean AUROC +0.03; b: no set/K loses > 0.02 top-1, closed set included; c: 30 crops <= 5 s)\n")
    base_row = rows[0]
    auroc_col = heads.index("mean AUROC")
    top1_cols = [i for i, h in enumerate(heads) if h.startswith("top-1")]
    out = []
    for row in rows[1:]:
        name = row[0]
        a = row[auroc_col] - base_row[auroc_col]
        b = min([row[i] - base_row[i] for i in top1_cols] + [kshots[name][c] - kshots["default"][c] for c in cells])
        out.append([name, f"{a:+.3f}", f"{b:+.3f}", "yes" if a >= 0.03 and b >= -0.02 else "no"])
    print(table(["variant", "a: mean AUROC change", "b: worst top-1 change", "a and b"], out))
    print(
        f"\nc: 30 tla crops embedded in a new process (imports and model loads included): default {enrol_seconds(None):.2f} s",
        end="",
    )
    for w in args.weights:
        print(f"; default + {Path(w).parent.name} {enrol_seconds(w):.2f} s", end="")
    print()


if __name__ == "__main__":
    main()

"""Features adapted to anime faces on OTHER characters (issue 3): leave one set out, measured.

    python benchmarks/xset.py [--targets tla,moe,dan,ng8] [--epochs 20] [--views 8]
                              [--variants default,xset,xset+colour,default+xset]

`charaid train` adapts the network to a user's own gallery, which needs 50 faces a character
to pay (benchmarks/finetune.py). This asks whether a network adapted once to anime faces in
general would do better for characters it has never seen: for each target set, the top of
EfficientNet-Lite0 is fine-tuned (charaid.train.fine_tune, CosFace, the same augmentation) on
every face of the OTHER sets (tla 108, moeimouto10 950, danbooru6 450, newgame8's singles;
labels kept apart per set; takimoto_hifumi, in both tla and newgame8, is left out of the
other's training), then frozen, and the target set runs issue 2's protocols with it: closed-set
top-1 and leave-3-characters-out unknowns, matcher hybrid. No face of a target set is seen
in its training. Trained models are cached in bench-out/xset/.

Variants: default (charaid's features), xset (the cross-set network alone), xset+colour (with
charaid's colour histogram at its weight), default+xset (both, each unit-length).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from accuracy import load_sets  # noqa: E402
from common import machine, table  # noqa: E402
from finetune import load_crops  # noqa: E402
from whitening import SHORT, run  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.embed import ColourHistogramEmbedder, ConcatEmbedder, default_embedder  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402
from charaid.train import TrainConfig, TunedEmbedder, fine_tune  # noqa: E402

OUT = datasets.ROOT / "bench-out" / "xset"
SHARED = "takimoto_hifumi"  # the one character in two sets (tla, newgame8)


@functools.cache
def all_crops() -> dict[str, tuple[np.ndarray, list]]:
    mtr, mte = datasets.moeimouto10()
    return {
        "tla": load_crops("tla", datasets.tla_faces(), False),
        "moe": load_crops("moe", mtr + mte, False),
        "dan": load_crops("dan", datasets.danbooru6(), False),
        "ng8": load_crops("ng8", datasets.newgame8_singles(), True),
    }


def training_data(crops, target: str | None):
    """Every face of the sets other than ``target`` (None: all sets), labels "set:character"."""
    labels, ims = [], []
    for key, (la, ca) in crops.items():
        if key == target:
            continue
        for lab, im in zip(la, ca):
            if lab == SHARED and target in ("tla", "ng8"):
                continue
            labels.append(f"{key}:{lab}")
            ims.append(im)
    return labels, ims


def trained(target: str | None, cfg: TrainConfig) -> tuple[TunedEmbedder, dict]:
    import torch

    tag = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:8]
    name = f"without-{target or 'none'}-{tag}"
    f = OUT / f"{name}.pt"
    if f.exists():
        saved = torch.load(f, weights_only=False)
    else:
        labels, ims = training_data(all_crops(), target)
        t = time.time()
        state, st = fine_tune(ims, labels, cfg, on_epoch=lambda e, n, loss: print(f"  [{name}: epoch {e}/{n} loss {loss:.3f}]", file=sys.stderr))
        saved = {"top": state, "meta": {"faces": len(ims), "characters": len(set(labels)), "train_s": time.time() - t}}
        OUT.mkdir(parents=True, exist_ok=True)
        torch.save(saved, f)
    return TunedEmbedder(saved["top"], cfg, f"xset-{name}"), saved["meta"]


def variant(name: str, tuned: TunedEmbedder):
    colour = Thresholds().colour_weight
    if name == "default":
        return default_embedder()
    if name == "xset":
        return tuned
    if name == "xset+colour":
        return ConcatEmbedder([tuned, ColourHistogramEmbedder()], [1.0, colour])
    if name == "default+xset":
        return ConcatEmbedder([default_embedder(), tuned], [1.0, 1.0])
    raise SystemExit(f"unknown variant {name!r}; choose from: default, xset, xset+colour, default+xset")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="tla,moe,dan,ng8")
    ap.add_argument("--variants", default="default,xset,xset+colour,default+xset")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--views", type=int, default=TrainConfig.views)
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--train-only", action="store_true", help="train (and cache) the networks, measure nothing")
    args = ap.parse_args()
    datasets.require()
    cfg = replace(TrainConfig(), epochs=args.epochs, views=args.views)
    s = default_settings()
    spec = DetectorSpec(max_side=s.max_detect_side, thresholds=s.thresholds)
    targets = args.targets.split(",")
    nets = {}
    for t in targets:
        nets[t] = trained(t, cfg)
        print(f"  [network without {t}: {nets[t][1]}]", file=sys.stderr)
    if args.train_only:
        return
    print(f"# cross-set adaptation: {cfg}; matcher {args.method}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    names = [n for n in SHORT if SHORT[n] in targets]
    rows = []
    for v in args.variants.split(","):
        sets = {}
        for n in names:
            sets.update(load_sets(variant(v, nets[SHORT[n]][0]), spec, only=[n]))
        rows.append([v] + run(sets, args.method, lambda n, e: e))
    print(table(["variant"] + [f"top-1 {n}" for n in names] + [f"AUROC {n}" for n in names if n != "tla (6-fold)"]
                + ["mean AUROC", "unknowns rejected", "known accuracy"], rows))
    print("\ntraining: " + "; ".join(f"without {t}: {m['faces']} faces, {m['characters']} characters, {m['train_s']:.0f} s"
                                     for t, (_, m) in nets.items()))


if __name__ == "__main__":
    main()

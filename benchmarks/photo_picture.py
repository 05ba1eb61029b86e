"""Issue 27's photo decision on the whole picture, from ImageNet classes (an experiment, not shipped).

    python benchmarks/photo_picture.py

Every development photo (64) and drawing (web4, tla/raw, cartoonface300) is run whole (its
centre square, 224 px) through EfficientNet-Lite0's ImageNet classifier. On one half of the
photos and drawings, the ``n`` classes most typical of photos and of drawings are chosen (by
AUROC), and the score is the mean log-probability of the first minus the second's; the
threshold lets through all tuning drawings, or all but 1%. On the other half: photos caught,
drawings lost. Then the halves swap. Needs PyTorch (the classifier is not in the ONNX export).
"""

from __future__ import annotations

import glob
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

from charaid.models.embedders import EmbedderInfo, nhwc_to_tensor, normalised_batch, open_efficientnet_torch  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402
from charaid.pipeline.match import auroc  # noqa: E402
from charaid.pipeline.prepare import picture_crop  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def log_probs(paths: list[str]) -> np.ndarray:
    import torch

    m, info, out = open_efficientnet_torch("lite0"), EmbedderInfo("", 0, 224), []
    for i in range(0, len(paths), 16):
        x = nhwc_to_tensor(normalised_batch([picture_crop(load_image(p), 224) for p in paths[i : i + 16]], info))
        with torch.inference_mode():
            out.append(torch.log_softmax(m(x), dim=1).numpy())
    return np.concatenate(out)


def main() -> None:
    photos = sorted(glob.glob(str(DATA / "photos" / "*.jpg")))
    drawings = sorted(glob.glob(str(DATA / "web4" / "*" / "*.jpg"))) + sorted(glob.glob(str(DATA / "tla" / "raw" / "*" / "*")))
    drawings += sorted(glob.glob(str(DATA / "cartoonface300" / "images" / "*.jpg")))
    print(f"# photo decision: {machine()}; {time.strftime('%Y-%m-%d')}; {len(photos)} photos, {len(drawings)} drawings\n")
    LP, LD = log_probs(photos), log_probs(drawings)
    rng = np.random.default_rng(0)
    pp, dp = rng.permutation(len(LP)), rng.permutation(len(LD))
    hp, hd = len(pp) // 2, len(dp) // 2
    halves = [(pp[:hp], pp[hp:], dp[:hd], dp[hd:]), (pp[hp:], pp[:hp], dp[hd:], dp[:hd])]
    rows = []
    for n in (1, 3, 5, 10):
        for allowed in (0.0, 0.01):
            row: list = [n, f"{allowed:.0%}"]
            for pa, pb, da, db in halves:
                a = np.array([auroc(LP[pa, c], LD[da, c]) for c in range(LP.shape[1])])
                photo_cls, draw_cls = np.argsort(-a)[:n], np.argsort(a)[:n]

                def score(L, photo_cls=photo_cls, draw_cls=draw_cls):
                    return L[:, photo_cls].mean(axis=1) - L[:, draw_cls].mean(axis=1)

                s = np.sort(score(LD[da]))
                thr = s[-1] + 1e-6 if allowed == 0 else s[int(np.ceil((1 - allowed) * len(s))) - 1]
                row += [f"{int((score(LP[pb]) > thr).sum())}/{len(pb)}", f"{int((score(LD[db]) > thr).sum())}/{len(db)}"]
            rows.append(row)
    print(
        table(
            [
                "classes",
                "tuning drawings over",
                "A->B photos caught",
                "A->B drawings lost",
                "B->A photos caught",
                "B->A drawings lost",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

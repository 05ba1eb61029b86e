"""``charaid train-detector-closeup``: train the close-up check of charaid's face detector
(version 3, charaid.models.facedet_closeup) on ../shared/train's iCartoonFace frames.

1. Close-ups: each labelled face of at least ``min_side`` px gives ``views`` crops of its frame
   in which it covers 40-100% of the picture; every other one is moved so that 10-30% of the
   face lies outside it (cut by the border). Every third face also gives a square of its frame
   holding no face (background). The other faces of the frame inside a crop count as faces.
2. Candidates: the shipped network looks at each view as version 3 does (the picture, then the
   second look on canvases); where it finds no face, its peaks from
   ``Thresholds.facedet_closeup_candidate_score``, the best ``facedet_closeup_candidates`` by
   score, are the candidates. Label: IoU >= 0.5 with a face of the view. Inputs: Lite0's
   features of the crop cut as recognition cuts it, the score, the box's share, the pass.
   Saved to ``candidates.npz`` in ``out``, so a second run goes straight to step 3.
3. The check: a logistic model (charaid.pipeline.logistic), written as the ``.npz`` charaid ships.

Seeded: the views come from ``seed``. The evaluation sets of ../shared/data are never read.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.config import Thresholds
from charaid.models import facedet_closeup as fc
from charaid.models.checks import LogisticCheck
from charaid.models.detectors import Box, NetDetector
from charaid.pipeline.logistic import fit_logistic
from charaid.training.augment import Frame
from charaid.training.cache import cached_arrays

COVERAGES = (0.40, 0.55, 0.70, 0.85, 1.00)


@dataclass(frozen=True)
class CloseupTrainConfig:
    seed: int = 0
    #: close-ups cut around each face
    views: int = 1
    #: smallest face used, px a side
    min_side: int = 40
    #: the logistic model's inverse regularisation
    c: float = 1.0


def closeup_views(frames: list[Frame], cfg: CloseupTrainConfig):
    """(view, face boxes in it as Box) for every close-up and background square, in a seeded order."""
    rng = np.random.default_rng(cfg.seed)
    n = 0
    for fi in rng.permutation(len(frames)):
        fr = frames[int(fi)]
        H, W = fr.image.shape[:2]
        for x0f, y0f, x1f, y1f in fr.boxes:
            fw, fh = x1f - x0f, y1f - y0f
            if min(fw, fh) < cfg.min_side:
                continue
            for _ in range(cfg.views):
                side = np.sqrt(fw * fh / float(rng.choice(COVERAGES)))
                cw, ch = max(side, fw), max(side, fh)
                x0, y0 = (x0f + x1f - cw) / 2, (y0f + y1f - ch) / 2
                if n % 2 == 1:  # cut by the border
                    share, d = rng.uniform(0.1, 0.3), rng.choice([-1.0, 1.0])
                    if rng.random() < 0.5:
                        x0 -= d * ((cw - fw) / 2 + share * fw)
                    else:
                        y0 -= d * ((ch - fh) / 2 + share * fh)
                n += 1
                box = (round(max(0.0, x0)), round(max(0.0, y0)), round(min(W, x0 + cw)), round(min(H, y0 + ch)))
                yield _cut(fr, box)
            if n % 3 == 0:
                square = _background(fr, rng)
                if square is not None:
                    yield _cut(fr, square)


def _cut(fr: Frame, box: tuple[int, int, int, int]) -> tuple[Image.Image, list[Box]]:
    x0, y0, x1, y1 = box
    faces = []
    for a0, b0, a1, b1 in fr.boxes:
        u0, v0, u1, v1 = max(0.0, a0 - x0), max(0.0, b0 - y0), min(x1 - x0, a1 - x0), min(y1 - y0, b1 - y0)
        if u1 - u0 >= 8 and v1 - v0 >= 8:
            faces.append(Box(round(u0), round(v0), round(u1 - u0), round(v1 - v0)))
    return Image.fromarray(fr.image[y0:y1, x0:x1]), faces


def _background(fr: Frame, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    H, W = fr.image.shape[:2]
    for _ in range(20):
        s = rng.uniform(0.25, 0.8) * min(W, H)
        x, y = rng.uniform(0, W - s), rng.uniform(0, H - s)
        if all(x + s < a0 or x > a1 or y + s < b0 or y > b1 for a0, b0, a1, b1 in fr.boxes):
            return round(x), round(y), round(x + s), round(y + s)
    return None


def collect(frames: list[Frame], cfg: CloseupTrainConfig, weights: str | None = None, progress: bool = True) -> dict:
    """The candidates of every view where the network (and its second look) find no face."""
    t = Thresholds()
    det = NetDetector(t, version=1)
    if weights:
        from charaid.models.facedet import FaceDetectorNet

        det.net = FaceDetectorNet(det.net.input_side, det.net.min_score, path=weights, version=1).load()
    inputs: list[np.ndarray] = []
    labels: list[bool] = []
    t0, views = time.time(), 0
    for k, (view, truth) in enumerate(closeup_views(frames, cfg)):
        views += 1
        if progress and k % 500 == 0:
            print(
                f"train-detector-closeup: view {k}, {len(labels)} candidates, {time.time() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        faces, below = det.search(view, keep_below=True)
        if faces or not below:
            continue
        faces, x = det.closeup_inputs(view, below)
        inputs.append(x)
        labels += [any(f.box.iou(b) >= 0.5 for b in truth) for f in faces]
    return {
        "inputs": np.concatenate(inputs).astype(np.float32) if inputs else np.zeros((0, 1285), np.float32),
        "labels": np.asarray(labels, bool),
        "n_views": np.asarray(views),
    }


def train_closeup(
    frames: list[Frame],
    out_dir: str | Path,
    cfg: CloseupTrainConfig = CloseupTrainConfig(),
    weights: str | None = None,
    progress: bool = True,
) -> dict:
    """Collect (or reuse ``out/candidates.npz``), fit, and write ``out/<facedet_closeup.CLOSEUP_FILE>``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "candidates.npz"
    t = Thresholds()
    key = repr(
        (cfg.seed, cfg.views, cfg.min_side, weights, len(frames), t.facedet_closeup_candidate_score, t.facedet_closeup_candidates)
    )
    t0 = time.time()
    data = cached_arrays(cache, key, lambda: collect(frames, cfg, weights, progress))
    collect_s = time.time() - t0
    y = data["labels"].astype(np.int64)
    if len(set(y.tolist())) < 2:
        raise ValueError(f"{len(y)} candidates, all {'faces' if y.all() else 'background'}: too few frames to train the check")
    model = fit_logistic(data["inputs"], y, c=cfg.c, n_classes=2)
    check = LogisticCheck(model.coef[0].astype(np.float32), float(model.intercept[0]))
    path = out / fc.CLOSEUP_FILE
    check.save(str(path), config=asdict(cfg), base=weights or "shipped network", train_seconds=round(time.time() - t0))
    p = check.probabilities(data["inputs"])
    return {
        "weights": str(path),
        "views": int(data["n_views"]),
        "candidates": int(len(y)),
        "faces": int(y.sum()),
        "train_accuracy": round(float(((p >= 0.5) == (y == 1)).mean()), 4),
        "collect_s": round(collect_s),
        "train_s": round(time.time() - t0 - collect_s),
    }

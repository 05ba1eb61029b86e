"""``charaid train-detector-roi``: train the second stage of charaid's face detector
(charaid.models.facedet_roi) on ../shared/train's iCartoonFace frames.

1. Candidates: the network (version 1's weights, frozen) runs on every frame twice, as it is and
   mirrored at 1 to 1.7 times its size (evaluation pictures are larger than the 480-px frames);
   every peak from ``Thresholds.facedet_candidate_score`` is a candidate. Each labelled face also
   gives ``jitters`` boxes shifted and rescaled around it, so the box correction sees more than
   the network's own mistakes.
2. Features: the head's map sampled in each box, the peak's score and the box size; labels: the
   best IoU with a labelled face (face from 0.5, background under 0.3, between ignored) and the
   correction to that face (learnt from IoU 0.35). Saved to ``features.npz`` in ``out``, so a
   second run goes straight to step 3.
3. The MLP: AdamW, a few epochs over all candidates (about 20 s on 2 cores); written as the
   ``.npz`` charaid ships.

Seeded: the mirrored sizes and jitters come from ``seed``; the MLP's start and order too.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.config import Thresholds
from charaid.models import facedet, facedet_roi
from charaid.training.augment import Frame
from charaid.training.cache import cached_arrays


@dataclass(frozen=True)
class RoiTrainConfig:
    seed: int = 0
    jitters: int = 2
    epochs: int = 8
    hidden: tuple[int, int] = (256, 128)
    lr: float = 1e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    batch: int = 512


def _views(frame: Frame, rng: np.random.Generator):
    im = Image.fromarray(frame.image)
    yield im, frame.boxes
    W, H = im.size
    s = float(rng.uniform(1.0, 1.7))
    b = frame.boxes
    mirrored = np.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], 1) * s if len(b) else b
    yield im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((round(W * s), round(H * s)), Image.Resampling.BILINEAR), mirrored


def _jitter(truth: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for x0, y0, x1, y1 in truth:
        for _ in range(n):
            w, h = x1 - x0, y1 - y0
            cx, cy = (x0 + x1) / 2 + rng.normal(0, 0.12) * w, (y0 + y1) / 2 + rng.normal(0, 0.12) * h
            w, h = w * math.exp(rng.normal(0, 0.2)), h * math.exp(rng.normal(0, 0.2))
            out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.asarray(out, np.float32).reshape(-1, 4)


def collect(
    frames: list[Frame], net: facedet.FaceDetectorNet, cfg: RoiTrainConfig, progress: bool = True
) -> dict[str, np.ndarray]:
    """Features, other inputs, best IoU, box corrections and a jitter flag of every candidate."""
    from tqdm import tqdm

    rng = np.random.default_rng(cfg.seed)
    cand_score = Thresholds().facedet_candidate_score
    parts: dict[str, list[np.ndarray]] = {"feats": [], "extra": [], "iou": [], "deltas": [], "jitter": []}
    for frame in tqdm(frames, desc="train-detector-roi: candidates", unit="frame", disable=not progress):
        for im, truth in _views(frame, rng):
            a, s = facedet.letterbox(im, net.input_side)
            y, h = net._run(a[None])
            raw = facedet.decode(y[0], s, cand_score)
            boxes, scores = facedet_roi.raw_arrays(raw)
            jit = _jitter(truth, cfg.jitters, rng)
            if len(jit):  # their score: the heat map at their centre cell
                heat = 1.0 / (1.0 + np.exp(-y[0, 0]))
                cx = np.clip(((jit[:, 0] + jit[:, 2]) / 2 * s / facedet.STRIDE).astype(int), 0, heat.shape[1] - 1)
                cy = np.clip(((jit[:, 1] + jit[:, 3]) / 2 * s / facedet.STRIDE).astype(int), 0, heat.shape[0] - 1)
                boxes, scores = np.concatenate([boxes, jit]), np.concatenate([scores, heat[cy, cx].astype(np.float32)])
            if not len(boxes):
                continue
            if len(truth):
                o = facedet_roi.iou_matrix(boxes, truth)
                best, deltas = o.max(1), facedet_roi.box_deltas(boxes, truth[o.argmax(1)])
            else:
                best, deltas = np.zeros(len(boxes), np.float32), np.zeros((len(boxes), 4), np.float32)
            parts["feats"].append(facedet_roi.sample_features(h[0], boxes, s, facedet.STRIDE))
            parts["extra"].append(facedet_roi.box_inputs(boxes, scores, s))
            parts["iou"].append(best.astype(np.float32))
            parts["deltas"].append(deltas)
            parts["jitter"].append(np.arange(len(boxes)) >= len(boxes) - len(jit))
    return {k: np.concatenate(v) for k, v in parts.items()}


def fit(data: dict[str, np.ndarray], cfg: RoiTrainConfig, progress: bool = True) -> tuple[facedet_roi.RoiHead, list[float]]:
    """The MLP on collected candidates; returns it and the loss of each epoch."""
    import torch

    torch.manual_seed(cfg.seed)
    feats, extra, iou, deltas, jit = data["feats"], data["extra"], data["iou"], data["deltas"], data["jitter"]
    mean, std = feats.mean(0), feats.std(0) + 1e-4
    x = torch.from_numpy(np.concatenate([(feats - mean) / std, extra], 1).astype(np.float32))
    face = torch.from_numpy((iou >= 0.5).astype(np.float32))
    cls_w = torch.from_numpy((~jit & ((iou >= 0.5) | (iou < 0.3))).astype(np.float32))
    reg_w = torch.from_numpy((iou >= 0.35).astype(np.float32))
    d = torch.from_numpy(deltas.astype(np.float32))
    h1, h2 = cfg.hidden
    nn = torch.nn
    mlp = nn.Sequential(
        nn.Linear(x.shape[1], h1), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 5)
    )
    opt = torch.optim.AdamW(mlp.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    losses = []
    for epoch in range(cfg.epochs):
        perm, total = torch.randperm(len(x)), 0.0
        for i in range(0, len(x), cfg.batch):
            idx = perm[i : i + cfg.batch]
            o = mlp(x[idx])
            bce = nn.functional.binary_cross_entropy_with_logits(o[:, 0], face[idx], reduction="none")
            lc = (bce * cls_w[idx]).sum() / cls_w[idx].sum().clamp(min=1)
            l1 = nn.functional.smooth_l1_loss(o[:, 1:], d[idx], reduction="none", beta=0.1).sum(1)
            lr_ = (l1 * reg_w[idx]).sum() / reg_w[idx].sum().clamp(min=1)
            loss = lc + lr_
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
        if progress:
            print(f"train-detector-roi: epoch {epoch + 1}/{cfg.epochs} loss {losses[-1]:.4f}", file=sys.stderr, flush=True)
    linear = [m for m in mlp if isinstance(m, nn.Linear)]
    layers = tuple((m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linear)
    return facedet_roi.RoiHead(mean.astype(np.float32), std.astype(np.float32), layers), losses


def train_roi(
    frames: list[Frame],
    out_dir: str | Path,
    cfg: RoiTrainConfig = RoiTrainConfig(),
    weights: str | None = None,
    progress: bool = True,
) -> dict:
    """Collect (or reuse ``out/features.npz``), fit, and write ``out/<facedet_roi.ROI_FILE>``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "features.npz"
    t0 = time.time()
    # what the cached candidates depend on
    key = repr(
        (cfg.seed, cfg.jitters, weights, len(frames), Thresholds().facedet_candidate_score, facedet_roi.GRID, facedet_roi.GROW)
    )
    data = cached_arrays(
        cache, key, lambda: collect(frames, facedet.FaceDetectorNet(path=weights, version=1).load(), cfg, progress)
    )
    collect_s = time.time() - t0
    head, losses = fit(data, cfg, progress)
    path = out / facedet_roi.ROI_FILE
    head.save(str(path), config=asdict(cfg), base=weights or facedet.ONNX_FILE, train_seconds=round(time.time() - t0))
    return {
        "weights": str(path),
        "candidates": int(len(data["iou"])),
        "faces": int(((data["iou"] >= 0.5) & ~data["jitter"]).sum()),
        "collect_s": round(collect_s),
        "train_s": round(time.time() - t0 - collect_s),
        "losses": [round(v, 4) for v in losses],
    }

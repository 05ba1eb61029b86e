"""The second stage of charaid's face detector (version 2): a new score for each of the network's
candidate faces, from the network's own features.

Why: the first stage's heat-map peak is a poor judge of its own candidates. At its shipped
threshold half of its false faces are boxes off a real face (IoU 0.1 to 0.5 with a labelled one)
and the other half background; at a low threshold its candidates still cover 92% of
cartoonface300's faces at IoU 0.3. So every candidate above a low score gets a second look: the
head's 64-channel feature map (stride 8), sampled on a 4 x 4 grid over the candidate's box grown
by a quarter, with the peak's score and the box's size, goes through a small MLP that answers a
face probability (and, learnt beside it but not applied, a correction of the box: see
``FaceDetectorNet._second_stage``). The final score is the geometric mean of the peak's score
and that probability: either alone ranks worse (docs/experiments.md, 2026-11-29).

Pure numpy: the weights are a small ``.npz`` (``charaid train-detector-roi`` writes it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

#: The shipped second stage: version 2 of charaid-facedet-lite0 is version 1's network plus this.
ROI_FILE = "charaid-facedet-lite0-v2-roi.npz"
#: Grid points a side sampled in each candidate's box, and how much the box is grown first.
GRID = 4
GROW = 1.25


def roi_path() -> str:
    return str(resources.files("charaid") / "weights" / ROI_FILE)


def raw_arrays(raw) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4: x0 y0 x1 y1) and peak scores (n,) of the network's decoded faces."""
    boxes = np.array([[r.x, r.y, r.x + r.w, r.y + r.h] for r in raw], np.float32).reshape(-1, 4)
    return boxes, np.array([r.score for r in raw], np.float32)


def sample_features(fmap: np.ndarray, boxes: np.ndarray, scale: float, stride: int) -> np.ndarray:
    """Bilinear samples of ``fmap`` (C, H, W) on a GRID x GRID grid over each box (n, 4: x0 y0
    x1 y1 in picture pixels) grown by GROW; ``scale`` is network pixels per picture pixel.
    Returns (n, C * GRID * GRID) float32."""
    C, H, W = fmap.shape
    if not len(boxes):
        return np.zeros((0, C * GRID * GRID), np.float32)
    t = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = (boxes[:, 2] - boxes[:, 0]) * GROW, (boxes[:, 3] - boxes[:, 1]) * GROW
    gx = (((cx - w / 2)[:, None] + t[None] * w[:, None]) * scale / stride - 0.5).clip(0, W - 1)  # (n, G)
    gy = (((cy - h / 2)[:, None] + t[None] * h[:, None]) * scale / stride - 0.5).clip(0, H - 1)
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    fx, fy = (gx - x0)[:, None, :], (gy - y0)[:, :, None]  # (n, 1, G), (n, G, 1)

    def at(yi, xi):  # (n, G, G, C)
        return fmap[:, yi[:, :, None], xi[:, None, :]].transpose(1, 2, 3, 0)

    v = (
        at(y0, x0) * ((1 - fy) * (1 - fx))[..., None]
        + at(y0, x1) * ((1 - fy) * fx)[..., None]
        + at(y1, x0) * (fy * (1 - fx))[..., None]
        + at(y1, x1) * (fy * fx)[..., None]
    )
    return v.transpose(0, 3, 1, 2).reshape(len(boxes), -1).astype(np.float32)


def box_inputs(boxes: np.ndarray, scores: np.ndarray, scale: float) -> np.ndarray:
    """The MLP's other inputs: the peak's logit and the box's log width and height as the
    network saw them (/5, to the features' range)."""
    s = np.clip(scores, 1e-6, 1 - 1e-6)
    w, h = (boxes[:, 2] - boxes[:, 0]) * scale, (boxes[:, 3] - boxes[:, 1]) * scale
    return np.stack([np.log(s / (1 - s)), np.log(w + 1) / 5, np.log(h + 1) / 5], 1).astype(np.float32)


def box_deltas(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """What turns each box into its truth: centre shift in box widths/heights, log scales."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    tw, th = truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1]
    dx = ((truth[:, 0] + truth[:, 2]) - (boxes[:, 0] + boxes[:, 2])) / 2 / w
    dy = ((truth[:, 1] + truth[:, 3]) - (boxes[:, 1] + boxes[:, 3])) / 2 / h
    return np.stack([dx, dy, np.log(tw / w), np.log(th / h)], 1).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), x0 y0 x1 y1."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    ix = np.maximum(0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    iy = np.maximum(0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass(frozen=True)
class RoiHead:
    """The MLP's weights (three layers, ReLU) and the features' standardisation."""

    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def forward(self, feats: np.ndarray, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face probability (n,) and box deltas (n, 4)."""
        x = np.concatenate([(feats - self.mean) / self.std, extra], 1).astype(np.float32)
        for k, (w, b) in enumerate(self.layers):
            # einsum, not @: a matrix product this small wakes OpenBLAS's threads, which then
            # spin and slow the next picture's ONNX Runtime pass by 20-40 ms on 2 cores
            x = np.einsum("ij,kj->ik", x, w) + b
            if k < len(self.layers) - 1:
                x = np.maximum(x, 0)
        return 1.0 / (1.0 + np.exp(-x[:, 0])), x[:, 1:5]

    def save(self, path: str, **info) -> None:
        arrays: dict[str, Any] = {"mean": self.mean, "std": self.std}
        for k, (w, b) in enumerate(self.layers):
            arrays[f"w{k}"], arrays[f"b{k}"] = w.astype(np.float32), b.astype(np.float32)
        np.savez(path, **arrays, info=np.asarray(repr(info)))


@functools.lru_cache(maxsize=2)
def load_roi_head(path: str | None = None) -> RoiHead:
    p = path or roi_path()
    try:
        z = np.load(p)
    except FileNotFoundError:
        raise RuntimeError(
            f"{p}: detector stage-2 weights missing (reinstall charaid, or train them: charaid train-detector-roi)"
        ) from None
    n = sum(1 for k in z.files if k.startswith("w"))
    return RoiHead(z["mean"], z["std"], tuple((z[f"w{k}"], z[f"b{k}"]) for k in range(n)))

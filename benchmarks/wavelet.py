"""An IQDB-style whole-image baseline: Haar wavelet signatures (Jacobs, Finkelstein & Salesin,
"Fast Multiresolution Image Querying", SIGGRAPH 1995), the method IQDB is built on.

Each image is resized to 128x128, converted to YIQ, and given a standard 2-D Haar decomposition
per channel; its signature is the average colour (the DC terms) and the positions and signs of
the 40 largest-magnitude coefficients per channel. A query's score against an image is the
weighted DC difference minus the weights of the signed coefficients both keep; lower is more
similar. Weights by wavelet band are the paper's (scanned images). Only used by benchmarks.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE, KEEP = 128, 40
# Jacobs et al. 1995, table for scanned queries: weights by bin (band), Y, I, Q.
WEIGHTS = np.array(
    [[5.00, 19.21, 34.37], [0.83, 1.26, 0.36], [1.01, 0.44, 0.45], [0.52, 0.53, 0.14], [0.47, 0.28, 0.18], [0.30, 0.14, 0.27]],
    np.float32,
)


def _haar_1d(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    h = a.shape[-1]
    while h > 1:
        h //= 2
        even, odd = a[..., 0 : 2 * h : 2].copy(), a[..., 1 : 2 * h : 2].copy()
        a[..., :h], a[..., h : 2 * h] = (even + odd) / np.sqrt(2), (even - odd) / np.sqrt(2)
    return a


def _bins() -> np.ndarray:
    i = np.arange(SIDE)
    level = np.maximum(np.floor(np.log2(np.maximum(i, 1))).astype(int), 0)
    return np.minimum(np.maximum.outer(level, level), 5)


BIN = _bins()


def signature(im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(dc (3,), signed coefficient keys (3, KEEP)): key = sign * (1 + flat position)."""
    rgb = np.asarray(im.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), np.float32) / 255.0
    yiq = rgb @ np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32).T
    dc, keys = np.zeros(3, np.float32), np.zeros((3, KEEP), np.int64)
    for c in range(3):
        t = _haar_1d(_haar_1d(yiq[..., c]).T).T  # rows, then columns
        dc[c] = t[0, 0] / SIDE
        flat = t.ravel().copy()
        flat[0] = 0
        top = np.argpartition(-np.abs(flat), KEEP)[:KEEP]
        keys[c] = np.sign(flat[top]).astype(np.int64) * (top + 1)
    return dc, keys


class WaveletIndex:
    """Exact search over whole-image Haar signatures, with IQDB's inverted lists per coefficient."""

    def __init__(self):
        self.names: list[str] = []
        self.dc: list[np.ndarray] = []
        self.inv: list[dict[int, list[int]]] = [{}, {}, {}]

    def add(self, name: str, im: Image.Image) -> None:
        dc, keys = signature(im)
        j = len(self.names)
        self.names.append(name)
        self.dc.append(dc)
        for c in range(3):
            for key in keys[c].tolist():
                self.inv[c].setdefault(key, []).append(j)

    def search(self, im: Image.Image, k: int = 10) -> list[str]:
        dc, keys = signature(im)
        score = np.abs(np.stack(self.dc) - dc) @ WEIGHTS[0]
        for c in range(3):
            for key in keys[c].tolist():
                hit = self.inv[c].get(key)
                if hit:
                    score[hit] -= WEIGHTS[BIN.flat[abs(key) - 1], c]
        return [self.names[j] for j in np.argsort(score)[:k]]

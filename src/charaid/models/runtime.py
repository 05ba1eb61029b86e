"""ONNX Runtime sessions: how charaid's networks run at inference, without torch.

The face detector and the default embedder's CNN are shipped as ONNX files under
``charaid/weights`` (exported by ``charaid train-detector`` and ``charaid export-embedder``);
PyTorch is imported only to train or to run a model ``charaid train`` tuned.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: The ONNX export of ImageNet EfficientNet-Lite0's pooled features, averaged with the mirrored
#: input's (``charaid export-embedder``): the default embedder's CNN and facedet version 3's close-up check.
LITE0_ONNX = "efficientnet-lite0-imagenet-flip.onnx"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def lite0_onnx_path() -> Path:
    """Where the ONNX export of the Lite0 feature extractor (with mirror) ships."""
    return WEIGHTS_DIR / LITE0_ONNX


def lite0_onnx_features(images: Sequence[Image.Image], side: int = 224, batch_size: int = 8) -> np.ndarray:
    """Unit-length ImageNet Lite0 pooled features (the crop's and its mirror's, summed in the
    export) of ``images``, (n, 1280) float32, from the shipped ONNX export, ``batch_size`` at a time."""
    if not images:
        return np.zeros((0, 1280), np.float32)
    sess = onnx_session(str(lite0_onnx_path()))
    f = np.concatenate(
        [
            sess.run(["f"], {"x": normalised_pixels(images[i : i + batch_size], side)})[0]
            for i in range(0, len(images), batch_size)
        ]
    )
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def centre_square(image: Image.Image, side: int) -> Image.Image:
    """The centre square of a picture, where its subject usually is, as a ``side`` px RGB image."""
    im = image.convert("RGB")
    w, h = im.size
    s = min(w, h)
    x0, y0 = (w - s) // 2, (h - s) // 2
    return im.crop((x0, y0, x0 + s, y0 + s)).resize((side, side), Image.Resampling.BICUBIC)


def normalised_pixels(
    images: Sequence[Image.Image], side: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Pictures resized to ``side`` (when needed), scaled to [0, 1] and normalised: an (N, H, W, C) float32 array."""
    arr = np.stack(
        [
            np.asarray(
                f.convert("RGB").resize((side, side), Image.Resampling.BICUBIC) if f.size != (side, side) else f.convert("RGB"),
                dtype=np.float32,
            )
            for f in images
        ]
    )
    return ((arr / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def onnx_session(path: str):
    """An ONNX Runtime session on the CPU, cached per process; as many threads as
    ``CHARAID_THREADS`` (else OMP_NUM_THREADS, which worker processes set to 1; else all cores)."""
    import onnxruntime as ort

    from charaid.config import default_settings

    so = ort.SessionOptions()
    so.log_severity_level = 3
    threads = default_settings().threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    # Threads that wait sleep instead of spinning: beside the detection workers a spinning
    # embedder took their CPU (end to end on tla/raw, 2 cores: 13.3 -> 13.7 pictures/s with 2
    # workers, 10.6 -> 11.2 in one process; 2026-12-05).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

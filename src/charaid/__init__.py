"""charaid: recognise anime characters in pictures.

The public API, one call per pipeline stage::

    import charaid
    image = charaid.load_image("picture.jpg")              # any mode, EXIF-rotated, checked
    faces = charaid.detect_faces(image)                     # boxes, scores, landmarks, colours
    crop = charaid.crop_face(image, faces[0])               # square, with the margin recognize uses
    vector = charaid.embed_faces([crop])[0]                 # unit-length vector
    with charaid.Gallery("my.sqlite") as g:                 # characters and their samples
        result = charaid.Recognizer(g).recognize_image(image)   # names or "unknown", top-5
"""

from __future__ import annotations

__version__ = "0.1.0"

import numpy as np

from charaid.config import Settings, Thresholds
from charaid.errors import EmbeddingSpaceError, GalleryError, ImageError, UnknownCharacterError
from charaid.models.detectors import DEFAULT_DETECTOR, Box, Face, crop_face, make_detector
from charaid.models.embedders import Embedder, EmbedderInfo, default_embedder
from charaid.pipeline.images import load_image, load_image_bytes
from charaid.pipeline.match import Calibration, Candidate, Match, Matcher, calibrate
from charaid.recognition.recognize import FaceResult, ImageResult, PictureResult, Recognizer
from charaid.storage.gallery import Gallery


def detect_faces(image, detector: str = DEFAULT_DETECTOR, cascade=None) -> list[Face]:
    """Every anime face in an RGB image, most likely first (charaid's own detector, as ``recognize``)."""
    return make_detector(detector, cascade).detect(image)


def embed_faces(crops) -> np.ndarray:
    """Vectors of face crops (images, or FaceCrop records) in the default space: EfficientNet-Lite0
    + colour histogram + the face's hair/skin/eye colours (charaid.models.colours), which a bare
    image has searched again and a FaceCrop cut from its picture already carries."""
    return default_embedder().embed_batch(list(crops))


__all__ = [
    "Box",
    "Calibration",
    "Candidate",
    "Embedder",
    "EmbedderInfo",
    "EmbeddingSpaceError",
    "Face",
    "FaceResult",
    "Gallery",
    "GalleryError",
    "ImageError",
    "ImageResult",
    "Match",
    "Matcher",
    "PictureResult",
    "Recognizer",
    "Settings",
    "Thresholds",
    "UnknownCharacterError",
    "calibrate",
    "crop_face",
    "default_embedder",
    "detect_faces",
    "embed_faces",
    "load_image",
    "load_image_bytes",
    "make_detector",
]

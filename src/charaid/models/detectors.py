"""Finding anime faces: charaid's own detector (charaid.models.facedet) by default, animeface-2009, an
OpenCV LBP cascade, or the last two merged.

Each detector returns every face it finds as a :class:`Face` with its box in the original
image's pixels. Large images are downscaled before detection (detection time grows with the
pixel count) and the boxes are mapped back.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.config import Thresholds, default_settings
from charaid.models import facedet

DETECTORS = ("facedet", "animeface", "cascade", "union")
#: The detector of new galleries and of commands without a gallery.
DEFAULT_DETECTOR = "facedet"
#: Every name a detector may be asked for: "facedet" is its default version, "facedet@N" version N
#: (a gallery records the version that cut its faces, and recognition keeps cropping that way).
DETECTOR_NAMES = DETECTORS + tuple(f"facedet@{v}" for v in facedet.VERSIONS)


def canonical_detector(name: str) -> str:
    """The name a gallery records: ``facedet`` pinned to its default version, others as given."""
    return f"facedet@{facedet.DEFAULT_VERSION}" if name == "facedet" else name


def facedet_version(name: str) -> int | None:
    """The facedet version a detector name means (None for other detectors)."""
    head, at, v = name.partition("@")
    if head != "facedet":
        return None
    if not at:
        return facedet.DEFAULT_VERSION
    return int(v) if v.isdigit() and int(v) in facedet.VERSIONS else None


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union else 0.0

    def scaled(self, s: float) -> Box:
        return Box(round(self.x * s), round(self.y * s), round(self.w * s), round(self.h * s))

    def as_list(self) -> list[int]:
        return [int(self.x), int(self.y), int(self.w), int(self.h)]

    def as_tuple(self) -> tuple[int, int, int, int]:
        return int(self.x), int(self.y), int(self.w), int(self.h)


Point = tuple[int, int]
Colour = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face. ``landmarks`` and ``colours`` are filled by animeface-2009 only."""

    box: Box
    score: float
    detector: str
    #: Centres of left_eye, right_eye, mouth, and the nose and chin points.
    landmarks: dict[str, Point] = field(default_factory=dict)
    #: Mean colours of hair, skin, left_eye and right_eye, as RGB.
    colours: dict[str, Colour] = field(default_factory=dict)


class Detector(ABC):
    """A face detector: ``detect(image)`` lists the faces in an RGB image."""

    name: str = "detector"
    #: True when it runs native code that may never return on some picture: batch jobs then run
    #: it in watched worker processes (charaid.watchdog), even with --workers 0.
    native: bool = True

    def __init__(self, thresholds: Thresholds | None = None, max_side: int | None = None):
        self.thresholds = thresholds or Thresholds()
        self.max_side = max_side or default_settings().max_detect_side

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in ``image``, most likely first, boxes in the image's own pixels."""
        small, scale = self._work_copy(image)
        faces = [_rescale(f, 1.0 / scale) for f in self._detect(small)] if scale != 1.0 else self._detect(small)
        faces = [f for f in faces if min(f.box.w, f.box.h) >= self.thresholds.min_face_side]
        return sorted(faces, key=lambda f: -f.score)

    def _work_copy(self, image: Image.Image) -> tuple[Image.Image, float]:
        """The picture the detector searches, reduced to ``max_side``, and the scale applied."""
        return _downscale(image, self.max_side)

    def detect_batch(self, images: Sequence[Image.Image]) -> list[list[Face]]:
        return [self.detect(im) for im in images]

    @abstractmethod
    def _detect(self, image: Image.Image) -> list[Face]: ...


class NetDetector(Detector):
    """charaid's own detector network (charaid.models.facedet). Its faces carry
    landmarks placed by the box (the mean positions of animeface-2009's landmarks in boxes like
    these), so the colour cues can be sampled as they are for animeface-2009's faces."""

    name = "facedet"
    native = False  # ONNX Runtime (or PyTorch) inference: bounded time, and cheaper in this process

    def __init__(self, thresholds: Thresholds | None = None, max_side: int | None = None, version: int = facedet.DEFAULT_VERSION):
        super().__init__(thresholds, max_side)
        t = self.thresholds
        self.name = f"facedet@{version}"
        score = t.facedet_roi_min_score if version == 2 else t.facedet_min_score
        # loaded now, so that missing weights fail here, once
        self.net = facedet.FaceDetectorNet(input_side=t.facedet_input_side, min_score=score, version=version).load()
        if t.photo_picture_min_p is not None:
            from charaid.models.photo_check import load_photo_check

            load_photo_check()

    def _real_face(self, image: Image.Image, box: Box) -> bool:
        """True when OpenCV's frontal-face Haar cascade for photos (shipped with OpenCV) sees a
        real person's face in ``box`` (in ``photo_veto_votes`` of its crops): the network was
        trained on drawings only, so it takes some faces in photos for anime ones
        (docs/benchmarks.md@aef98b0, "Face detection")."""
        t = self.thresholds
        if t.photo_face_veto is None:
            return False
        import cv2

        margins, hits, side = t.photo_veto_margins, 0, 160
        for i, m in enumerate(margins):
            gray = cv2.equalizeHist(np.asarray(crop_face(image, box, m, side).convert("L")))
            least = max(40, round(t.photo_veto_min_window * side / (1 + 2 * m)))  # the face's side in the crop
            _, _, weights = _photo_cascade().detectMultiScale3(
                gray, scaleFactor=1.1, minNeighbors=3, minSize=(least, least), outputRejectLevels=True
            )
            hits += any(float(w) >= t.photo_face_veto for w in np.asarray(weights).reshape(-1))
            if hits >= t.photo_veto_votes:
                return True
            if hits + len(margins) - 1 - i < t.photo_veto_votes:  # the rest cannot make up the votes
                return False
        return False

    def _work_copy(self, image: Image.Image) -> tuple[Image.Image, float]:
        """The picture itself: the network reduces it (to ``facedet_input_side``), so a copy
        reduced to ``max_side`` first cost more than it saved, and boxes and the photo veto's
        crops come from the picture's own pixels (the second look reduces its canvas)."""
        return image, 1.0

    def _detect(self, image: Image.Image) -> list[Face]:
        faces, below = self.search(image, keep_below=self.net.version >= 3)
        if not faces and below:
            faces = self._closeup(image, below)
        faces = nms(faces, self.thresholds.nms_iou)
        if faces and self._photo(image):
            return []
        return self._refine(image, faces) if self.net.version == 4 else faces

    def _refine(self, image: Image.Image, faces: list[Face]) -> list[Face]:
        """Version 4: each face's box, averaged with the one the network sees in a crop around it
        (``facedet_refine_context`` times the box's side, zoomed so that the box is
        ``facedet_refine_side`` px, the size the network finds best): its strongest peak from
        ``facedet_refine_min_score`` within half a box of the crop's centre. The box's extent is where
        the network errs most on cartoonface300 (32 of version 1's 55 false boxes lie on a labelled
        face at IoU 0.1-0.5), and two looks at two scales err less than one (docs/experiments.md,
        2026-12-07). The score stays the first look's; a face with no peak keeps its box, and so does
        a face larger than ``facedet_refine_max_share`` of the picture's shorter side, whose crop would
        be mostly outside the picture (close-ups lost 0.007 to it)."""
        t, out = self.thresholds, []
        for f in faces:
            b = f.box
            if max(b.w, b.h) > t.facedet_refine_max_share * min(image.size):
                out.append(f)
                continue
            side = max(b.w, b.h) * t.facedet_refine_context
            x0, y0 = b.x + b.w / 2 - side / 2, b.y + b.h / 2 - side / 2
            n = max(32, round(t.facedet_refine_side * t.facedet_refine_context))
            crop = image.crop((round(x0), round(y0), round(x0 + side), round(y0 + side))).resize(
                (n, n), Image.Resampling.BILINEAR
            )
            near = [
                r
                for r in self.net.detect_arrays([crop], t.facedet_refine_min_score)[0]
                if np.hypot(r.x + r.w / 2 - n / 2, r.y + r.h / 2 - n / 2) < 0.5 * t.facedet_refine_side
            ]
            if not near:
                out.append(f)
                continue
            r, k = max(near, key=lambda r: r.score), side / n
            x, y, w, h = (b.x + x0 + r.x * k) / 2, (b.y + y0 + r.y * k) / 2, (b.w + r.w * k) / 2, (b.h + r.h * k) / 2
            out.append(self._faces([facedet.RawFace(x, y, w, h, f.score)])[0])
        return out

    def _photo(self, image: Image.Image) -> bool:
        """True when the whole picture is a photo (charaid.models.photo_check): its faces are real
        people's, whatever the cascade of :meth:`_real_face` saw in them."""
        least = self.thresholds.photo_picture_min_p
        if least is None:
            return False
        from charaid.models.photo_check import photo_probability

        return photo_probability(image) >= least

    def search(self, image: Image.Image, keep_below: bool = False) -> tuple[list[Face], list[tuple[facedet.RawFace, float]]]:
        """The faces of the picture, else those of the second look (versions 1 and 3); with
        ``keep_below``, where both find none, also the peaks under their thresholds from
        ``facedet_closeup_candidate_score``, in the picture's pixels, each with the pass that found
        it (1: the picture, else the canvas's size): the close-up check's candidates."""
        t, version = self.thresholds, self.net.version
        least = t.facedet_closeup_candidate_score if keep_below else None
        raw = self.net.detect_arrays([image], least)[0]
        faces = self._found(image, raw, min_score=self.net.min_score)
        below = [(r, 1.0) for r in raw if r.score < self.net.min_score] if keep_below else []
        retry = () if faces or version == 2 else t.facedet_pad_retry
        if retry:  # the canvas is several times the picture: built from a reduced copy
            small, scale = _downscale(image, self.max_side)
        for factor in retry:
            canvas, dx, dy = _padded(small, factor, t.facedet_pad_fill)
            raw = self.net.detect_arrays([canvas], least)[0]
            faces = self._found(small, raw, dx, dy, t.facedet_pad_min_score)
            if faces:
                faces = [_rescale(f, 1.0 / scale) for f in faces] if scale != 1.0 else faces
                break
            if keep_below:
                moved = (_moved(r, dx, dy, small.width, small.height) for r in raw if r.score < t.facedet_pad_min_score)
                below += [(_scaled_raw(r, 1.0 / scale), factor) for r in moved if r is not None]
        return faces, [] if faces else below

    def closeup_inputs(
        self, image: Image.Image, candidates: list[tuple[facedet.RawFace, float]]
    ) -> tuple[list[Face], np.ndarray]:
        """The close-up check's candidates (those with the best peaks, as faces) and its inputs:
        each cut as recognition cuts a face, through ImageNet Lite0, with the peak's score, the
        box's share of the picture and the pass that found it. Training
        (charaid.training.closeup) reads the same, so the check sees what it learnt from."""
        from charaid.models import facedet_closeup as fc
        from charaid.models.runtime import lite0_onnx_features

        t = self.thresholds
        top = sorted(candidates, key=lambda c: -c[0].score)[: t.facedet_closeup_candidates]
        faces = self._faces([r for r, _ in top])
        area = float(image.width * image.height)
        inputs = fc.candidate_inputs(
            lite0_onnx_features([crop_face(image, f.box, t.facedet_crop_margin, fc.SIDE) for f in faces], fc.SIDE),
            [r.score for r, _ in top],
            [f.box.area / area for f in faces],
            [p for _, p in top],
        )
        return faces, inputs

    def _closeup(self, image: Image.Image, candidates: list[tuple[facedet.RawFace, float]]) -> list[Face]:
        """Version 3, where the picture and its canvases gave no face: the most probable candidate
        that the close-up check (charaid.models.facedet_closeup) passes, if a real person's face
        is not, is the picture's face. One face: a picture that a face fills holds one."""
        from charaid.models import facedet_closeup as fc

        faces, inputs = self.closeup_inputs(image, candidates)
        prob = fc.load_check().probabilities(inputs)
        for i in np.argsort(-prob, kind="stable"):
            if prob[i] < self.thresholds.facedet_closeup_min_p:
                break
            if not self._real_face(image, faces[i].box):
                return [faces[i]]
        return []

    def _found(self, image: Image.Image, raw, dx: int = 0, dy: int = 0, min_score: float = 0.0) -> list[Face]:
        """The network's faces scoring at least ``min_score``, moved back from a canvas where the
        picture lay at (dx, dy) and cut to the picture, with the faces of real people dropped
        (the veto, the costly part, only looks at what is left)."""
        kept = []
        for r in raw:
            if r.score < min_score:
                continue
            if dx or dy:  # boxes of the picture itself are kept as the network drew them
                r = _moved(r, dx, dy, image.width, image.height)
                if r is None:
                    continue
            kept.append(r)
        return [f for f in self._faces(kept) if not self._real_face(image, f.box)]

    def _faces(self, raw) -> list[Face]:
        faces = []
        for r in raw:
            b = Box(round(r.x), round(r.y), max(1, round(r.w)), max(1, round(r.h)))
            lm = {k: (round(b.x + fx * b.w), round(b.y + fy * b.h)) for k, (fx, fy) in facedet.BOX_LANDMARKS.items()}
            faces.append(Face(b, r.score, self.name, lm))
        return faces


@functools.lru_cache(maxsize=1)
def _photo_cascade():
    import cv2

    return cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))


class AnimeFaceDetector(Detector):
    """nagadomi's animeface-2009 (PyPI ``animeface``): box, likelihood, landmarks and colours."""

    name = "animeface"

    def __init__(self, thresholds: Thresholds | None = None, max_side: int | None = None):
        super().__init__(thresholds, max_side)
        import PIL

        if int(PIL.__version__.split(".")[0]) >= 12:
            # animeface 2.0.3 hands Image.getdata() to its C code, which finds nothing with
            # Pillow 12+ and says nothing about it: refuse rather than miss every face.
            raise RuntimeError(f"animeface 2.0.3 finds no faces with Pillow {PIL.__version__}; install pillow<12")
        import animeface  # noqa: F401  (fail here, at load, if the C extension is missing)

    def _detect(self, image: Image.Image) -> list[Face]:
        # Under a time limit: animeface-2009's C code can run for ever on some pictures.
        from charaid import watchdog

        return watchdog.call(_animeface_detect, (image, self.thresholds), self.thresholds.detect_timeout_s)


def _animeface_detect(image: Image.Image, t: Thresholds) -> list[Face]:
    """animeface-2009 on the picture, then, if it found nothing, on reduced copies of it."""
    faces = _animeface_once(image, t)
    for s in () if faces else t.detect_retry_scales:
        w, h = round(image.width * s), round(image.height * s)
        if min(w, h) < t.min_face_side:
            break
        faces = [
            _rescale(f, image.width / w)
            for f in _animeface_once(image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0), t)
        ]
        if faces:
            break
    return faces


def _animeface_once(image: Image.Image, t: Thresholds) -> list[Face]:
    import animeface

    faces = []
    for r in animeface.detect(image):
        if r.likelihood < t.detect_min_score:
            continue
        b = r.face.pos
        faces.append(
            Face(
                box=Box(b.x, b.y, b.width, b.height),
                score=float(r.likelihood),
                detector=AnimeFaceDetector.name,
                landmarks={
                    "left_eye": _centre(r.left_eye.pos),
                    "right_eye": _centre(r.right_eye.pos),
                    "mouth": _centre(r.mouth.pos),
                    "nose": (r.nose.pos.x, r.nose.pos.y),
                    "chin": (r.chin.pos.x, r.chin.pos.y),
                },
                colours={
                    "hair": _rgb(r.hair.color),
                    "skin": _rgb(r.skin.color),
                    "left_eye": _rgb(r.left_eye.color),
                    "right_eye": _rgb(r.right_eye.color),
                },
            )
        )
    return faces


class CascadeDetector(Detector):
    """An OpenCV cascade (e.g. nagadomi's lbpcascade_animeface.xml), given by its path."""

    name = "cascade"

    def __init__(self, path: str | Path, thresholds: Thresholds | None = None, max_side: int | None = None):
        super().__init__(thresholds, max_side)
        import cv2

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{path}: cascade file not found")
        try:
            self._cascade = cv2.CascadeClassifier(str(p))
        except (cv2.error, SystemError):
            raise ValueError(f"{path}: not an OpenCV cascade XML") from None
        if self._cascade.empty():
            raise ValueError(f"{path}: not an OpenCV cascade XML")

    def _detect(self, image: Image.Image) -> list[Face]:
        import cv2

        gray = cv2.equalizeHist(np.asarray(image.convert("L")))
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(self.thresholds.min_face_side, self.thresholds.min_face_side),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, w, h), wt in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            # The cascade's last-stage weight is an unbounded margin; squash it into (0, 1).
            faces.append(Face(Box(int(x), int(y), int(w), int(h)), 1.0 / (1.0 + math.exp(-float(wt))), self.name))
        return faces


class UnionDetector(Detector):
    """Several detectors merged by non-maximum suppression; animeface's box wins a tie
    because it carries landmarks and colours."""

    name = "union"

    def __init__(self, detectors: Sequence[Detector], thresholds: Thresholds | None = None, max_side: int | None = None):
        super().__init__(thresholds, max_side)
        self.detectors = list(detectors)

    def detect(self, image: Image.Image) -> list[Face]:
        found = [f for d in self.detectors for f in d.detect(image)]
        return nms(found, self.thresholds.nms_iou)

    def _detect(self, image: Image.Image) -> list[Face]:  # pragma: no cover - detect() is overridden
        raise NotImplementedError


def nms(faces: Sequence[Face], iou: float) -> list[Face]:
    """Keep the best of each group of overlapping faces (faces with landmarks first, then score)."""
    order = sorted(faces, key=lambda f: (bool(f.landmarks), f.score), reverse=True)
    kept: list[Face] = []
    for f in order:
        if all(f.box.iou(k.box) <= iou and not _contains(k.box, f.box) for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: -f.score)


def make_detector(
    name: str = DEFAULT_DETECTOR,
    cascade: str | Path | None = None,
    thresholds: Thresholds | None = None,
    max_side: int | None = None,
) -> Detector:
    """A detector by name: ``facedet`` (charaid's own, its default version; ``facedet@N`` version N),
    ``animeface``, ``cascade`` (needs ``cascade``) or ``union`` (animeface and the cascade)."""
    if ":" in name:  # a plug: "package.module:Class", built as Class(thresholds, max_side)
        import importlib

        mod, _, cls = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), cls)(thresholds, max_side)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"detector {name!r} cannot be loaded ({e})") from None
    if name not in DETECTOR_NAMES:
        raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTOR_NAMES)}")
    version = facedet_version(name)
    if version is not None:
        return NetDetector(thresholds, max_side, version)
    if name == "animeface":
        return AnimeFaceDetector(thresholds, max_side)
    if cascade is None:
        raise ValueError(f"detector {name!r} needs a cascade XML path (--cascade PATH)")
    casc = CascadeDetector(cascade, thresholds, max_side)
    if name == "cascade":
        return casc
    return UnionDetector([AnimeFaceDetector(thresholds, max_side), casc], thresholds, max_side)


def face_margin(face: Face, thresholds: Thresholds | None = None) -> float:
    """The margin a face is cut with: facedet's boxes are tighter than animeface-2009's, so they
    get a wider one (``facedet_crop_margin``, else ``crop_margin``)."""
    t = thresholds or Thresholds()
    return t.facedet_crop_margin if face.detector.startswith("facedet") else t.crop_margin


def crop_face(image: Image.Image, box: Box | Face, margin: float | None = None, size: int | None = None) -> Image.Image:
    """A square crop centred on ``box``, grown by ``margin`` of its side on every side (by
    default: a :class:`Face`'s :func:`face_margin`, the crop ``recognize`` cuts; a bare box's
    ``crop_margin``).

    Where the square leaves the picture, the edge pixels are repeated rather than padded with
    black, so a face at the border does not gain a dark frame the embedder would learn from.
    """
    if isinstance(box, Face):
        m = face_margin(box) if margin is None else margin
        box = box.box
    else:
        m = Thresholds().crop_margin if margin is None else margin
    side = max(1, round(max(box.w, box.h) * (1 + 2 * m)))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    W, H = image.size
    if left >= 0 and top >= 0 and left + side <= W and top + side <= H:
        out = image.crop((left, top, left + side, top + side))
    else:
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(W, left + side), min(H, top + side)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {box.as_list()} lies outside the {W}x{H} image")
        part = np.asarray(image.crop((x0, y0, x1, y1)))  # not the whole picture as an array
        pad = ((y0 - top, top + side - y1), (x0 - left, left + side - x1), (0, 0))
        out = Image.fromarray(np.pad(part, pad, mode="edge"))
    if size is not None and out.size != (size, size):
        out = out.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0 if side > size else None)
    return out


def _downscale(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    w, h = image.size
    if max(w, h) <= max_side:
        return image, 1.0
    s = max_side / max(w, h)
    return image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR, reducing_gap=2.0), s


def _padded(image: Image.Image, factor: float, fill: str) -> tuple[Image.Image, int, int]:
    """``image`` in the middle of a canvas ``factor`` times its size, and its offset there."""
    W, H = round(image.width * factor), round(image.height * factor)
    dx, dy = (W - image.width) // 2, (H - image.height) // 2
    a = np.asarray(image.convert("RGB"))
    pad = ((dy, H - image.height - dy), (dx, W - image.width - dx), (0, 0))
    if fill == "edge":
        out = np.pad(a, pad, mode="edge")
    else:
        out = np.pad(a, pad, mode="constant", constant_values=int(fill))
    return Image.fromarray(out), dx, dy


def _moved(r: facedet.RawFace, dx: int, dy: int, width: int, height: int) -> facedet.RawFace | None:
    """A face found on a canvas where the picture lay at (dx, dy), in the picture's pixels and
    cut to it; None where little of it is left inside."""
    x0, y0 = max(0.0, r.x - dx), max(0.0, r.y - dy)
    x1, y1 = min(width, r.x + r.w - dx), min(height, r.y + r.h - dy)
    if min(x1 - x0, y1 - y0) < 2:
        return None
    return facedet.RawFace(x0, y0, x1 - x0, y1 - y0, r.score)


def _scaled_raw(r: facedet.RawFace, s: float) -> facedet.RawFace:
    return r if s == 1.0 else facedet.RawFace(r.x * s, r.y * s, r.w * s, r.h * s, r.score)


def _rescale(f: Face, s: float) -> Face:
    def pt(p: Point) -> Point:
        return (round(p[0] * s), round(p[1] * s))

    return Face(f.box.scaled(s), f.score, f.detector, {k: pt(v) for k, v in f.landmarks.items()}, dict(f.colours))


def _contains(outer: Box, inner: Box) -> bool:
    """``inner`` lies (almost) wholly inside ``outer``: a face within a face is one face."""
    ix = max(0, min(outer.x + outer.w, inner.x + inner.w) - max(outer.x, inner.x))
    iy = max(0, min(outer.y + outer.h, inner.y + inner.h) - max(outer.y, inner.y))
    return inner.area > 0 and ix * iy >= 0.8 * inner.area


def _centre(b) -> Point:  # animeface Box
    return (b.x + b.width // 2, b.y + b.height // 2)


def _rgb(c) -> Colour:  # animeface Color
    return (int(c.r), int(c.g), int(c.b))

"""From a file path to face crops: decode, detect, crop. The CPU-heavy half of every batch job.

:func:`prepare_many` runs it in worker processes (face detection is single-threaded C code,
so two workers keep two cores busy) and yields results in input order, a bad file included
as an error rather than an exception, so the rest of the batch goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from charaid import watchdog
from charaid.config import Thresholds, default_settings
from charaid.errors import ImageError
from charaid.models import colours as cues
from charaid.models.crops import FaceCrop
from charaid.models.detectors import (
    DEFAULT_DETECTOR,
    Box,
    Detector,
    Face,
    canonical_detector,
    crop_face,
    face_margin,
    make_detector,
)
from charaid.models.embedders import uses_colours
from charaid.models.runtime import centre_square
from charaid.pipeline.images import load_image, sha256_file

#: Side of the square a whole picture is reduced to for charaid.recognition.picture (the embedder resizes again).
PICTURE_SIDE = 256


@dataclass(frozen=True)
class DetectorSpec:
    """Everything a worker process needs to build the same detector as the parent."""

    name: str = DEFAULT_DETECTOR
    cascade: str | None = None
    max_side: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Margins of extra crops cut around each face of charaid's own detector, besides the
    #: usual one (``PreparedImage.framings``): recognition keeps the framing that matches best.
    framings: tuple[float, ...] = ()
    #: Longest side of the crops kept (``Settings.stored_crop_side``), set where the spec is made.
    crop_side: int = field(default_factory=lambda: default_settings().stored_crop_side)

    def __post_init__(self) -> None:
        # "facedet" is pinned to its version, so the gallery records (and keeps) the crops' maker
        object.__setattr__(self, "name", canonical_detector(self.name))

    @classmethod
    def for_gallery(cls, gallery, settings=None) -> DetectorSpec:
        """The detector that cut ``gallery``'s faces (the default one for a new gallery)."""
        s = settings or default_settings()
        return cls(gallery.detector or DEFAULT_DETECTOR, None, s.max_detect_side, s.thresholds, crop_side=s.stored_crop_side)

    def build(self) -> Detector:
        return make_detector(self.name, self.cascade, self.thresholds, self.max_side)

    def for_embedder(self, embedder) -> DetectorSpec:
        """This spec, with the face's colours left out when ``embedder`` does not read them (a
        ``--no-detect`` crop would otherwise be searched again for them, about 40 ms each)."""
        if self.thresholds.cue_colour_weight <= 0 or uses_colours(embedder):
            return self
        return replace(self, thresholds=replace(self.thresholds, cue_colour_weight=0.0))


@dataclass
class PreparedImage:
    """One input after decoding and detection. ``crops[i]`` belongs to ``faces[i]``;
    with ``detect=False`` there is one face: the whole image, with ``faces == [None]``."""

    path: str
    content_hash: str | None = None
    size: tuple[int, int] | None = None
    faces: list[Face | None] = field(default_factory=list)
    crops: list[FaceCrop] = field(default_factory=list)
    error: str | None = None
    #: With detection and when asked for: the whole picture, reduced for charaid.recognition.picture.
    picture: Image.Image | None = None
    #: ``framings[k][i]``: face ``i`` cut at the spec's ``k``-th extra margin (``DetectorSpec.framings``).
    framings: list[list[FaceCrop]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def box(self, i: int) -> Box:
        """The box of face ``i``: the whole image for a ``--no-detect`` one."""
        f = self.faces[i]
        if f is not None:
            return f.box
        w, h = self.size or (0, 0)
        return Box(0, 0, w, h)

    def score(self, i: int) -> float:
        """The detector's score of face ``i`` (1 for the whole image)."""
        f = self.faces[i]
        return 1.0 if f is None else f.score

    def largest(self) -> int:
        """Index of the largest face; in a picture filed under a character, that character is
        nearly always it. (None, the whole image, counts as largest.)"""
        areas = [float("inf") if f is None else f.box.area for f in self.faces]
        return max(range(len(areas)), key=areas.__getitem__)


_DETECTORS: dict[DetectorSpec, Detector] = {}


def detector(spec: DetectorSpec) -> Detector:
    """The detector ``spec`` describes, built once per process."""
    if spec not in _DETECTORS:
        _DETECTORS[spec] = spec.build()
    return _DETECTORS[spec]


def picture_crop(image: Image.Image, side: int = PICTURE_SIDE) -> Image.Image:
    """The centre square of a picture, where its subject usually is, as a ``side`` px RGB image."""
    return centre_square(image, side)


def prepare_image(
    path: str | Path,
    detect: bool = True,
    spec: DetectorSpec | None = None,
    with_hash: bool = True,
    image: Image.Image | None = None,
    with_picture: bool = False,
) -> PreparedImage:
    """Decode ``path`` (or use ``image``), find its faces and cut a square crop around each;
    with ``with_picture`` (and detection), also reduce the whole picture for charaid.recognition.picture."""
    spec = spec or DetectorSpec()
    out, im = _decode(path, with_hash, image)
    if im is None:
        return out
    if not detect:
        return _whole(out, im, spec)
    try:
        faces = detector(spec).detect(im)
    except Exception as e:  # a detector crash on one odd image must not end the batch
        out.error = _detect_error(e)
        return out
    return _cut(out, im, faces, spec, with_picture)


def _decode(path: str | Path, with_hash: bool, image: Image.Image | None = None) -> tuple[PreparedImage, Image.Image | None]:
    out = PreparedImage(str(path))
    try:
        im = image if image is not None else load_image(path)
        if with_hash and image is None:
            out.content_hash = sha256_file(path)
    except ImageError as e:
        out.error = e.reason
        return out, None
    except OSError as e:  # the file vanished or became unreadable between decode and hash
        out.error = f"cannot read ({e.strerror or e})"
        return out, None
    out.size = im.size
    return out, im


def _detect_error(e: Exception) -> str:
    if isinstance(e, watchdog.CallTimeout):
        return f"face detection {e}"
    return f"face detection failed ({type(e).__name__}: {e})"


def _whole(out: PreparedImage, im: Image.Image, spec: DetectorSpec) -> PreparedImage:
    """The whole image as the face (``--no-detect``: a folder of face crops)."""
    side = spec.crop_side
    image = im.copy()
    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.BICUBIC)
    crop = FaceCrop(image)
    if spec.thresholds.cue_colour_weight > 0:  # searched here, in the worker, rather than in the embedder
        crop = crop.with_colours()
    out.faces, out.crops = [None], [crop]
    return out


def _cut(out: PreparedImage, im: Image.Image, faces: list[Face], spec: DetectorSpec, with_picture: bool) -> PreparedImage:
    """A square crop around each face, with the face's colours (charaid.models.colours) when they count."""
    side = spec.crop_side
    t = spec.thresholds
    extra = spec.framings if faces and all(f.detector.startswith("facedet") for f in faces) else ()
    out.framings = [[] for _ in extra]
    for f in faces:
        out.faces.append(f)
        # the colours sampled here, in the picture, at the landmarks: cheap and exact
        colours = cues.face_colours(f, im) if t.cue_colour_weight > 0 else None
        searched = t.cue_colour_weight > 0
        for margin, into in [(face_margin(f, t), out.crops)] + list(zip(extra, out.framings)):
            into.append(FaceCrop(crop_face(im, f.box, margin, side), f, colours, searched))
    if with_picture:
        out.picture = picture_crop(im)
    return out


def _prepare_job(args) -> PreparedImage:
    path, detect, spec, with_hash, with_picture = args
    return prepare_image(path, detect, spec, with_hash, with_picture=with_picture)


def default_workers(n_inputs: int) -> int:
    """Worker processes worth starting: none for a handful of images (start-up costs ~1 s)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if n_inputs < 8 or cpus < 2 else min(cpus, 8)


#: Worker pools started ahead of their run (:func:`warm_workers`), each taken by the next
#: :func:`prepare_many` with its number of workers, time limit and detector.
_WARM: dict[tuple[int, float, DetectorSpec], watchdog.TimedPool] = {}


def warm_workers(spec: DetectorSpec, workers: int, wait: bool = False) -> None:
    """Start the worker processes of the next :func:`prepare_many` now, each loading ``spec``'s
    detector, so that their start-up (about half a second each) overlaps the caller's own
    (opening the gallery, loading the embedder) instead of delaying the first pictures; with
    ``wait``, until they are ready."""
    if workers <= 0:
        return
    key = (workers, spec.thresholds.detect_timeout_s, spec)
    if key not in _WARM:
        _WARM[key] = watchdog.TimedPool(workers, key[1]).warm(_load_detector, (spec,))
    if wait:
        _WARM[key].wait_warm()


def _load_detector(spec: DetectorSpec) -> None:
    detector(spec)


def prepare_many(
    paths: Iterable[str | Path],
    detect: bool = True,
    spec: DetectorSpec | None = None,
    workers: int = 0,
    with_hash: bool = True,
    window: int = 64,
    with_picture: bool = False,
) -> Iterator[PreparedImage]:
    """``prepare_image`` over many paths, in order, with ``workers`` processes (0: in this one).

    At most ``window`` images are in flight, so a folder of millions streams in bounded memory.
    """
    spec = spec or DetectorSpec()
    jobs = ((p, detect, spec, with_hash, with_picture) for p in paths)
    if workers <= 0 and not (detect and detector(spec).native):
        yield from map(_prepare_job, jobs)
        return
    # In watched worker processes: one picture past the time limit is stopped and reported,
    # and holds only its own worker meanwhile.
    n, timeout = max(1, workers), spec.thresholds.detect_timeout_s
    with _WARM.pop((n, timeout, spec), None) or watchdog.TimedPool(n, timeout) as pool:
        for job, result, error in pool.imap(_prepare_job, jobs, window):
            yield result if error is None else PreparedImage(str(job[0]), error=_job_error(error))


def _job_error(e: BaseException) -> str:
    if isinstance(e, watchdog.CallTimeout):
        return _detect_error(e)
    if isinstance(e, watchdog.WorkerDied):
        return f"decoding or detection crashed: {e}"
    return f"worker failed ({type(e).__name__}: {e})"

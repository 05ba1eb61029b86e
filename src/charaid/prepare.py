"""From a file path to face crops: decode, detect, crop. The CPU-heavy half of every batch job.

:func:`prepare_many` runs it in worker processes (face detection is single-threaded C code,
so two workers keep two cores busy) and yields results in input order, a bad file included
as an error rather than an exception, so the rest of the batch goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from .config import Thresholds, default_settings
from . import cues
from . import watchdog
from .detect import DEFAULT_DETECTOR, Detector, Face, crop_face, make_detector
from .errors import ImageError
from .images import load_image, sha256_file
from .picture import picture_crop


@dataclass(frozen=True)
class DetectorSpec:
    """Everything a worker process needs to build the same detector as the parent."""

    name: str = DEFAULT_DETECTOR
    cascade: str | None = None
    max_side: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def for_gallery(cls, gallery, settings=None) -> "DetectorSpec":
        """The detector that cut ``gallery``'s faces (the default one for a new gallery)."""
        s = settings or default_settings()
        return cls(gallery.detector or DEFAULT_DETECTOR, None, s.max_detect_side, s.thresholds)

    def build(self) -> Detector:
        return make_detector(self.name, self.cascade, self.thresholds, self.max_side)

    def for_embedder(self, embedder) -> "DetectorSpec":
        """This spec, with the face's colours left out when ``embedder`` does not read them (a
        ``--no-detect`` crop would otherwise be searched again for them, about 40 ms each)."""
        if self.thresholds.cue_colour_weight <= 0 or cues.uses_colours(embedder):
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
    crops: list[Image.Image] = field(default_factory=list)
    error: str | None = None
    #: With detection and when asked for: the whole picture, reduced for charaid.picture.
    picture: Image.Image | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def largest(self) -> int:
        """Index of the largest face; in a picture filed under a character, that character is
        nearly always it. (None, the whole image, counts as largest.)"""
        return max(range(len(self.faces)), key=lambda k: self.faces[k].box.area if self.faces[k] is not None else float("inf"))


_DETECTORS: dict[DetectorSpec, Detector] = {}


def _detector(spec: DetectorSpec) -> Detector:
    if spec not in _DETECTORS:
        _DETECTORS[spec] = spec.build()
    return _DETECTORS[spec]


def prepare_image(
    path: str | Path,
    detect: bool = True,
    spec: DetectorSpec | None = None,
    with_hash: bool = True,
    image: Image.Image | None = None,
    with_picture: bool = False,
) -> PreparedImage:
    """Decode ``path`` (or use ``image``), find its faces and cut a square crop around each;
    with ``with_picture`` (and detection), also reduce the whole picture for charaid.picture."""
    spec = spec or DetectorSpec()
    out = PreparedImage(str(path))
    try:
        im = image if image is not None else load_image(path)
        if with_hash and image is None:
            out.content_hash = sha256_file(path)
    except ImageError as e:
        out.error = e.reason
        return out
    except OSError as e:  # the file vanished or became unreadable between decode and hash
        out.error = f"cannot read ({e.strerror or e})"
        return out
    out.size = im.size
    side = default_settings().stored_crop_side
    colours = spec.thresholds.cue_colour_weight > 0  # the face's colours (charaid.cues) travel with its crop
    if not detect:
        crop = im.copy()
        if max(crop.size) > side:
            crop.thumbnail((side, side), Image.BICUBIC)
        if colours:  # searched here, in the worker, rather than in the embedder
            cues.carry(crop, cues.colours_in_crop(crop))
        out.faces, out.crops = [None], [crop]
        return out
    try:
        faces = _detector(spec).detect(im)
    except watchdog.CallTimeout as e:
        out.error = f"face detection {e}"
        return out
    except Exception as e:  # a detector crash on one odd image must not end the batch
        out.error = f"face detection failed ({type(e).__name__}: {e})"
        return out
    for f in faces:
        out.faces.append(f)
        crop = crop_face(im, f.box, spec.thresholds.crop_margin, side)
        out.crops.append(cues.carry(crop, cues.face_colours(f, im)) if colours else crop)
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
    if workers <= 0 and not (detect and _detector(spec).native):
        for j in jobs:
            yield _prepare_job(j)
        return
    # In watched worker processes: one picture past the time limit is stopped and reported,
    # and holds only its own worker meanwhile.
    with watchdog.TimedPool(max(1, workers), spec.thresholds.detect_timeout_s) as pool:
        for job, result, error in pool.imap(_prepare_job, jobs, window):
            yield result if error is None else PreparedImage(str(job[0]), error=_job_error(error))


def _job_error(e: BaseException) -> str:
    if isinstance(e, watchdog.CallTimeout):
        return f"face detection {e}"
    if isinstance(e, watchdog.WorkerDied):
        return f"decoding or detection crashed: {e}"
    return f"worker failed ({type(e).__name__}: {e})"

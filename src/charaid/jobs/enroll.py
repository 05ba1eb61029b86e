"""Enrolling characters from a folder laid out as ``DIR/<character>/<images>``.

Each image gives one sample: its largest detected face (the character the folder names is
nearly always the biggest face in their own picture), or the whole image with ``detect=False``.
Files whose content is already in the gallery are skipped before any work, so re-enrolling a
folder is a no-op. Each batch of samples is one transaction. With detection, each picture is
also kept whole (charaid.recognition.picture), face or no face: the fallback for pictures whose faces are
not found or not known.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from charaid.config import Settings, default_settings
from charaid.errors import ImageError
from charaid.models.detectors import canonical_detector
from charaid.models.embedders import Embedder
from charaid.names import name_from_folder
from charaid.pipeline.faces import FacePipeline, RunOptions
from charaid.pipeline.images import iter_image_paths, sha256_file
from charaid.pipeline.prepare import DetectorSpec
from charaid.recognition.picture import picture_embedder
from charaid.recognition.spaces import embedder_for
from charaid.storage.files import EnrolFiles, SeenFile
from charaid.storage.gallery import EnrollReport, Gallery, NewSample
from charaid.storage.journal import SORT_FOLDERS
from charaid.storage.pictures import NewPicture, add_pictures, has_picture


@dataclass
class EnrollSummary:
    images: int = 0
    added: int = 0
    #: Whole pictures kept for the picture fallback (with detection; no face needed).
    pictures: int = 0
    #: Images whose content was already enrolled (nothing done).
    unchanged: int = 0
    duplicates: int = 0
    no_face: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    characters: set[str] = field(default_factory=set)

    def merge(self, r: EnrollReport) -> None:
        self.added += r.added
        self.duplicates += r.duplicates
        self.conflicts.extend(r.conflicts)


def labelled_images(root: str | Path, on_skip: Callable[[Path, str], None] | None = None) -> list[tuple[str, Path]]:
    """(character, path) for every image under ``root/<character>/``; raise if there are none.

    The folders `charaid sort` adds beside the characters' (``_unknown``, ``_no_face``,
    ``_group``) are skipped and reported through ``on_skip``, so that a sorted and checked
    folder can be enrolled as it is."""
    base = Path(root)
    if not base.is_dir():
        raise NotADirectoryError(f"{root}: not a folder (expected DIR/<character>/<images>)")
    items = []
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.is_symlink():
            continue
        if sub.name in SORT_FOLDERS:
            if on_skip:
                on_skip(sub, "a folder of charaid sort, not a character; skipped")
            continue
        try:
            character = name_from_folder(sub.name)
        except ValueError as e:
            if on_skip:
                on_skip(sub, f"{e}; folder skipped")
            continue
        for path in iter_image_paths([sub]):
            items.append((character, path))
    if not items:
        raise ValueError(f"{root}: no images in character folders (expected DIR/<character>/<images>)")
    return items


def check_detector(gallery: Gallery, name: str) -> None:
    """Record the detector of a new gallery; refuse to mix two detectors' crops in one."""
    recorded, name = gallery.detector, canonical_detector(name)
    if recorded is None:
        gallery.set_detector(name)
    elif canonical_detector(recorded) != name:
        raise ValueError(
            f"{gallery.path}: its faces were cut by the {recorded} detector, not {name}; enrol with "
            f"--detector {recorded}, or move the gallery first (charaid gallery detector {name})"
        )


def enroll_items(
    gallery: Gallery,
    items: Sequence[tuple[str, Path]],
    detect: bool = True,
    spec: DetectorSpec | None = None,
    embedder: Embedder | None = None,
    workers: int = 0,
    batch_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    options: RunOptions | None = None,
    settings: Settings | None = None,
) -> EnrollSummary:
    """Enrol (character, image path) pairs; bad files are reported through ``on_error`` and skipped.
    ``options`` (charaid.pipeline.faces.RunOptions) chooses the engine (``workers`` otherwise)."""
    embedder = embedder or embedder_for(gallery)
    settings = settings or default_settings()
    batch_size = batch_size or settings.batch_size
    gallery.check_space(embedder.model_id, embedder.dim)
    spec = spec or DetectorSpec.for_gallery(gallery, settings)
    if detect:
        check_detector(gallery, spec.name)
    summary = EnrollSummary(images=len(items))
    files, det = EnrolFiles(gallery), (spec.name if detect else None)
    stamps: dict[tuple[str, str], tuple[int, int]] = {}  # (character, path) -> (size, mtime_ns)
    hashed: list[tuple[str, Path, str]] = []
    for character, path in items:
        try:
            st = os.stat(path)
            # unchanged since it was last read, for this character: skipped before it is hashed or decoded
            if files.unchanged(str(path), character, st.st_size, st.st_mtime_ns, det) is not None:
                summary.unchanged += 1
                _tick(on_progress)
                continue
            hashed.append((character, path, sha256_file(path)))
            stamps[(character, str(path))] = (st.st_size, st.st_mtime_ns)
        except OSError as e:
            _fail(summary, on_error, str(path), ImageError(path, f"cannot read ({e.strerror or e})").reason)
            _tick(on_progress)
    seen: list[SeenFile] = []

    def saw(character: str, path: Path, h: str, outcome: str) -> None:
        size, mtime_ns = stamps[(character, str(path))]
        seen.append(SeenFile(str(path), character, size, mtime_ns, h, outcome, det))

    holders: dict[str, set[str]] = {}
    for character, _, h in hashed:
        holders.setdefault(h, set()).add(character)
    todo: list[tuple[str, Path, str]] = []
    shared: dict[str, list[tuple[str, Path]]] = {}  # one picture filed under several characters
    for character, path, h in hashed:
        known = {c for c, _ in gallery.content_faces(h)}
        if detect and len(holders[h]) > 1:
            if character in known:
                summary.unchanged += 1
                _tick(on_progress)
            else:
                shared.setdefault(h, []).append((character, path))
        elif known and (not detect or has_picture(gallery, h)):
            summary.unchanged += 1
            saw(character, path, h, "face" if character in known else "no_face")
            _tick(on_progress)
        else:
            todo.append((character, path, h))

    samples: list[NewSample] = []
    pictures: list[NewPicture] = []
    pic_embedder = picture_embedder(embedder) if detect else None
    pipeline = FacePipeline(spec, embedder, settings, picture_embedder=pic_embedder)

    def flush() -> None:
        if samples:
            summary.merge(gallery.add(samples, embedder.model_id, embedder.dim))
            samples.clear()
        if pictures:
            assert pic_embedder is not None
            summary.pictures += add_pictures(gallery, pictures, pic_embedder.model_id, pic_embedder.dim)
            pictures.clear()
        files.record(seen)  # after the faces: a kill in between only makes the next run read them again
        seen.clear()

    opts = replace(options or RunOptions(workers=workers), detect=detect, with_picture=detect, select="largest", keep_crops=True)
    for (character, path, h), got in zip(todo, pipeline.run([t[1] for t in todo], opts)):
        prep = got.prep
        if got.picture_vector is not None:
            pictures.append(NewPicture(character, h, got.picture_vector, str(path)))
        if prep.error:
            _fail(summary, on_error, str(path), prep.error)
        elif not got.chosen:
            saw(character, path, h, "no_face")
            summary.no_face.append(str(path))
            if on_error:
                on_error(str(path), "no face found" + (" (kept as a whole picture)" if prep.picture is not None else ""))
        else:
            i = got.chosen[0]
            face = prep.faces[i]
            box = face.box.as_tuple() if face is not None else None
            samples.append(NewSample(character, h, got.vectors[0, 0], str(path), box, prep.crops[i].image))
            saw(character, path, h, "face")
            summary.characters.add(character)
        if len(samples) >= batch_size or len(pictures) >= batch_size:
            flush()
        _tick(on_progress)
    flush()
    if shared:
        _enrol_shared(gallery, pipeline, shared, summary, on_error, on_progress)
    return summary


def _enrol_shared(
    gallery: Gallery,
    pipeline: FacePipeline,
    shared: dict[str, list[tuple[str, Path]]],
    summary: EnrollSummary,
    on_error,
    on_progress,
) -> None:
    """Pictures filed under several characters (as `charaid sort --multi copy-each` leaves a
    group picture): each character gets the face most like its enrolled faces, never one that
    another character already has; a character with no faces yet gets the largest one left.
    The whole picture is not kept for the picture fallback: it shows several characters."""
    from scipy.optimize import linear_sum_assignment

    from charaid.models.embedders import l2_normalise

    embedder = pipeline.embedder
    names, means = set(gallery.names()), {}

    def mean_face(c: str) -> np.ndarray | None:
        """The character's mean enrolled face (its own samples only: a gallery may be huge)."""
        if c not in means:
            try:
                own = gallery.vectors_for([s.id for s in gallery.samples(c)], embedder.model_id) if c in names else None
            except KeyError:  # samples of another model, not re-embedded
                own = None
            means[c] = l2_normalise(own.mean(axis=0)) if own is not None and len(own) else None
        return means[c]

    for h, group in shared.items():
        path = group[0][1]
        prep = next(iter(pipeline.prepared([path], workers=0)))  # a native detector runs watched
        for _ in group:
            _tick(on_progress)
        if prep.error:
            for _, p in group:
                _fail(summary, on_error, str(p), prep.error)
            continue
        taken = {box for _, box in gallery.content_faces(h)}
        free = [i for i, f in enumerate(prep.faces) if f is not None and tuple(f.box.as_list()) not in taken]
        if not free:
            for _, p in group:
                summary.no_face.append(str(p))
                if on_error:
                    on_error(str(p), "no face found that another character has not taken")
            continue
        V = embedder.embed_batch([prep.crops[i] for i in free])
        areas = np.array([prep.box(i).area for i in free], np.float64)
        S = np.empty((len(group), len(free)))
        for r, (c, _) in enumerate(group):
            m = mean_face(c)
            # a known character: cosine to its mean face; a new one: below any cosine, largest first
            S[r] = V @ m if m is not None else areas / areas.max() - 3.0
        rows, cols = linear_sum_assignment(-S)
        got = dict(zip(rows.tolist(), cols.tolist()))
        samples = []
        for r, (c, p) in enumerate(group):
            if r not in got:
                summary.no_face.append(str(p))
                if on_error:
                    on_error(str(p), f"no face left for {c!r}: the picture's faces went to its other characters")
                continue
            i = free[got[r]]
            samples.append(NewSample(c, h, V[got[r]], str(p), prep.box(i).as_tuple(), prep.crops[i].image))
            summary.characters.add(c)
        summary.merge(gallery.add(samples, embedder.model_id, embedder.dim))


def _fail(summary: EnrollSummary, on_error, path: str, reason: str) -> None:
    summary.errors.append((path, reason))
    if on_error:
        on_error(path, reason)


def _tick(cb) -> None:
    if cb:
        cb(1)

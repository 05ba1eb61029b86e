"""Moving a gallery to another face detector: its faces are cut again from their source pictures.

Recognition crops faces the way the gallery's were cut (``Gallery.detector``), so a gallery made
with animeface-2009 keeps its answers. ``charaid gallery detector NAME`` moves it: each face
enrolled from a picture that still exists (same content) is detected again, and the new face
that overlaps the old box most replaces it (crop and vector); faces whose picture is gone or
changed, or where the new detector finds nothing there, keep their old crop. Then the gallery
records the new detector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.models.detectors import Box
from charaid.pipeline.faces import FacePipeline, RunOptions
from charaid.pipeline.images import sha256_file
from charaid.pipeline.prepare import DetectorSpec
from charaid.recognition.spaces import embedder_for
from charaid.storage.gallery import Gallery

#: The new face must overlap the old box at least this much (intersection over union) to be it.
MIN_IOU = 0.3


@dataclass
class RecutSummary:
    detector: str
    recut: int = 0
    kept: list[tuple[int, str]] = field(default_factory=list)  # (sample id, why)


def move_detector(
    gallery: Gallery, spec: DetectorSpec, workers: int = 0, batch: int = 32, on_progress: Callable[[int], None] | None = None
) -> RecutSummary:
    embedder = embedder_for(gallery)
    out = RecutSummary(spec.name)
    todo = []
    for smp in gallery.samples():
        if smp.box is None:
            continue  # a --no-detect crop: the whole picture is the face, nothing to cut again
        p = Path(smp.source_path) if smp.source_path else None
        try:
            same = p is not None and p.is_file() and sha256_file(p) == smp.content_hash
        except OSError:
            same = False
        if same:
            todo.append(smp)
        else:
            out.kept.append((smp.id, "source picture missing or changed"))
            if on_progress:
                on_progress(1)
    rows: list[tuple[int, tuple[int, int, int, int], Image.Image, np.ndarray]] = []
    used: set[tuple[str, tuple]] = set()  # (content, box): two old faces never become one

    def flush() -> None:
        if rows:
            out.recut += gallery.recut_faces(rows, embedder.model_id, embedder.dim)
            rows.clear()

    pipeline = FacePipeline(spec, embedder)
    for smp, e in zip(todo, pipeline.run([str(s.source_path) for s in todo], RunOptions(workers=workers))):
        prep = e.prep
        if on_progress:
            on_progress(1)
        if prep.error:
            out.kept.append((smp.id, prep.error))
            continue
        assert smp.box is not None  # only boxed samples are in todo
        old = Box(*smp.box)
        best = max(range(len(prep.faces)), key=lambda k: prep.box(k).iou(old), default=None)
        if best is None or prep.box(best).iou(old) < MIN_IOU:
            out.kept.append((smp.id, f"the {spec.name} detector finds no face at {list(smp.box)}"))
            continue
        box = prep.box(best).as_tuple()
        if (smp.content_hash, box) in used:
            out.kept.append((smp.id, f"its new face {list(box)} is another sample's"))
            continue
        used.add((smp.content_hash, box))
        rows.append((smp.id, box, prep.crops[best].image, e.vectors[0, e.chosen.index(best)]))
        if len(rows) >= batch:
            flush()
    flush()
    gallery.set_detector(spec.name)
    return out

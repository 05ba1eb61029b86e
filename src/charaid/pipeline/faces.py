"""The one batch loop: files in, pictures with their face vectors out (file -> faces -> crops -> vectors).

Every job that reads pictures (recognize, sort, enroll, index, the labelling queue, the web)
runs :class:`FacePipeline`: decoding and detection in worker processes
(:func:`charaid.pipeline.prepare.prepare_many`), then the embedder over batches of crops in this
process, where a CNN batch is cheapest. With ``engine="ray"`` both halves run in Ray actors
instead (:mod:`charaid.pipeline.ray_engine`), on this machine or a cluster, and the results
come back here in input order: what a job does with them (name faces, move files, write a
gallery) stays in one process, one writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from charaid.config import Settings, default_settings
from charaid.models.embedders import Embedder
from charaid.pipeline.prepare import DetectorSpec, PreparedImage, detector, prepare_image, prepare_many, warm_workers

ENGINES = ("local", "ray")
#: Which faces of a picture a job embeds: every one, or the largest only (enrolling a picture
#: filed under a character, whose face it nearly always is).
SELECT = ("all", "largest")

T = TypeVar("T")
#: Given the usual crops' vectors (faces, dim), which faces the extra framings are embedded for.
FramingFilter = Callable[[np.ndarray], "np.ndarray | Sequence[bool]"]


@dataclass
class EmbeddedImage:
    """One picture after the pipeline: its faces and crops (``prep``) and their vectors."""

    prep: PreparedImage
    #: Indices into ``prep.faces`` of the faces embedded (all, or the largest one).
    chosen: list[int]
    #: (framings, len(chosen), dim): row 0 the usual crops, then each extra framing's
    #: (:attr:`DetectorSpec.framings`; a face without one repeats its usual crop's vector).
    vectors: np.ndarray
    #: The whole picture's vector (charaid.recognition.picture), when a picture embedder was given.
    picture_vector: np.ndarray | None = None

    @property
    def path(self) -> str:
        return self.prep.path

    @property
    def ok(self) -> bool:
        return self.prep.ok


@dataclass(frozen=True)
class RunOptions:
    """How a job reads its pictures: what each picture needs, and where the work runs."""

    detect: bool = True
    workers: int = 0
    with_hash: bool = False
    #: Also reduce each picture whole (charaid.recognition.picture).
    with_picture: bool = False
    select: str = "all"
    engine: str = "local"
    ray_address: str | None = None
    #: A batch is handed on when it is this old, full or not (sort journals each batch).
    flush_every_s: float | None = None
    #: Keep the crop images in the results (enroll stores them); a Ray engine sends them back only then.
    keep_crops: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")
        if self.select not in SELECT:
            raise ValueError(f"unknown face selection {self.select!r}; choose one of: {', '.join(SELECT)}")


class FacePipeline:
    """Detector and embedder together: :meth:`batches` over paths, :meth:`embed` over pictures
    already prepared (an upload, a picture in memory)."""

    def __init__(
        self,
        spec: DetectorSpec,
        embedder: Embedder,
        settings: Settings | None = None,
        picture_embedder: Embedder | None = None,
    ):
        self.embedder = embedder
        self.spec = spec.for_embedder(embedder)  # the face's colours only where the embedder reads them
        self.settings = settings or default_settings()
        self.picture_embedder = picture_embedder

    def load(self, options: RunOptions | None = None) -> FacePipeline:
        """Load the detector and the embedder now (else on the first picture), so that a
        progress bar started after this times pictures, not start-up; with the ``options`` of
        the coming run, its local worker processes start now too, loading theirs meanwhile.
        Returns self."""
        if options is not None and options.engine == "local" and options.detect:
            warm_workers(self.spec, options.workers)
        detector(self.spec)
        self.embedder.load()
        return self

    # -- the per-picture work ---------------------------------------------------------------------
    def prepare(self, path: str | Path, options: RunOptions = RunOptions(), image=None) -> PreparedImage:
        return prepare_image(path, options.detect, self.spec, options.with_hash, image=image, with_picture=options.with_picture)

    def prepared(
        self, paths: Iterable[str | Path], options: RunOptions = RunOptions(), workers: int | None = None
    ) -> Iterator[PreparedImage]:
        """Decoded pictures with their faces cut, in order, in ``workers`` processes (default
        ``options.workers``); a native detector always runs watched (charaid.watchdog)."""
        w = options.workers if workers is None else workers
        return prepare_many(paths, options.detect, self.spec, w, options.with_hash, with_picture=options.with_picture)

    def embed(
        self, batch: Sequence[PreparedImage], select: str = "all", reframe: FramingFilter | None = None
    ) -> list[EmbeddedImage]:
        """Embed the chosen faces of every picture of ``batch`` in one pass of the embedder (and
        each extra framing in one more), and split the vectors back by picture. ``reframe``, given
        the usual crops' vectors, says which faces the extra framings are worth embedding for;
        the others repeat their usual vector there, as a face without a framing does."""
        chosen = [_choose(p, select) for p in batch]
        crops = [p.crops[i] for p, ix in zip(batch, chosen) for i in ix]
        dim = self.embedder.dim
        V0 = self.embedder.embed_batch(crops) if crops else np.zeros((0, dim), np.float32)
        blocks = [V0]
        extra = max((len(p.framings) for p in batch), default=0)
        wanted = np.asarray(reframe(V0), bool) if reframe is not None and extra and len(V0) else np.ones(len(V0), bool)
        for k in range(extra):
            Vk = V0.copy()
            rows = [
                (j, p.framings[k][i])
                for j, (p, i) in enumerate((p, i) for p, ix in zip(batch, chosen) for i in ix)
                if k < len(p.framings) and wanted[j]
            ]
            if rows:
                Vk[[j for j, _ in rows]] = self.embedder.embed_batch([c for _, c in rows])
            blocks.append(Vk)
        V = np.stack(blocks)
        pv: dict[int, np.ndarray] | None = None
        if self.picture_embedder is not None:
            pics = {j: p.picture for j, p in enumerate(batch) if p.ok and p.picture is not None}
            pv = dict(zip(pics, self.picture_embedder.embed_batch(list(pics.values())))) if pics else {}
        out, at = [], 0
        for j, (p, ix) in enumerate(zip(batch, chosen)):
            out.append(EmbeddedImage(p, ix, V[:, at : at + len(ix)], None if pv is None else pv.get(j)))
            at += len(ix)
        return out

    # -- over many files --------------------------------------------------------------------------
    def batches(
        self, paths: Iterable[str | Path], options: RunOptions = RunOptions(), reframe: FramingFilter | None = None
    ) -> Iterator[list[EmbeddedImage]]:
        """Results in input order, a batch at a time (at most ``settings.batch_size`` pictures or
        faces, or ``flush_every_s`` old); a bad file is a result whose ``prep.error`` says why.
        ``reframe``: as in :meth:`embed` (on Ray every framing is embedded)."""
        size, every = self.settings.batch_size, options.flush_every_s
        if options.engine == "ray":
            from charaid.pipeline.ray_engine import run_ray

            yield from group(run_ray(self, paths, options), lambda e: len(e.chosen), size, every)
            return
        for batch in group(self.prepared(paths, options), lambda p: len(p.crops), size, every):
            yield self.embed(batch, options.select, reframe)

    def run(self, paths: Iterable[str | Path], options: RunOptions = RunOptions()) -> Iterator[EmbeddedImage]:
        for batch in self.batches(paths, options):
            yield from batch


def _choose(p: PreparedImage, select: str) -> list[int]:
    if not p.ok or not p.crops:
        return []
    return [p.largest()] if select == "largest" else list(range(len(p.crops)))


def group(items: Iterable[T], weight: Callable[[T], int], size: int, every_s: float | None = None) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` items or total ``weight``, handed on early when
    the list is ``every_s`` old (so a slow machine loses at most that much work to a kill)."""
    batch: list[T] = []
    n, started = 0, time.monotonic()
    for item in items:
        batch.append(item)
        n += weight(item)
        if n >= size or len(batch) >= size or (every_s is not None and time.monotonic() - started >= every_s):
            yield batch
            batch, n, started = [], 0, time.monotonic()
    if batch:
        yield batch

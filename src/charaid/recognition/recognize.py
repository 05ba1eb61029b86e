"""Detect, crop, embed, match: the whole pipeline behind ``charaid recognize``.

A :class:`Recognizer` holds a gallery, a detector and the embedder of the gallery's space. It
refits its matcher when the gallery changes (enrolments bump the gallery's revision) and takes
the unknown threshold from, in order: the caller, the override stored in the gallery, the
gallery's calibration (recomputed when stale).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from charaid.config import Settings, default_settings
from charaid.models.cohort import load_cohort
from charaid.models.detectors import Box
from charaid.models.embedders import Embedder
from charaid.names import json_line
from charaid.pipeline.decide import DECISION_VERSION, CohortNorm, Decision, DecisionModel, GalleryView, decide_faces, fit_decision
from charaid.pipeline.faces import EmbeddedImage, FacePipeline, RunOptions
from charaid.pipeline.match import Calibration, Candidate, IndexedMatcher, Match, Matcher, calibrate, calibrate_indexed
from charaid.pipeline.prepare import DetectorSpec, PreparedImage
from charaid.recognition.spaces import TUNED_PREFIX, embedder_for, models_dir
from charaid.storage.gallery import Gallery
from charaid.storage.index import GalleryIndex


@dataclass(frozen=True)
class FaceResult:
    box: Box
    detector_score: float
    #: The confident name; None when the face is unknown or only probable.
    character: str | None
    score: float
    top: list[Candidate]
    #: The first guess when it is likely but not sure ("probably X"); None otherwise.
    probable: str | None = None
    #: The decision model's probability that the first guess is right (None without a model:
    #: a gallery too small to fit one, or one searched through its ANN index).
    probability: float | None = None

    @property
    def tier(self) -> str:
        """ "named", "probable" or "unknown"."""
        return "named" if self.character else ("probable" if self.probable else "unknown")

    @property
    def label(self) -> str:
        """What a person reads: the name, "probably X" or "unknown"."""
        return self.character or (f"probably {self.probable}" if self.probable else "unknown")

    def to_dict(self) -> dict:
        return {
            "box": self.box.as_list(),
            "detector_score": round(float(self.detector_score), 4),
            "character": self.character,
            "score": round(float(self.score), 4),
            "probable": self.probable,
            "probability": None if self.probability is None else round(float(self.probability), 4),
            "top": [{"character": c.character, "score": round(float(c.score), 4)} for c in self.top],
        }


@dataclass(frozen=True)
class PictureResult:
    """The whole picture compared with the enrolled pictures (charaid.recognition.picture)."""

    #: None when the picture is unknown (best score below the pictures' threshold).
    character: str | None
    score: float
    top: list[Candidate]

    def to_dict(self) -> dict:
        return {
            "character": self.character,
            "score": round(float(self.score), 4),
            "top": [{"character": c.character, "score": round(float(c.score), 4)} for c in self.top],
        }


@dataclass
class ImageResult:
    path: str
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    #: Only when asked for (``pictures=True``) and no face was named.
    picture: PictureResult | None = None
    #: (width, height) of the picture the boxes are in (not in the JSON: boxes are in the
    #: picture's own pixels, as displayed).
    size: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"path": self.path, "faces": [f.to_dict() for f in self.faces], "error": self.error}
        if self.picture is not None:
            d["picture"] = self.picture.to_dict()
        return d

    def to_json(self) -> str:
        return json_line(self.to_dict())


GALLERY_THRESHOLD_KEY = "threshold_override"
GALLERY_CALIBRATION_KEY = "calibration"
GALLERY_MATCHER_KEY = "matcher"
GALLERY_DECISION_KEY = "decision"


class Recognizer:
    """Names the faces in images against a gallery."""

    def __init__(
        self,
        gallery: Gallery,
        detector: DetectorSpec | None = None,
        embedder: Embedder | None = None,
        method: str | None = None,
        threshold: float | None = None,
        top_k: int = 5,
        settings: Settings | None = None,
        closed: bool = False,
    ):
        self.gallery = gallery
        self.settings = settings or default_settings()
        self.embedder = embedder or embedder_for(gallery)
        # Faces are cut the way the gallery's were, unless told otherwise.
        spec = detector or DetectorSpec.for_gallery(gallery, self.settings)
        #: file -> faces -> crops -> vectors, the one batch loop (charaid.pipeline.faces)
        self.pipeline = FacePipeline(
            replace(spec, framings=self.settings.thresholds.recognition_framings), self.embedder, self.settings
        )
        gallery.check_space(self.embedder.model_id, self.embedder.dim)
        stored = gallery.get_json(GALLERY_MATCHER_KEY) or {}
        t = self.settings.thresholds
        tuned = self.embedder.model_id.startswith(TUNED_PREFIX)
        self.method = method or stored.get("method") or (t.tuned_matcher if tuned else t.default_matcher)
        self._threshold_arg = threshold
        #: Closed world: every character in the pictures is enrolled, so every face found is
        #: named by its first guess (``--closed``).
        self.closed = closed
        self.top_k = top_k
        self._revision = -1
        self._matcher: Matcher = Matcher(self.method)
        self._index: GalleryIndex | None = None
        self._calibration: Calibration | None = None
        self._pictures = None
        self._view: GalleryView | None = None
        self._decision: DecisionModel | None | bool = False  # False: not looked at yet

    @property
    def spec(self) -> DetectorSpec:
        """How faces are found and cut: the gallery's detector, as the pipeline runs it."""
        return self.pipeline.spec

    # -- state that follows the gallery ---------------------------------------------------------
    def _refresh(self) -> None:
        rev = self.gallery.revision
        if rev == self._revision:
            return
        labels, ids = self.gallery.labels_ids(self.embedder.model_id)
        if len(ids) >= self.settings.exact_search_limit:
            # Too big to compare with every sample: k-NN through the ANN index beside the gallery.
            if self._index is None:
                self._index = GalleryIndex(self.gallery, exact_limit=self.settings.exact_search_limit)
            self._matcher = IndexedMatcher().fit_index(labels, ids, self._index.ensure())
        else:
            labels, X, _ = self.gallery.vectors(self.embedder.model_id)
            self._matcher = Matcher(self.method).fit(labels, X)
            self._view = GalleryView.build(labels, X, self.method, CohortNorm(self.cohort), matcher=self._matcher)
        self._calibration = None
        self._decision = False
        self._revision = rev

    @property
    def cohort(self):
        """The impostor cohort of the gallery's space (charaid.models.cohort), or None."""
        return load_cohort(self.embedder.model_id, (str(models_dir(self.gallery.path)),))

    @property
    def decision_model(self) -> DecisionModel | None:
        """The gallery's decision model (charaid.pipeline.decide), refitted (and stored) when
        the gallery changed; None for galleries too small to fit one or searched through an index."""
        self._refresh()
        if self._decision is False:
            model = None
            if self._view is not None:
                stored = self.gallery.get_json(GALLERY_DECISION_KEY)
                model = DecisionModel.from_dict(stored) if stored else None
                if (
                    model is None
                    or model.version != DECISION_VERSION
                    or model.model_id != self.embedder.model_id
                    or model.revision != self._revision
                ):
                    labels, X, _ = self.gallery.vectors(self.embedder.model_id)
                    model = fit_decision(labels, X, self.method, self.cohort, self.embedder.model_id, self._revision)
                    # a read-only gallery keeps it in memory only
                    self.gallery.keep_json(GALLERY_DECISION_KEY, model.to_dict() if model else None)
            self._decision = model
        return self._decision if isinstance(self._decision, DecisionModel) else None

    @property
    def indexed(self) -> bool:
        """True when the gallery is big enough to be searched through its ANN index."""
        self._refresh()
        return isinstance(self._matcher, IndexedMatcher)

    @property
    def calibration(self) -> Calibration:
        """The gallery's own threshold calibration, recomputed (and stored) when stale."""
        self._refresh()
        if self._calibration is None:
            stored = self.gallery.get_json(GALLERY_CALIBRATION_KEY)
            cal = Calibration.from_dict(stored) if stored else None
            method = "knn-index" if isinstance(self._matcher, IndexedMatcher) else self.method
            stale = (
                cal is None
                or cal.method != method
                or cal.model_id != self.embedder.model_id
                or (cal.source == "gallery" and cal.revision != self._revision)
            )
            if stale and isinstance(self._matcher, IndexedMatcher):
                labels, ids = self.gallery.labels_ids(self.embedder.model_id)
                cal = calibrate_indexed(
                    self._matcher, labels, ids, self.gallery.vectors_for, self.embedder.model_id, self._revision
                )
            elif stale and (model := self.decision_model) is not None and "calibration" in model.summary:
                cal = Calibration.from_dict(model.summary["calibration"])  # fitted from the same runs
                self.gallery.keep_json(GALLERY_CALIBRATION_KEY, cal.to_dict())  # a read-only gallery: in memory only
            elif stale:
                labels, X, _ = self.gallery.vectors(self.embedder.model_id)
                cal = calibrate(
                    labels,
                    X,
                    self.method,
                    self.embedder.model_id,
                    self._revision,
                    fallback=self.settings.thresholds.fallback_unknown_threshold,
                )
                self.gallery.keep_json(GALLERY_CALIBRATION_KEY, cal.to_dict())  # a read-only gallery: in memory only
            self._calibration = cal
        assert self._calibration is not None
        return self._calibration

    @property
    def threshold_override(self) -> float | None:
        """A raw-score threshold the user chose (``--threshold``, ``charaid gallery threshold
        VALUE``): it decides instead of the decision model."""
        if self._threshold_arg is not None:
            return self._threshold_arg
        override = self.gallery.get_json(GALLERY_THRESHOLD_KEY)
        return None if override is None else float(override["threshold"])

    @property
    def threshold(self) -> float:
        """Scores below this mean "unknown" where no decision model decides: lower is looser
        (more faces named, more mistakes)."""
        override = self.threshold_override
        return self.calibration.threshold if override is None else override

    @property
    def matcher(self) -> Matcher:
        self._refresh()
        return self._matcher

    # -- recognising ----------------------------------------------------------------------------
    def recognize_image(
        self, image: Image.Image, detect: bool = True, name: str = "<image>", pictures: bool = False
    ) -> ImageResult:
        """Every face in an in-memory RGB image, named or unknown; with ``pictures``, the whole
        picture too when no face is named (see :meth:`recognize_prepared`)."""
        prep = self.pipeline.prepare(name, RunOptions(detect, with_picture=pictures), image=image)
        return self.recognize_prepared([prep], pictures)[0]

    @property
    def pictures(self):
        """The whole-picture matcher (charaid.recognition.picture), made on first use."""
        if self._pictures is None:
            from charaid.recognition.picture import PictureMatcher, picture_embedder

            self._pictures = PictureMatcher(
                self.gallery,
                picture_embedder(self.embedder),
                self.settings.thresholds.picture_similarity_quantile,
                self.settings.exact_search_limit,
            )
        return self._pictures

    def recognize_prepared(self, batch: Sequence[PreparedImage], pictures: bool = False) -> list[ImageResult]:
        """Results for prepared images; with ``pictures``, an image whose faces are all missing or
        unknown is also compared whole with the enrolled pictures (``ImageResult.picture``)."""
        return self.name_faces(self.embed_faces(batch), pictures)

    def embed_faces(self, batch: Sequence[PreparedImage]) -> list[EmbeddedImage]:
        """``batch`` with the vectors of every crop, at each framing (:meth:`FacePipeline.embed`).
        Reads nothing from the gallery, so a server may run it for several requests at once,
        outside the gallery's lock. So it embeds every framing: :meth:`reframe` would read the
        gallery (the answers are the same either way, :meth:`decide`)."""
        return self.pipeline.embed(batch)

    def batches(self, paths: Iterable[str | Path], options: RunOptions) -> Iterator[list[EmbeddedImage]]:
        """The pipeline's batches, each face embedded at the extra framings only where
        :meth:`reframe` says that they can change its answer."""
        return self.pipeline.batches(paths, options, reframe=self.reframe)

    def reframe(self, usual: np.ndarray) -> np.ndarray:
        """Which faces (rows of their usual crops' vectors) the extra framings are worth
        embedding for: those that the usual crop does not name on its own. A named face keeps
        its usual crop's answer (:meth:`decide`), so skipping the others changes no answer and
        nearly halves the embedder's work where most faces are named (tla/raw: 17 of 115 reframed)."""
        return ~self._settled(usual, self.top_k)

    def name_faces(self, batch: Sequence[EmbeddedImage], pictures: bool = False, top_k: int | None = None) -> list[ImageResult]:
        """Name the faces of ``batch`` (:meth:`embed_faces`) against the gallery; with
        ``pictures``, the whole-picture fallback (:meth:`picture_fallback`) too."""
        top_k = self.top_k if top_k is None else top_k
        decisions = self.decide(_stacked(batch, self.embedder.dim), top_k)
        out, i = [], 0
        for e in batch:
            p = e.prep
            res = ImageResult(p.path, error=p.error, size=p.size)
            for j in e.chosen:
                m, d = decisions[i]
                i += 1
                face = p.faces[j]
                if face is None:  # --no-detect: the whole image is the face
                    box, dscore = Box(0, 0, *(p.size or (0, 0))), 1.0
                else:
                    box, dscore = face.box, face.score
                res.faces.append(FaceResult(box, dscore, d.character, m.score, m.top, d.probable, d.probability))
            out.append(res)
        if pictures:
            self.picture_fallback(out, batch, top_k)
        return out

    def picture_fallback(
        self, results: Sequence[ImageResult], batch: Sequence[EmbeddedImage], top_k: int, embed_guard=None, match_guard=None
    ) -> None:
        """The one whole-picture fallback: each picture of ``batch`` in which no face is named
        is compared whole with the enrolled pictures (``ImageResult.picture``). A server passes
        its guards: embedding runs outside the gallery's lock, matching inside it."""
        ask = [
            (r, e)
            for r, e in zip(results, batch)
            if e.ok and e.prep.picture is not None and not any(f.character for f in r.faces)
        ]
        if not ask:
            return
        pm = self.pictures
        with match_guard or contextlib.nullcontext():
            if not pm.ready:  # no enrolled pictures to compare with: no picture is embedded for nothing
                return
        with embed_guard or contextlib.nullcontext():
            P = pm.embedder.embed_batch([e.prep.picture for _, e in ask if e.prep.picture is not None])
        with match_guard or contextlib.nullcontext():
            matches = pm.match_vectors(P, top_k)
        for (r, _), m in zip(ask, matches):
            if m is not None:
                r.picture = PictureResult(m.character, m.score, m.top)

    def decide(self, vectors: np.ndarray, top_k: int | None = None) -> list[tuple[Match, Decision]]:
        """Each face's ranked guesses and what is said of it: named, probably X, or unknown.
        ``vectors``: (faces, dim), or (framings, faces, dim) from :meth:`embed_faces`: a face that
        its usual crop names keeps that answer, and any other keeps the framing the decision
        trusts most (the highest probability; without a model, the highest score): enrolled
        crops made by other tools frame faces otherwise.

        The decision model decides where the gallery has one; a threshold the user set decides
        the name instead (the model still says "probably X" below it); galleries without a model
        fall back to the calibrated threshold. ``closed`` names every first guess."""
        top_k = self.top_k if top_k is None else top_k
        V = vectors if vectors.ndim == 3 else vectors[None]
        per = [self._answers(Vk, top_k, self.closed) for Vk in V]
        if len(V) == 1:
            return per[0]
        settled = self._settled(V[0], top_k) if self.closed else np.array([d.character is not None for _, d in per[0]], bool)
        return [options[0] if s else max(options, key=_trust) for s, options in zip(settled, zip(*per))]

    def _answers(self, vectors: np.ndarray, top_k: int, closed: bool) -> list[tuple[Match, Decision]]:
        model = self.decision_model
        override = self.threshold_override
        fallback = None if model is not None else (override if override is not None else self.calibration.threshold)
        t = self.settings.thresholds
        return decide_faces(self.matcher, self._view, model, vectors, top_k, t, closed, override, fallback)

    def _settled(self, usual: np.ndarray, top_k: int) -> np.ndarray:
        """Faces that their usual crop names on its own (as an open-set answer, ``--closed`` or
        not): the other framings are asked only for the rest."""
        return np.array([d.character is not None for _, d in self._answers(usual, top_k, False)], bool)

    def recognize_paths(
        self,
        paths: Iterable[str | Path],
        detect: bool = True,
        workers: int = 0,
        pictures: bool = False,
        options: RunOptions | None = None,
    ) -> Iterator[ImageResult]:
        """Results in input order, streamed batch by batch; a bad file yields a result with
        ``error``. ``options`` (charaid.pipeline.faces.RunOptions) chooses the engine."""
        opts = replace(options or RunOptions(workers=workers), detect=detect, with_picture=pictures, keep_crops=False)
        for batch in self.batches(paths, opts):
            yield from self.name_faces(batch, pictures)


def _stacked(batch: Sequence[EmbeddedImage], dim: int) -> np.ndarray:
    """The vectors of a batch's faces as one (framings, faces, dim) array; a picture with fewer
    framings (cut by another detector, or in another engine batch) repeats its usual crop's."""
    n = max((e.vectors.shape[0] for e in batch), default=1)
    blocks = [
        e.vectors if e.vectors.shape[0] == n else np.concatenate([e.vectors] + [e.vectors[:1]] * (n - e.vectors.shape[0]))
        for e in batch
    ]
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((1, 0, dim), np.float32)


def _trust(answer: tuple[Match, Decision]) -> float:
    """How far a framing's answer is trusted: its probability, else its score."""
    m, d = answer
    return d.probability if d.probability is not None else m.score

"""Whole-picture recognition: the fallback for pictures whose faces are not found or not known.

animeface-2009 finds no face in many web pictures (93 of the 206 web4 pictures that
benchmarks/sort_web4.py sorts, even after looking again in reduced copies: screenshots, figures,
male characters, small or turned faces). The picture as a whole still says much: the series'
drawing style, the character's colours, hair and clothes. So at enrolment (with detection)
every picture is also embedded whole, and a picture with no named face can be compared with the
enrolled pictures. Its unknown threshold is calibrated from the enrolled pictures the same way
as the faces' (:func:`charaid.pipeline.match.calibrate`) and kept with the gallery.

What it cannot do: it recognises a look (series, outfit, palette) more than a face, so two
characters of one series drawn in the same scenes are told apart far worse than by their
faces. It is only asked when no face was named, and ``charaid sort --faces-only`` turns it off.
Pictures are always embedded with the default ImageNet features (a model tuned on faces by
``charaid train`` knows nothing of whole pictures); each vector is stored with its model id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from charaid.config import Settings, Thresholds
from charaid.models.embedders import Embedder, imagenet_embedder
from charaid.pipeline.match import MIN_CALIBRATION_CHARACTERS, Calibration, Match, Matcher, calibrate, stratified_folds
from charaid.storage.gallery import Gallery
from charaid.storage.pictures import picture_vectors

CALIBRATION_KEY = "picture_calibration"
#: Balanced by character: the fallback must not favour the character with the most pictures
#: (issue 26: 3 of 4 misfiled pictures of a sort went into the biggest character's folder).
METHOD = "hybrid-balanced"


def picture_embedder(embedder: Embedder) -> Embedder:
    """The embedder pictures are compared with: always the default ImageNet features (a model
    tuned on faces knows nothing of whole pictures); ``embedder`` itself when it is that one."""
    base = imagenet_embedder()
    return embedder if embedder.model_id == base.model_id else base


class PictureMatcher:
    """Names whole pictures against a gallery's enrolled pictures; follows the gallery's revision."""

    def __init__(self, gallery: Gallery, embedder: Embedder, quantile: float | None = None, large: int | None = None):
        self.gallery, self.embedder = gallery, embedder
        #: From this many pictures on, compare with characters' mean pictures (logistic
        #: regression over thousands of characters is too slow on a CPU).
        self.large = Settings().exact_search_limit if large is None else large
        self.method = METHOD
        self._revision = -1
        self._matcher: Matcher | None = None
        self.calibration: Calibration | None = None
        self.quantile = Thresholds().picture_similarity_quantile if quantile is None else quantile
        #: Cosine to the character's mean picture below which a picture is never named.
        self.floor = 1.0

    def _refresh(self) -> None:
        rev = self.gallery.revision
        if rev == self._revision:
            return
        labels, X = picture_vectors(self.gallery, self.embedder.model_id)
        classes, counts = np.unique(labels, return_counts=True) if len(labels) else (np.zeros(0), np.zeros(0, int))
        self._matcher, self.calibration = None, None
        if len(classes) >= MIN_CALIBRATION_CHARACTERS and min(counts) >= 2:  # else no honest threshold: name nothing
            self.method = METHOD if len(labels) < self.large else "prototype"
            self._matcher = Matcher(self.method).fit(labels, X)
            self.floor = typical_similarity(labels, X, self.quantile)
            stored = self.gallery.get_json(CALIBRATION_KEY)
            cal = Calibration.from_dict(stored) if stored else None
            if cal is None or cal.revision != rev or cal.model_id != self.embedder.model_id or cal.method != self.method:
                cal = calibrate(labels, X, self.method, self.embedder.model_id, rev)
                self.gallery.keep_json(CALIBRATION_KEY, cal.to_dict())
            self.calibration = cal
        self._revision = rev

    @property
    def ready(self) -> bool:
        """True when the gallery holds enrolled pictures of at least 3 characters, 2 each (what a
        threshold needs to be calibrated from them, see :func:`charaid.pipeline.match.calibrate`)."""
        self._refresh()
        return self._matcher is not None

    def match(self, pictures: Sequence[Image.Image], top_k: int = 5) -> list[Match | None]:
        """One :class:`Match` per picture (None for all when the gallery cannot name pictures)."""
        if not pictures or not self.ready:
            return [None] * len(pictures)
        return self.match_vectors(self.embedder.embed_batch(list(pictures)), top_k)

    def match_vectors(self, X: np.ndarray, top_k: int = 5) -> list[Match | None]:
        """:meth:`match` for pictures already embedded by ``self.embedder`` (a server embeds
        outside the gallery's lock and matches inside it)."""
        if not len(X) or not self.ready or self._matcher is None or self.calibration is None:
            return [None] * len(X)
        out = self._matcher.match(X, self.calibration.threshold, top_k)
        cos = self._matcher.prototype_similarity(X)
        pos = {c: j for j, c in enumerate(self._matcher.classes)}
        return [
            Match(None, m.score, m.top) if m.character is not None and cos[i, pos[m.character]] < self.floor else m
            for i, m in enumerate(out)
        ]


def typical_similarity(labels: np.ndarray, X: np.ndarray, quantile: float, folds: int = 5, seed: int = 0) -> float:
    """The ``quantile`` of the enrolled pictures' cosine to their own character's mean picture,
    each left out of that mean (k-fold)."""
    fold = stratified_folds(labels, folds, seed)
    sims = []
    for f in range(folds):
        te = fold == f
        if not te.any():
            continue
        m = Matcher("prototype").fit(labels[~te], X[~te])
        known = np.isin(labels[te], m.classes)  # a character with one picture has none left in
        if known.any():
            S = m.scores(X[te][known])
            sims.append(S[np.arange(len(S)), np.searchsorted(m.classes, labels[te][known])])
    return float(np.quantile(np.concatenate(sims), quantile)) if sims else 1.0

"""Naming faces from a few examples per character, or saying "unknown".

Matchers share one interface (``fit`` on the gallery's vectors, ``scores`` for queries):

- ``hybrid`` (the product's default, ``Thresholds.default_matcher``): the logistic
  probability times the cosine to the character's mean vector, so a face must be both ranked
  first and typical of the character.
- ``logreg``: multinomial logistic regression on the unit vectors; scores are probabilities.
- ``prototype``: cosine similarity to each character's mean vector.
- ``knn``: mean cosine similarity to each character's ``k`` nearest samples.

A face is ``unknown`` when its best score is below a threshold. :func:`calibrate` picks that
threshold from the gallery alone: out-of-fold scores stand for known faces, and scores of each
character's samples against a matcher fitted without that character stand for unknown faces;
the threshold that best separates the two (most known faces named right plus most unknown
faces rejected) is kept with the gallery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from charaid.config import Thresholds
from charaid.pipeline.logistic import balanced_weights, fit_logistic

METHODS = ("hybrid", "logreg", "prototype", "knn", "hybrid-balanced")
#: The product's matcher: the library, the CLI and ``evaluate`` all default to it.
DEFAULT_METHOD = Thresholds().default_matcher
#: A gallery calibrates its own threshold only from this many characters on: one is held out at
#: a time, and the matcher of the rest must still compare characters (see :func:`calibrate`).
MIN_CALIBRATION_CHARACTERS = 3


@dataclass(frozen=True)
class Candidate:
    character: str
    score: float


@dataclass(frozen=True)
class Match:
    """The answer for one face: ``character`` is None when the face is unknown; ``top`` is always filled."""

    character: str | None
    score: float
    top: list[Candidate]


@dataclass(frozen=True)
class Calibration:
    """How the unknown threshold was chosen, kept with the gallery to say why a face was refused."""

    method: str
    threshold: float
    model_id: str
    revision: int
    #: Out-of-fold known faces: share named correctly at the threshold.
    known_accuracy: float
    #: Held-out characters' faces: share rejected at the threshold.
    unknown_rejected: float
    n_known: int
    n_unknown: int
    auroc: float | None = None
    #: "gallery": from the gallery's own samples (redone when the gallery changes);
    #: "training run": from characters held out of a training run (kept while its model is active).
    source: str = "gallery"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Matcher:
    """Scores query vectors against the characters of a gallery."""

    def __init__(self, method: str = DEFAULT_METHOD, c: float | None = None, k: int = 3):
        if method not in METHODS:
            raise ValueError(f"unknown matcher {method!r}; choose one of: {', '.join(METHODS)}")
        self.method = method
        self.c = Thresholds().logreg_c if c is None else c
        self.k = k
        self.classes: np.ndarray = np.array([], dtype=object)

    @property
    def effective_method(self) -> str:
        """Logistic regression needs two characters; with one it falls back to prototypes.
        ``hybrid-balanced`` is ``hybrid`` with every character weighing the same in the fit,
        however many samples it has."""
        base = self.method.removesuffix("-balanced")
        return "prototype" if base in ("logreg", "hybrid") and len(self.classes) < 2 else base

    def fit(self, labels: Sequence[str] | np.ndarray, X: np.ndarray) -> Matcher:
        labels = np.asarray(labels, dtype=object)
        X = np.asarray(X, dtype=np.float32)
        self.classes = np.array(sorted(set(labels.tolist())), dtype=object)
        self._X, self._y = X, labels
        if len(self.classes) == 0:
            return self
        idx = {c: i for i, c in enumerate(self.classes)}
        self._yi = np.array([idx[v] for v in labels])
        protos = np.stack([X[self._yi == i].mean(axis=0) for i in range(len(self.classes))])
        self._protos = protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
        if self.effective_method in ("logreg", "hybrid"):
            k = len(self.classes)
            weight = balanced_weights(self._yi, k) if self.method.endswith("-balanced") else None
            self._lr = fit_logistic(X, self._yi, self.c, weight, k)
        return self

    def prototype_similarity(self, Q: np.ndarray) -> np.ndarray:
        """(n_queries, n_characters) cosine to each character's mean vector, whatever the method:
        how typical a query is of a character, beside how it is ranked."""
        if len(self.classes) == 0:
            return np.zeros((len(Q), 0), np.float32)
        return np.asarray(Q, dtype=np.float32) @ self._protos.T

    def scores(self, Q: np.ndarray) -> np.ndarray:
        """(n_queries, n_characters) scores; higher means more likely that character."""
        Q = np.asarray(Q, dtype=np.float32)
        n = len(self.classes)
        if n == 0:
            return np.zeros((len(Q), 0), np.float32)
        m = self.effective_method
        if m in ("logreg", "hybrid"):
            p = self._lr.predict_proba(Q).astype(np.float32)
            return p if m == "logreg" else p * np.maximum(Q @ self._protos.T, 0.0)
        if m == "prototype":
            return Q @ self._protos.T
        sims = Q @ self._X.T
        out = np.empty((len(Q), n), np.float32)
        for i in range(n):
            s = sims[:, self._yi == i]
            kk = min(self.k, s.shape[1])
            out[:, i] = np.sort(s, axis=1)[:, -kk:].mean(axis=1)
        return out

    def match(self, Q: np.ndarray, threshold: float, top_k: int = 5, scores: np.ndarray | None = None) -> list[Match]:
        """Top-``top_k`` candidates per query; the best is named only if its score >= threshold
        (``scores``: :meth:`scores` of ``Q`` when the caller has them already)."""
        S = self.scores(Q) if scores is None else scores
        out = []
        for row in S:
            order = np.argsort(-row)[:top_k]
            top = [Candidate(str(self.classes[j]), round(float(row[j]), 4)) for j in order]
            best = top[0] if top else None
            named = best.character if best is not None and best.score >= threshold else None
            out.append(Match(named, best.score if best else 0.0, top))
        return out


def calibrate(
    labels: Sequence[str] | np.ndarray,
    X: np.ndarray,
    method: str = DEFAULT_METHOD,
    model_id: str = "",
    revision: int = 0,
    folds: int = 5,
    max_held_out: int = 40,
    seed: int = 0,
    fallback: float | None = None,
) -> Calibration:
    """Choose the unknown threshold from the gallery itself (see the module's docstring)."""
    labels = np.asarray(labels, dtype=object)
    X = np.asarray(X, dtype=np.float32)
    classes, counts = np.unique(labels, return_counts=True) if len(labels) else (np.array([]), np.array([]))
    fb = Thresholds().fallback_unknown_threshold if fallback is None else fallback
    if len(classes) < MIN_CALIBRATION_CHARACTERS or counts.min() < 2:
        # Too small to calibrate from itself. With two characters, holding one out leaves one,
        # and a one-character matcher scores by another rule (prototypes: plain cosines, higher
        # than the two-character hybrid's probability x cosine), which put the threshold of
        # each of tla's two-character galleries above every known face (docs/benchmarks.md@aef98b0).
        return Calibration(method, fb, model_id, revision, float("nan"), float("nan"), 0, 0)
    rng = np.random.default_rng(seed)
    known_s, known_ok = _out_of_fold(labels, X, method, min(folds, int(counts.min())), rng)
    unknown_s = _held_out_characters(labels, X, classes, method, max_held_out, rng)
    t, acc, rej = best_threshold(known_s, known_ok, unknown_s)
    return Calibration(method, t, model_id, revision, acc, rej, len(known_s), len(unknown_s), auroc(known_s, unknown_s))


def best_threshold(known_scores: np.ndarray, known_correct: np.ndarray, unknown_scores: np.ndarray) -> tuple[float, float, float]:
    """The threshold that maximises (known named right) + (unknown rejected), each as a share.

    Candidates are the midpoints between neighbouring observed scores, so the threshold never
    sits on one sample's score; among equally good candidates the middle one is taken.
    Returns (threshold, known accuracy, unknown rejection) at that threshold.
    """
    ks, uk = np.asarray(known_scores, float), np.asarray(unknown_scores, float)
    ok = np.asarray(known_correct, bool)
    vals = np.unique(np.r_[ks, uk])
    if len(vals) > 4000:  # large galleries: quantiles are fine enough
        vals = np.unique(np.quantile(vals, np.linspace(0, 1, 4000)))
    cands = np.r_[vals[0] - 1e-6, (vals[:-1] + vals[1:]) / 2, vals[-1] + 1e-6]
    ok_sorted = np.sort(ks[ok])
    accepted_ok = np.asarray(len(ok_sorted) - np.searchsorted(ok_sorted, cands, side="left"))
    rejected_unknown = np.asarray(np.searchsorted(np.sort(uk), cands, side="left"))
    objective = accepted_ok / max(1, len(ks)) + rejected_unknown / max(1, len(uk))
    best = np.flatnonzero(objective >= objective.max() - 1e-12)
    i = int(best[len(best) // 2])
    return float(cands[i]), float(accepted_ok[i] / max(1, len(ks))), float(rejected_unknown[i] / max(1, len(uk)))


def auroc(known_scores: np.ndarray, unknown_scores: np.ndarray) -> float | None:
    """Probability that a known face outscores an unknown one (ties count half)."""
    k, u = np.asarray(known_scores, float), np.asarray(unknown_scores, float)
    if not len(k) or not len(u):
        return None
    allv = np.r_[k, u]
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rk = ranks[: len(k)].sum()
    return float((rk - len(k) * (len(k) + 1) / 2) / (len(k) * len(u)))


def _out_of_fold(labels, X, method, folds, rng) -> tuple[np.ndarray, np.ndarray]:
    fold_of = np.empty(len(labels), int)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold_of[idx] = np.arange(len(idx)) % folds
    scores, correct = np.empty(len(labels)), np.empty(len(labels), bool)
    for f in range(folds):
        te = fold_of == f
        m = Matcher(method).fit(labels[~te], X[~te])
        S = m.scores(X[te])
        j = S.argmax(axis=1)
        scores[te] = S[np.arange(len(j)), j]
        correct[te] = m.classes[j] == labels[te]
    return scores, correct


def _held_out_characters(labels, X, classes, method, max_held_out, rng) -> np.ndarray:
    held = classes if len(classes) <= max_held_out else rng.choice(classes, max_held_out, replace=False)
    out = []
    for c in held:
        out_mask = labels == c
        m = Matcher(method).fit(labels[~out_mask], X[~out_mask])
        out.append(m.scores(X[out_mask]).max(axis=1))
    return np.concatenate(out)


class IndexedMatcher(Matcher):
    """k-NN through a nearest-neighbour index, for galleries too big to compare with every sample.

    ``index`` is anything with ``search(Q, k) -> (ids, similarities)`` (charaid.storage.index). A query's
    ``neighbours`` nearest samples are grouped by character; a character's score is the mean of
    its ``k`` best similarities, as for the exact ``knn`` matcher. A character with fewer than
    ``k`` samples among the neighbours has its missing ones counted at the last neighbour's
    similarity (an upper bound of the truth), and characters not among them score -1.
    """

    def __init__(self, k: int = 3, neighbours: int = 64):
        super().__init__("knn", k=k)
        self.neighbours = neighbours

    def fit_index(self, labels: Sequence[str] | np.ndarray, ids: np.ndarray, index) -> IndexedMatcher:
        labels = np.asarray(labels, dtype=object)
        self.classes = np.array(sorted(set(labels.tolist())), dtype=object)
        pos = {c: i for i, c in enumerate(self.classes)}
        yi = np.array([pos[v] for v in labels], np.int64)
        order = np.argsort(ids)
        self._sid, self._syi = np.asarray(ids, np.int64)[order], yi[order]
        self._count = np.bincount(yi, minlength=len(self.classes))
        self._index = index
        return self

    def class_of(self, ids: np.ndarray) -> np.ndarray:
        """Character index of each sample id (-1 for ids the gallery does not hold)."""
        ids = np.asarray(ids, np.int64)
        if not len(self._sid):
            return np.full(ids.shape, -1, np.int64)
        at = np.clip(np.searchsorted(self._sid, ids), 0, len(self._sid) - 1)
        return np.where(self._sid[at] == ids, self._syi[at], -1)

    def scores(self, Q: np.ndarray, exclude_ids: np.ndarray | None = None, exclude_class: np.ndarray | None = None) -> np.ndarray:
        """Like :meth:`Matcher.scores`; ``exclude_*`` leave one sample or one character out per query."""
        Q = np.atleast_2d(np.asarray(Q, np.float32))
        n = len(self.classes)
        out = np.full((len(Q), n), -1.0, np.float32)
        if n == 0 or not len(Q):
            return out
        own = self.class_of(exclude_ids) if exclude_ids is not None else np.full(len(Q), -1)
        extra = 1 if exclude_ids is not None else 0
        if exclude_class is not None:
            extra += int(self._count[np.asarray(exclude_class)].max())
        ids, sims = self._index.search(Q, self.neighbours + extra)
        cls = self.class_of(ids)
        for r in range(len(Q)):
            keep = (ids[r] >= 0) & (cls[r] >= 0)
            if exclude_ids is not None:
                keep &= ids[r] != exclude_ids[r]
            if exclude_class is not None:
                keep &= cls[r] != exclude_class[r]
            c, s = cls[r][keep][: self.neighbours], sims[r][keep][: self.neighbours]
            if not len(s):
                continue
            floor = float(s[-1])
            for j in np.unique(c):
                mine = s[c == j][: self.k]  # best first
                kk = max(len(mine), min(self.k, int(self._count[j]) - (j == own[r])))
                out[r, j] = (mine.sum() + floor * (kk - len(mine))) / kk
        return out


def calibrate_indexed(
    m: IndexedMatcher,
    labels: Sequence[str] | np.ndarray,
    ids: np.ndarray,
    fetch,
    model_id: str = "",
    revision: int = 0,
    max_known: int = 2000,
    max_held_out: int = 40,
    seed: int = 0,
) -> Calibration:
    """:func:`calibrate` for an :class:`IndexedMatcher`: leave-one-out known scores for a sample of
    faces, and character-held-out scores for up to ``max_held_out`` characters, all through the
    index (the gallery is never scanned whole). ``fetch(ids)`` returns those samples' vectors."""
    labels = np.asarray(labels, dtype=object)
    ids = np.asarray(ids, np.int64)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ids), min(max_known, len(ids)), replace=False))
    known_parts: list[np.ndarray] = []
    ok_parts: list[np.ndarray] = []
    for c in range(0, len(pick), 256):  # scores are dense (queries x characters): bound their size
        part = pick[c : c + 256]
        S = m.scores(fetch(ids[part]), exclude_ids=ids[part])
        known_parts.append(S.max(axis=1))
        ok_parts.append(m.classes[S.argmax(axis=1)] == labels[part])
    known_s, known_ok = np.concatenate(known_parts), np.concatenate(ok_parts)
    held = rng.choice(len(m.classes), min(max_held_out, len(m.classes)), replace=False)
    unknown = []
    for j in held:
        mine = ids[labels == m.classes[j]][:50]
        unknown.append(m.scores(fetch(mine), exclude_class=np.full(len(mine), j)).max(axis=1))
    unknown_s = np.concatenate(unknown)
    t, acc, rej = best_threshold(known_s, known_ok, unknown_s)
    return Calibration("knn-index", t, model_id, revision, acc, rej, len(known_s), len(unknown_s), auroc(known_s, unknown_s))


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per sample; each character's samples spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), int)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold_of[idx] = (np.arange(len(idx)) + rng.integers(folds)) % folds
    return fold_of

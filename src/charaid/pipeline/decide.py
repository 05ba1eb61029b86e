"""Deciding what to say about a face: named, probably X, or unknown.

One raw score against one threshold per gallery turned half of charaid's right first guesses
into "unknown" (issue 26): a face's score depends on how tight its character's cluster is, on how
many samples it has, and a threshold chosen from a gallery's own 3-8 characters rests on a tiny
impostor sample. The decision here reads more than one number:

- **S-norm against a cohort** (charaid.models.cohort): the face's k-NN cosine to its best
  character, standardised by the cohort's cosines to that character (how high strangers score
  there) and by the face's own cosines to the cohort (how high this face scores with anyone),
  each over its ``top_n`` closest cohort faces (adaptive S-norm);
- the margin to the second character, raw and normalised;
- the agreement of the nearest samples (the share of the face's ``agree_k`` nearest gallery
  samples that belong to its best character);
- the raw matcher score, and the number of samples of the best character (few against many).

A small logistic model turns them into the probability that the first guess is right. It is
fitted per gallery (:func:`fit_decision`) on the gallery's own out-of-fold faces (right or
wrong first guesses), its characters held out one at a time (unknowns) and cohort faces that
the normalisation does not use (unknowns), the two sides weighted equally. Two probability
thresholds (``Thresholds.decision_named``, ``decision_probable``) cut three answers.

Pure numpy (charaid.pipeline.logistic fits the model): no torch, no images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from charaid.config import Thresholds
from charaid.pipeline.logistic import fit_logistic
from charaid.pipeline.match import Calibration, Match, Matcher, auroc, best_threshold, stratified_folds

FEATURES = ("raw", "snorm", "snorm_margin", "raw_margin", "agreement", "log_samples")
#: The features the shipped model reads: the raw score and the margin to the second character.
#: Every other one measured worse on the development sets' unknowns, where unknowns are
#: look-alikes of the same series (docs/experiments.md, 2026-12-04, "Open-set decisions").
DEFAULT_USE = (0, 3)
#: Version of the features and the fit: a stored model of another version is refitted.
DECISION_VERSION = 1


@dataclass(frozen=True)
class Decision:
    """What is said about one face: ``character`` is the confident name (None otherwise);
    ``probable`` the name of a first guess that is likely but not sure; ``probability`` the
    model's probability that the first guess is right."""

    character: str | None
    probable: str | None
    probability: float | None

    @property
    def tier(self) -> str:
        return "named" if self.character else ("probable" if self.probable else "unknown")


class CohortNorm:
    """Adaptive S-norm of k-NN cosines against a cohort of other characters' faces."""

    def __init__(self, cohort: np.ndarray | None, top_n: int = 200, k: int = 3):
        self.cohort = None if cohort is None or not len(cohort) else np.asarray(cohort, np.float32)
        self.top_n = top_n
        self.k = k

    @property
    def active(self) -> bool:
        return self.cohort is not None

    def knn_scores(self, Q: np.ndarray, X: np.ndarray, yi: np.ndarray, n_classes: int) -> np.ndarray:
        """(n_queries, n_characters): mean of each character's ``k`` best cosines to the query."""
        sims = np.asarray(Q, np.float32) @ np.asarray(X, np.float32).T
        out = np.full((len(Q), n_classes), -1.0, np.float32)
        for c in range(n_classes):
            s = sims[:, yi == c]
            if s.shape[1]:
                kk = min(self.k, s.shape[1])
                out[:, c] = np.sort(s, axis=1)[:, -kk:].mean(axis=1)
        return out

    def _stats(self, S: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(self.top_n, S.shape[axis])
        top = -np.partition(-S, n - 1, axis=axis).take(np.arange(n), axis=axis)
        return top.mean(axis=axis), np.maximum(top.std(axis=axis), 1e-3)

    def character_stats(self, X: np.ndarray, yi: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """How high the cohort scores on each character: mean and spread of its top scores."""
        assert self.cohort is not None
        return self._stats(self.knn_scores(self.cohort, X, yi, n_classes), axis=0)

    def query_stats(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How high each query scores with anyone: mean and spread of its top cohort cosines."""
        assert self.cohort is not None
        return self._stats(np.asarray(Q, np.float32) @ self.cohort.T, axis=1)


@dataclass
class GalleryView:
    """A fitted matcher with what the features need of its gallery (vectors, labels, cohort stats)."""

    matcher: Matcher
    X: np.ndarray
    yi: np.ndarray
    counts: np.ndarray
    norm: CohortNorm
    _char_stats: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(cls, labels, X: np.ndarray, method: str, norm: CohortNorm, matcher: Matcher | None = None) -> GalleryView:
        m = matcher if matcher is not None else Matcher(method).fit(labels, X)
        pos = {c: i for i, c in enumerate(m.classes)}
        yi = np.array([pos[v] for v in np.asarray(labels, dtype=object)], np.int64)
        counts = np.bincount(yi, minlength=len(m.classes))
        return cls(m, np.asarray(X, np.float32), yi, counts, norm)

    def char_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """The cohort's scores on each character (computed once, when S-norm is first asked for)."""
        if self._char_stats is None:
            self._char_stats = self.norm.character_stats(self.X, self.yi, len(self.matcher.classes))
        return self._char_stats

    def features(
        self, Q: np.ndarray, S: np.ndarray | None = None, agree_k: int = 5, use: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, len(FEATURES)), index of each query's best character). Only the columns
        in ``use`` (default: all) are computed, the others are left 0: the S-norm columns cost a
        pass over the cohort and the agreement one over the gallery, and the shipped model reads
        neither."""
        Q = np.asarray(Q, np.float32)
        need = set(range(len(FEATURES)) if use is None else use)
        n_c = len(self.matcher.classes)
        S = self.matcher.scores(Q) if S is None else S
        order = np.argsort(-S, axis=1)
        j1 = order[:, 0]
        r = np.arange(len(Q))
        F = np.zeros((len(Q), len(FEATURES)), np.float64)
        F[:, 0] = S[r, j1]
        F[:, 3] = F[:, 0] - (S[r, order[:, 1]] if n_c > 1 else 0.0)
        if need & {1, 2}:
            K = self.norm.knn_scores(Q, self.X, self.yi, n_c)
            if self.norm.active:
                char_mu, char_sd = self.char_stats()
                qmu, qsd = self.norm.query_stats(Q)
                Z = 0.5 * ((K - char_mu[None, :]) / char_sd[None, :] + (K - qmu[:, None]) / qsd[:, None])
            else:  # no cohort for this space: the k-NN cosines stand in
                Z = K * 10.0
            z1 = Z[r, j1]
            Z2 = Z.copy()
            Z2[r, j1] = -np.inf
            z2 = Z2.max(axis=1) if n_c > 1 else np.full(len(Q), z1.min() - 3.0 if len(Q) else 0.0)
            F[:, 1], F[:, 2] = z1, np.minimum(z1 - z2, 10.0)
        if 4 in need:
            sims = Q @ self.X.T
            kk = min(agree_k, sims.shape[1])
            if kk:
                near = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
                F[:, 4] = (self.yi[near] == j1[:, None]).mean(axis=1)
        if 5 in need:
            F[:, 5] = np.log(self.counts[j1])
        return F, j1


@dataclass
class DecisionModel:
    """Logistic model: features -> probability that the first guess is right."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    model_id: str = ""
    revision: int = -1
    #: Which of :data:`FEATURES` the model reads, in order.
    use: list[int] = field(default_factory=lambda: list(range(len(FEATURES))))
    version: int = DECISION_VERSION
    #: What the fit saw: faces right / wrong out of fold, held-out and cohort unknowns, and the
    #: measures on those faces (AUROC of the probability between known and unknown faces).
    summary: dict = field(default_factory=dict)

    def probability(self, F: np.ndarray) -> np.ndarray:
        """P(first guess right) of each row of :meth:`GalleryView.features`."""
        Z = (np.asarray(F, np.float64)[:, self.use] - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(Z @ np.asarray(self.coef) + self.intercept)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DecisionModel:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def decide(p: np.ndarray, top: Sequence[str | None], named_at: float, probable_at: float, closed: bool = False) -> list[Decision]:
    """Three answers from probabilities: named from ``named_at``, probable from ``probable_at``;
    ``closed`` (every character in the pictures is enrolled) names every first guess."""
    out = []
    for pi, name in zip(np.asarray(p, float), top):
        if name is None:
            out.append(Decision(None, None, round(float(pi), 4)))
        elif closed or pi >= named_at:
            out.append(Decision(name, None, round(float(pi), 4)))
        elif pi >= probable_at:
            out.append(Decision(None, name, round(float(pi), 4)))
        else:
            out.append(Decision(None, None, round(float(pi), 4)))
    return out


def decide_faces(
    matcher: Matcher,
    view: GalleryView | None,
    model: DecisionModel | None,
    vectors: np.ndarray,
    top_k: int,
    thresholds: Thresholds,
    closed: bool = False,
    override: float | None = None,
    fallback: float | None = None,
) -> list[tuple[Match, Decision]]:
    """Each face's ranked guesses and what is said of it: named, probably X, or unknown.

    The decision model decides where there is one (``model`` and ``view``); a raw threshold the
    user set (``override``) decides the name instead, the model still saying "probably X" below
    it; without a model the raw ``fallback`` threshold names and nothing is probable. ``closed``
    names every first guess."""
    if not len(vectors):
        return []
    S = matcher.scores(vectors)
    matches = matcher.match(vectors, 0.0, top_k, scores=S)
    top = [m.top[0].character if m.top else None for m in matches]
    if model is None or view is None:
        thr = (override if override is not None else fallback) or 0.0
        return [
            (m, Decision(c if c is not None and (closed or m.score >= thr) else None, None, None)) for m, c in zip(matches, top)
        ]
    F, _ = view.features(vectors, S, use=model.use)
    p = model.probability(F)
    ds = decide(p, top, thresholds.decision_named, thresholds.decision_probable, closed)
    if override is not None and not closed:
        ds = [
            Decision(c, None, d.probability)
            if m.score >= override
            else Decision(None, c if pi >= thresholds.decision_probable else None, d.probability)
            for m, d, c, pi in zip(matches, ds, top, p)
        ]
    return list(zip(matches, ds))


def training_faces(
    labels,
    X: np.ndarray,
    method: str,
    cohort: np.ndarray | None,
    folds: int = 5,
    max_held_out: int = 40,
    cohort_queries: int = 400,
    seed: int = 0,
    use: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, right first guess?, is an unknown?) of the gallery's own runs: out-of-fold
    faces, characters held out one at a time, and cohort faces kept out of the normalisation;
    only the feature columns in ``use`` (default all) are computed."""
    labels = np.asarray(labels, dtype=object)
    X = np.asarray(X, np.float32)
    rng = np.random.default_rng(seed)
    norm_part, queries = cohort, np.zeros((0, X.shape[1]), np.float32)
    if cohort is not None and len(cohort) > 2 * cohort_queries:
        perm = rng.permutation(len(cohort))
        queries, norm_part = cohort[perm[:cohort_queries]], cohort[perm[cohort_queries:]]
    norm = CohortNorm(norm_part)
    classes, counts = np.unique(labels, return_counts=True)
    F, ok, unk = [], [], []
    nf = max(2, min(folds, int(counts.min())))
    fold_of = stratified_folds(labels, nf, seed)
    for f in range(nf):
        te = fold_of == f
        tr = ~te
        if len(np.unique(labels[tr])) < 2:
            continue
        v = GalleryView.build(labels[tr], X[tr], method, norm)
        Fi, j = v.features(X[te], use=use)
        F.append(Fi)
        ok.append(v.matcher.classes[j] == labels[te])
        unk.append(np.zeros(int(te.sum()), bool))
    held = classes if len(classes) <= max_held_out else rng.choice(classes, max_held_out, replace=False)
    # holding one of two characters out leaves a one-character matcher, which scores by another
    # rule (see charaid.pipeline.match.calibrate): there the cohort alone stands for the unknowns
    for c in held if len(classes) >= 3 else ():
        out_mask = labels == c
        if len(np.unique(labels[~out_mask])) < 2:
            continue
        v = GalleryView.build(labels[~out_mask], X[~out_mask], method, norm)
        Fi, _ = v.features(X[out_mask], use=use)
        F.append(Fi)
        ok.append(np.zeros(len(Fi), bool))
        unk.append(np.ones(len(Fi), bool))
    if len(queries):
        v = GalleryView.build(labels, X, method, norm)
        Fi, _ = v.features(queries, use=use)
        F.append(Fi)
        ok.append(np.zeros(len(Fi), bool))
        unk.append(np.ones(len(Fi), bool))
    return np.concatenate(F), np.concatenate(ok), np.concatenate(unk)


def fit_decision(
    labels,
    X: np.ndarray,
    method: str,
    cohort: np.ndarray | None,
    model_id: str = "",
    revision: int = -1,
    c: float = 1.0,
    seed: int = 0,
    held_out_share: float = 0.75,
    use: Sequence[int] = DEFAULT_USE,
    cohort_queries: int = 400,
) -> DecisionModel | None:
    """The gallery's decision model (see the module's docstring); None when the gallery is too
    small to learn from: fewer than 3 characters (none can be held out: the cohort alone is too
    easy an unknown, and 2-character galleries named the held-out third of tla 0.42 of the time)
    or a character with a single sample."""
    labels = np.asarray(labels, dtype=object)
    classes, counts = np.unique(labels, return_counts=True) if len(labels) else (np.array([]), np.array([]))
    if len(classes) < 3 or counts.min() < 2:
        return None
    F_all, ok, unk = training_faces(labels, X, method, cohort, seed=seed, cohort_queries=cohort_queries, use=(0, *use))
    F = F_all[:, list(use)]
    known = ~unk
    # The known and the unknown sides weigh the same, whatever their sizes; among the unknowns,
    # the gallery's own held-out characters (look-alikes of one series, the hard case) weigh
    # ``held_out_share`` and the cohort's faces (anyone else) the rest.
    n_cohort = min(int(unk.sum()), cohort_queries if cohort is not None and len(cohort) > 2 * cohort_queries else 0)
    is_cohort = np.zeros(len(F), bool)
    if n_cohort:
        is_cohort[-n_cohort:] = True
    held = unk & ~is_cohort
    share = held_out_share if held.any() and is_cohort.any() else (1.0 if held.any() else 0.0)
    w = np.where(known, 0.5 / max(1, int(known.sum())), 0.0)
    w = np.where(held, 0.5 * share / max(1, int(held.sum())), w)
    w = np.where(is_cohort, 0.5 * (1 - share) / max(1, int(is_cohort.sum())), w) * len(F)
    mean, scale = F.mean(axis=0), np.maximum(F.std(axis=0), 1e-6)
    lr = fit_logistic((F - mean) / scale, ok.astype(np.int64), c, w, 2)
    model = DecisionModel(
        mean.tolist(), scale.tolist(), lr.coef[0].tolist(), float(lr.intercept[0]), model_id, revision, list(use)
    )
    p = model.probability(F_all)
    # The same runs give the raw-score threshold (charaid.pipeline.match.calibrate's rule), for
    # what still reads one (a threshold shown, the label queue): no second round of fits.
    t, acc, rej = best_threshold(F_all[known, 0], ok[known], F_all[held, 0])
    raw_auc = auroc(F_all[known, 0], F_all[held, 0])
    calibration = Calibration(method, t, model_id, revision, acc, rej, int(known.sum()), int(held.sum()), raw_auc)
    model.summary = {
        "known_right": int((ok & known).sum()),
        "known_wrong": int((~ok & known).sum()),
        "unknown": int(unk.sum()),
        "auroc": auroc(p[known], p[unk]),
        "cohort": cohort is not None,
        "calibration": calibration.to_dict(),
    }
    return model

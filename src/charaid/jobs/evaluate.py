"""Measuring recognition on labelled folders: top-1, top-5, per character, confusion, unknowns.

The protocols work on vectors (pure numpy), so one embedding pass serves every measurement:

- :func:`evaluate_split`: fit on one labelled set, test on another. Test characters missing from
  the training set are unknowns: they count in the rejection figures, not in top-1.
- :func:`evaluate_folds`: stratified k-fold cross-validation.
- :func:`leave_out_unknowns`: hold whole characters out of the gallery, calibrate the threshold
  on what is left (as a user's gallery would), and measure how the held-out faces are rejected.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charaid.config import Thresholds
from charaid.jobs.enroll import labelled_images
from charaid.models.embedders import Embedder
from charaid.names import shown
from charaid.pipeline.decide import CohortNorm, GalleryView, fit_decision
from charaid.pipeline.faces import FacePipeline, RunOptions
from charaid.pipeline.match import DEFAULT_METHOD, Matcher, auroc, calibrate, stratified_folds
from charaid.pipeline.prepare import DetectorSpec


@dataclass
class UnknownReport:
    """Known-vs-unknown separation, averaged over the held-out draws."""

    auroc: float
    #: Share of unknown faces answered "unknown" at the calibrated threshold.
    rejected: float
    #: Share of known faces named correctly (not rejected, right name) at that threshold.
    known_accuracy: float
    threshold: float
    draws: int
    n_unknown: int
    n_known: int
    #: The same, answered as ``charaid recognize`` answers: by the gallery's decision model
    #: (charaid.pipeline.decide), where the gallery is big enough to have one.
    decision_rejected: float | None = None
    decision_known_accuracy: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class EvalReport:
    n: int = 0
    top1: float = 0.0
    top5: float = 0.0
    per_character: dict[str, tuple[int, float]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    unknown: UnknownReport | None = None
    #: Measured as a closed world (``--closed``): no unknowns held out.
    closed: bool = False
    #: What was measured (the report's heading): set, method, model, date.
    title: str = ""
    #: Known faces whose first guess was another character: path, truth, guess, score.
    misnamed: list[dict] = field(default_factory=list)
    #: Pictures left out of the measurement, and why (no face found, unreadable).
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "top1": self.top1,
            "top5": self.top5,
            "per_character": {k: {"n": n, "accuracy": a} for k, (n, a) in self.per_character.items()},
            "classes": self.classes,
            "confusion": None if self.confusion is None else self.confusion.tolist(),
            "unknown": None if self.unknown is None else self.unknown.to_dict(),
            "closed": self.closed,
            "title": self.title,
            "misnamed": self.misnamed,
            "dropped": [{"path": p, "reason": r} for p, r in self.dropped],
        }

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""] if self.title else []
        lines += ["| faces | top-1 | top-5 |", "|---|---|---|", f"| {self.n} | {self.top1:.3f} | {self.top5:.3f} |", ""]
        if self.closed:
            lines += ["Closed world (--closed): every face is named by its first guess, so named right = top-1.", ""]
        if self.unknown:
            u = self.unknown
            lines += [
                "| unknowns: AUROC | rejected at threshold | known accuracy at threshold | threshold | draws |",
                "|---|---|---|---|---|",
                f"| {u.auroc:.3f} | {u.rejected:.3f} | {u.known_accuracy:.3f} | {u.threshold:.3f} | {u.draws} |",
                "",
            ]
            if u.decision_rejected is not None and u.decision_known_accuracy is not None:
                lines += [
                    "| as recognize answers (decision model): unknowns rejected | known faces named right |",
                    "|---|---|",
                    f"| {u.decision_rejected:.3f} | {u.decision_known_accuracy:.3f} |",
                    "",
                ]
        lines += ["| character | faces | top-1 |", "|---|---|---|"]
        lines += [f"| {k} | {n} | {a:.3f} |" for k, (n, a) in self.per_character.items()]
        lines += ["", f"## Misnamed pictures ({len(self.misnamed)})", ""]
        lines += [f"- {m['path']}: {m['truth']} named {m['guess']} ({m['score']:.3f})" for m in self.misnamed] or ["none"]
        lines += ["", f"## Pictures left out ({len(self.dropped)})", ""]
        lines += [f"- {shown(p)}: {r}" for p, r in self.dropped] or ["none"]
        return "\n".join(lines) + "\n"


@dataclass
class EmbeddedSet:
    labels: np.ndarray
    paths: list[str]
    X: np.ndarray


def embed_labelled(
    root: str | Path,
    embedder: Embedder,
    detect: bool = True,
    spec: DetectorSpec | None = None,
    workers: int = 0,
    on_error: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EmbeddedSet:
    """One vector per image of ``root/<character>/``: the largest face, or the whole image."""
    return embed_items(labelled_images(root), embedder, detect, spec, workers, on_error, on_progress)


def embed_items(
    items: Sequence[tuple[str, str | Path]],
    embedder: Embedder,
    detect: bool = True,
    spec: DetectorSpec | None = None,
    workers: int = 0,
    on_error: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EmbeddedSet:
    """One vector per (label, path): the image's largest face, or the whole image."""
    labels, paths, vecs = [], [], []
    pipeline = FacePipeline(spec or DetectorSpec(), embedder)
    opts = RunOptions(detect=detect, workers=workers, select="largest", keep_crops=False)
    for (character, path), e in zip(items, pipeline.run([p for _, p in items], opts)):
        if on_progress:
            on_progress(1)
        if e.prep.error or not e.chosen:
            if on_error:
                on_error(str(path), e.prep.error or "no face found")
            continue
        labels.append(character)
        paths.append(str(path))
        vecs.append(e.vectors[0, 0])
    X = np.stack(vecs) if vecs else np.zeros((0, embedder.dim), np.float32)
    return EmbeddedSet(np.array(labels, dtype=object), paths, X)


def _closed_set(
    truth: np.ndarray, classes: np.ndarray, S: np.ndarray, report: EvalReport, paths: Sequence[str] | None = None
) -> None:
    order = np.argsort(-S, axis=1)
    pred = classes[order[:, 0]]
    if paths is not None:
        report.misnamed = [
            {"path": shown(p), "truth": str(t), "guess": str(g), "score": round(float(S[i, order[i, 0]]), 4)}
            for i, (p, t, g) in enumerate(zip(paths, truth, pred))
            if t != g
        ]
    in5 = np.array([t in classes[o[:5]] for t, o in zip(truth, order)])
    report.n = len(truth)
    report.top1 = float((pred == truth).mean()) if len(truth) else float("nan")
    report.top5 = float(in5.mean()) if len(truth) else float("nan")
    report.classes = [str(c) for c in classes]
    idx = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), int)
    for t, p in zip(truth, pred):
        cm[idx[t], idx[p]] += 1
    report.confusion = cm
    report.per_character = {
        str(c): (int((truth == c).sum()), float((pred[truth == c] == c).mean())) for c in classes if (truth == c).any()
    }


def evaluate_split(train: EmbeddedSet, test: EmbeddedSet, method: str = DEFAULT_METHOD) -> EvalReport:
    """Fit on ``train``; test characters absent from it are unknowns."""
    m = Matcher(method).fit(train.labels, train.X)
    known = np.isin(test.labels, m.classes)
    report = EvalReport()
    S = m.scores(test.X)
    _closed_set(test.labels[known], m.classes, S[known], report, [p for p, k in zip(test.paths, known) if k])
    if (~known).any() and known.any():
        cal = calibrate(train.labels, train.X, method)
        ks, us = S[known].max(axis=1), S[~known].max(axis=1)
        ok = m.classes[S[known].argmax(axis=1)] == test.labels[known]
        report.unknown = UnknownReport(
            auroc(ks, us) or float("nan"),
            float((us < cal.threshold).mean()),
            float((ok & (ks >= cal.threshold)).mean()),
            cal.threshold,
            1,
            int((~known).sum()),
            int(known.sum()),
        )
    return report


def evaluate_folds(data: EmbeddedSet, folds: int = 5, method: str = DEFAULT_METHOD, seed: int = 0) -> EvalReport:
    """k-fold cross-validation: every sample is tested once by a matcher that never saw it."""
    fold_of = stratified_folds(data.labels, folds, seed)
    classes = np.array(sorted(set(data.labels.tolist())), dtype=object)
    S = np.zeros((len(data.labels), len(classes)), np.float32)
    for f in range(folds):
        te = fold_of == f
        m = Matcher(method).fit(data.labels[~te], data.X[~te])
        cols = np.searchsorted(classes, m.classes)
        S[np.ix_(te, cols)] = m.scores(data.X[te])
    report = EvalReport()
    _closed_set(data.labels, classes, S, report, data.paths)
    return report


def held_out_draws(labels: np.ndarray, n_out: int = 3, draws: int = 5, seed: int = 0) -> list[tuple[str, ...]]:
    """Which characters to hold out in each draw: ``n_out`` of them (fewer in small sets, so that
    at least 2 stay; 1 of 3), ``draws`` distinct sets chosen at random with ``seed``."""
    classes = sorted(set(np.asarray(labels).tolist()))
    n_out = min(n_out, len(classes) - 2) if len(classes) > 3 else 1
    combos = list(itertools.combinations(classes, n_out))
    return [combos[i] for i in np.random.default_rng(seed).permutation(len(combos))[:draws]]


def leave_out_unknowns(
    train: EmbeddedSet,
    test: EmbeddedSet,
    n_out: int = 3,
    draws: int = 5,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    cohort: np.ndarray | None = None,
    thresholds: Thresholds | None = None,
) -> UnknownReport:
    """Hold ``n_out`` characters out (all their faces, in either set, become unknowns), fit and
    calibrate on the rest of ``train``, test on the rest of ``test`` plus the unknowns; with a
    ``cohort``, the decision model's answers too."""
    t = thresholds or Thresholds()
    chosen = held_out_draws(train.labels, n_out, draws, seed)
    aucs, rej, acc, ths, nu, nk = [], [], [], [], 0, 0
    d_rej, d_acc = [], []
    for held in chosen:
        tr_keep = ~np.isin(train.labels, held)
        te_known = ~np.isin(test.labels, held)
        unk = np.r_[train.X[~tr_keep], test.X[~te_known]]
        m = Matcher(method).fit(train.labels[tr_keep], train.X[tr_keep])
        cal = calibrate(train.labels[tr_keep], train.X[tr_keep], method, seed=seed)
        Sk, Su = m.scores(test.X[te_known]), m.scores(unk)
        ks, us = Sk.max(axis=1), Su.max(axis=1)
        ok = m.classes[Sk.argmax(axis=1)] == test.labels[te_known]
        a = auroc(ks, us)
        aucs.append(float("nan") if a is None else a)
        rej.append(float((us < cal.threshold).mean()))
        acc.append(float((ok & (ks >= cal.threshold)).mean()))
        ths.append(cal.threshold)
        if cohort is not None:
            model = fit_decision(train.labels[tr_keep], train.X[tr_keep], method, cohort, seed=seed)
            if model is None:  # too small a gallery: recognition names by the threshold
                d_rej.append(rej[-1])
                d_acc.append(acc[-1])
            else:
                view = GalleryView.build(train.labels[tr_keep], train.X[tr_keep], method, CohortNorm(cohort), matcher=m)
                pk, pu = (
                    model.probability(view.features(test.X[te_known], Sk, use=model.use)[0]),
                    model.probability(view.features(unk, Su, use=model.use)[0]),
                )
                d_rej.append(float((pu < t.decision_named).mean()))
                d_acc.append(float((ok & (pk >= t.decision_named)).mean()))
        nu += len(us)
        nk += len(ks)
    return UnknownReport(
        float(np.mean(aucs)),
        float(np.mean(rej)),
        float(np.mean(acc)),
        float(np.mean(ths)),
        len(chosen),
        nu,
        nk,
        float(np.mean(d_rej)) if d_rej else None,
        float(np.mean(d_acc)) if d_acc else None,
    )


def split_holdout(data: EmbeddedSet, test_share: float = 0.2, seed: int = 0) -> tuple[EmbeddedSet, EmbeddedSet]:
    """A stratified train/test split of one labelled set."""
    fold_of = stratified_folds(data.labels, max(2, round(1 / test_share)), seed)
    te = fold_of == 0
    return subset(data, ~te), subset(data, te)


def subset(data: EmbeddedSet, mask: np.ndarray) -> EmbeddedSet:
    return EmbeddedSet(data.labels[mask], [p for p, k in zip(data.paths, mask) if k], data.X[mask])


def plot_confusion(report: EvalReport, path: str | Path, title: str = "") -> None:
    """Write the confusion matrix (rows: truth, columns: prediction) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from charaid.fonts import matplotlib_fonts

    cm = report.confusion if report.confusion is not None else np.zeros((0, 0))
    n = len(report.classes)
    # names in their own script: Noto Sans CJK, then DejaVu Sans glyph by glyph (charaid.fonts)
    with plt.rc_context({"font.family": matplotlib_fonts()}):
        _draw_confusion(plt, report, cm, n, path, title)


def _draw_confusion(plt, report: EvalReport, cm: np.ndarray, n: int, path: str | Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 3), max(3.5, 0.5 * n + 2.5)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), report.classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), report.classes, fontsize=8)
    for i, j in itertools.product(range(n), range(n)):
        if cm[i, j]:
            ax.text(
                j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if cm[i, j] > cm.max() / 2 else "black"
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"top-1 {report.top1:.3f} on {report.n} faces")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__: Sequence[str] = [
    "EmbeddedSet",
    "EvalReport",
    "UnknownReport",
    "embed_items",
    "embed_labelled",
    "evaluate_split",
    "evaluate_folds",
    "leave_out_unknowns",
    "split_holdout",
    "subset",
    "plot_confusion",
]

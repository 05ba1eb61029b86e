"""Few-shot matching, unknown threshold calibration, AUROC."""

from __future__ import annotations

import numpy as np
import pytest

from charaid.config import Thresholds
from charaid.pipeline.match import METHODS, Matcher, auroc, best_threshold, calibrate


def clusters(n_classes=4, per=12, dim=32, spread=0.25, seed=0, offset=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes + offset, dim))[offset:]
    X, y = [], []
    for i, c in enumerate(centres):
        v = c + spread * rng.normal(size=(per, dim))
        X.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        y += [f"c{i + offset}"] * per
    return np.concatenate(X).astype(np.float32), np.array(y, dtype=object)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_names_separable_characters(method):
    X, y = clusters(seed=1)
    Q, qy = clusters(seed=1, per=30)  # same centres, new samples
    m = Matcher(method).fit(y, X)
    pred = m.classes[m.scores(Q).argmax(axis=1)]
    assert (pred == qy).mean() > 0.95


def test_match_gives_top_k_sorted_and_unknown_below_threshold():
    X, y = clusters()
    m = Matcher("logreg").fit(y, X)
    res = m.match(X[:1], threshold=0.0, top_k=3)[0]
    assert res.character == "c0" and len(res.top) == 3
    assert [c.score for c in res.top] == sorted([c.score for c in res.top], reverse=True)
    res = m.match(X[:1], threshold=1.01)[0]
    assert res.character is None and res.top[0].character == "c0"  # top is filled even when unknown


def test_one_and_zero_characters():
    X, y = clusters(n_classes=1)
    m = Matcher("logreg").fit(y, X)
    assert m.effective_method == "prototype"
    assert m.match(X[:1], threshold=0.5)[0].character == "c0"
    empty = Matcher().fit(np.array([], dtype=object), np.zeros((0, 32), np.float32))
    r = empty.match(X[:2], threshold=0.5)
    assert [x.character for x in r] == [None, None] and r[0].top == []


def test_calibrated_threshold_rejects_unseen_characters():
    X, y = clusters(n_classes=6, per=15, seed=3)
    U, _ = clusters(n_classes=3, per=15, seed=3, offset=6)  # characters never enrolled
    cal = calibrate(y, X, "hybrid")
    assert cal.n_known == len(y) and cal.n_unknown == len(y)
    assert cal.auroc > 0.9 and cal.known_accuracy > 0.8 and cal.unknown_rejected > 0.8
    m = Matcher("hybrid").fit(y, X)
    unknown_named = [r.character for r in m.match(U, cal.threshold)]
    assert unknown_named.count(None) / len(U) > 0.7


def test_calibration_falls_back_when_gallery_too_small():
    X, y = clusters(n_classes=1)
    cal = calibrate(y, X, fallback=0.42)
    assert cal.threshold == 0.42 and cal.n_known == 0
    # two characters: holding one out would leave a one-character matcher, which scores by
    # another rule; the default threshold is used, and it names most of their faces
    X2, y2 = clusters(n_classes=2, per=15, seed=4)
    cal2 = calibrate(y2, X2, "hybrid")
    assert cal2.threshold == Thresholds().fallback_unknown_threshold and cal2.n_unknown == 0
    m = Matcher("hybrid").fit(y2, X2)
    assert sum(r.character is not None for r in m.match(X2, cal2.threshold)) >= 0.8 * len(y2)


def test_best_threshold_picks_the_separating_gap():
    known = np.array([0.9, 0.8, 0.85, 0.7])
    ok = np.array([True, True, True, True])
    unknown = np.array([0.2, 0.3, 0.4])
    t, acc, rej = best_threshold(known, ok, unknown)
    assert 0.4 < t < 0.7 and acc == 1.0 and rej == 1.0
    # wrongly named known faces do not pull the threshold down
    t2, _, _ = best_threshold(np.r_[known, 0.35], np.r_[ok, False], unknown)
    assert t2 > 0.4


def test_auroc_matches_definition():
    from itertools import product

    rng = np.random.default_rng(0)
    k, u = rng.normal(1, 1, 40).round(1), rng.normal(0, 1, 30).round(1)  # with ties
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(k, u)])
    assert abs(auroc(k, u) - brute) < 1e-12
    assert auroc(np.array([]), u) is None


def test_unknown_method_lists_choices():
    with pytest.raises(ValueError, match="hybrid, logreg, prototype, knn"):
        Matcher("svm")

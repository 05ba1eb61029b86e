"""Centring the vectors before they are compared (issue 3, item 3: a trap, measured, not kept).

    python benchmarks/centring.py

Pooled CNN features of anime faces share a large common part, so every cosine between two faces
is high. Subtracting a mean vector (and making the result unit length again) before matching
might separate characters better. Three choices of mean, through issue 2's protocols (matcher
hybrid, default features from the cache that benchmarks/accuracy.py fills):

- ``gallery``: the mean of the faces the matcher is fitted on (what charaid could do honestly:
  every matcher, the calibration's included, centres on its own faces);
- ``other sets``: the mean of the other development sets' faces (what a mean shipped with
  charaid would be);
- ``whole set``: the mean of the whole set, held-out unknown characters included (transductive:
  the protocol's unknowns leak into it; shown because it looks like a large gain).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402
from common import machine, table  # noqa: E402

import charaid.evaluate as evaluate  # noqa: E402
import charaid.match as match  # noqa: E402
from charaid.config import default_settings  # noqa: E402
from charaid.embed import default_embedder, l2_normalise  # noqa: E402
from charaid.evaluate import EmbeddedSet  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402

GROUP = {"tla (author split)": "tla", "tla (6-fold)": "tla", "moeimouto10 (split)": "moe",
         "danbooru6 (5-fold)": "dan", "newgame8 (5-fold)": "ng8"}


class CentredMatcher(match.Matcher):
    """A matcher that centres every vector on the mean of the faces it is fitted on."""

    def fit(self, labels, X):
        X = np.asarray(X, np.float32)
        self._mu = X.mean(axis=0) if len(X) else np.zeros(X.shape[1:], np.float32)
        return super().fit(labels, self._centre(X))

    def _centre(self, Q):
        return l2_normalise(np.asarray(Q, np.float32) - self._mu)

    def scores(self, Q):
        return super().scores(self._centre(Q))

    def prototype_similarity(self, Q):
        return super().prototype_similarity(self._centre(Q))


def shifted(sets, mean_of) -> dict:
    def mk(s, mu):
        return None if s is None else EmbeddedSet(s.labels, s.paths, l2_normalise(s.X - mu))

    return {n: (mk(a, mean_of(n)), mk(b, mean_of(n)), f) for n, (a, b, f) in sets.items()}


@contextlib.contextmanager
def matcher_class(cls):
    """Every matcher the protocols build (calibration's included) is a ``cls`` meanwhile."""
    saved = match.Matcher, evaluate.Matcher, accuracy.Matcher
    match.Matcher = evaluate.Matcher = accuracy.Matcher = cls
    try:
        yield
    finally:
        match.Matcher, evaluate.Matcher, accuracy.Matcher = saved


def main() -> None:
    emb = default_embedder()
    sets = accuracy.load_sets(emb, DetectorSpec(max_side=default_settings().max_detect_side))
    whole = {GROUP[n]: np.concatenate([a.X] + ([b.X] if b is not None else [])) for n, (a, b, f) in sets.items()
             if n != "tla (author split)"}
    print(f"# centring; {emb.model_id}; matcher hybrid; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    variants = {
        "none": (sets, match.Matcher),
        "gallery": (sets, CentredMatcher),
        "other sets": (shifted(sets, lambda n: np.concatenate([X for g, X in whole.items() if g != GROUP[n]]).mean(0)), match.Matcher),
        "whole set (leaks)": (shifted(sets, lambda n: whole[GROUP[n]].mean(0)), match.Matcher),
    }
    rows = []
    for name, (s, cls) in variants.items():
        with matcher_class(cls):
            heads, row = accuracy.variant_row(name, s)
        rows.append(row)
    print(table(["mean", *heads[1:]], rows))


if __name__ == "__main__":
    main()

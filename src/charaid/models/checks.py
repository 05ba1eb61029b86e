"""Small logistic checks on features, shipped as ``.npz`` files: the detector's close-up check
(charaid.models.facedet_closeup) and the whole-picture photo check (charaid.models.photo_check).

Pure numpy: a weight vector and an intercept, fitted by charaid.pipeline.logistic at training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogisticCheck:
    """A logistic model: the probability that an input row is what the check looks for."""

    coef: np.ndarray  # (d,)
    intercept: float

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        z = np.einsum("nd,d->n", np.asarray(inputs, np.float64), self.coef.astype(np.float64)) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: str, **info) -> None:
        np.savez(path, coef=self.coef.astype(np.float32), intercept=np.float32(self.intercept), info=np.asarray(repr(info)))


def load_logistic_check(path: str, what: str, train_command: str) -> LogisticCheck:
    """The check saved at ``path``; a missing file is a one-line error naming ``what`` it is and how to make it."""
    try:
        z = np.load(path)
    except FileNotFoundError:
        raise RuntimeError(f"{path}: {what} is missing (reinstall charaid, or train it: {train_command})") from None
    return LogisticCheck(z["coef"], float(z["intercept"]))

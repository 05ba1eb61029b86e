"""The close-up check of charaid's face detector (version 3): a face that fills the picture.

Why: the network was trained on faces up to about half the picture, so where a face fills the
frame or is cut by its border it often finds nothing. Version 1's second look (the picture on a
grey canvas 2 and 3 times its size) recovers some, but only where a peak reaches 0.6. Below
that the peaks are a poor judge: on close-ups cut from ../shared/train's frames, candidates
scoring 0.2-0.6 are right (IoU >= 0.5) for a third, and the peak's score separates right from
wrong with an AUROC of 0.84. A right candidate from score 0.1 is there for about 80% of the
close-ups where nothing is found.

So, in a picture where both looks found nothing, the best candidates of the three passes (the
picture, the two canvases) are cut as recognition cuts a face and checked: ImageNet
EfficientNet-Lite0's pooled features of the crop (the shipped ONNX export, the same network as
the default embedder's CNN), the peak's score, the box's share of the picture and which pass
found it, through a logistic model (AUROC 0.96 on the same candidates, out of fold). It runs
only where nothing was found, so pictures with a face cost nothing more.

Pure numpy: the inputs are cut and run through Lite0 by ``NetDetector.closeup_inputs``
(charaid.models.detectors), which training reads too; the weights are a small ``.npz`` that
``charaid train-detector-closeup`` (charaid.training.closeup) writes.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from charaid.models.checks import LogisticCheck, load_logistic_check

#: The shipped check: version 3 of charaid-facedet-lite0 is version 1's network plus this.
CLOSEUP_FILE = "charaid-facedet-lite0-v3-closeup.npz"
#: Side of the crops the check looks at (Lite0's input).
SIDE = 224
#: The passes a candidate can come from: the picture itself (1) and its canvases (2, 3 times its
#: size: ``Thresholds.facedet_pad_retry``, which the check was trained with).
PASSES = (1.0, 2.0, 3.0)


def closeup_path() -> str:
    return str(resources.files("charaid") / "weights" / CLOSEUP_FILE)


def candidate_inputs(vectors: np.ndarray, scores, shares, passes) -> np.ndarray:
    """The model's inputs: the crop's features, the peak's score, the log of the box's share of
    the picture and one-hot the pass that found it."""
    scores, shares, passes = (np.asarray(v, np.float32).reshape(-1) for v in (scores, shares, passes))
    onehot = (passes[:, None] == np.asarray(PASSES, np.float32)[None]).astype(np.float32)
    return np.concatenate([vectors, scores[:, None], np.log(np.maximum(shares, 1e-4))[:, None], onehot], axis=1)


@functools.lru_cache(maxsize=2)
def load_check(path: str | None = None) -> LogisticCheck:
    """The close-up check: the probability that a candidate is a face (IoU >= 0.5 with one)."""
    return load_logistic_check(path or closeup_path(), "the detector's close-up check", "charaid train-detector-closeup")

"""The impostor cohort: vectors of thousands of anime faces of many characters, none of them a
gallery's, that score normalisation (charaid.pipeline.decide) measures scores against.

A raw score says little alone: a face's best cosine to a tight character is high for anyone, to
a loose one low even for the right face. Where that score stands among the same face's and the
same character's scores against faces of *other* characters is comparable across characters and
galleries (adaptive S-norm, as in speaker and face verification).

The cohort of each built-in embedder ships as package data (``weights/cohort-*.npz``, float16,
made by ``charaid build-cohort`` from ../shared/train); a model tuned by ``charaid train`` keeps
its own beside the gallery. A file records the model id whose vectors it holds, and a cohort is
used only with that model.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from charaid.models.runtime import WEIGHTS_DIR


def cohort_file_name(model_id: str) -> str:
    """The file name of ``model_id``'s cohort (model ids are long and hold ``*`` and ``+``)."""
    return f"cohort-{hashlib.sha1(model_id.encode()).hexdigest()[:12]}.npz"


def save_cohort(path: str | Path, vectors: np.ndarray, model_id: str, sources: dict[str, int]) -> Path:
    """Write a cohort file (float16 vectors, the model id, how many faces came from where)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        vectors=np.asarray(vectors, np.float16),
        model_id=np.array(model_id),
        sources=np.array([f"{k}={v}" for k, v in sources.items()]),
    )
    tmp.replace(path)
    return path


@functools.lru_cache(maxsize=8)
def _read(path: str) -> tuple[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return str(z["model_id"]), np.asarray(z["vectors"], np.float32)


def load_cohort(model_id: str, extra_dirs: tuple[str | Path, ...] = ()) -> np.ndarray | None:
    """The cohort vectors of ``model_id`` (unit rows, float32), from ``extra_dirs`` (a tuned
    model's folder) then the package; None when none was built for that model. A file whose
    recorded model id differs is ignored (it belongs to another space)."""
    name = cohort_file_name(model_id)
    for d in (*extra_dirs, WEIGHTS_DIR):
        f = Path(d) / name
        if f.is_file():
            mid, X = _read(str(f))
            if mid == model_id:
                n = np.linalg.norm(X, axis=1, keepdims=True)
                return X / np.maximum(n, 1e-12)
    return None

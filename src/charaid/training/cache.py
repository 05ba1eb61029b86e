"""The arrays a training command computes before it fits (features, candidates), kept in its
output folder so that a second run with the same settings goes straight to the fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cached_arrays(path: Path, key: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays saved at ``path`` when they were made with the same ``key`` (a repr of what they
    depend on), else ``make()``'s, saved there first (written whole, then renamed: a killed run
    never leaves half a file)."""
    if path.is_file():
        with np.load(path) as z:
            if "key" in z and str(z["key"]) == key:
                return {k: z[k] for k in z.files if k != "key"}
    data = make()
    tmp = path.with_name(path.stem + ".tmp.npz")
    arrays: dict[str, Any] = {**data, "key": np.asarray(key)}
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return data

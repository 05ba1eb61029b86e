"""``charaid build-cohort``: embed the impostor cohort (charaid.models.cohort) from ../shared/train.

Two kinds of faces, so that the cohort looks like what a gallery is asked about:
- iCartoonFace frames, faces found by charaid's own detector where a labelled face box is (IoU
  >= 0.3), cut as recognition cuts them;
- faces64, small tight crops of visual-novel faces, taken whole as ``--no-detect`` crops are.
Nearly every face is of a different character, so each stands for "somebody else". Seeded: the
same data and seed give the same cohort.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from charaid.models.detectors import Box
from charaid.models.embedders import Embedder
from charaid.pipeline.prepare import DetectorSpec, prepare_many
from charaid.training.augment import yolo_boxes

#: Faces of each kind in the shipped cohorts: 3,000 x 1,481 float16 values cost ~8 MB.
DEFAULT_FRAMES = 1500
DEFAULT_SMALL = 1500


def _frame_faces(data: Path, n: int, rng: np.random.Generator, embedder: Embedder, spec: DetectorSpec, workers: int):
    images = sorted((data / "icartoonface" / "images").glob("*.jpg"))
    picked = [images[i] for i in sorted(rng.permutation(len(images))[: min(len(images), 2 * n)])]
    crops = []
    for prep in prepare_many(picked, True, spec, workers, with_hash=False):
        if not prep.ok or not prep.crops or prep.size is None:
            continue
        w, h = prep.size
        label = data / "icartoonface" / "labels" / (Path(prep.path).stem + ".txt")
        truth = [
            Box(round((cx - bw / 2) * w), round((cy - bh / 2) * h), round(bw * w), round(bh * h))
            for cx, cy, bw, bh in yolo_boxes(label)
        ]
        for i in range(len(prep.crops)):
            if any(prep.box(i).iou(t) >= 0.3 for t in truth):
                crops.append(prep.crops[i])
                break  # one face a frame: frames of one show repeat its characters
        if len(crops) >= n:
            break
    return crops


def _small_faces(data: Path, n: int, rng: np.random.Generator, workers: int):
    images = sorted((data / "faces64").glob("*.jpg"))
    picked = [images[i] for i in sorted(rng.permutation(len(images))[: min(len(images), n)])]
    return [c for prep in prepare_many(picked, False, DetectorSpec(), workers, with_hash=False) if prep.ok for c in prep.crops]


def build_cohort(
    data: str | Path,
    embedder: Embedder,
    frames: int = DEFAULT_FRAMES,
    small: int = DEFAULT_SMALL,
    seed: int = 0,
    workers: int = 2,
    spec: DetectorSpec | None = None,
    batch: int = 64,
) -> tuple[np.ndarray, dict[str, int]]:
    """(cohort vectors, faces taken from each source) for ``embedder``, from ``data`` (../shared/train)."""
    data = Path(data)
    if not (data / "icartoonface" / "images").is_dir() or not (data / "faces64").is_dir():
        raise FileNotFoundError(f"{data}: not a training-data folder (needs icartoonface/images and faces64)")
    rng = np.random.default_rng(seed)
    t0 = time.time()
    spec = (spec or DetectorSpec()).for_embedder(embedder)
    parts = {
        "icartoonface": _frame_faces(data, frames, rng, embedder, spec, workers),
        "faces64": _small_faces(data, small, rng, workers),
    }
    out = []
    done = 0
    total = sum(len(c) for c in parts.values())
    for crops in parts.values():
        for i in range(0, len(crops), batch):
            out.append(embedder.embed_batch(crops[i : i + batch]))
            done += len(crops[i : i + batch])
            print(f"\rcohort: {done}/{total} faces embedded ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.concatenate(out).astype(np.float32), {k: len(v) for k, v in parts.items()}

"""Shared helpers for the benchmark scripts: embedding sets once (cached), printing tables."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.jobs.evaluate import EmbeddedSet, embed_items  # noqa: E402
from charaid.models import colours as cues  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402

CACHE = Path(os.environ.get("CHARAID_BENCH_CACHE", datasets.ROOT / "bench-out" / "cache"))


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}"


def embedded(name: str, items, embedder, detect: bool, spec: DetectorSpec | None = None, workers: int = 2) -> EmbeddedSet:
    """Embed ``items`` once per (set, embedder, detector settings); later runs read the cache."""
    spec = spec or DetectorSpec(max_side=default_settings().max_detect_side)
    key = [name, embedder.model_id, detect, spec.name, spec.max_side, spec.thresholds.crop_margin, len(items)]
    if detect and spec.thresholds.detect_retry_scales:  # which faces are found (older caches: none)
        key.append(list(spec.thresholds.detect_retry_scales))
    if detect and spec.name.startswith("facedet"):  # which weights and settings found the faces
        from charaid.models import facedet, facedet_roi
        from charaid.models.detectors import facedet_version

        t = spec.thresholds
        weights = hashlib.sha1(Path(facedet.weights_path()).read_bytes()).hexdigest()[:12]
        key.append([weights, t.facedet_input_side, t.facedet_min_score, t.photo_face_veto, t.facedet_crop_margin])
        key.append([list(t.photo_veto_margins), t.photo_veto_votes, t.photo_veto_min_window])
        if t.photo_picture_min_p is not None:  # the whole-picture photo check
            from charaid.models import photo_check

            check = hashlib.sha1(Path(photo_check.photo_check_path()).read_bytes()).hexdigest()[:12]
            key.append([check, t.photo_picture_min_p])
        version = facedet_version(spec.name)  # spec names are canonical: "facedet@N"
        if version in (3, 4):
            from charaid.models import facedet_closeup

            check = hashlib.sha1(Path(facedet_closeup.closeup_path()).read_bytes()).hexdigest()[:12]
            key.append([check, t.facedet_closeup_candidate_score, t.facedet_closeup_candidates, t.facedet_closeup_min_p])
        if version == 4:
            key.append([t.facedet_refine_context, t.facedet_refine_side, t.facedet_refine_min_score, t.facedet_refine_max_share])
        elif version == 2:
            roi = hashlib.sha1(Path(facedet_roi.roi_path()).read_bytes()).hexdigest()[:12]
            key.append([roi, t.facedet_candidate_score, t.facedet_roi_min_score])
    if "animeface-colours" in embedder.model_id:  # how the colours are sampled (same model id)
        t = Thresholds()
        key.append([cues.SEARCH_SIDE, cues.SAMPLE_VERSION, list(t.cue_colour_mean), list(t.cue_colour_std)])
    key = json.dumps(key)
    f = CACHE / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if f.exists():
        z = np.load(f, allow_pickle=True)
        return EmbeddedSet(z["labels"], list(z["paths"]), z["X"])
    t = time.time()
    misses: list[str] = []
    data = embed_items(items, embedder, detect, spec, workers, on_error=lambda p, r: misses.append(p))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(f, labels=data.labels, paths=np.array(data.paths, dtype=object), X=data.X)
    print(
        f"  [embedded {name}: {len(data.labels)} of {len(items)} images in {time.time() - t:.0f} s, "
        f"{len(misses)} without a face]",
        file=sys.stderr,
    )
    return data


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def cli(*args: str):
    """``charaid ARGS`` in a new process, as a user runs it; stops the benchmark if it fails."""
    import subprocess

    r = subprocess.run([sys.executable, "-m", "charaid.cli", *args], capture_output=True, text=True)
    if r.returncode not in (0, 2):
        raise SystemExit(f"charaid {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r


def topk_accuracy(Xa, ya, Xb, yb, method) -> tuple[float, float]:
    """Top-1 and top-5 of a matcher fitted on (Xa, ya), asked Xb (labels yb)."""
    from charaid.pipeline.match import Matcher

    m = Matcher(method).fit(ya, Xa)
    order = np.argsort(-m.scores(Xb), axis=1)
    top1 = float((m.classes[order[:, 0]] == yb).mean())
    top5 = float(np.mean([t in m.classes[o[:5]] for t, o in zip(yb, order)]))
    return top1, top5


def kshot_draw(labels, K: int, seed: int) -> np.ndarray:
    """Indices of K samples of each character (sorted by name), drawn with ``seed``: the same
    draw for the frozen features (kshot.py) and for fine-tuning (finetune.py)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), K, replace=False) for c in sorted(set(labels.tolist()))])

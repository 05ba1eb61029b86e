"""Fine-tuning the embedder on a gallery's own faces (``charaid train``).

ImageNet features tell look-alike characters apart poorly. This adapts the last blocks of
EfficientNet-Lite0 and a projection head to the gallery's characters with a CosFace loss
(cosine logits with an additive margin: same-character faces pulled together, other
characters pushed at least a margin apart), then the gallery is re-embedded with the result.

The stem and the first blocks stay frozen (ImageNet's low-level features are fine on
drawings), so their output is computed once for ``views`` augmented copies of every face
and cached; each epoch then runs only the trainable top of the network. Augmentation keeps
identity cues: crops, scale, mirror, slight rotation, blur and JPEG noise, small brightness
changes, and never a hue shift (hair and eye colours are identity).

Runs on the CPU in minutes; uses a GPU when ``torch.cuda.is_available()``. The network
(settings, tuned embedder) is charaid.models.tuned, the training loop and augmentation
charaid.training.finetune; this module runs them on a gallery: calibration run, training,
saving, re-embedding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from charaid.models.embedders import default_embedder
from charaid.models.tuned import TrainConfig, TunedEmbedder
from charaid.training.finetune import TrainState, augment, fine_tune

__all__ = [
    "TrainConfig",
    "TrainState",
    "TunedEmbedder",
    "TrainResult",
    "augment",
    "fine_tune",
    "few_faces_advice",
    "train_gallery",
]


# -- a gallery's training run ------------------------------------------------------------------
@dataclass
class TrainResult:
    #: The new active model; None when the run stopped early (run again to resume).
    model_id: str | None
    epochs_done: int
    epochs: int
    seconds: float
    faces: int
    characters: int
    resumed_from: int = 0
    calibration: dict | None = None


def _held_out_before(gallery, train_ids, train_labels, known_ids, known_labels, unknown_ids) -> dict | None:
    """The calibration run's measures for the gallery's current model on the same faces (its
    stored vectors, nothing re-embedded): what the tuned model is to be compared with. None
    when the current model has no usable vectors (a new or foreign space)."""
    from charaid.config import Thresholds
    from charaid.models import zoo
    from charaid.pipeline.match import Matcher, auroc
    from charaid.recognition.spaces import TUNED_PREFIX

    mid = gallery.model_id
    if mid is None or not (mid in zoo.embedders() or mid.startswith(TUNED_PREFIX)):
        return None
    try:
        A, K, U = (gallery.vectors_for(ids, mid) for ids in (train_ids, known_ids, unknown_ids))
    except KeyError:
        return None
    t = Thresholds()
    m = Matcher(t.tuned_matcher if mid.startswith(TUNED_PREFIX) else t.default_matcher).fit(train_labels, A)
    Sk = m.scores(K)
    ok = m.classes[Sk.argmax(axis=1)] == known_labels
    return {
        "model_id": mid,
        "top1": float(ok.mean()),
        "auroc": auroc(Sk.max(axis=1), m.scores(U).max(axis=1)),
        "switch": "default" if mid == default_embedder().model_id else mid,
    }  # what `charaid gallery model` takes


def few_faces_advice(counts: dict[str, int], advised: int) -> str | None:
    """A warning when the median character has fewer than ``advised`` faces (None otherwise):
    with so few, fine-tuning measured worse than the default features."""
    median = float(np.median(list(counts.values()))) if counts else 0.0
    if median >= advised:
        return None
    return (
        f"the median character has {median:g} faces; with fewer than {advised} a character, fine-tuning "
        "measured worse than the default, untuned features (docs/benchmarks.md@aef98b0): enrol more faces, or go back "
        "afterwards with `charaid gallery model default`"
    )


def train_gallery(
    gallery,
    cfg: TrainConfig | None = None,
    minutes: float | None = None,
    calibrate_run: bool = True,
    on_epoch: Callable[[str, int, int, float], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fine-tune on ``gallery``'s stored face crops, save the model beside it, re-embed every
    sample and make the tuned model the gallery's active space.

    With ``calibrate_run``, a first, smaller run holds out 30% of the characters and 20% of the
    other faces; the threshold that best separates those held-out faces becomes the tuned
    gallery's unknown threshold. (The gallery's own faces cannot calibrate a model trained on
    them: it has seen every one of their characters, so none of them looks unknown.)
    """
    cfg = cfg or TrainConfig()
    from charaid.config import Thresholds
    from charaid.pipeline.match import MIN_CALIBRATION_CHARACTERS, Matcher, auroc, best_threshold
    from charaid.recognition.spaces import keep_training_calibration, models_dir, save_tuned, tuned_embedder

    t0 = time.time()
    samples = gallery.samples()
    labels = [s.character for s in samples]
    counts = {c: labels.count(c) for c in set(labels)}
    if len(counts) < 2 or min(counts.values()) < 2:
        raise ValueError(
            f"{gallery.path}: training needs at least 2 characters with 2 faces each "
            f"(has {len(counts)} characters, fewest faces {min(counts.values(), default=0)})"
        )
    if on_stage:
        on_stage(f"reading {len(samples)} faces of {len(counts)} characters")
        advice = few_faces_advice(counts, Thresholds().train_advised_faces)
        if advice:
            on_stage(advice)
    crops = [gallery.crop(s.id) for s in samples]
    mdir = models_dir(gallery.path)
    mdir.mkdir(parents=True, exist_ok=True)
    budget = None if minutes is None else minutes
    cal: dict[str, Any] | None = None
    if calibrate_run and len(counts) >= MIN_CALIBRATION_CHARACTERS:
        rng = np.random.default_rng(cfg.seed)
        names = sorted(counts)
        held = set(rng.choice(names, max(1, round(0.3 * len(names))), replace=False).tolist())
        lab = np.array(labels, dtype=object)
        keep = np.flatnonzero(~np.isin(lab, list(held)))
        from charaid.pipeline.match import stratified_folds

        fold = stratified_folds(lab[keep], 5, cfg.seed)
        tr_i, te_i, un_i = keep[fold != 0], keep[fold == 0], np.flatnonzero(np.isin(lab, list(held)))
        if on_stage:
            on_stage(f"calibration run: {len(tr_i)} faces, {len(held)} characters held out as unknowns")
        state, st = fine_tune(
            [crops[i] for i in tr_i],
            [labels[i] for i in tr_i],
            cfg,
            mdir / "calibration-checkpoint.pt",
            budget,
            on_epoch=(lambda e, n, l: on_epoch("calibration", e, n, l)) if on_epoch else None,
        )
        if st.epoch < cfg.epochs:
            return TrainResult(None, 0, cfg.epochs, time.time() - t0, len(samples), len(counts))
        if budget is not None:
            budget = max(0.1, budget - st.seconds / 60)
        emb = tuned_embedder(TunedEmbedder(state, cfg, "calibration"))
        A, K, U = (emb.embed_batch([crops[i] for i in ix]) for ix in (tr_i, te_i, un_i))
        m = Matcher(Thresholds().tuned_matcher).fit(lab[tr_i], A)
        Sk = m.scores(K)
        ks, us = Sk.max(axis=1), m.scores(U).max(axis=1)
        ok = m.classes[Sk.argmax(axis=1)] == lab[te_i]
        thr, acc, rej = best_threshold(ks, ok, us)
        cal = {
            "threshold": thr,
            "known_accuracy": acc,
            "unknown_rejected": rej,
            "auroc": auroc(ks, us),
            "n_known": int(len(ks)),
            "n_unknown": int(len(us)),
            "held_out": sorted(held),
            "top1": float(ok.mean()),
            "before": _held_out_before(
                gallery,
                [samples[i].id for i in tr_i],
                lab[tr_i],
                [samples[i].id for i in te_i],
                lab[te_i],
                [samples[i].id for i in un_i],
            ),
        }
        if on_stage:
            on_stage(
                f"calibration: AUROC {cal['auroc']:.3f} between held-out known and unknown faces; threshold "
                f"{thr:.3f} names {acc:.0%} of the known ones right and rejects {rej:.0%} of the unknown ones "
                "(`charaid gallery model default` goes back to the default, untuned features)"
            )
            b = cal["before"]
            if b is not None:
                worse = b["top1"] > cal["top1"] and b["auroc"] > cal["auroc"]
                on_stage(
                    f"held-out faces, tuned model: top-1 {cal['top1']:.0%}, AUROC {cal['auroc']:.3f}; the gallery's "
                    f"current model on the same faces: top-1 {b['top1']:.0%}, AUROC {b['auroc']:.3f}"
                    + (
                        f"; the tuned model is worse on both here, so `charaid gallery model {b['switch']}` may serve you better"
                        if worse
                        else ""
                    )
                )
    elif calibrate_run and on_stage:
        on_stage(
            f"only {len(counts)} characters: none can be held out to calibrate the unknown threshold, and a model "
            f"tuned on {len(counts)} characters names most faces of other characters as one of them; "
            "enrol 3 or more characters before training if unknown faces matter"
        )
    if on_stage:
        on_stage(f"training on all {len(samples)} faces")
    ck = mdir / "train-checkpoint.pt"
    resumed = 0
    if ck.exists():
        import torch

        try:
            resumed = int(torch.load(ck, map_location="cpu", weights_only=False)["state"]["epoch"])
        except Exception:
            resumed = 0
    state, st = fine_tune(
        crops, labels, cfg, ck, budget, on_epoch=(lambda e, n, l: on_epoch("final", e, n, l)) if on_epoch else None
    )
    if st.epoch < cfg.epochs:
        return TrainResult(None, st.epoch, cfg.epochs, time.time() - t0, len(samples), len(counts), resumed, cal)
    meta = {
        "characters": sorted(counts),
        "faces": len(samples),
        "losses": st.losses,
        "trained_seconds": st.seconds,
        "gallery_revision": gallery.revision,
        "calibration": cal,
        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    embedder = save_tuned(gallery.path, state, cfg, meta)
    if on_stage:
        on_stage(f"re-embedding {len(samples)} faces with {embedder.model_id}")
    vecs = embedder.embed_batch(crops)
    gallery.set_vectors(embedder.model_id, embedder.dim, [(s.id, v) for s, v in zip(samples, vecs)])
    gallery.activate_model(embedder.model_id, embedder.dim)
    if cal is not None:
        keep_training_calibration(gallery, embedder.model_id, cal)
    for f in (ck, mdir / "calibration-checkpoint.pt"):
        f.unlink(missing_ok=True)
    return TrainResult(embedder.model_id, st.epoch, cfg.epochs, time.time() - t0, len(samples), len(counts), resumed, cal)

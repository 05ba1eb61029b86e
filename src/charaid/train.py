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

Runs on the CPU in minutes; uses a GPU when ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from .embed import (IMAGENET_MEAN, IMAGENET_STD, Embedder, EmbedderInfo, _open_efficientnet, default_embedder, l2_normalise,
                    to_tensor_batch)


@dataclass(frozen=True)
class TrainConfig:
    input_size: int = 192
    #: Blocks 0..freeze_upto (of 16) stay frozen; the rest, the head and the projection train.
    freeze_upto: int = 8
    proj_dim: int = 256
    epochs: int = 20
    #: Augmented copies of each face whose frozen-trunk output is cached.
    views: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: CosFace scale and additive margin.
    scale: float = 30.0
    margin: float = 0.35
    seed: int = 0


# -- augmentation -----------------------------------------------------------------------------
def augment(im: Image.Image, rng: random.Random, size: int) -> Image.Image:
    """A random view of a face crop that keeps its identity cues (never a hue shift)."""
    im = im.convert("RGB")
    w, h = im.size
    s = rng.uniform(0.72, 1.0)
    cw, ch = max(8, int(w * s * rng.uniform(0.93, 1.07))), max(8, int(h * s))
    cw, ch = min(cw, w), min(ch, h)
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = im.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-12, 12)
    if abs(angle) > 1:
        im = im.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=im.getpixel((0, 0)))
    im = im.resize((size, size), Image.BILINEAR)
    r = rng.random()
    if r < 0.15:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    elif r < 0.3:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=rng.randint(35, 80))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if rng.random() < 0.3:  # brightness/contrast only, equally on all channels
        a = np.asarray(im, np.float32)
        a = (a - 128) * rng.uniform(0.85, 1.15) + 128 + rng.uniform(-15, 15)
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return im


# -- the network ------------------------------------------------------------------------------
def _to_tensor(ims: Sequence[Image.Image], size: int):
    return to_tensor_batch(ims, EmbedderInfo("", 0, size, IMAGENET_MEAN, IMAGENET_STD))


def trunk_forward(base, x, upto: int):
    h = base._swish(base._bn0(base._conv_stem(x)))
    for b in base._blocks[: upto + 1]:
        h = b(h)
    return h


def _make_top(base, cfg: TrainConfig):
    import torch.nn as nn

    class Top(nn.Module):
        """Blocks freeze_upto+1..15, the head convolution and a linear projection."""

        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(copy.deepcopy(list(base._blocks[cfg.freeze_upto + 1 :])))
            self.conv_head = copy.deepcopy(base._conv_head)
            self.bn1 = copy.deepcopy(base._bn1)
            self.act = copy.deepcopy(base._swish)
            self.proj = nn.Linear(self.bn1.num_features, cfg.proj_dim)

        def forward(self, h):
            for b in self.blocks:
                h = b(h)
            h = self.act(self.bn1(self.conv_head(h))).mean(dim=(2, 3))
            return self.proj(h)

    return Top()


# -- training ---------------------------------------------------------------------------------
@dataclass
class TrainState:
    """What a checkpoint holds: enough to carry on exactly where an interrupted run stopped."""

    epoch: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fine_tune(
    crops: Sequence[Image.Image],
    labels: Sequence[str],
    cfg: TrainConfig = TrainConfig(),
    checkpoint: str | Path | None = None,
    minutes: float | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
    on_views: Callable[[int], None] | None = None,
    device: str | None = None,
) -> tuple[dict, TrainState]:
    """Train the top of the network on (crop, character) pairs.

    Returns (state_dict of the trained top, final TrainState). With ``checkpoint``, progress is
    saved after every epoch and a matching checkpoint is resumed. ``minutes`` stops after the
    epoch that crosses the time limit (the checkpoint then lets a later call go on).
    """
    import torch
    import torch.nn.functional as F

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base = _open_efficientnet("lite0")
    classes = sorted(set(labels))
    y_all = np.array([classes.index(c) for c in labels])
    key = _data_key(crops, labels, cfg)
    top = _make_top(base, cfg).to(dev)
    W = torch.nn.Parameter(torch.randn(len(classes), cfg.proj_dim, device=dev) * 0.01)
    opt = torch.optim.AdamW([{"params": top.parameters()}, {"params": [W], "lr": cfg.lr * 10}], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(crops) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.lr * 10], total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    state = TrainState()
    ck = Path(checkpoint) if checkpoint else None
    if ck and ck.exists():
        saved = torch.load(ck, map_location=dev, weights_only=False)
        if saved.get("key") == key:
            top.load_state_dict(saved["top"])
            W.data.copy_(saved["W"])
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
            state = TrainState(**saved["state"])
            if state.epoch >= cfg.epochs:  # finished before: nothing left to do
                return {k: v.detach().cpu() for k, v in top.state_dict().items()}, state

    # Frozen trunk output of `views` augmented copies of every face, computed once.
    rng = random.Random(cfg.seed)
    frozen = (copy.deepcopy(base) if dev.type != "cpu" else base).to(dev).eval()
    cached = []
    with torch.inference_mode():
        for v in range(cfg.views):
            out = []
            for i in range(0, len(crops), 64):
                batch = [augment(c, rng, cfg.input_size) for c in crops[i : i + 64]]
                out.append(trunk_forward(frozen, _to_tensor(batch, cfg.input_size).to(dev), cfg.freeze_upto).half().cpu())
            cached.append(torch.cat(out))
            if on_views:
                on_views(v + 1)
    cached = torch.stack(cached, dim=1)  # (n, views, C, H, W)
    y = torch.from_numpy(y_all).to(dev)
    t0 = time.time() - state.seconds
    while state.epoch < cfg.epochs:
        # One generator per epoch: a resumed run draws exactly what an uninterrupted one would.
        g = torch.Generator().manual_seed(cfg.seed * 1000 + state.epoch)
        top.train()
        perm = torch.randperm(len(crops), generator=g)
        view = torch.randint(cfg.views, (len(crops),), generator=g)
        total = 0.0
        for k in range(steps_per_epoch):
            idx = perm[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            if len(idx) < 2:
                sched.step()
                continue
            h = cached[idx, view[idx]].float().to(dev)
            e = F.normalize(top(h), dim=1)
            cos = e @ F.normalize(W, dim=1).T
            logits = cfg.scale * (cos - cfg.margin * F.one_hot(y[idx], len(classes)))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        state.epoch += 1
        state.losses.append(total / len(crops))
        state.seconds = time.time() - t0
        if ck:
            tmp = ck.with_suffix(".tmp")
            torch.save({"key": key, "top": top.state_dict(), "W": W.data, "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "state": asdict(state)}, tmp)
            tmp.replace(ck)  # atomic: a kill leaves the old checkpoint or the new one, never half
        if on_epoch:
            on_epoch(state.epoch, cfg.epochs, state.losses[-1])
        if minutes is not None and state.seconds > minutes * 60 and state.epoch < cfg.epochs:
            break
    return {k: v.detach().cpu() for k, v in top.state_dict().items()}, state


def _data_key(crops, labels, cfg: TrainConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for c, lab in zip(crops, labels):
        h.update(lab.encode())
        h.update(np.asarray(c.resize((16, 16))).tobytes())
    return h.hexdigest()


# -- using the result -------------------------------------------------------------------------
class TunedEmbedder(Embedder):
    """EfficientNet-Lite0 with its top fine-tuned on a gallery: unit vectors of ``proj_dim``,
    averaged with the mirrored crop's, like the default embedder."""

    def __init__(self, top_state: dict, cfg: TrainConfig, model_id: str, batch_size: int = 32):
        self.cfg = cfg
        self.batch_size = batch_size
        self._state = top_state
        self._top = None
        self.info = EmbedderInfo(model_id, cfg.proj_dim, cfg.input_size)

    def load(self) -> "TunedEmbedder":
        if self._top is None:
            base = _open_efficientnet("lite0")
            top = _make_top(base, self.cfg)
            top.load_state_dict(self._state)
            self._top = top.eval()
        return self

    def embed_batch(self, faces: Sequence[Image.Image]) -> np.ndarray:
        import torch

        if not faces:
            return np.zeros((0, self.dim), np.float32)
        self.load()
        base = _open_efficientnet("lite0")
        out = []
        with torch.inference_mode():
            for i in range(0, len(faces), self.batch_size):
                x = _to_tensor(faces[i : i + self.batch_size], self.cfg.input_size)
                e = sum(
                    torch.nn.functional.normalize(self._top(trunk_forward(base, xx, self.cfg.freeze_upto)), dim=1)
                    for xx in (x, torch.flip(x, dims=[3]))
                )
                out.append(e.numpy())
        return l2_normalise(np.concatenate(out))


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
    from .config import Thresholds
    from .match import Matcher, auroc
    from .models import TUNED_PREFIX, builtin_embedders

    mid = gallery.model_id
    if mid is None or not (mid in builtin_embedders() or mid.startswith(TUNED_PREFIX)):
        return None
    try:
        A, K, U = (gallery.vectors_for(ids, mid) for ids in (train_ids, known_ids, unknown_ids))
    except KeyError:
        return None
    t = Thresholds()
    m = Matcher(t.tuned_matcher if mid.startswith(TUNED_PREFIX) else t.default_matcher).fit(train_labels, A)
    Sk = m.scores(K)
    ok = m.classes[Sk.argmax(axis=1)] == known_labels
    return {"model_id": mid, "top1": float(ok.mean()), "auroc": auroc(Sk.max(axis=1), m.scores(U).max(axis=1)),
            "switch": "default" if mid == default_embedder().model_id else mid}  # what `charaid gallery model` takes


def few_faces_advice(counts: dict[str, int], advised: int) -> str | None:
    """A warning when the median character has fewer than ``advised`` faces (None otherwise):
    with so few, fine-tuning measured worse than the default features."""
    median = float(np.median(list(counts.values()))) if counts else 0.0
    if median >= advised:
        return None
    return (f"the median character has {median:g} faces; with fewer than {advised} a character, fine-tuning "
            "measured worse than the default, untuned features (docs/benchmarks.md): enrol more faces, or go back "
            "afterwards with `charaid gallery model default`")


def train_gallery(
    gallery,
    cfg: TrainConfig = TrainConfig(),
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
    from .config import Thresholds
    from .match import MIN_CALIBRATION_CHARACTERS, Calibration, Matcher, auroc, best_threshold
    from .models import models_dir, save_tuned, tuned_embedder

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
    cal = None
    if calibrate_run and len(counts) >= MIN_CALIBRATION_CHARACTERS:
        rng = np.random.default_rng(cfg.seed)
        names = sorted(counts)
        held = set(rng.choice(names, max(1, round(0.3 * len(names))), replace=False).tolist())
        lab = np.array(labels, dtype=object)
        keep = np.flatnonzero(~np.isin(lab, list(held)))
        from .evaluate import stratified_folds

        fold = stratified_folds(lab[keep], 5, cfg.seed)
        tr_i, te_i, un_i = keep[fold != 0], keep[fold == 0], np.flatnonzero(np.isin(lab, list(held)))
        if on_stage:
            on_stage(f"calibration run: {len(tr_i)} faces, {len(held)} characters held out as unknowns")
        state, st = fine_tune([crops[i] for i in tr_i], [labels[i] for i in tr_i], cfg, mdir / "calibration-checkpoint.pt",
                              budget, on_epoch=(lambda e, n, l: on_epoch("calibration", e, n, l)) if on_epoch else None)
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
        cal = {"threshold": thr, "known_accuracy": acc, "unknown_rejected": rej, "auroc": auroc(ks, us),
               "n_known": int(len(ks)), "n_unknown": int(len(us)), "held_out": sorted(held), "top1": float(ok.mean()),
               "before": _held_out_before(gallery, [samples[i].id for i in tr_i], lab[tr_i], [samples[i].id for i in te_i],
                                          lab[te_i], [samples[i].id for i in un_i])}
        if on_stage:
            on_stage(f"calibration: AUROC {cal['auroc']:.3f} between held-out known and unknown faces; threshold "
                     f"{thr:.3f} names {acc:.0%} of the known ones right and rejects {rej:.0%} of the unknown ones "
                     "(`charaid gallery model default` goes back to the default, untuned features)")
            b = cal["before"]
            if b is not None:
                worse = b["top1"] > cal["top1"] and b["auroc"] > cal["auroc"]
                on_stage(f"held-out faces, tuned model: top-1 {cal['top1']:.0%}, AUROC {cal['auroc']:.3f}; the gallery's "
                         f"current model on the same faces: top-1 {b['top1']:.0%}, AUROC {b['auroc']:.3f}"
                         + (f"; the tuned model is worse on both here, so `charaid gallery model {b['switch']}` may serve "
                            "you better" if worse else ""))
    elif calibrate_run and on_stage:
        on_stage(f"only {len(counts)} characters: none can be held out to calibrate the unknown threshold, and a model "
                 f"tuned on {len(counts)} characters names most faces of other characters as one of them; "
                 "enrol 3 or more characters before training if unknown faces matter")
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
    state, st = fine_tune(crops, labels, cfg, ck, budget, on_epoch=(lambda e, n, l: on_epoch("final", e, n, l)) if on_epoch else None)
    if st.epoch < cfg.epochs:
        return TrainResult(None, st.epoch, cfg.epochs, time.time() - t0, len(samples), len(counts), resumed, cal)
    meta = {"characters": sorted(counts), "faces": len(samples), "losses": st.losses, "trained_seconds": st.seconds,
            "gallery_revision": gallery.revision, "calibration": cal, "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    embedder = save_tuned(gallery.path, state, cfg, meta)
    if on_stage:
        on_stage(f"re-embedding {len(samples)} faces with {embedder.model_id}")
    vecs = embedder.embed_batch(crops)
    gallery.set_vectors(embedder.model_id, embedder.dim, [(s.id, v) for s, v in zip(samples, vecs)])
    gallery.activate_model(embedder.model_id, embedder.dim)
    if cal is not None:
        gallery.set_json("calibration", Calibration(
            Thresholds().tuned_matcher, cal["threshold"], embedder.model_id, gallery.revision, cal["known_accuracy"],
            cal["unknown_rejected"], cal["n_known"], cal["n_unknown"], cal["auroc"], source="training run",
        ).to_dict())
    for f in (ck, mdir / "calibration-checkpoint.pt"):
        f.unlink(missing_ok=True)
    return TrainResult(embedder.model_id, st.epoch, cfg.epochs, time.time() - t0, len(samples), len(counts), resumed, cal)

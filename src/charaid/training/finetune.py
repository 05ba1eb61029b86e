"""The training loop of ``charaid train`` (and of the self-supervised experiment's top): the
top of EfficientNet-Lite0 trains on (crop, character) pairs with a CosFace loss, while the
frozen trunk's output is computed once for ``views`` augmented copies of every face and cached.
See charaid.training.tune for why, and charaid.models.tuned for the network it trains.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from charaid.models.crops import FaceCrop
from charaid.models.embedders import open_efficientnet_torch
from charaid.models.tuned import TrainConfig, make_top, to_tensor, trunk_forward


# -- augmentation -----------------------------------------------------------------------------
def augment(im: Image.Image, rng: random.Random, size: int, min_scale: float = 0.72) -> Image.Image:
    """A random view of a face crop that keeps its identity cues (never a hue shift); crops keep
    at least ``min_scale`` of each side."""
    im = im.convert("RGB")
    w, h = im.size
    s = rng.uniform(min_scale, 1.0)
    cw, ch = max(8, int(w * s * rng.uniform(0.93, 1.07))), max(8, int(h * s))
    cw, ch = min(cw, w), min(ch, h)
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = im.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-12, 12)
    if abs(angle) > 1:
        im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=im.getpixel((0, 0)))
    im = im.resize((size, size), Image.Resampling.BILINEAR)
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


# -- training ---------------------------------------------------------------------------------
@dataclass
class TrainState:
    """What a checkpoint holds: enough to carry on exactly where an interrupted run stopped."""

    epoch: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fine_tune(
    crops: Sequence[FaceCrop | Image.Image],
    labels: Sequence[str] | np.ndarray,
    cfg: TrainConfig | None = None,
    checkpoint: str | Path | None = None,
    minutes: float | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
    on_views: Callable[[int], None] | None = None,
    device: str | None = None,
    init_top: dict | None = None,
) -> tuple[dict, TrainState]:
    """Train the top of the network on (crop, character) pairs.

    Returns (state_dict of the trained top, final TrainState). With ``checkpoint``, progress is
    saved after every epoch and a matching checkpoint is resumed. ``minutes`` stops after the
    epoch that crosses the time limit (the checkpoint then lets a later call go on).
    ``init_top``: start the top's blocks and head from these weights (experiments/selfsup.py's)
    instead of ImageNet's; the projection starts new either way.
    """
    import torch
    import torch.nn.functional as F

    cfg = cfg or TrainConfig()
    images = [FaceCrop.of(c).image for c in crops]  # the pixels are what it learns from
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base = open_efficientnet_torch("lite0")
    classes = sorted(set(labels))
    y_all = np.array([classes.index(c) for c in labels])
    key = _data_key(images, labels, cfg)
    top = make_top(base, cfg)
    if init_top is not None:
        got = top.load_state_dict({k: v.float() for k, v in init_top.items() if not k.startswith("proj.")}, strict=False)
        if got.unexpected_keys or any(not k.startswith("proj.") for k in got.missing_keys):
            raise ValueError(
                f"init_top does not fit freeze_upto={cfg.freeze_upto}: missing {got.missing_keys[:3]}, unexpected {got.unexpected_keys[:3]}"
            )
        key = hashlib.sha256((key + _state_digest(init_top)).encode()).hexdigest()
    top = top.to(dev)
    W = torch.nn.Parameter(torch.randn(len(classes), cfg.proj_dim, device=dev) * 0.01)
    opt = torch.optim.AdamW(
        [{"params": top.parameters()}, {"params": [W], "lr": cfg.lr * 10}], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    steps_per_epoch = max(1, math.ceil(len(images) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[cfg.lr, cfg.lr * 10], total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
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
    per_view = []
    with torch.inference_mode():
        for v in range(cfg.views):
            out = []
            for i in range(0, len(images), 64):
                batch = [augment(c, rng, cfg.input_size) for c in images[i : i + 64]]
                out.append(trunk_forward(frozen, to_tensor(batch, cfg.input_size).to(dev), cfg.freeze_upto).half().cpu())
            per_view.append(torch.cat(out))
            if on_views:
                on_views(v + 1)
    cached = torch.stack(per_view, dim=1)  # (n, views, C, H, W)
    y = torch.from_numpy(y_all).to(dev)
    t0 = time.time() - state.seconds
    while state.epoch < cfg.epochs:
        # One generator per epoch: a resumed run draws exactly what an uninterrupted one would.
        g = torch.Generator().manual_seed(cfg.seed * 1000 + state.epoch)
        top.train()
        perm = torch.randperm(len(images), generator=g)
        view = torch.randint(cfg.views, (len(images),), generator=g)
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
        state.losses.append(total / len(images))
        state.seconds = time.time() - t0
        if ck:
            tmp = ck.with_suffix(".tmp")
            torch.save(
                {
                    "key": key,
                    "top": top.state_dict(),
                    "W": W.data,
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "state": asdict(state),
                },
                tmp,
            )
            tmp.replace(ck)  # atomic: a kill leaves the old checkpoint or the new one, never half
        if on_epoch:
            on_epoch(state.epoch, cfg.epochs, state.losses[-1])
        if minutes is not None and state.seconds > minutes * 60 and state.epoch < cfg.epochs:
            break
    return {k: v.detach().cpu() for k, v in top.state_dict().items()}, state


def _state_digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


def _data_key(crops, labels, cfg: TrainConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for c, lab in zip(crops, labels):
        h.update(lab.encode())
        h.update(np.asarray(c.resize((16, 16))).tobytes())
    return h.hexdigest()

"""Identity features from unlabelled anime faces (self-supervised), and from the few labelled
characters of ../shared/train/identities (supervised): an experiment, measured and not shipped,
so it lives here and not in the charaid package (which holds what charaid runs and the commands
that build what it ships). Run it from the repository root:

    python experiments/selfsup.py --method simclr --out artifacts/embedder-simclr [--minutes N]

and measure its weights with ``benchmarks/embedder.py --weights OUT/embedder.pt``.

Why self-supervised: no labelled set of hundreds of anime characters can be had here, and
supervised adaptation on the development sets' 17-23 characters learnt those characters and
forgot the rest (docs/benchmarks.md@aef98b0). Unlabelled faces of thousands of characters can be had:
``../shared/train/faces64`` (6,098 faces, nearly all of different characters) and the faces
cut from iCartoonFace's boxes (with a margin, so a view keeps the hair).

Two method families, chosen with ``method``:
- ``simclr``: contrastive instance discrimination (NT-Xent over the batch's two views);
- ``byol``: self-distillation, an online network predicting an exponential moving average of
  itself, with no negatives;
- ``supcon``: supervised contrastive learning on the labelled crops of
  ``../shared/train/identities`` (101 characters): every view of the same character is a
  positive; a step draws ``classes_per_batch`` characters and ``batch // classes_per_batch``
  views of each.

Like ``charaid train`` (charaid.training.finetune), only the top of EfficientNet-Lite0 trains (blocks
``freeze_upto+1``..15 and the head convolution, from ImageNet's weights); the frozen trunk's
output of ``views`` augmented copies of every face is computed once and kept in the output
folder, so training costs the top's passes only. Views keep identity: crops, scale, flips,
small rotations, blur, JPEG, brightness/contrast and line weight, never a hue shift (hair and
eye colours are identity).

Seeded and resumable: a checkpoint after every epoch; each epoch's draws come from a generator
seeded by (seed, epoch), so a resumed run trains what an uninterrupted one would have. The
result is the top's weights in float16 (the embedder is charaid.models.tuned.TunedEmbedder with no
projection: the pooled 1280 head features, averaged with the mirror image's).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from charaid.models.tuned import TrainConfig, TunedEmbedder, make_top, to_tensor, trunk_forward
from charaid.training.augment import yolo_boxes
from charaid.training.finetune import augment

METHODS = ("simclr", "byol", "supcon")
WEIGHTS_FILE = "embedder.pt"


@dataclass(frozen=True)
class EmbedderTrainConfig:
    method: str = "simclr"
    input_size: int = 112
    #: Blocks 0..freeze_upto (of 16) stay as ImageNet trained them; their output is cached.
    freeze_upto: int = 8
    #: Augmented copies of each face whose frozen-trunk output is cached; a step pairs two.
    views: int = 8
    batch: int = 256
    epochs: int = 24
    lr: float = 1e-3
    #: The pretrained top learns at this fraction of ``lr`` (the new heads at ``lr``).
    top_lr_scale: float = 0.3
    weight_decay: float = 1e-5
    warmup_steps: int = 40
    hidden: int = 512
    proj_dim: int = 128
    temperature: float = 0.2
    #: BYOL's target network follows the online one at this rate, rising to 1 by the end.
    ema: float = 0.99
    #: iCartoonFace boxes are widened by this fraction of their side on each side (hair).
    margin: float = 0.35
    #: iCartoonFace faces smaller than this (pixels) are left out: upscaled, they are mush.
    min_face: int = 40
    seed: int = 0
    #: supcon: characters a step draws (each with batch // classes_per_batch views).
    classes_per_batch: int = 32
    #: simclr: weight of a supcon term on identities/ added to each step (0: none).
    supcon_weight: float = 0.0


# -- data -------------------------------------------------------------------------------------
def load_faces(root: str | Path, cfg: EmbedderTrainConfig, limit: int | None = None) -> list[Image.Image]:
    """faces64's crops, then iCartoonFace's boxes cut with ``cfg.margin`` (kept at most 2x the
    input size, to hold thousands in memory); ``limit`` caps the total (for tiny runs)."""
    root = Path(root)
    keep = 2 * cfg.input_size
    faces: list[Image.Image] = []
    for p in sorted((root / "faces64").glob("*.jpg")):
        with Image.open(p) as im:
            faces.append(im.convert("RGB"))
        if limit and len(faces) >= limit:
            return faces
    for img in sorted((root / "icartoonface" / "images").glob("*.jpg")):
        boxes = yolo_boxes(root / "icartoonface" / "labels" / (img.stem + ".txt"))
        if not boxes:
            continue
        with Image.open(img) as im:
            frame = im.convert("RGB")
        W, H = frame.size
        for cx, cy, w, h in boxes:
            side = max(w * W, h * H)
            if side < cfg.min_face:
                continue
            s = side * (1 + 2 * cfg.margin)
            crop = frame.crop((int(cx * W - s / 2), int(cy * H - s / 2), int(cx * W + s / 2), int(cy * H + s / 2)))
            if crop.width > keep:
                crop = crop.resize((keep, keep), Image.Resampling.BILINEAR)
            faces.append(crop)
            if limit and len(faces) >= limit:
                return faces
    return faces


def load_identities(root: str | Path) -> tuple[list[Image.Image], list[str]]:
    """The labelled crops of ``root/identities/<source>__<character>/*.jpg`` and their characters."""
    faces, labels = [], []
    for d in sorted(p for p in (Path(root) / "identities").iterdir() if p.is_dir()):
        for f in sorted(d.glob("*.jpg")):
            with Image.open(f) as im:
                faces.append(im.convert("RGB"))
            labels.append(d.name)
    return faces, labels


def supcon_loss(z, labels, temperature: float):
    """Supervised contrastive loss (Khosla et al. 2020): each view must pick out every other
    view of its character from the batch."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(z, dim=1)
    sim = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~eye
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    has = pos.any(dim=1)
    return -(logp.masked_fill(~pos, 0).sum(dim=1)[has] / pos.sum(dim=1)[has]).mean()


def _views(path: Path, faces: list[Image.Image], cfg: EmbedderTrainConfig, dev, progress: bool):
    """The cached views of ``faces`` kept at ``path``, made once (a later call reads them)."""
    import torch

    key = _data_key(faces, cfg)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("key") == key:
            return saved["views"]
    views = cache_views(faces, cfg, dev, progress)
    tmp = path.with_suffix(".tmp")
    torch.save({"key": key, "views": views}, tmp)
    tmp.replace(path)
    return views


def view(im: Image.Image, rng: random.Random, size: int) -> Image.Image:
    """One identity-keeping view: charaid.models.tuned's augmentation with stronger crops, then now and
    then thicker or thinner line art (a 3x3 minimum or maximum filter)."""
    im = augment(im, rng, size, min_scale=0.6)
    r = rng.random()
    if r < 0.1:
        im = im.filter(ImageFilter.MinFilter(3))
    elif r < 0.2:
        im = im.filter(ImageFilter.MaxFilter(3))
    return im


def _data_key(faces: list[Image.Image], cfg: EmbedderTrainConfig) -> str:
    h = hashlib.sha256(json.dumps([cfg.input_size, cfg.freeze_upto, cfg.views, cfg.seed, cfg.margin, cfg.min_face]).encode())
    for f in faces:
        h.update(np.asarray(f.resize((8, 8))).tobytes())
    return h.hexdigest()[:16]


def cache_views(faces: list[Image.Image], cfg: EmbedderTrainConfig, dev, progress: bool = True):
    """(n, views, C, h, w) float16: the frozen trunk's output of every face's augmented views."""
    import torch
    from tqdm import tqdm

    from charaid.models.embedders import open_efficientnet_torch

    base = open_efficientnet_torch("lite0")
    frozen = (copy.deepcopy(base) if dev.type != "cpu" else base).to(dev).eval()
    rng = random.Random(cfg.seed)
    out = []
    bar = tqdm(total=cfg.views * len(faces), desc="caching views", unit="view", disable=not progress)
    with torch.inference_mode():
        for _ in range(cfg.views):
            parts = []
            for i in range(0, len(faces), 64):
                batch = [view(f, rng, cfg.input_size) for f in faces[i : i + 64]]
                parts.append(trunk_forward(frozen, to_tensor(batch, cfg.input_size).to(dev), cfg.freeze_upto).half().cpu())
                bar.update(len(batch))
            out.append(torch.cat(parts))
    bar.close()
    return torch.stack(out, dim=1)


# -- networks and losses -----------------------------------------------------------------------
def _mlp(d_in: int, hidden: int, d_out: int):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


def nt_xent(z1, z2, temperature: float):
    """SimCLR's loss: each view must pick its twin out of the batch's other 2n - 2 views."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def byol_loss(p, z):
    """BYOL's loss: 2 - 2 cos(prediction, target projection), the target without gradient."""
    import torch.nn.functional as F

    return (2 - 2 * (F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1)).mean()


class _Nets:
    """The trainable parts: the top (shipped), a projector and, for BYOL, a predictor and the
    moving-average target (top and projector)."""

    def __init__(self, cfg: EmbedderTrainConfig, dev):
        from charaid.models.embedders import open_efficientnet_torch

        self.cfg = cfg
        base = open_efficientnet_torch("lite0")
        self.top = make_top(base, self.top_config(cfg)).to(dev)
        self.proj = _mlp(1280, cfg.hidden, cfg.proj_dim).to(dev)
        self.pred = _mlp(cfg.proj_dim, cfg.hidden, cfg.proj_dim).to(dev) if cfg.method == "byol" else None
        self.target = None
        if cfg.method == "byol":
            self.target = [copy.deepcopy(self.top), copy.deepcopy(self.proj)]
            for m in self.target:
                m.requires_grad_(False)

    @staticmethod
    def top_config(cfg: EmbedderTrainConfig) -> TrainConfig:
        return TrainConfig(input_size=cfg.input_size, freeze_upto=cfg.freeze_upto, proj_dim=0)

    def modules(self) -> dict:
        named = {"top": self.top, "proj": self.proj}
        if self.pred is not None and self.target is not None:
            named.update(pred=self.pred, target_top=self.target[0], target_proj=self.target[1])
        return named

    def train(self) -> None:
        for m in self.modules().values():
            m.train()

    def loss(self, h1, h2):
        z1, z2 = self.proj(self.top(h1)), self.proj(self.top(h2))
        if self.cfg.method == "simclr":
            return nt_xent(z1, z2, self.cfg.temperature)
        import torch

        with torch.no_grad():
            t1 = self.target[1](self.target[0](h1))
            t2 = self.target[1](self.target[0](h2))
        return byol_loss(self.pred(z1), t2) + byol_loss(self.pred(z2), t1)

    def follow(self, progress: float) -> None:
        """Move BYOL's target towards the online network (tau rises from ``ema`` to 1)."""
        if self.target is None:
            return
        import torch

        tau = 1 - (1 - self.cfg.ema) * (math.cos(math.pi * progress) + 1) / 2
        with torch.no_grad():
            for online, target in ((self.top, self.target[0]), (self.proj, self.target[1])):
                for po, pt in zip(online.parameters(), target.parameters()):
                    pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
                for bo, bt in zip(online.buffers(), target.buffers()):
                    bt.copy_(bo)


# -- training ---------------------------------------------------------------------------------
def train_embedder(
    data_root: str | Path,
    out_dir: str | Path,
    cfg: EmbedderTrainConfig = EmbedderTrainConfig(),
    minutes: float | None = None,
    device: str | None = None,
    progress: bool = True,
    limit: int | None = None,
    faces: list[Image.Image] | None = None,
    named: tuple[list[Image.Image], list[str]] | None = None,
    model_id: str = "charaid-ssl-lite0",
    version: int = 1,
) -> dict:
    """Train (or resume) into ``out_dir``; returns a summary. ``faces`` (unlabelled) and ``named``
    (crops and their characters, for supcon) replace what ``data_root`` holds. Stops after ``cfg.epochs`` epochs,
    or after the epoch that crosses ``minutes`` of this call (``summary["done"]`` says which).
    The finished weights are ``out_dir/embedder.pt`` (float16; :func:`load_embedder` opens them)."""
    import torch
    from tqdm import tqdm

    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of: {', '.join(METHODS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, views_path = out / "checkpoint.pt", out / "views.pt"
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    # supcon learns from named crops alone; simclr adds it at supcon_weight when that is above 0
    sup_weight = 1.0 if cfg.method == "supcon" else cfg.supcon_weight
    named = (named or load_identities(data_root)) if sup_weight > 0 else None
    if cfg.method == "supcon":
        faces = []  # no unlabelled faces: the named crops are the data
    faces = faces if faces is not None else load_faces(data_root, cfg, limit)
    n_data = len(named[0]) if cfg.method == "supcon" and named is not None else len(faces)
    if n_data < 4:
        raise ValueError(f"{data_root}: {n_data} faces found; training needs more (faces64/, icartoonface/, identities/)")
    key = _data_key(faces, cfg)
    if named is not None:
        key += _data_key(named[0], cfg) + hashlib.sha256("\n".join(named[1]).encode()).hexdigest()[:8]
    nets = _Nets(cfg, dev)
    heads = list(nets.proj.parameters()) + (list(nets.pred.parameters()) if nets.pred is not None else [])
    opt = torch.optim.AdamW(
        [{"params": list(nets.top.parameters()), "lr_scale": cfg.top_lr_scale}, {"params": heads, "lr_scale": 1.0}],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    epoch, elapsed, history = 0, 0.0, []
    if ckpt_path.is_file():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if saved["config"] != asdict(cfg) or saved["key"] != key:
            raise ValueError(
                f"{ckpt_path}: made with other settings or faces ({saved['config']}); use another --out or the same settings"
            )
        for name, m in nets.modules().items():
            m.load_state_dict(saved[name])
        opt.load_state_dict(saved["opt"])
        epoch, elapsed, history = saved["epoch"], saved["elapsed"], saved["history"]

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "config": asdict(cfg),
                "key": key,
                "opt": opt.state_dict(),
                "epoch": epoch,
                "elapsed": elapsed,
                "history": history,
                **{n: m.state_dict() for n, m in nets.modules().items()},
            },
            tmp,
        )
        tmp.replace(ckpt_path)  # atomic: a kill leaves the old checkpoint or the new one

    n = n_data
    batch = min(cfg.batch, n)
    steps_per_epoch = max(1, n // batch)
    total = cfg.epochs * steps_per_epoch
    if epoch < cfg.epochs:
        t0 = time.time()
        cached = _views(views_path, faces, cfg, dev, progress) if faces else None
        named_views = None
        if named is not None:  # supcon's draws: characters, then views of each
            named_views = _views(out / "views-identities.pt", named[0], cfg, dev, progress)
            lab = torch.from_numpy(np.unique(named[1], return_inverse=True)[1].reshape(-1))
            members = [torch.nonzero(lab == c).flatten() for c in range(int(lab.max()) + 1)]
            per = max(2, batch // cfg.classes_per_batch)
        elapsed += time.time() - t0
        t_call = time.time()
        bar = tqdm(
            total=total, initial=epoch * steps_per_epoch, desc=f"selfsup ({cfg.method})", unit="step", disable=not progress
        )
        nets.train()
        while epoch < cfg.epochs:
            t0 = time.time()
            g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # anything random inside the networks too
            perm = torch.randperm(n, generator=g)
            first = torch.randint(cfg.views, (n,), generator=g)
            second = (first + torch.randint(1, max(2, cfg.views), (n,), generator=g)) % cfg.views
            losses = []
            for k in range(steps_per_epoch):
                step = epoch * steps_per_epoch + k
                idx = perm[k * batch : (k + 1) * batch]
                lr_f = min(1.0, (step + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / total))
                for grp in opt.param_groups:
                    grp["lr"] = cfg.lr * lr_f * grp["lr_scale"]
                loss = torch.zeros((), device=dev)
                if cached is not None:
                    loss = nets.loss(cached[idx, first[idx]].float().to(dev), cached[idx, second[idx]].float().to(dev))
                if named_views is not None:
                    cls = torch.randperm(len(members), generator=g)[: cfg.classes_per_batch]
                    pick = torch.cat([members[c][torch.randint(len(members[c]), (per,), generator=g)] for c in cls])
                    h = named_views[pick, torch.randint(cfg.views, (len(pick),), generator=g)].float().to(dev)
                    loss = loss + sup_weight * supcon_loss(nets.proj(nets.top(h)), lab[pick].to(dev), cfg.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                nets.follow((step + 1) / total)
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            epoch += 1
            elapsed += time.time() - t0
            history.append(float(np.mean(losses)))
            save()
            if minutes is not None and time.time() - t_call > minutes * 60 and epoch < cfg.epochs:
                break
        bar.close()
    done = epoch >= cfg.epochs
    weights = out / WEIGHTS_FILE
    if done:
        export_weights(nets.top.state_dict(), weights, cfg, elapsed, model_id, version, n)
    return {
        "done": done,
        "epoch": epoch,
        "epochs": cfg.epochs,
        "faces": n,
        "elapsed_s": round(elapsed),
        "first_loss": round(history[0], 4) if history else None,
        "loss": round(history[-1], 4) if history else None,
        "history": history,
        "weights": str(weights) if done else None,
        "checkpoint": str(ckpt_path),
    }


def export_weights(
    top_state: dict, path: Path, cfg: EmbedderTrainConfig, elapsed: float, model_id: str, version: int, faces: int
) -> None:
    """The shipped form: the top's weights in float16 (about 5 MB)."""
    import torch

    half = {k: (v.detach().cpu().half() if v.is_floating_point() else v.cpu()) for k, v in top_state.items()}
    torch.save(
        {
            "top": half,
            "model_id": model_id,
            "version": version,
            "top_config": asdict(_Nets.top_config(cfg)),
            "train_config": asdict(cfg),
            "train_seconds": round(elapsed),
            "faces": faces,
        },
        path,
    )


def load_embedder(path: str | Path, model_id: str | None = None) -> TunedEmbedder:
    """The embedder of a weights file written by :func:`train_embedder`. Its model id is the
    file's ``<model_id>-v<version>``, unless ``model_id`` is given (benchmarks give unshipped
    weights an id with their hash, so that two runs never share a cache)."""
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=False)
    mid = model_id or f"{saved['model_id']}-v{saved['version']}"
    return TunedEmbedder(saved["top"], TrainConfig(**saved["top_config"]), mid)


def main(argv: list[str] | None = None) -> int:
    """The command line: exit 0 when done, 3 when stopped by --minutes (run it again to resume),
    1 with a one-line error for a folder without training faces."""
    import argparse
    import sys
    from dataclasses import replace

    ap = argparse.ArgumentParser(prog="experiments/selfsup.py", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", default="../shared/train", metavar="DIR", help="DIR/faces64 and DIR/icartoonface (default ../shared/train)"
    )
    ap.add_argument(
        "--out",
        default="artifacts/embedder",
        metavar="DIR",
        help="checkpoint, cached views and weights (default artifacts/embedder)",
    )
    ap.add_argument(
        "--method",
        choices=METHODS,
        help="contrastive (simclr, the default), self-distillation (byol) or supervised on identities/ (supcon)",
    )
    ap.add_argument("--epochs", type=int, metavar="N", help="epochs (default 24)")
    ap.add_argument("--size", type=int, metavar="PX", help="input side of the face crops (default 112)")
    ap.add_argument("--lr", type=float, metavar="LR", help="peak learning rate of the new heads (default 1e-3; the top: 0.3x)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--supcon-weight", type=float, metavar="W", help="simclr: add supcon on identities/ at this weight")
    ap.add_argument("--minutes", type=float, metavar="N", help="stop after the epoch that crosses this; running it again resumes")
    ap.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda when there is one)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "faces64").is_dir() and not (data / "icartoonface" / "images").is_dir():
        print(
            f"selfsup: error: {data}: no faces64/ or icartoonface/images here (the training data of ../shared/train)",
            file=sys.stderr,
        )
        return 1
    given = (("method", args.method), ("epochs", args.epochs), ("input_size", args.size), ("seed", args.seed), ("lr", args.lr))
    given += (("supcon_weight", args.supcon_weight),)
    cfg = replace(EmbedderTrainConfig(), **{k: v for k, v in given if v is not None})
    if (cfg.method == "supcon" or cfg.supcon_weight > 0) and not any((data / "identities").glob("*/*.jpg")):
        print(
            f"selfsup: error: {data / 'identities'}: no labelled crops (<character>/*.jpg) here, which supcon learns from",
            file=sys.stderr,
        )
        return 1
    r = train_embedder(data, args.out, cfg, minutes=args.minutes, device=args.device, progress=not args.quiet)
    print(json.dumps(r))
    if not r["done"]:
        print(f"selfsup: stopped at epoch {r['epoch']} of {r['epochs']}; run the same command again to resume", file=sys.stderr)
        return 3
    print(
        f"selfsup: weights written to {r['weights']}; measure them with benchmarks/embedder.py --weights {r['weights']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``charaid train-detector``: train charaid's face detector (charaid.models.facedet) on ../shared/train.

Data: iCartoonFace's detection train split (frames and YOLO face boxes) and the faces64 anime
face crops, both read in place, augmented on the fly (charaid.training.augment). Loss: CenterNet's
penalty-reduced focal loss on the centre heat map (Gaussian peaks sized by the face), L1 on the
log size and on the centre offset at each face's centre cell.

Seeded and resumable: a checkpoint (network, optimiser, step, elapsed time) is written every
``checkpoint_seconds``; each step's pictures come from a generator seeded by (seed, step), so a
resumed run draws what the uninterrupted one would have. The stem and first blocks (ImageNet
edges and colours) stay frozen, and so do the backbone's batch-norm statistics (batches of 16
are too small to re-estimate them well).
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.models import facedet
from charaid.training.augment import Frame, make_sample, yolo_boxes


@dataclass(frozen=True)
class DetectorTrainConfig:
    side: int = 256
    batch: int = 16
    steps: int = 3600
    lr: float = 2e-3
    backbone_lr_scale: float = 0.3
    weight_decay: float = 1e-4
    warmup: int = 100
    #: The stem and this many first blocks of the backbone stay as ImageNet trained them.
    frozen_blocks: int = 3
    seed: int = 0
    checkpoint_seconds: float = 120.0
    #: Start from these weights (a ``.pt`` written by an earlier run) instead of ImageNet's
    #: backbone and a new head: to train a later version further.
    init: str | None = None
    #: The share of training pictures that are one face zoomed in (charaid.training.augment):
    #: 0 for version 1's recipe.
    closeups: float = 0.0


def load_frames(root: Path) -> list[Frame]:
    """iCartoonFace frames with their boxes in pixels (``images/X.jpg`` + ``labels/X.txt``)."""
    frames = []
    for img in sorted((root / "images").glob("*.jpg")):
        lab = root / "labels" / (img.stem + ".txt")
        with Image.open(img) as im:
            a = np.asarray(im.convert("RGB"))
        H, W = a.shape[:2]
        boxes = [[(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H] for cx, cy, w, h in yolo_boxes(lab)]
        frames.append(Frame(a, np.asarray(boxes, np.float32).reshape(-1, 4)))
    return frames


def load_faces(root: Path, limit: int | None = None) -> list[np.ndarray]:
    out = []
    for p in sorted(root.glob("*.jpg"))[:limit]:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def targets(boxes: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Heat map (h, w), log-size and offset maps (2, h, w) and the centre mask (h, w) at stride 8."""
    s = facedet.STRIDE
    h = w = side // s
    heat = np.zeros((h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    off = np.zeros((2, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # largest first, so a small face's centre written later wins a shared cell
    for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        bw, bh = (b[2] - b[0]) / s, (b[3] - b[1]) / s
        cx, cy = (b[0] + b[2]) / 2 / s, (b[1] + b[3]) / 2 / s
        ix, iy = min(w - 1, int(cx)), min(h - 1, int(cy))
        sx, sy = max(0.5, 0.54 * bw / 6 * 2), max(0.5, 0.54 * bh / 6 * 2)
        g = np.exp(-((xx - ix) ** 2) / (2 * sx * sx) - ((yy - iy) ** 2) / (2 * sy * sy))
        np.maximum(heat, g, out=heat)
        heat[iy, ix] = 1.0
        size[:, iy, ix] = (math.log(max(bw, 0.1)), math.log(max(bh, 0.1)))
        off[:, iy, ix] = (cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return heat, size, off, mask


def make_batch(frames, faces, cfg: DetectorTrainConfig, step: int):
    """The pictures and targets of training step ``step`` (deterministic in seed and step)."""
    rng = np.random.default_rng([cfg.seed, step])
    ims, tg = [], []
    for _ in range(cfg.batch):
        a, boxes = make_sample(frames, faces, rng, cfg.side, cfg.closeups)
        ims.append(a)
        tg.append(targets(boxes, cfg.side))
    x = (np.stack(ims).astype(np.float32) - facedet.MEAN) / facedet.STD
    return x, [np.stack([t[k] for t in tg]) for k in range(4)]


def detection_loss(out, heat, size, off, mask):
    """CenterNet's focal loss on the heat map plus L1 on size and offset, per face."""
    import torch

    logit = out[:, 0]
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    n = pos.sum().clamp(min=1.0)
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)).sum()
    m = mask.unsqueeze(1)
    size_loss = (torch.abs(out[:, 1:3] - size) * m).sum() / n
    off_loss = (torch.abs(out[:, 3:5] - off) * m).sum() / n
    heat_loss = (pos_loss + neg_loss) / n
    parts = {"heat": float(heat_loss.detach()), "size": float(size_loss.detach()), "off": float(off_loss.detach())}
    return heat_loss + size_loss + off_loss, parts


def _prefetch(frames, faces, cfg: DetectorTrainConfig, start: int, stop: int, q: queue.Queue, halt: threading.Event) -> None:
    for step in range(start, stop):
        if halt.is_set():
            return
        q.put((step, make_batch(frames, faces, cfg, step)))


def _set_train_mode(net) -> None:
    import torch

    net.train()
    for m in list(net.stem.modules()) + list(net.blocks.modules()):
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def export_weights(state: dict, path: Path, cfg: DetectorTrainConfig, elapsed: float, step: int) -> None:
    """The shipped form: float16 weights (half the size; detection unchanged to 3 decimals)."""
    import torch

    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    torch.save(
        {
            "state": half,
            "model_id": facedet.MODEL_ID,
            "version": facedet.MODEL_VERSION,
            "config": asdict(cfg),
            "train_seconds": round(elapsed),
            "steps": step,
        },
        path,
    )


def write_onnx(weights: str | Path, path: str | Path) -> None:
    """The shipped ``.onnx`` twin of a ``.pt`` weights file (what charaid runs)."""
    facedet.export_onnx(facedet.load_network(str(weights)), str(path))


def train_detector(
    data_root: str | Path,
    out_dir: str | Path,
    cfg: DetectorTrainConfig = DetectorTrainConfig(),
    minutes: float | None = None,
    device: str | None = None,
    progress: bool = True,
    faces_limit: int | None = None,
    frames: list[Frame] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) into ``out_dir``; returns a summary. Stops after ``cfg.steps`` steps or
    ``minutes`` (or ``stop_after`` steps) of this call, whichever comes first (``summary["done"]``
    says which); the finished
    weights are written as ``out_dir/<facedet.WEIGHTS_FILE>`` (float16, the shipped form)."""
    import torch
    from tqdm import tqdm

    root, out = Path(data_root), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    net = facedet.build_network(pretrained_backbone=True)
    if cfg.init:
        start = torch.load(cfg.init, map_location="cpu", weights_only=False)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in start["state"].items()})
    for p in list(net.stem.parameters()) + list(net.blocks[: cfg.frozen_blocks].parameters()):
        p.requires_grad_(False)
    backbone = {id(p) for p in facedet.backbone_parameters(net)}
    groups = [
        {"params": [p for p in net.parameters() if p.requires_grad and id(p) in backbone], "lr_scale": cfg.backbone_lr_scale},
        {"params": [p for p in net.parameters() if id(p) not in backbone], "lr_scale": 1.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed, history = 0, 0.0, []
    if ckpt_path.is_file():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if saved["config"] != asdict(cfg):
            raise ValueError(f"{ckpt_path}: made with other settings ({saved['config']}); use another --out or the same settings")
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        step, elapsed, history = saved["step"], saved["elapsed"], saved["history"]
    net = net.to(dev).to(memory_format=torch.channels_last)
    for st in opt.state.values():
        for k, v in st.items():
            if torch.is_tensor(v):
                st[k] = v.to(dev)

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "history": history,
                "config": asdict(cfg),
            },
            tmp,
        )
        tmp.replace(ckpt_path)

    if step < cfg.steps:
        frames = frames if frames is not None else load_frames(root / "icartoonface")
        faces = load_faces(root / "faces64", faces_limit) if (root / "faces64").is_dir() else []
        q: queue.Queue = queue.Queue(maxsize=3)
        halt = threading.Event()
        worker = threading.Thread(target=_prefetch, args=(frames, faces, cfg, step, cfg.steps, q, halt), daemon=True)
        worker.start()
        _set_train_mode(net)
        t_call, t_ckpt, first = time.time(), time.time(), step
        bar = tqdm(total=cfg.steps, initial=step, desc="train-detector", unit="step", disable=not progress)
        try:
            while step < cfg.steps:
                if minutes is not None and time.time() - t_call > minutes * 60:
                    break
                if stop_after is not None and step - first >= stop_after:
                    break
                t0 = time.time()
                got, (x, tg) = q.get()
                assert got == step
                lr_f = min(1.0, (step + 1) / cfg.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * lr_f * g["lr_scale"]
                xt = torch.from_numpy(x).permute(0, 3, 1, 2).to(dev, memory_format=torch.channels_last)
                heat, size, off, mask = (torch.from_numpy(t).to(dev) for t in tg)
                loss, parts = detection_loss(net(xt), heat, size, off, mask)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
                opt.step()
                step += 1
                elapsed += time.time() - t0
                history.append({"step": step, "loss": float(loss.detach()), **parts})
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                if time.time() - t_ckpt > cfg.checkpoint_seconds:
                    save()
                    t_ckpt = time.time()
        finally:
            halt.set()
            while not q.empty():
                q.get_nowait()
            bar.close()
            save()
    done = step >= cfg.steps
    weights = out / facedet.WEIGHTS_FILE
    if done:
        export_weights(net.to("cpu").state_dict(), weights, cfg, elapsed, step)
        try:
            write_onnx(weights, out / facedet.ONNX_FILE)
        except ImportError as e:  # the exporter needs the onnx package (the test extra has it)
            print(
                f"charaid: {facedet.ONNX_FILE} not written ({e}); pip install onnx, then run train-detector again",
                file=sys.stderr,
            )
    recent = history[-50:]
    return {
        "done": done,
        "step": step,
        "steps": cfg.steps,
        "elapsed_s": round(elapsed),
        "loss": round(float(np.mean([h["loss"] for h in recent])), 4) if recent else None,
        "history": [h["loss"] for h in history],
        "first_loss": round(float(np.mean([h["loss"] for h in history[:20]])), 4) if history else None,
        "weights": str(weights) if done else None,
        "checkpoint": str(ckpt_path),
    }

"""The network of ``charaid train``: its settings and the tuned embedder that runs it. The
training loop is charaid.training.finetune's; charaid.training.tune runs it on a gallery.

Only the top of EfficientNet-Lite0 is tuned; the frozen trunk below it is ImageNet's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from charaid.models.crops import FaceCrop
from charaid.models.embedders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Embedder,
    EmbedderInfo,
    l2_normalise,
    open_efficientnet_torch,
    to_tensor_batch,
)


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


# -- the network ------------------------------------------------------------------------------
def to_tensor(ims: Sequence[Image.Image], size: int):
    return to_tensor_batch(ims, EmbedderInfo("", 0, size, IMAGENET_MEAN, IMAGENET_STD))


def trunk_forward(base, x, upto: int):
    h = base._swish(base._bn0(base._conv_stem(x)))
    for b in base._blocks[: upto + 1]:
        h = b(h)
    return h


def make_top(base, cfg: TrainConfig):
    import torch.nn as nn

    class Top(nn.Module):
        """Blocks freeze_upto+1..15, the head convolution and a linear projection (none when
        ``proj_dim`` is 0: the pooled head output, as the self-supervised embedder gives it)."""

        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(copy.deepcopy(list(base._blocks[cfg.freeze_upto + 1 :])))
            self.conv_head = copy.deepcopy(base._conv_head)
            self.bn1 = copy.deepcopy(base._bn1)
            self.act = copy.deepcopy(base._swish)
            self.proj = nn.Linear(self.bn1.num_features, cfg.proj_dim) if cfg.proj_dim else nn.Identity()

        def forward(self, h):
            for b in self.blocks:
                h = b(h)
            h = self.act(self.bn1(self.conv_head(h))).mean(dim=(2, 3))
            return self.proj(h)

    return Top()


# -- using the result -------------------------------------------------------------------------
class TunedEmbedder(Embedder):
    """EfficientNet-Lite0 with its top fine-tuned on a gallery: unit vectors of ``proj_dim``,
    averaged with the mirrored crop's, like the default embedder."""

    def __init__(self, top_state: dict, cfg: TrainConfig, model_id: str, batch_size: int = 32):
        self.cfg = cfg
        self.batch_size = batch_size
        self._state = top_state
        self._top = None
        self.info = EmbedderInfo(model_id, cfg.proj_dim or 1280, cfg.input_size)

    def load(self) -> TunedEmbedder:
        if self._top is None:
            base = open_efficientnet_torch("lite0")
            top = make_top(base, self.cfg)
            top.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in self._state.items()})
            self._top = top.eval()
        return self

    def _unit(self, base, x):
        """The tuned top's unit vectors of a batch (the trunk frozen below ``freeze_upto``)."""
        import torch

        assert self._top is not None  # load() made it
        return torch.nn.functional.normalize(self._top(trunk_forward(base, x, self.cfg.freeze_upto)), dim=1)

    def _embed(self, crops: list[FaceCrop]) -> np.ndarray:
        import torch

        faces = [c.image for c in crops]
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        self.load()
        base = open_efficientnet_torch("lite0")
        out = []
        with torch.inference_mode():
            for i in range(0, len(faces), self.batch_size):
                x = to_tensor(faces[i : i + self.batch_size], self.cfg.input_size)
                e = self._unit(base, x) + self._unit(base, torch.flip(x, dims=[3]))
                out.append(e.numpy())
        return l2_normalise(np.concatenate(out))

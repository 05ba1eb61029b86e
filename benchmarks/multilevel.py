"""Pooled features of EfficientNet-Lite0's middle stages beside its head (issue 3, item 3).

    python benchmarks/multilevel.py

Fine-grained transfer often gains from middle layers, which keep shapes and textures (hair
strands, eye drawing) that the last layer has traded for ImageNet's classes. One pass embeds
every set with every block side by side (each stage's output averaged over the picture, and
the head's also with generalised-mean pooling, p = 3; mirror image added, as the default
does); the variants below re-weight those unit-length blocks, beside the default's colour
histogram (0.5) and the detector's colours (0.25), through issue 2's protocols (matcher hybrid).
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import default_settings  # noqa: E402
from charaid.cues import CueColourEmbedder  # noqa: E402
from charaid.embed import (ColourHistogramEmbedder, ConcatEmbedder, Embedder, EmbedderInfo,  # noqa: E402
                           _open_efficientnet, l2_normalise, to_tensor_batch)
from charaid.evaluate import EmbeddedSet  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402

#: Last block of each stage of EfficientNet-Lite0 whose output is pooled (40, 80, 112, 192, 320 channels).
STAGE_ENDS = (4, 7, 10, 14, 15)
#: The blocks of one vector, in order, with their sizes: the stages, the head (mean and GeM
#: pooled), then the default's colour histogram and detector colours.
BLOCKS = {"s40": 40, "s80": 80, "s112": 112, "s192": 192, "s320": 320, "head": 1280, "headgem": 1280, "hist": 192, "cue": 9}
VARIANTS = {
    "default": {"head": 1, "hist": .5, "cue": .25},
    "gem": {"headgem": 1, "hist": .5, "cue": .25},
    "+s192 .5": {"head": 1, "s192": .5, "hist": .5, "cue": .25},
    "+s192 1": {"head": 1, "s192": 1, "hist": .5, "cue": .25},
    "+s112 .5": {"head": 1, "s112": .5, "hist": .5, "cue": .25},
    "+s112 1": {"head": 1, "s112": 1, "hist": .5, "cue": .25},
    "+s320 .5": {"head": 1, "s320": .5, "hist": .5, "cue": .25},
    "+s80 .5": {"head": 1, "s80": .5, "hist": .5, "cue": .25},
    "+s112+s192 .5": {"head": 1, "s112": .5, "s192": .5, "hist": .5, "cue": .25},
    "+s80+s112+s192 .5": {"head": 1, "s80": .5, "s112": .5, "s192": .5, "hist": .5, "cue": .25},
}


class MultiLevel(Embedder):
    """Every stage's pooled output and the head's (mean and GeM), each unit length, mirror added."""

    def __init__(self):
        # (the id names the benchmark cache of the run recorded in docs/benchmarks.md)
        self.info = EmbedderInfo("scratch-multilevel-v1", sum(list(BLOCKS.values())[:7]), 224)

    @staticmethod
    def feats(m, x) -> list:
        x = m._swish(m._bn0(m._conv_stem(x)))
        outs = []
        for i, b in enumerate(m._blocks):
            x = b(x)
            if i in STAGE_ENDS:
                outs.append(x.mean(dim=(2, 3)))
        h = m._swish(m._bn1(m._conv_head(x)))
        return outs + [h.mean(dim=(2, 3)), h.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)]

    def embed_batch(self, faces):
        m, res = _open_efficientnet("lite0"), []
        with torch.inference_mode():
            for i in range(0, len(faces), 32):
                x = to_tensor_batch(faces[i : i + 32], self.info)
                pairs = zip(self.feats(m, x), self.feats(m, torch.flip(x, dims=[3])))
                res.append(np.concatenate([l2_normalise((u + v).numpy()) for u, v in pairs], 1))
        return np.concatenate(res)


def split_blocks(X: np.ndarray) -> dict[str, np.ndarray]:
    """Each block of the joined vectors, unit length again (zero blocks stay zero)."""
    ends = np.cumsum(list(BLOCKS.values()))
    return {n: l2_normalise(X[:, e - d : e]) for (n, d), e in zip(BLOCKS.items(), ends)}


def weighted(sets, parts, weights: dict[str, float]) -> dict:
    """The sets with each vector rebuilt from its blocks at ``weights``."""
    def mk(s, B):
        return None if s is None else EmbeddedSet(s.labels, s.paths, l2_normalise(np.concatenate([B[k] * w for k, w in weights.items()], 1)))

    return {n: (mk(a, parts[n][0]), mk(b, parts[n][1]), f) for n, (a, b, f) in sets.items()}


def main() -> None:
    emb = ConcatEmbedder([MultiLevel(), ColourHistogramEmbedder(), CueColourEmbedder()], [1, 1, 1])
    sets = accuracy.load_sets(emb, DetectorSpec(max_side=default_settings().max_detect_side))
    parts = {n: (split_blocks(a.X), split_blocks(b.X) if b is not None else None) for n, (a, b, f) in sets.items()}
    print(f"# multi-level features; matcher hybrid; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for name, w in VARIANTS.items():
        heads, row = accuracy.variant_row(name, weighted(sets, parts, w))
        rows.append(row)
    print(table(heads, rows))


if __name__ == "__main__":
    main()

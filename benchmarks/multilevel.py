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
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy
from common import table
from charaid.embed import Embedder, EmbedderInfo, _open_efficientnet, to_tensor_batch, l2_normalise, ColourHistogramEmbedder, ConcatEmbedder
from charaid.cues import CueColourEmbedder
from charaid.evaluate import EmbeddedSet
from charaid.prepare import DetectorSpec
from charaid.config import default_settings

STAGES = {40: 4, 80: 7, 112: 10, 192: 14, 320: 15}  # channels -> last block index of the stage
NAMES = ["s40", "s80", "s112", "s192", "s320", "head", "headgem"]
DIMS = [40, 80, 112, 192, 320, 1280, 1280]

class MultiLevel(Embedder):
    def __init__(self):
        self.info = EmbedderInfo("scratch-multilevel-v1", sum(DIMS), 224)
    def feats(self, m, x):
        x = m._swish(m._bn0(m._conv_stem(x)))
        outs = []
        ends = set(STAGES.values())
        for i, b in enumerate(m._blocks):
            x = b(x)
            if i in ends:
                outs.append(x.mean(dim=(2, 3)))
        h = m._swish(m._bn1(m._conv_head(x)))
        outs.append(h.mean(dim=(2, 3)))
        outs.append(h.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3))
        return outs
    def embed_batch(self, faces):
        m = _open_efficientnet("lite0"); res = []
        with torch.inference_mode():
            for i in range(0, len(faces), 32):
                x = to_tensor_batch(faces[i:i+32], self.info)
                a = self.feats(m, x); b = self.feats(m, torch.flip(x, dims=[3]))
                res.append(np.concatenate([l2_normalise((u + v).numpy()) for u, v in zip(a, b)], 1))
        return np.concatenate(res).astype(np.float32)

def blocks(X):
    out, o = {}, 0
    for n, d in zip(NAMES + ["hist", "cue"], DIMS + [192, 9]):
        B = X[:, o:o+d]; o += d
        nrm = np.linalg.norm(B, axis=1, keepdims=True)
        out[n] = np.where(nrm > 0, B / np.maximum(nrm, 1e-12), 0)
    return out

def variant(sets_blocks, weights):
    out = {}
    for name, (a, b, f) in sets_blocks.items():
        def mk(s):
            if s is None: return None
            B, base = s
            X = np.concatenate([B[k] * w for k, w in weights.items()], 1)
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
            return EmbeddedSet(base.labels, base.paths, X.astype(np.float32))
        out[name] = (mk(a), mk(b), f)
    return out

if __name__ == "__main__":
    emb = ConcatEmbedder([MultiLevel(), ColourHistogramEmbedder(), CueColourEmbedder()], [1, 1, 1])
    spec = DetectorSpec(max_side=default_settings().max_detect_side)
    sets = accuracy.load_sets(emb, spec)
    sb = {n: ((blocks(a.X), a), (blocks(b.X), b) if b is not None else None, f) for n, (a, b, f) in sets.items()}
    V = {
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
    from common import machine
    import time
    print(f"# multi-level features; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for vn, w in V.items():
        s = variant(sb, w)
        cs = accuracy.closed_set(s, "hybrid")
        un, mean = accuracy.unknowns(s, "hybrid")
        rows.append([vn] + [r[3] for r in cs] + [r[3] for r in un[:-1]] + [mean[0], mean[1], mean[2]])
        print(table(["variant", "tla split", "tla 6f", "moe", "dan", "ng8", "AU tla", "AU moe", "AU dan", "AU ng8", "AU mean", "rej", "known"], rows[-1:]), flush=True)
    print(table(["variant", "tla split", "tla 6f", "moe", "dan", "ng8", "AU tla", "AU moe", "AU dan", "AU ng8", "AU mean", "rej", "known"], rows))

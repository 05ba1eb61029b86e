"""Detector cues, test-time flip, eye alignment, colour weight and crop margin (issue 3, items 2-3).

    python benchmarks/cues.py [--method hybrid] [--variants "SUBSTRING,..."]

Each variant is a weighted join of unit-length blocks (as charaid's ConcatEmbedder does it),
run through issue 2's protocols (benchmarks/accuracy.py: closed-set top-1, leave-3-characters-
out unknowns with the gallery's own calibrated threshold). Blocks:

  cnn          ImageNet EfficientNet-Lite0, averaged with the mirror image (charaid's)
  cnn-noflip   the same without the mirror image
  colour       charaid's 12x4x4 HSV histogram of the crop
  aligned      cnn on the crop turned so that animeface-2009's two eye centres are level
  eyes         cnn on the eye region alone: a square 2.5 eye gaps wide around the two eye
               centres (a little more below than above), enlarged to 224 px
  cue-colour   hair, skin and eye colours (CIE Lab), sampled at animeface-2009's landmarks by
               charaid.cues (until commit 6aa0dbb: animeface-2009's own colour estimates, which
               are not repeatable)                                         } Takayama et al. 2012's
  cue-shape    its landmark geometry (eyes, nose, mouth, chin; by eye gap) } cues, the seed's reference

The cue blocks need animeface-2009 to find the face again inside the crop (enlarged to 256 px
and padded; newgame8's colours come from the picture's own detection, as in charaid); where it
does not, the block is zero (it says nothing). Cue values are standardised with the mean and
spread over all sets' faces. Crop margin (`margin`) only
changes newgame8, the one face set cut from full illustrations here.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import machine, table  # noqa: E402
from whitening import run  # noqa: E402

from charaid import cues as charaid_cues  # noqa: E402
from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.detect import AnimeFaceDetector, Face  # noqa: E402
from charaid.embed import ColourHistogramEmbedder, Embedder, EmbedderInfo, EfficientNetLiteEmbedder, l2_normalise, to_tensor_batch  # noqa: E402
from charaid.embed import _open_efficientnet, pooled_features  # noqa: E402
from charaid.evaluate import EmbeddedSet  # noqa: E402
from charaid.prepare import DetectorSpec, prepare_many  # noqa: E402

_FACES: dict[str, tuple[Face | None, float, int]] = {}


def face_in_crop(im: Image.Image) -> tuple[Face | None, float, int]:
    """animeface-2009 on the crop enlarged to 256 px and padded by 20%: (face, scale, pad)."""
    key = hashlib.sha1(im.tobytes()).hexdigest()
    if key not in _FACES:
        im = im.convert("RGB")
        s = max(1.0, 256 / max(im.size))
        big = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC) if s > 1 else im
        pad = int(0.2 * max(big.size))
        canvas = Image.new("RGB", (big.width + 2 * pad, big.height + 2 * pad), (255, 255, 255))
        canvas.paste(big, (pad, pad))
        faces = [f for f in AnimeFaceDetector().detect(canvas) if f.landmarks]
        face = max(faces, key=lambda f: f.box.w * f.box.h) if faces else None
        _FACES[key] = (face, s, pad)
    return _FACES[key]


class Cues(Embedder):
    """Raw (unstandardised) detector cues; rows of NaN where no face was found in the crop."""

    def __init__(self, kind: str):
        self.kind = kind
        # colour: charaid.cues' own sampling at the landmarks (animeface-2009's colour estimates
        # are not repeatable); shape: the landmark geometry
        self.info = EmbedderInfo("charaid-cues-colour" if kind == "colour" else f"animeface-cues-{kind}", 9 if kind == "colour" else 5, 256)

    def embed_batch(self, faces) -> np.ndarray:
        out = np.full((len(faces), self.dim), np.nan, np.float32)
        for i, im in enumerate(faces):
            if self.kind == "colour":
                v = charaid_cues.crop_colours(im)
                if v is not None:
                    out[i] = v
                continue
            f, _, _ = face_in_crop(im)
            if f is None:
                continue
            else:
                p = {k: np.asarray(v, np.float64) for k, v in f.landmarks.items()}
                mid = (p["left_eye"] + p["right_eye"]) / 2
                gap = max(1e-3, float(np.linalg.norm(p["right_eye"] - p["left_eye"])))
                out[i] = [(p["nose"][1] - mid[1]) / gap, (p["mouth"][1] - mid[1]) / gap, (p["chin"][1] - mid[1]) / gap,
                          gap / f.box.w, f.box.h / f.box.w]
        return out


def eye_centres(im: Image.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """animeface-2009's two eye centres in the crop's own pixels (left one first), or None."""
    f, s, pad = face_in_crop(im)
    if f is None:
        return None
    le, re = ((np.asarray(f.landmarks[k], np.float64) - pad) / s for k in ("left_eye", "right_eye"))
    return (le, re) if le[0] <= re[0] else (re, le)


class AlignedCNN(Embedder):
    """charaid's CNN block on the crop turned so that the eyes are level (unchanged if not found)."""

    def __init__(self):
        self.cnn = EfficientNetLiteEmbedder("lite0")
        self.info = EmbedderInfo("aligned-" + self.cnn.model_id, 1280, 224)

    def embed_batch(self, faces) -> np.ndarray:
        turned = []
        for im in faces:
            eyes = eye_centres(im)
            if eyes is not None:
                le, re = eyes
                deg = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
                if 2 < abs(deg) < 45:
                    rgb = im.convert("RGB")
                    im = rgb.rotate(deg, resample=Image.BILINEAR, center=tuple((le + re) / 2), fillcolor=rgb.getpixel((0, 0)))
            turned.append(im)
        return self.cnn.embed_batch(turned)


class EyeRegionCNN(Embedder):
    """charaid's CNN block on the eye region alone, enlarged: the eyes' shape, colour and
    highlights tell look-alikes apart, and in the whole crop they are a third of its width. Where
    no face is found in the crop, the region sits where the eyes usually are (the median over
    the development sets' crops: centre at 50% across and 61% down, gap 24% of the width)."""

    SIDE = 2.5

    def __init__(self):
        self.cnn = EfficientNetLiteEmbedder("lite0")
        self.info = EmbedderInfo("eye-region2.5-" + self.cnn.model_id, 1280, 224)

    def embed_batch(self, faces) -> np.ndarray:
        regions = []
        for im in faces:
            im = im.convert("RGB")
            eyes = eye_centres(im)
            if eyes is not None:
                mid, gap = (eyes[0] + eyes[1]) / 2, max(4.0, float(np.linalg.norm(eyes[1] - eyes[0])))
            else:
                mid, gap = np.array([0.5 * im.width, 0.61 * im.height]), 0.24 * im.width
            h = self.SIDE * gap / 2
            regions.append(im.crop((int(mid[0] - h), int(mid[1] - 0.8 * h), int(mid[0] + h), int(mid[1] + 1.2 * h))))
        return self.cnn.embed_batch(regions)


class NoFlipCNN(Embedder):
    def __init__(self):
        self.info = EmbedderInfo("efficientnet-lite0-imagenet", 1280, 224)

    def embed_batch(self, faces) -> np.ndarray:
        import torch

        model, out = _open_efficientnet("lite0"), []
        with torch.inference_mode():
            for i in range(0, len(faces), 32):
                out.append(pooled_features(model, to_tensor_batch(faces[i : i + 32], self.info)).numpy())
        return l2_normalise(np.concatenate(out))


BLOCKS = {"cnn": lambda: EfficientNetLiteEmbedder("lite0"), "cnn-noflip": NoFlipCNN, "colour": ColourHistogramEmbedder,
          "aligned": AlignedCNN, "eyes": EyeRegionCNN, "cue-colour": lambda: Cues("colour"), "cue-shape": lambda: Cues("shape")}
C = Thresholds().colour_weight
VARIANTS = [  # (name, {block: weight}, crop margin of newgame8 or None for the default)
    ("default (cnn + colour 0.5)", {"cnn": 1, "colour": C}, None),
    ("no mirror image", {"cnn-noflip": 1, "colour": C}, None),
    ("cnn alone (colour 0)", {"cnn": 1}, None),
    ("colour 1.0", {"cnn": 1, "colour": 1.0}, None),
    ("eye-aligned cnn + colour 0.5", {"aligned": 1, "colour": C}, None),
    ("default + cue colours 0.25", {"cnn": 1, "colour": C, "cue-colour": 0.25}, None),
    ("default + cue colours 0.25, newgame8's from the picture's detection", {"cnn": 1, "colour": C, "cue-colour-pic": 0.25}, None),
    ("default + cue colours 0.5", {"cnn": 1, "colour": C, "cue-colour": 0.5}, None),
    ("default + cue shape 0.25", {"cnn": 1, "colour": C, "cue-shape": 0.25}, None),
    ("default + both cues 0.25", {"cnn": 1, "colour": C, "cue-colour": 0.25, "cue-shape": 0.25}, None),
    ("cue colours instead of histogram", {"cnn": 1, "cue-colour": C}, None),
    ("default, newgame8 margin 0.1", {"cnn": 1, "colour": C}, 0.1),
    ("default, newgame8 margin 0.4", {"cnn": 1, "colour": C}, 0.4),
    ("default + cue colours 0.25 + eye region 0.5", {"cnn": 1, "colour": C, "cue-colour": 0.25, "eyes": 0.5}, None),
    ("default + cue colours 0.25 + eye region 1.0", {"cnn": 1, "colour": C, "cue-colour": 0.25, "eyes": 1.0}, None),
]


def picture_colours(spec: DetectorSpec, paths: list[str]) -> np.ndarray:
    """Raw cue colours of each picture's largest face as the pipeline's own detection measured
    them on the picture (no second run on the crop), in the order of ``paths``."""
    preps = {p.path: p for p in prepare_many(paths, True, spec, workers=2, with_hash=False)}
    out = np.full((len(paths), 9), np.nan, np.float32)
    for i, path in enumerate(paths):
        prep = preps[path]
        v = prep.crops[prep.largest()].info.get(charaid_cues.INFO_KEY) if prep.crops else None
        if v is not None:
            out[i] = v
    return out


def join(parts: list[EmbeddedSet], weights: list[float]) -> EmbeddedSet:
    norm = math.sqrt(sum(w * w for w in weights))
    return EmbeddedSet(parts[0].labels, parts[0].paths, np.hstack([p.X * (w / norm) for p, w in zip(parts, weights)]).astype(np.float32))


def _stats(raw) -> tuple[np.ndarray, np.ndarray]:
    allX = np.vstack([e.X for trio in raw.values() for e in trio[:2] if e is not None])
    return np.nanmean(allX, 0), np.nanstd(allX, 0) + 1e-6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--variants", default="", help="only the variants whose names contain one of these (comma-separated)")
    args = ap.parse_args()
    s = default_settings()
    print(f"# detector cues and crop variants; matcher {args.method}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    blocks: dict[tuple[str, float | None], dict] = {}
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def sets_of(block: str, margin: float | None):
        if (block, margin) not in blocks:
            t = s.thresholds if margin is None else replace(s.thresholds, crop_margin=margin)
            spec = DetectorSpec(max_side=s.max_detect_side, thresholds=t)
            only = ["newgame8 (5-fold)"] if margin is not None else None
            blocks[block, margin] = load_sets(BLOCKS[block](), spec, only=only)
        return blocks[block, margin]

    # standardise the cue blocks over all sets' faces, then unit length; no face -> zeros
    raws = {cue: sets_of(cue, None) for cue in ("cue-colour", "cue-shape")}
    ng8 = raws["cue-colour"]["newgame8 (5-fold)"][0]
    pic = EmbeddedSet(ng8.labels, ng8.paths, picture_colours(DetectorSpec(max_side=s.max_detect_side, thresholds=s.thresholds), list(ng8.paths)))
    raws["cue-colour-pic"] = {**raws["cue-colour"], "newgame8 (5-fold)": (pic, None, 5)}
    for cue, raw in raws.items():
        if cue == "cue-colour-pic":  # the in-crop colours' statistics, as shipped constants would be
            mu, sd = stats["cue-colour"]
        else:
            stats[cue] = (mu, sd) = _stats(raw)
        allX = np.vstack([e.X for trio in raw.values() for e in trio[:2] if e is not None])
        print(f"  [{cue}: values for {np.mean(~np.isnan(allX[:, 0])):.0%} of the faces]", file=sys.stderr)
        fix = lambda e: EmbeddedSet(e.labels, e.paths, l2_normalise(np.nan_to_num((e.X - mu) / sd)).astype(np.float32))  # noqa: E731
        blocks[cue, None] = {n: (fix(a), fix(b) if b is not None else None, k) for n, (a, b, k) in raw.items()}

    rows = []
    wanted = [w for w in args.variants.split(",") if w]
    for name, weights, margin in VARIANTS:
        if wanted and not any(w in name for w in wanted):
            continue
        parts = {b: sets_of(b, None) for b in weights}
        sets = {}
        for n, (a, b, k) in parts[next(iter(weights))].items():
            src = {bl: (sets_of(bl, margin) if margin is not None and n == "newgame8 (5-fold)" else parts[bl])[n] for bl in weights}
            ja = join([src[bl][0] for bl in weights], list(weights.values()))
            jb = join([src[bl][1] for bl in weights], list(weights.values())) if b is not None else None
            sets[n] = (ja, jb, k)
        rows.append([name] + run(sets, args.method, lambda n, e: e))
        print(f"  [{name} done]", file=sys.stderr)
    names = list(sets)
    print(table(["variant"] + [f"top-1 {n}" for n in names] + [f"AUROC {n}" for n in names if n != "tla (6-fold)"]
                + ["mean AUROC", "unknowns rejected", "known accuracy"], rows))


if __name__ == "__main__":
    main()

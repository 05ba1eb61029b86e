"""The real image sets in ../shared/data, as (label, path) lists.

The images belong to their artists and are never copied into this repository: everything
here reads them where they lie. ``SHARED`` may be moved with the CHARAID_SHARED_DATA variable.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHARAID_SHARED_DATA", ROOT.parent / "shared" / "data"))

Items = list[tuple[str, Path]]


def available() -> bool:
    return SHARED.is_dir()


def require() -> Path:
    if not available():
        raise SystemExit(f"{SHARED} is missing: these benchmarks need the real images of ../shared/data")
    return SHARED


def _folder(root: Path) -> Items:
    exts = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}
    return [
        (d.name, p)
        for d in sorted(x for x in root.iterdir() if x.is_dir())
        for p in sorted(d.iterdir(), key=lambda q: (len(q.stem), q.stem))
        if p.suffix.lower() in exts
    ]


def tla_faces() -> Items:
    return _folder(require() / "tla" / "faces")


def tla_author_split() -> tuple[Items, Items]:
    """The original author's split: images 1-30 train, 31-36 test (``tla/split.csv``)."""
    split = {}
    with open(require() / "tla" / "split.csv") as fh:
        for row in csv.DictReader(fh):
            split[(row["character"], row["index"])] = row["split"]
    tr, te = [], []
    for c, p in tla_faces():
        s = split.get((c, p.stem))
        (tr if s == "train" else te if s == "test" else []).append((c, p))
    return tr, te


def tla_raw_test() -> Items:
    """Full illustrations 31-36 of each character, for end-to-end recognition."""
    return [(c, p) for c, p in _folder(require() / "tla" / "raw") if p.stem.isdigit() and 31 <= int(p.stem) <= 36]


def tla_raw() -> Items:
    return _folder(require() / "tla" / "raw")


def moeimouto10() -> tuple[Items, Items]:
    base = require() / "moeimouto10"

    def strip(items: Items) -> Items:  # "000_hatsune_miku" -> "hatsune_miku"
        return [(c.split("_", 1)[1] if c[:3].isdigit() else c, p) for c, p in items]

    return strip(_folder(base / "train")), strip(_folder(base / "test"))


def danbooru6() -> Items:
    return _folder(require() / "danbooru6")


def newgame8_raw_labels() -> list[tuple[Path, list[str]]]:
    out = []
    with open(require() / "newgame8" / "raw_labels.csv") as fh:
        for row in csv.DictReader(fh):
            out.append((require() / "newgame8" / "raw" / row["file"], row["characters"].split(";")))
    return out


def newgame8_singles() -> Items:
    """Full illustrations that show exactly one (listed) character.

    The set's ``faces/`` folder came without its per-character folders (109 unlabelled files,
    not 272 labelled ones), so the look-alike face set is rebuilt from these 271 single-character
    illustrations: recognition uses each one's largest detected face.
    """
    return [(labels[0], p) for p, labels in newgame8_raw_labels() if len(labels) == 1]


def web4() -> Items:
    return _folder(require() / "web4")


def photos() -> list[Path]:
    return sorted((require() / "photos").glob("*.jpg"))


def cascade_xml() -> Path:
    return require() / "models" / "lbpcascade_animeface.xml"


def cartoonface300() -> list[tuple[Path, list[tuple[float, float, float, float]]]]:
    """(image, face boxes as normalised YOLO (cx, cy, w, h)) for the 300 iCartoonFace images."""
    root = require() / "cartoonface300"
    out = []
    for p in sorted((root / "images").glob("*.jpg")):
        lab = root / "labels" / (p.stem + ".txt")
        boxes = []
        for line in lab.read_text().splitlines() if lab.exists() else []:
            parts = line.split()
            if len(parts) == 5:
                boxes.append(tuple(float(v) for v in parts[1:]))
        out.append((p, boxes))
    return out

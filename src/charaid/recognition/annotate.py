"""Drawing results onto pictures: a box per face, the name (or "unknown") and the score."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from charaid.fonts import draw_text, text_bbox
from charaid.recognition.recognize import FaceResult


def _colour(name: str | None) -> tuple[int, int, int]:
    if name is None:
        return (128, 128, 128)
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.9)
    return (int(r * 255), int(g * 255), int(b * 255))


def annotate(image: Image.Image, faces: Sequence[FaceResult]) -> Image.Image:
    """A copy of ``image`` with each face boxed and labelled; names in any script (charaid.fonts).

    The label goes above the box; where the box touches the top, below it; where it fills the
    picture top to bottom, inside along its bottom edge (the chin), never over the eyes."""
    out = image.convert("RGB").copy()
    dr = ImageDraw.Draw(out)
    side = max(out.size)
    width = max(2, side // 300)
    size = max(12, side // 45)
    for f in faces:
        x, y, w, h = f.box.as_list()
        col = _colour(f.character or f.probable)
        # a probable name is drawn in its character's colour with a thinner box and a "?"
        dr.rectangle([x, y, x + w, y + h], outline=col, width=width if f.character or not f.probable else max(1, width // 2))
        tb = text_bbox(dr, label_of(f), size)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        lh = th + 2 * width
        if y - lh >= 0:
            ty = y - lh
        elif y + h + lh <= out.height:
            ty = y + h
        else:
            ty = max(0, y + h - lh)
        dr.rectangle([x, ty, x + tw + 2 * width, ty + lh], fill=col)
        draw_text(dr, (x + width, ty + width - tb[1]), label_of(f), size, (255, 255, 255))
    return out


def label_of(f: FaceResult) -> str:
    """What a face's label says: the name, "X?" for a probable one, or "unknown", and the score."""
    if f.character:
        return f"{f.character} {f.score:.2f}"
    if f.probable:
        return f"{f.probable}? {(f.probability or 0.0):.2f}"
    return f"unknown {f.score:.2f}"


def annotated_path(outdir: str | Path, source: str | Path) -> Path:
    """Where the annotated copy of ``source`` goes: ``OUTDIR/<stem>.annotated.png``, never over a file."""
    out = Path(outdir)
    stem = Path(source).stem or "image"
    p = out / f"{stem}.annotated.png"
    k = 1
    while p.exists():
        p = out / f"{stem}.annotated-{k}.png"
        k += 1
    return p

"""Drawing results onto pictures: a box per face, the name (or "unknown") and the score."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from charaid.recognition.recognize import FaceResult


def _colour(name: str | None) -> tuple[int, int, int]:
    if name is None:
        return (128, 128, 128)
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.9)
    return (int(r * 255), int(g * 255), int(b * 255))


def annotate(image: Image.Image, faces: Sequence[FaceResult]) -> Image.Image:
    """A copy of ``image`` with each face boxed and labelled."""
    out = image.convert("RGB").copy()
    dr = ImageDraw.Draw(out)
    side = max(out.size)
    width = max(2, side // 300)
    try:
        font = ImageFont.load_default(size=max(12, side // 45))
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    for f in faces:
        x, y, w, h = f.box.as_list()
        col = _colour(f.character or f.probable)
        # a probable name is drawn in its character's colour with a thinner box and a "?"
        dr.rectangle([x, y, x + w, y + h], outline=col, width=width if f.character or not f.probable else max(1, width // 2))
        label = (
            f"{f.character} {f.score:.2f}"
            if f.character
            else (f"{f.probable}? {f.probability:.2f}" if f.probable else f"unknown {f.score:.2f}")
        )
        tb = dr.textbbox((0, 0), label, font=font)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        ty = y - th - 2 * width if y - th - 2 * width >= 0 else y + h
        dr.rectangle([x, ty, x + tw + 2 * width, ty + th + 2 * width], fill=col)
        dr.text((x + width, ty + width - tb[1]), label, fill=(255, 255, 255), font=font)
    return out


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

"""Procedural anime-style characters, drawn by the project itself.

They give the demo and the tests real pictures that anyone may ship and that animeface-2009
detects: each character is a fixed design (hair and eye colours, fringe, hair length, twin tails,
ribbon) drawn with random pose, size, background and expression, so that recognising one is a
small but honest few-shot problem. Nothing here is used to measure accuracy: claims about
accuracy are made on real images only (docs/benchmarks.md@aef98b0).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Design:
    name: str
    hair: RGB
    eyes: RGB
    skin: RGB = (255, 228, 212)
    fringe: str = "spiky"  # spiky | straight | parted
    long_hair: bool = True
    twin_tails: bool = False
    ribbon: RGB | None = None


#: The demo's cast. The first three are enrolled; the fourth is the unknown.
CAST = [
    Design("akane", hair=(214, 52, 64), eyes=(150, 30, 40), fringe="straight", ribbon=(250, 250, 250)),
    Design("sora", hair=(70, 110, 215), eyes=(230, 170, 40), fringe="parted", long_hair=False),
    Design("hikari", hair=(242, 206, 96), eyes=(60, 130, 225), fringe="spiky", twin_tails=True, ribbon=(40, 160, 90)),
    Design("midori", hair=(80, 170, 110), eyes=(120, 60, 170), fringe="straight", long_hair=False),
]


def _shade(c: RGB, k: float) -> RGB:
    return tuple(max(0, min(255, int(v * k))) for v in c)  # type: ignore[return-value]


def draw_character(draw: ImageDraw.ImageDraw, d: Design, cx: float, cy: float, r: float, rng: random.Random) -> None:
    """Draw ``d`` with its face centred at (cx, cy), face radius ``r``."""
    hair, dark = d.hair, _shade(d.hair, 0.72)
    w = max(1, int(r * 0.03))
    if d.twin_tails:
        for sx in (-1, 1):
            tx = cx + sx * 1.35 * r
            draw.ellipse([tx - 0.45 * r, cy - 0.9 * r, tx + 0.45 * r, cy + 1.9 * r], fill=hair, outline=dark, width=w)
    if d.long_hair:
        draw.rectangle([cx - 1.22 * r, cy - 0.2 * r, cx + 1.22 * r, cy + 1.9 * r], fill=hair)
    draw.ellipse([cx - 1.25 * r, cy - 1.35 * r, cx + 1.25 * r, cy + 1.1 * r], fill=hair, outline=dark, width=w)
    # face: round top, pointed chin
    draw.ellipse([cx - r, cy - r, cx + r, cy + 0.9 * r], fill=d.skin)
    draw.polygon([(cx - 0.93 * r, cy + 0.2 * r), (cx + 0.93 * r, cy + 0.2 * r), (cx, cy + 1.22 * r)], fill=d.skin)
    # fringe
    draw.chord([cx - 1.12 * r, cy - 1.42 * r, cx + 1.12 * r, cy - 0.32 * r], 180, 360, fill=hair)
    if d.fringe == "spiky":
        for k in range(-4, 5):
            x = cx + k * 0.25 * r
            draw.polygon(
                [(x - 0.3 * r, cy - 1.0 * r), (x + 0.3 * r, cy - 1.0 * r), (x + 0.05 * r, cy - 0.22 * r - abs(k) * 0.05 * r)],
                fill=hair,
            )
    elif d.fringe == "straight":
        draw.rectangle([cx - 0.95 * r, cy - 1.0 * r, cx + 0.95 * r, cy - 0.38 * r], fill=hair)
    else:  # parted
        draw.polygon([(cx - 1.0 * r, cy - 0.95 * r), (cx - 0.05 * r, cy - 0.95 * r), (cx - 0.9 * r, cy - 0.1 * r)], fill=hair)
        draw.polygon([(cx + 1.0 * r, cy - 0.95 * r), (cx + 0.05 * r, cy - 0.95 * r), (cx + 0.9 * r, cy - 0.1 * r)], fill=hair)
    if d.ribbon:
        rx, ry = cx + 0.75 * r, cy - 1.05 * r
        draw.polygon(
            [(rx, ry), (rx + 0.35 * r, ry - 0.25 * r), (rx + 0.35 * r, ry + 0.25 * r)],
            fill=d.ribbon,
            outline=_shade(d.ribbon, 0.6),
        )
        draw.polygon(
            [(rx, ry), (rx - 0.35 * r, ry - 0.25 * r), (rx - 0.35 * r, ry + 0.25 * r)],
            fill=d.ribbon,
            outline=_shade(d.ribbon, 0.6),
        )
    # eyes
    for sx in (-1, 1):
        ex, ey, ew, eh = cx + sx * 0.42 * r, cy + 0.25 * r, 0.22 * r, 0.33 * r
        draw.ellipse([ex - ew, ey - eh, ex + ew, ey + eh], fill=(255, 255, 255), outline=(40, 20, 20), width=w)
        draw.ellipse([ex - ew * 0.85, ey - eh * 0.8, ex + ew * 0.85, ey + eh * 0.95], fill=d.eyes)
        draw.ellipse([ex - ew * 0.4, ey - eh * 0.3, ex + ew * 0.4, ey + eh * 0.5], fill=_shade(d.eyes, 0.4))
        draw.ellipse([ex - ew * 0.6, ey - eh * 0.6, ex - ew * 0.1, ey - eh * 0.15], fill=(255, 255, 255))
        draw.line([ex - ew * 1.2, ey - eh * 1.05, ex + ew * 1.1, ey - eh * 1.15], fill=(40, 20, 20), width=max(2, int(r * 0.07)))
    # mouth: a smile or an open mouth
    if rng.random() < 0.5:
        draw.arc([cx - 0.12 * r, cy + 0.72 * r, cx + 0.12 * r, cy + 0.9 * r], 0, 180, fill=(150, 60, 60), width=w)
    else:
        draw.ellipse([cx - 0.08 * r, cy + 0.74 * r, cx + 0.08 * r, cy + 0.88 * r], fill=(190, 80, 90))


def _background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    top = tuple(rng.randint(200, 250) for _ in range(3))
    bottom = tuple(rng.randint(170, 240) for _ in range(3))
    bg = Image.new("RGB", size)
    dr = ImageDraw.Draw(bg)
    for y in range(size[1]):
        t = y / max(1, size[1] - 1)
        dr.line([(0, y), (size[0], y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    return bg


def portrait(d: Design, seed: int, size: int = 320) -> Image.Image:
    """One picture of ``d`` alone, with a random pose and background."""
    rng = random.Random(f"{d.name}:{seed}")
    ss = 2  # drawn at twice the size, then downsampled: smooth edges like real art
    im = _background((size * ss, size * ss), rng)
    r = size * ss * rng.uniform(0.24, 0.3)
    cx = size * ss / 2 + rng.uniform(-0.06, 0.06) * size * ss
    cy = size * ss * 0.47 + rng.uniform(-0.04, 0.04) * size * ss
    draw_character(ImageDraw.Draw(im), d, cx, cy, r, rng)
    im = im.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC, fillcolor=im.getpixel((0, 0)))
    im = im.resize((size, size), Image.Resampling.LANCZOS)
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))


def group_picture(designs: list[Design], seed: int = 0, height: int = 420) -> Image.Image:
    """Several characters side by side in one picture, left to right in the given order."""
    rng = random.Random(f"group:{seed}")
    ss = 2
    w, h = int(height * 0.95) * len(designs) * ss, height * ss
    im = _background((w, h), rng)
    dr = ImageDraw.Draw(im)
    slot = w / len(designs)
    for i, d in enumerate(designs):
        r = h * rng.uniform(0.2, 0.23)
        draw_character(dr, d, slot * (i + 0.5) + rng.uniform(-0.04, 0.04) * slot, h * 0.45, r, rng)
    im = im.resize((w // ss, h // ss), Image.Resampling.LANCZOS)
    return im.filter(ImageFilter.GaussianBlur(0.5))


def write_training_set(root: str | Path, designs: list[Design], per_character: int = 8, seed: int = 0) -> Path:
    """``root/<name>/<k>.png`` for each design: an enrolment folder as ``charaid enroll`` expects."""
    root = Path(root)
    for d in designs:
        (root / d.name).mkdir(parents=True, exist_ok=True)
        for k in range(per_character):
            portrait(d, seed * 1000 + k).save(root / d.name / f"{k:02d}.png")
    return root

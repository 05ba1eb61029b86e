"""Fonts that draw a character's name in its own script: 路飞, アスナ, 김, Zoë.

Pillow's default font has Latin letters only, so annotated pictures drew Japanese and Chinese
names as boxes. charaid draws with Noto Sans CJK (PyPI ``noto-cjk-sans-otc``, SIL Open Font
License 1.1: Japanese, Chinese, Korean, and Latin with accents) and falls back, character by
character, to DejaVu Sans (shipped with matplotlib; Bitstream Vera licence: Latin, Greek,
Cyrillic, symbols and some emoji). A character neither font has (most colour emoji) is drawn
as the first font's missing-glyph box: :func:`missing_glyphs` says which.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageDraw, ImageFont

#: Noto Sans CJK's Japanese face in the collection (its Latin, kana and kanji; index 2 is SC).
CJK_INDEX = 0


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> Path | None:
    """The Noto Sans CJK collection, or None where the package is missing."""
    try:
        import noto_cjk_sans_otc
    except ImportError:
        return None
    p = Path(str(noto_cjk_sans_otc.FONT_PATH))
    return p if p.is_file() else None


@functools.lru_cache(maxsize=1)
def fallback_font_path() -> Path | None:
    """DejaVu Sans, from matplotlib's data (None without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return None
    p = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return p if p.is_file() else None


@functools.lru_cache(maxsize=16)
def fonts(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, ...]:
    """The fonts tried in order, at ``size`` px."""
    out: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = []
    for path, index in ((cjk_font_path(), CJK_INDEX), (fallback_font_path(), 0)):
        if path is not None:
            out.append(ImageFont.truetype(str(path), size, index=index))
    if not out:
        out.append(ImageFont.load_default(size=size))
    return tuple(out)


def _mask(font, text: str) -> tuple[bytes, tuple[int, int]]:
    m = font.getmask(text)
    return bytes(m), m.size


@functools.lru_cache(maxsize=64)
def _notdef(font) -> tuple[bytes, tuple[int, int]]:
    return _mask(font, "\U000f0000")  # a private-use character no font draws: its box


@functools.lru_cache(maxsize=4096)
def _has(font, ch: str) -> bool:
    return ch.isspace() or _mask(font, ch) != _notdef(font)


def _font_for(ch: str, size: int):
    chain = fonts(size)
    return next((f for f in chain if _has(f, ch)), chain[0])


def runs(text: str, size: int) -> list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]]:
    """``text`` cut into runs of characters that one font of the chain draws."""
    out: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = []
    for ch in text:
        f = _font_for(ch, size)
        if out and out[-1][1] is f:
            out[-1] = (out[-1][0] + ch, f)
        else:
            out.append((ch, f))
    return out


def missing_glyphs(text: str, size: int = 24) -> list[str]:
    """The characters of ``text`` that no font of the chain draws (they come out as boxes)."""
    return [ch for ch in text if not any(_has(f, ch) for f in fonts(size))]


def text_bbox(draw: ImageDraw.ImageDraw, text: str, size: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of ``text`` drawn at (0, 0) by :func:`draw_text`."""
    x, top, bottom = 0.0, 0.0, 0.0
    for part, font in runs(text, size):
        _, t, r, b = draw.textbbox((x, 0), part, font=font)
        top, bottom = min(top, t), max(bottom, b)
        x = r
    return 0, top, x, bottom


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, fill) -> None:
    """Draw ``text`` at ``xy`` (its top left, as Pillow's ``text``) in the font chain."""
    x, y = xy
    for part, font in runs(text, size):
        draw.text((x, y), part, fill=fill, font=font)
        x = draw.textbbox((x, y), part, font=font)[2]


def matplotlib_fonts() -> list[str]:
    """Register the CJK font with matplotlib and return the family list to set as
    ``font.family`` (matplotlib falls back along it glyph by glyph)."""
    from matplotlib import font_manager

    families = []
    p = cjk_font_path()
    if p is not None:
        font_manager.fontManager.addfont(str(p))
        families.append(font_manager.FontProperties(fname=str(p)).get_name())
    return families + ["DejaVu Sans"]

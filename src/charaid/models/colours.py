"""Colour cues from the detector: a face's hair, skin and eye colours, at animeface-2009's landmarks.

Takayama et al. (2012), the seed's reference, recognise anime characters by these colours; beside
the CNN features they make unknown faces easier to tell from known ones (mean AUROC over issue
2's sets 0.846 -> 0.882, docs/benchmarks.md@aef98b0, "Current default"). The nine values are the CIE Lab
colours of hair, skin and the mean of the two eyes, standardised with the mean and spread
measured over the development sets' faces (``Thresholds.cue_colour_mean``/``cue_colour_std``).

Where detection ran on a picture, the colours are sampled there at the face's landmarks and
travel in the face record (charaid.models.crops.FaceCrop). A crop that arrives without them
(``--no-detect``, a crop re-read from the gallery) is searched again with animeface-2009
(:func:`search_colours`). A crop in which no face is found gets a zero block: it says nothing
either way.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

#: A crop is resized to this longest side before animeface-2009 looks for the face in it again:
#: small enough to be quick (about 40 ms a crop, against 90 ms at the crop's own size, which
#: put enrolling 30 crops over issue 2's 5 s), large enough that it finds the same faces.
SEARCH_SIDE = 160
#: Bumped whenever the sampling changes while the model id does not (benchmark caches key on it).
SAMPLE_VERSION = 3

_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = np.array([0.9505, 1.0, 1.089])


def lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour given as three 0-255 values."""
    c = np.asarray(rgb, np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = (_SRGB_TO_XYZ @ c) / _WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


Rect = tuple[float, float, float, float]


def _clip(r: Rect, W: int, H: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = r
    return max(0, int(x0)), max(0, int(y0)), min(W, int(np.ceil(x1))), min(H, int(np.ceil(y1)))


class _Window:
    """The part of a picture that a face's samples read, as an RGB array, with its place in the
    picture: converting and copying the whole picture for every face cost more than the sampling."""

    def __init__(self, image: Image.Image | np.ndarray, rects: list[Rect]):
        if isinstance(image, np.ndarray):
            self.a, self.x, self.y = image, 0, 0
            self.W, self.H = image.shape[1], image.shape[0]
            return
        self.W, self.H = image.size
        boxes = [c for c in (_clip(r, self.W, self.H) for r in rects) if c[2] > c[0] and c[3] > c[1]]
        if not boxes:
            self.a, self.x, self.y = np.zeros((0, 0, 3), np.uint8), 0, 0
            return
        self.x, self.y = min(b[0] for b in boxes), min(b[1] for b in boxes)
        part = image.crop((self.x, self.y, max(b[2] for b in boxes), max(b[3] for b in boxes)))
        self.a = np.asarray(part if part.mode == "RGB" else part.convert("RGB"))

    def pixels(self, r: Rect) -> np.ndarray | None:
        """The pixels of a rectangle clipped to the picture, as (n, 3) floats; None if nothing is left."""
        x0, y0, x1, y1 = _clip(r, self.W, self.H)
        if x1 <= x0 or y1 <= y0:
            return None
        return self.a[y0 - self.y : y1 - self.y, x0 - self.x : x1 - self.x].reshape(-1, 3).astype(np.float64)

    def median(self, r: Rect) -> np.ndarray | None:
        px = self.pixels(r)
        return None if px is None else np.median(px, axis=0)


def _hair_rect(b) -> Rect:
    return (b.x + 0.25 * b.w, b.y - 0.3 * b.h, b.x + 0.75 * b.w, b.y + 0.05 * b.h)


def _hair(win: _Window, b, skin: np.ndarray) -> np.ndarray | None:
    """Median colour of the band just above the face box (and its top edge), leaving out pixels
    close to the skin colour: where a forehead shows, the band is partly skin, not hair."""
    px = win.pixels(_hair_rect(b))
    if px is None:
        return None
    far = np.linalg.norm(px - skin, axis=1) > 40
    return np.median(px[far] if far.sum() >= 0.1 * len(px) else px, axis=0)


def face_colours(face, image: Image.Image | np.ndarray) -> np.ndarray | None:
    """The nine raw Lab values of a face: median colours of the hair above its box (skin-coloured
    pixels left out), the skin between nose and mouth, and both eyes, sampled at animeface-2009's
    landmarks in ``image`` (the picture it was detected in). None for a face without landmarks (the LBP cascade).

    Sampled here rather than taken from animeface-2009's own colour estimates, which are not
    repeatable: its clustering draws from a random generator whose state runs on from call to
    call, so the same face gets other colours (up to 2.7 standard deviations) depending on
    what was detected before it in the process."""
    lm = getattr(face, "landmarks", None) or {}
    if not all(k in lm for k in ("left_eye", "right_eye", "nose", "mouth")):
        return None
    b = face.box
    r = max(1.0, 0.05 * b.w)
    eye_rects: list[Rect] = [(x - r, y - r, x + r, y + r) for x, y in (lm["left_eye"], lm["right_eye"])]
    nx, ny = lm["nose"]
    my = lm["mouth"][1]
    skin_rect: Rect = (nx - 2 * r, ny, nx + 2 * r, max(ny + 1, (ny + my) / 2))
    win = _Window(image, [*eye_rects, skin_rect, _hair_rect(b)])
    left, right = (win.median(e) for e in eye_rects)
    skin = win.median(skin_rect)
    if left is None or right is None or skin is None:
        return None
    hair = _hair(win, b, skin)
    if hair is None:
        return None
    return np.concatenate([lab(hair), lab(skin), lab((left + right) / 2)]).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _searcher():
    from charaid.models.detectors import make_detector

    return make_detector("animeface")


def search_colours(crop: Image.Image) -> np.ndarray | None:
    """Find the face inside a crop again (resized to SEARCH_SIDE and padded by 20%) and return
    its colours; None when animeface-2009 finds none.

    animeface-2009 (under its time limit) searches, whichever detector cut the crop: galleries
    keep their vectors whichever detector cuts new pictures."""
    im = crop.convert("RGB")
    s = SEARCH_SIDE / max(im.size)
    if s != 1:
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BICUBIC)
    pad = int(0.2 * max(im.size))
    canvas = Image.new("RGB", (im.width + 2 * pad, im.height + 2 * pad), (255, 255, 255))
    canvas.paste(im, (pad, pad))
    faces = [f for f in _searcher().detect(canvas) if f.landmarks]
    return face_colours(max(faces, key=lambda f: f.box.area), canvas) if faces else None

"""Training pictures for the face detector, made on the fly from animation frames and face crops.

iCartoonFace is animation frames; users bring illustrations: close-ups, tilted heads, characters
lying down, several small faces in a group picture, scans and re-saved JPEGs. So every training
picture is drawn from these, in turn (each step's random generator is seeded by the step, so a
resumed run draws the same pictures):

- one frame at a random scale (faces from ~10 px to close-ups), at a random place on the canvas;
- a mosaic of four frames (many small faces, and the edges between unrelated pictures);
- a background: a part of a frame with no labelled face (hard negatives);
- on any of them, anime faces of ``faces64`` pasted with a soft edge (illustration-style faces);
- optionally (``closeups``), one face zoomed in to fill, overflow or be cut by the frame;
- then rotation up to 90 degrees, mirror, colour jitter (colour is not identity here), grey,
  blur and JPEG noise.

Boxes are ``[x0, y0, x1, y1]`` float arrays in canvas pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

#: The share of a faces64 crop that is the face itself (brows to chin), as the iCartoonFace
#: boxes draw it: the crops include the fringe and the top of the hair.
FACE_IN_CROP = (0.16, 0.26, 0.84, 0.93)
#: Labelled faces smaller than this side on the canvas are left out (too small to learn from).
MIN_SIDE = 6.0


@dataclass
class Frame:
    image: np.ndarray  # HxWx3 uint8
    boxes: np.ndarray  # (n, 4) x0 y0 x1 y1 in the frame's pixels


def yolo_boxes(label: Path) -> list[tuple[float, float, float, float]]:
    """The boxes of an iCartoonFace label file (YOLO: ``class cx cy w h`` a line, shares of the
    frame's width and height); none for a missing file."""
    if not label.is_file():
        return []
    rows = (line.split() for line in label.read_text().split("\n"))
    return [(float(p[1]), float(p[2]), float(p[3]), float(p[4])) for p in rows if len(p) == 5]


def _rand_canvas_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, 3))
    return r, g, b


def _place(canvas: Image.Image, frame: Frame, rng, region: tuple[int, int, int, int], scale: float) -> list[np.ndarray]:
    """Paste ``frame`` scaled by ``scale`` into ``region`` of the canvas at a random offset
    (the frame may be larger than the region: a random part of it shows). Returns its boxes."""
    rx0, ry0, rx1, ry1 = region
    h, w = frame.image.shape[:2]
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    rw, rh = rx1 - rx0, ry1 - ry0
    ox = rx0 + (int(rng.integers(rw - sw, 1)) if sw > rw else int(rng.integers(0, rw - sw + 1)))
    oy = ry0 + (int(rng.integers(rh - sh, 1)) if sh > rh else int(rng.integers(0, rh - sh + 1)))
    return _place_at(canvas, frame, region, scale, ox, oy)


def _place_at(
    canvas: Image.Image, frame: Frame, region: tuple[int, int, int, int], scale: float, ox: int, oy: int
) -> list[np.ndarray]:
    """Paste ``frame`` scaled by ``scale`` with its corner at (ox, oy), inside ``region`` only;
    its boxes that stay at least 45% visible, cut to the region."""
    rx0, ry0, rx1, ry1 = region
    h, w = frame.image.shape[:2]
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    im = Image.fromarray(frame.image).resize((sw, sh), Image.Resampling.BILINEAR, reducing_gap=2.0 if scale < 0.5 else None)
    # crop what falls outside the region before pasting
    cx0, cy0 = max(rx0, ox), max(ry0, oy)
    cx1, cy1 = min(rx1, ox + sw), min(ry1, oy + sh)
    if cx1 <= cx0 or cy1 <= cy0:
        return []
    canvas.paste(im.crop((cx0 - ox, cy0 - oy, cx1 - ox, cy1 - oy)), (cx0, cy0))
    out = []
    for b in frame.boxes:
        bb = b * scale + np.array([ox, oy, ox, oy])
        clipped = np.array([max(bb[0], cx0), max(bb[1], cy0), min(bb[2], cx1), min(bb[3], cy1)])
        full = (bb[2] - bb[0]) * (bb[3] - bb[1])
        vis = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
        if full > 0 and vis >= 0.45 * full:
            out.append(clipped)
    return out


def _background(frame: Frame, rng, side: int) -> Image.Image | None:
    """A square part of ``frame`` that holds no labelled face, or None if none was found."""
    h, w = frame.image.shape[:2]
    for _ in range(8):
        s = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        b = frame.boxes
        if len(b) == 0 or np.all((b[:, 2] <= x) | (b[:, 0] >= x + s) | (b[:, 3] <= y) | (b[:, 1] >= y + s)):
            return Image.fromarray(frame.image[y : y + s, x : x + s]).resize((side, side), Image.Resampling.BILINEAR)
    return None


def _soft_mask(side: int) -> Image.Image:
    """An ellipse fading out over its outer fifth: a pasted face has no square edge to learn."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    c = (side - 1) / 2
    r = np.sqrt(((xx - c) / (side / 2)) ** 2 + ((yy - c) / (side / 2)) ** 2)
    return Image.fromarray((np.clip((1.0 - r) / 0.2, 0, 1) * 255).astype(np.uint8))


def _paste_faces(canvas: Image.Image, faces: list[np.ndarray], rng, boxes: list[np.ndarray], side: int) -> None:
    for _ in range(int(rng.integers(1, 4))):
        crop = faces[int(rng.integers(len(faces)))]
        s = int(np.exp(rng.uniform(np.log(16), np.log(side * 0.7))))
        x, y = int(rng.integers(-s // 5, side - s + s // 5 + 1)), int(rng.integers(-s // 5, side - s + s // 5 + 1))
        fb = np.array([x + FACE_IN_CROP[0] * s, y + FACE_IN_CROP[1] * s, x + FACE_IN_CROP[2] * s, y + FACE_IN_CROP[3] * s])
        # a pasted face hides the labels it covers: drop those it covers for the most part
        keep = []
        for b in boxes:
            ix = max(0.0, min(b[2], x + s) - max(b[0], x))
            iy = max(0.0, min(b[3], y + s) - max(b[1], y))
            if ix * iy < 0.3 * (b[2] - b[0]) * (b[3] - b[1]):
                keep.append(b)
        boxes[:] = keep
        canvas.paste(Image.fromarray(crop).resize((s, s), Image.Resampling.BICUBIC), (x, y), _soft_mask(s))
        clipped = np.clip(fb, 0, side)
        if (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= 0.6 * (fb[2] - fb[0]) * (fb[3] - fb[1]):
            boxes.append(clipped)


def _rotate(a: np.ndarray, boxes: np.ndarray, angle: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the canvas about its centre; a box becomes the bounding box of its inscribed
    ellipse rotated (a face is round: the rotated box's own corners would overstate it)."""
    import cv2

    h, w = a.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    border = cv2.BORDER_REFLECT_101 if rng.random() < 0.5 else cv2.BORDER_CONSTANT
    out = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=_rand_canvas_colour(rng))
    if len(boxes) == 0:
        return out, boxes
    t = np.deg2rad(angle)
    c, s = abs(np.cos(t)), abs(np.sin(t))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    hw, hh = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
    ncx = m[0, 0] * cx + m[0, 1] * cy + m[0, 2]
    ncy = m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    nhw, nhh = np.sqrt((hw * c) ** 2 + (hh * s) ** 2), np.sqrt((hw * s) ** 2 + (hh * c) ** 2)
    nb = np.stack([ncx - nhw, ncy - nhh, ncx + nhw, ncy + nhh], axis=1)
    inside = (ncx > 0) & (ncx < w) & (ncy > 0) & (ncy < h)
    return out, np.clip(nb[inside], 0, [w, h, w, h])


def _photometric(im: Image.Image, rng) -> Image.Image:
    if rng.random() < 0.8:
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.65, 1.35))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.65, 1.35))
        im = ImageEnhance.Color(im).enhance(rng.uniform(0.4, 1.6))
    if rng.random() < 0.3:  # hue: fine for finding faces (not for telling characters apart)
        k = int(rng.integers(0, 256))
        h, s, v = im.convert("HSV").split()
        im = Image.merge("HSV", (h.point(lambda x: (x + k) % 256), s, v)).convert("RGB")
    if rng.random() < 0.07:
        im = im.convert("L").convert("RGB")
    if rng.random() < 0.2:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.8)))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(25, 90)))
        im = Image.open(buf).convert("RGB")
    return im


def _closeup(canvas: Image.Image, frames: list[Frame], faces: list[np.ndarray], rng, side: int) -> list[np.ndarray]:
    """One face zoomed in: its side 0.4-1.3 of the picture's, its centre anywhere in the middle
    70%, so that it fills the frame, overflows it or is cut by the border (what users' close-ups
    look like, and what the network missed: docs/experiments.md, 2026-12-06). Half of them are an
    animation frame's labelled face, half a faces64 drawing."""
    share = float(rng.uniform(0.4, 1.3))
    cx, cy = (float(rng.uniform(0.15, 0.85)) * side for _ in range(2))
    region = (0, 0, side, side)
    if faces and rng.random() < 0.5:
        crop = faces[int(rng.integers(len(faces)))]
        h, w = crop.shape[:2]
        face = np.array([FACE_IN_CROP[0] * w, FACE_IN_CROP[1] * h, FACE_IN_CROP[2] * w, FACE_IN_CROP[3] * h], np.float32)
        frame = Frame(crop, face[None])
    else:
        for _ in range(8):
            frame = frames[int(rng.integers(len(frames)))]
            sides = np.minimum(frame.boxes[:, 2] - frame.boxes[:, 0], frame.boxes[:, 3] - frame.boxes[:, 1])
            if len(sides) and sides.max() >= 16:
                break
        else:
            return _place(canvas, frame, rng, region, side / max(frame.image.shape[:2]))
        big = np.flatnonzero(sides >= 16)
        face = frame.boxes[int(big[int(rng.integers(len(big)))])]
    scale = share * side / max(face[2] - face[0], face[3] - face[1])
    ox = round(cx - (face[0] + face[2]) / 2 * scale)
    oy = round(cy - (face[1] + face[3]) / 2 * scale)
    return _place_at(canvas, frame, region, scale, ox, oy)


def make_sample(
    frames: list[Frame], faces: list[np.ndarray], rng: np.random.Generator, side: int, closeups: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """One training picture (side x side x 3 uint8) and its face boxes (n, 4). A share
    ``closeups`` of them is one face zoomed in (:func:`_closeup`); at 0 the random draws are
    those of version 1's training, which the shipped weights came from."""
    canvas = Image.new("RGB", (side, side), _rand_canvas_colour(rng))
    boxes: list[np.ndarray] = []
    kind = 1.0 if closeups and rng.random() < closeups else rng.random()
    if kind == 1.0:
        boxes += _closeup(canvas, frames, faces, rng, side)
    elif kind < 0.2:  # mosaic
        mx, my = int(rng.uniform(0.3, 0.7) * side), int(rng.uniform(0.3, 0.7) * side)
        for region in ((0, 0, mx, my), (mx, 0, side, my), (0, my, mx, side), (mx, my, side, side)):
            f = frames[int(rng.integers(len(frames)))]
            fit = max(region[2] - region[0], region[3] - region[1]) / max(f.image.shape[:2])
            boxes += _place(canvas, f, rng, region, fit * float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))))
    elif kind < 0.3:  # background only
        bg = _background(frames[int(rng.integers(len(frames)))], rng, side)
        if bg is not None:
            canvas = bg
    else:  # one frame, faces from tiny to close-up
        f = frames[int(rng.integers(len(frames)))]
        fit = side / max(f.image.shape[:2])
        lo = 0.45 if rng.random() < 0.25 else 0.9  # mostly filling the picture, as users' pictures do
        boxes += _place(canvas, f, rng, (0, 0, side, side), fit * float(np.exp(rng.uniform(np.log(lo), np.log(3.5)))))
    if faces and kind < 1.0 and rng.random() < (0.6 if kind >= 0.2 and kind < 0.3 else 0.35):
        _paste_faces(canvas, faces, rng, boxes, side)
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        boxes = [np.array([side - b[2], b[1], side - b[0], b[3]]) for b in boxes]
    canvas = _photometric(canvas, rng)
    a = np.asarray(canvas)
    arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    if rng.random() < 0.35:
        angle = rng.uniform(-90, 90) if rng.random() < 0.4 else rng.uniform(-25, 25)
        a, arr = _rotate(np.ascontiguousarray(a), arr, angle, rng)
    keep = ((arr[:, 2] - arr[:, 0]) >= MIN_SIDE) & ((arr[:, 3] - arr[:, 1]) >= MIN_SIDE)
    return np.ascontiguousarray(a), arr[keep].astype(np.float32)

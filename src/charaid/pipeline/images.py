"""Reading images the way users have them: any mode, rotated by EXIF, animated, broken.

Everything here returns an 8-bit RGB ``PIL.Image`` or raises :class:`ImageError` with a
one-line reason, so that a batch can report a bad file and go on with the rest.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from charaid.config import default_settings
from charaid.errors import ImageError

#: The EXIF tag that says how a picture is stored turned (1: upright; 2-8: mirrored or turned).
_ORIENTATION = 0x0112

#: File endings treated as images when a folder is walked.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".jfif", ".pjpeg", ".pjp"})

_WHITE = (255, 255, 255)


def load_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open ``path`` as an RGB image, upright as its EXIF says; raise ImageError if it cannot be."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as e:
        raise ImageError(path, f"cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, "is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(path, f"not a regular file ({_kind(st.st_mode)}); only files are read")
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with open(p, "rb") as fh:
            return _decode(fh, str(path), max_pixels)
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except FileNotFoundError:
        raise ImageError(path, "vanished while being read") from None


def load_image_bytes(data: bytes, name: str = "<upload>", max_pixels: int | None = None) -> Image.Image:
    """Like :func:`load_image`, for bytes already in memory (uploads); the content decides the type."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, max_pixels)


#: Bytes a pixel takes once decoded, by Pillow mode (the decode budget's unit).
_MODE_BYTES = {
    "1": 1,
    "L": 1,
    "P": 1,
    "LA": 2,
    "La": 2,
    "PA": 2,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I;16N": 2,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
    "RGBA": 4,
    "RGBa": 4,
    "RGBX": 4,
    "CMYK": 4,
    "I": 4,
    "F": 4,
}


def _decode(fh: BinaryIO, name: str, max_pixels: int | None) -> Image.Image:
    settings = default_settings()
    limit = settings.max_pixels if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "Palette images with Transparency..." etc.
        try:
            im: Image.Image = Image.open(fh)
        except UnidentifiedImageError:
            raise ImageError(name, "not an image (format not recognised)") from None
        except Image.DecompressionBombError as e:
            raise ImageError(name, f"refused as a decompression bomb ({e})") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise ImageError(name, f"corrupt image header ({e})") from None
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageError(name, f"image has no pixels ({w}x{h})")
        if w * h > limit:
            raise ImageError(
                name,
                f"refused as a decompression bomb: {w}x{h} = {w * h:,} pixels is over the limit of "
                f"{limit:,} (set CHARAID_MAX_PIXELS to allow it)",
            )
        _within_budget(im, name, settings.max_decode_mb, settings.max_work_side)
        try:
            if getattr(im, "is_animated", False):
                im.seek(0)  # the first frame stands for the animation
            im.load()
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
            raise ImageError(name, f"truncated or corrupt image data ({e})") from None
        except MemoryError:
            raise ImageError(name, f"out of memory decoding {w}x{h} {im.mode}") from None
        try:
            im = _reduced(im, settings.max_work_side)
        except (OSError, ValueError, MemoryError) as e:
            raise ImageError(name, f"cannot reduce {w}x{h} {im.mode} ({e})") from None
        try:
            # only a picture stored turned: for any other, exif_transpose returns a copy of it
            if im.getexif().get(_ORIENTATION, 1) in range(2, 9):
                im = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block must not cost the picture; keep it unrotated
            pass
        try:
            return to_rgb(im)
        except (OSError, ValueError, MemoryError) as e:
            raise ImageError(name, f"cannot convert {im.mode} to RGB ({e})") from None


def decoded_bytes(im: Image.Image) -> int:
    """Bytes ``im`` takes once decoded (before any reduction)."""
    w, h = im.size
    return w * h * _MODE_BYTES.get(im.mode, 4)


def _within_budget(im: Image.Image, name: str, budget_mb: int, work_side: int) -> None:
    """Decode a JPEG reduced when it is big (DCT scaling costs nothing); refuse any other file
    whose decoded pixels would take more than the budget."""
    w, h = im.size
    if im.format == "JPEG" and max(w, h) > work_side:
        # draft() picks the strongest DCT scaling (1/2, 1/4, 1/8) that keeps at least the size
        # asked for: ask half the working side, get between half and all of it.
        half = work_side // 2
        im.draft(im.mode, (max(1, w * half // max(w, h)), max(1, h * half // max(w, h))))
    need = decoded_bytes(im)
    if need > budget_mb * 2**20:
        raise ImageError(
            name,
            f"refused: decoding {w}x{h} {im.mode} would take {need / 2**20:,.0f} MB, over the budget of "
            f"{budget_mb:,} MB (set CHARAID_MAX_DECODE_MB to allow it)",
        )


def _reduced(im: Image.Image, work_side: int) -> Image.Image:
    """``im`` with its longer side at most ``work_side``, reduced before any mode conversion."""
    w, h = im.size
    if max(w, h) <= work_side:
        return im
    k = work_side / max(w, h)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return im.resize(size, Image.Resampling.BOX)  # keeps info, so EXIF orientation still applies


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; transparency is laid over white, 16-bit is scaled down."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, _WHITE)
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.array(im, dtype=np.float32)  # a writable copy; float32: an 80-Mpx 16-bit picture once cost 2 GB in float64
        top = 65535.0 if (mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        a *= 255.0 / top
        a += 0.5
        a = np.clip(a, 0, 255, out=a).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")  # uint8 -> mode L
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def iter_image_paths(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly (whatever their ending), and image files under named folders, sorted.

    Folders are walked without following symbolic links to folders, so a link cannot lead the
    walk out of the tree the user named.
    """
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in files:
                    if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES:
                        found.append(Path(root) / f)
            yield from sorted(found)
        else:
            yield p


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a file"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a regular file's bytes; anything else (a FIFO would block for ever, a link to
    /dev/zero never ends) raises OSError before it is opened."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"not a regular file ({_kind(st.st_mode)}); only files are read")
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""A folder of the files a real collection and a hostile stranger hand to charaid (issue 18).

``make_hostile(root, n)`` writes at least ``n`` entries under ``root`` and returns a manifest:
truncated and bit-flipped files in every format, 0-byte and random files, every Pillow image
mode, all EXIF orientations, decompression and memory bombs, animations, a FIFO, a symlink
loop, a symlink to /dev/zero, a dangling link, a folder named ``x.jpg``, and names with
newlines, unicode, leading dashes and bytes that are not UTF-8. A share of the entries are
good drawn portraits of the three characters the test gallery knows, so a test can check
that they come out as they do alone.

Used by tests/test_hostile.py (300 entries) and benchmarks/hostile.py (10,000 and more).
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from charaid.jobs.synth import CAST, portrait

FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
#: Modes and the formats that can hold them.
MODES = {
    "1": ["PNG", "BMP", "TIFF", "GIF"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"],
    "RGBA": ["PNG", "TIFF", "WEBP", "GIF"],
    "LA": ["PNG", "TIFF"],
    "PA": ["PNG"],
    "I": ["PNG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I;16B": ["TIFF"],
    "F": ["TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "YCbCr": ["JPEG", "TIFF"],
    "LAB": ["TIFF"],
    "RGBX": ["TIFF"],
}


#: Runs a command and writes the peak resident memory of it and its workers (kB) to a file.
_MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(r.returncode)"
)


def run_measured(tmp: Path, *args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    """``charaid ARGS`` in a new process (output as bytes) and its peak memory in MB, workers
    included; raises subprocess.TimeoutExpired past ``timeout``."""
    peak = Path(tmp) / "peak.txt"
    peak.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _MEASURE, str(peak), sys.executable, "-m", "charaid.cli", *args]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return p, (int(peak.read_text()) / 1024 if peak.exists() else float("nan"))


@dataclass
class Entry:
    path: Path
    kind: str
    #: "good": a portrait that must be recognised as ``character``; "bad": must fail with one
    #: error line; "maybe": may decode or fail (bit flips), but one line at most; "silent":
    #: not a file the walk reads (a folder named x.jpg), no output at all.
    expect: str
    character: str | None = None


@dataclass
class Manifest:
    root: Path
    entries: list[Entry] = field(default_factory=list)

    def add(self, path: Path, kind: str, expect: str, character: str | None = None) -> None:
        self.entries.append(Entry(path, kind, expect, character))

    def of(self, expect: str) -> list[Entry]:
        return [e for e in self.entries if e.expect == expect]


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Pillow 11: "Saving I mode images as PNG is deprecated"
        im.save(buf, fmt, **kw)
    return buf.getvalue()


def _name(rng: random.Random, i: int, suffix: str) -> bytes:
    """A file name, now and then one a careless tool breaks on."""
    odd = [
        b"new\nline-%d",
        "\u30ad\u30e3\u30e9-%d".encode(),
        b"\x83L\x83\x83\x83\x89-%d",
        b"-rf-%d",
        b" spaced out %d ",
        "\U0001f600-%d".encode(),
        b"tab\there-%d",
        "\u202eevil-%d".encode(),
        b"%%s%%n-%d",
        b"back\\slash-%d",
    ]
    base = odd[i % len(odd)] % i if rng.random() < 0.35 else b"f%05d" % i
    return base + suffix.encode()


def _write(path: Path | bytes, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _in_mode(src: Image.Image, mode: str) -> Image.Image:
    grey = np.asarray(src.convert("L"), dtype=np.uint16) * 257
    if mode == "I;16":
        return Image.fromarray(grey)
    if mode == "I;16B":
        return Image.frombytes("I;16B", src.size, grey.astype(">u2").tobytes())
    if mode in ("I", "F"):
        return src.convert("L").convert(mode)
    if mode in ("LA", "PA"):
        return src.convert("RGBA").convert(mode)
    return src.convert(mode)


def make_hostile(root: str | Path, n: int = 300, seed: int = 0, good_share: float = 0.08, bombs: bool = True) -> Manifest:
    """Write at least ``n`` hostile entries (and good portraits) under ``root``; see the module doc."""
    rng = random.Random(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    man = Manifest(root)
    broot = os.fsencode(root)
    counter = iter(range(10**9))

    def put(data: bytes, suffix: str, kind: str, expect: str, character: str | None = None, sub: bytes = b"") -> None:
        i = next(counter)
        d = broot + b"/" + (sub or b"d%02d" % (i % 7))
        os.makedirs(d, exist_ok=True)
        p = d + b"/" + _name(rng, i, suffix)
        _write(p, data)
        man.add(Path(os.fsdecode(p)), kind, expect, character)

    base = [portrait(CAST[k % 3], 900 + k, size=192) for k in range(6)]

    # Good portraits: the ground truth the rest must not disturb.
    for k in range(int(n * good_share)):
        c = k % 3
        put(_encoded(portrait(CAST[c], 5000 + k + seed * 1000, size=224), "PNG"), ".png", "good", "good", CAST[c].name)

    # Special files: each is one error line, never a hang.
    special = root / "special"
    special.mkdir(exist_ok=True)
    os.mkfifo(special / "x.jpg")
    man.add(special / "x.jpg", "fifo", "bad")
    os.symlink("loop.png", special / "loop.png")
    man.add(special / "loop.png", "symlink loop", "bad")
    os.symlink("/dev/zero", special / "zero.jpg")
    man.add(special / "zero.jpg", "link to /dev/zero", "bad")
    os.symlink(special / "gone-for-ever.png", special / "dangling.png")
    man.add(special / "dangling.png", "dangling link", "bad")
    (special / "folder.jpg").mkdir()
    man.add(special / "folder.jpg", "folder named x.jpg", "silent")

    # Memory and decompression bombs.
    if bombs:
        put(_encoded(Image.new("I;16", (8944, 8944), 1000), "PNG", optimize=False), ".png", "16-bit bomb", "maybe", sub=b"bombs")
        put(_encoded(Image.new("RGBA", (8944, 8944), (1, 2, 3, 4)), "PNG"), ".png", "RGBA bomb", "bad", sub=b"bombs")
        put(_encoded(Image.new("L", (12000, 12000), 0), "PNG"), ".png", "pixel bomb", "bad", sub=b"bombs")
        put(
            _encoded(Image.new("RGB", (7000, 7000), (90, 90, 200)), "JPEG", quality=50), ".jpg", "big JPEG", "maybe", sub=b"bombs"
        )
        tiny = bytearray(_encoded(Image.new("P", (4, 4)), "GIF"))
        tiny[6:10] = (65000).to_bytes(2, "little") * 2  # a logical screen of 65000 x 65000
        put(bytes(tiny), ".gif", "GIF screen bomb", "maybe", sub=b"bombs")

    # Every mode in every format that holds it; EXIF orientations.
    for mode, fmts in MODES.items():
        try:
            im = _in_mode(base[0], mode)
        except (ValueError, OSError):
            continue
        for fmt in fmts:
            try:
                data = _encoded(im, fmt)
            except (OSError, ValueError, KeyError):
                continue
            put(data, FORMATS[fmt], f"mode {mode} {fmt}", "maybe")
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        for fmt in ("JPEG", "PNG", "WEBP"):
            put(_encoded(base[o % 6], fmt, exif=ex.tobytes()), FORMATS[fmt], f"EXIF orientation {o} {fmt}", "maybe")
    for fmt, kw in (("GIF", {}), ("WEBP", {}), ("PNG", {})):
        put(
            _encoded(base[0], fmt, save_all=True, append_images=base[1:3], duration=100, **kw),
            FORMATS[fmt],
            f"animated {fmt}",
            "maybe",
        )

    # Fill up: broken files of every kind, each seeded.
    fillers = ["empty", "random", "truncated", "header-only", "bitflip", "text"]
    while len(man.entries) < n:
        kind = fillers[len(man.entries) % len(fillers)]
        fmt = rng.choice(list(FORMATS))
        suffix = FORMATS[fmt] if rng.random() < 0.9 else rng.choice([".jpeg", ".JPG", ".jfif", ".tiff", ".PNG"])
        good = _encoded(rng.choice(base), fmt)
        if kind == "empty":
            put(b"", suffix, "0 bytes", "bad")
        elif kind == "random":
            put(rng.randbytes(rng.choice([1, 7, 100, 5000, 70000])), suffix, "random bytes", "bad")
        elif kind == "text":
            put(b"<html><body>not an image</body></html>\n" * rng.randint(1, 50), suffix, "text", "bad")
        elif kind == "header-only":
            put(good[: rng.randint(8, 40)], suffix, f"{fmt} header only", "maybe")
        elif kind == "truncated":
            put(good[: max(1, int(len(good) * rng.uniform(0.05, 0.95)))], suffix, f"{fmt} truncated", "maybe")
        else:
            b = bytearray(good)
            for _ in range(rng.choice([1, 3, 20, 200])):
                pos = rng.randrange(len(b))
                b[pos] ^= 1 << rng.randrange(8)
            put(bytes(b), suffix, f"{fmt} bit-flipped", "maybe")
    return man

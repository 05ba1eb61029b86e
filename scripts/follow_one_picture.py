#!/usr/bin/env python3
"""Follow one picture through ``charaid recognize`` (issue 28's structure count).

    python scripts/follow_one_picture.py GALLERY PICTURE

Traces the calls into charaid's functions that receive the picture in some form (its path,
image, faces, crops, their records, its result), in order. Consecutive calls within one module
are one stop; a return is a stop in a module the picture left before. The command runs once
untraced first, so the gallery's calibration and decision model are stored and not counted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image

import charaid
from charaid.cli import main as charaid_main

RECORDS = {"PreparedImage", "FaceCrop", "EmbeddedImage", "ImageResult", "FaceResult", "Face", "IndexedImage"}


def carries(value, picture: str, depth: int = 0) -> bool:
    """True when ``value`` is the picture in some form (or a list of such)."""
    if isinstance(value, Image.Image) or type(value).__name__ in RECORDS:
        return True
    if isinstance(value, (str, Path)):
        return str(value) == picture
    if depth == 0 and isinstance(value, (list, tuple)) and value:
        return carries(value[0], picture, 1)
    return False


def follow(gallery: str, picture: str) -> list[str]:
    root = str(Path(charaid.__file__).parent)
    stops: list[str] = []

    def tracer(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(root) and code.co_argcount:
            args = [frame.f_locals.get(n) for n in code.co_varnames[: code.co_argcount]]
            if any(carries(a, picture) for a in args):
                mod = os.path.relpath(code.co_filename, root)
                if not stops or stops[-1] != mod:
                    stops.append(mod)

    argv = ["recognize", picture, "--gallery", gallery, "--json", "-q"]
    charaid_main(argv)
    sys.settrace(tracer)
    try:
        charaid_main(argv)
    finally:
        sys.settrace(None)
    return stops


def main() -> None:
    stops = follow(sys.argv[1], sys.argv[2])
    seen: set[str] = set()
    returns = 0
    for m in stops:
        returns += m in seen
        seen.add(m)
    print(f"{len(stops)} stops over {len(seen)} modules, {returns} returns", file=sys.stderr)
    print(" -> ".join(stops), file=sys.stderr)


if __name__ == "__main__":
    main()

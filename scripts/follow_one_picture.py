#!/usr/bin/env python3
"""Follow one picture through `charaid recognize` (issue 28): usage: python scripts/follow_one_picture.py GALLERY PICTURE.

The calls into charaid functions that receive the
picture in some form (its path, image, faces, crops, vectors' record, result), in order;
consecutive calls within one module are one stop; a return is a stop in a module left before."""

import sys, os
from pathlib import Path
import charaid
from PIL import Image

root = str(Path(charaid.__file__).parent)
gallery, picture = sys.argv[1], sys.argv[2]
names = {"PreparedImage", "FaceCrop", "EmbeddedImage", "ImageResult", "FaceResult", "Face", "IndexedImage"}


def carries(v, depth=0):
    if isinstance(v, Image.Image):
        return True
    if isinstance(v, (str, Path)):
        return str(v) == picture
    if type(v).__name__ in names:
        return True
    if depth == 0 and isinstance(v, (list, tuple)) and v:
        return carries(v[0], 1)
    return False


stops = []


def tracer(frame, event, arg):
    if event == "call":
        f = frame.f_code.co_filename
        if f.startswith(root) and frame.f_code.co_argcount:
            args = [frame.f_locals.get(n) for n in frame.f_code.co_varnames[: frame.f_code.co_argcount]]
            if any(carries(a) for a in args):
                mod = os.path.relpath(f, root)
                if not stops or stops[-1] != mod:
                    stops.append(mod)
    return None


from charaid.cli import main

main(["recognize", picture, "--gallery", gallery, "--json", "-q"])
stops.clear()
sys.settrace(tracer)
main(["recognize", picture, "--gallery", gallery, "--json", "-q"])
sys.settrace(None)
seen, returns = set(), 0
for m in stops:
    returns += m in seen
    seen.add(m)
print(f"{len(stops)} stops over {len(seen)} files, {returns} returns", file=sys.stderr)
print(" -> ".join(stops), file=sys.stderr)

"""Face detection on real images: recall and precision against labelled boxes, and how many
pictures get a face, per detector setting.

    python benchmarks/detection.py [--settings plain,retry,union-retry] [--iou 0.3]
    python benchmarks/detection.py --settings retry@1024,retry@768   # detection size

Settings:
  plain        animeface-2009 at the picture's size only (charaid before the retry)
  retry        animeface-2009, then, when it finds nothing, reduced copies (Thresholds.detect_retry_scales;
               charaid's default)
  union-retry  retry + nagadomi's LBP cascade (../shared/data/models), merged
  ...@SIDE     the picture downscaled to at most SIDE px before detection (default 1024,
               Settings.max_detect_side)

Sets: cartoonface300 (300 cartoon/anime images with face boxes: recall = labelled faces matched
by a found box at IoU >= --iou, each box used once; precision = found boxes matching a label),
tla/raw (107 illustrations, one character each: pictures with a face), web4 (286 web pictures:
pictures with a face), photos (64 photos of people: pictures with a "face", lower is better).
iCartoonFace's boxes are drawn around the whole head, animeface's around eyes to chin, so
the IoU bar is 0.3 by default.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.detect import Box, make_detector  # noqa: E402
from charaid.images import load_image  # noqa: E402


def detector(setting: str):
    """``plain``, ``retry`` or ``union-retry``, optionally ``@SIDE``: pictures downscaled to at most
    SIDE px before detection (default: Settings.max_detect_side)."""
    setting, _, side = setting.partition("@")
    t = Thresholds() if "retry" in setting else Thresholds(detect_retry_scales=())
    union = setting.startswith("union")
    return make_detector("union" if union else "animeface", datasets.cascade_xml() if union else None, t,
                         int(side) if side else default_settings().max_detect_side)


def matched(found: list[Box], truth: list[Box], iou: float) -> int:
    """Greedy one-to-one matching, best overlaps first."""
    pairs = sorted(((f.iou(t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t, n = set(), set(), 0
    for o, i, j in pairs:
        if o < iou:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="plain,retry,union-retry")
    ap.add_argument("--iou", type=float, default=0.3)
    args = ap.parse_args()
    datasets.require()
    cf = datasets.cartoonface300()
    others = {"tla/raw": [p for _, p in datasets.tla_raw()], "web4": [p for _, p in datasets.web4()], "photos": datasets.photos()}
    print(f"# face detection; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for setting in args.settings.split(","):
        det = detector(setting)
        t0, n_img = time.time(), 0
        n_true = n_found = n_match = 0
        for p, yolo in cf:
            im = load_image(p)
            W, H = im.size
            truth = [Box(round((cx - w / 2) * W), round((cy - h / 2) * H), round(w * W), round(h * H)) for cx, cy, w, h in yolo]
            found = [f.box for f in det.detect(im)]
            n_true, n_found, n_match = n_true + len(truth), n_found + len(found), n_match + matched(found, truth, args.iou)
            n_img += 1
        with_face = {}
        for name, paths in others.items():
            with_face[name] = sum(bool(det.detect(load_image(p))) for p in paths)
            n_img += len(paths)
        ms = 1000 * (time.time() - t0) / n_img
        rows.append([setting, n_match / max(1, n_true), n_match / max(1, n_found), f"{n_match}/{n_true}",
                     f"{with_face['tla/raw']}/{len(others['tla/raw'])}", f"{with_face['web4']}/{len(others['web4'])}",
                     f"{with_face['photos']}/{len(others['photos'])}", f"{ms:.0f}"])
        print(f"  [{setting}: {time.time() - t0:.0f} s]", file=sys.stderr)
    print(table(["setting", "cartoonface300 recall", "precision", "matched/labelled", "tla/raw with a face",
                 "web4 with a face", "photos with a 'face'", "ms/picture"], rows))
    print(f"\nIoU bar {args.iou}; ms/picture over all {n_img} pictures, decoding included, one process.")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

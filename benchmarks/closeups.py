"""Close-ups (issue 27, item 3): faces that fill the picture, some cut by its border.

    python benchmarks/closeups.py                       # the shipped detector
    python benchmarks/closeups.py --settings facedet,facedet@2,retry

The set is made here, from labelled faces of the development sets, never stored:
- **cartoonface300 close-ups**: every labelled face of ``../shared/data/cartoonface300`` at least
  ``--min-side`` px a side, cut out of its picture so that the face covers 40, 55, 70, 85 or 100%
  of the crop's area (one coverage a face, drawn with a fixed seed); every other crop is shifted
  so that 10-30% of the face's width or height lies outside it (cut by the border). Recall: the
  face's box, clipped to the crop, matched by a found box at IoU >= 0.5 (and 0.3). Faces are
  split by picture into halves A (even pictures) and B (odd), so a setting chosen on one half
  can be reported on the other.
- **face-crop sets**: moeimouto10's test faces, danbooru6 and newgame8's faces, crops whose face
  fills most of the picture: the share with any face found.

Detector settings are those of ``benchmarks/detection.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402
from detection import detector, matched  # noqa: E402

from charaid.models.detectors import Box  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402

COVERAGES = (0.40, 0.55, 0.70, 0.85, 1.00)


def closeup_set(min_side: int, seed: int = 0):
    """(crop, face box in the crop, half, coverage, cut, (picture, box in it)) for cartoonface300's
    labelled faces."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (p, yolo) in enumerate(datasets.cartoonface300()):
        im = None
        for cx, cy, w, h in yolo:
            if im is None:
                im = load_image(p)
            W, H = im.size
            fw, fh = w * W, h * H
            if min(fw, fh) < min_side:
                continue
            cov = float(rng.choice(COVERAGES))
            side = np.sqrt(fw * fh / cov)
            cw, ch = max(side, fw), max(side, fh)
            x0, y0 = cx * W - cw / 2, cy * H - ch / 2
            cut = len(out) % 2 == 1
            if cut:  # move the crop so that a share of the face falls outside one of its sides
                share, d = rng.uniform(0.1, 0.3), rng.choice([-1.0, 1.0])
                if rng.random() < 0.5:
                    x0 -= d * ((cw - fw) / 2 + share * fw)
                else:
                    y0 -= d * ((ch - fh) / 2 + share * fh)
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(W), x0 + cw), min(float(H), y0 + ch)
            crop = im.crop((round(x0), round(y0), round(x1), round(y1)))
            fx0, fy0 = cx * W - fw / 2 - round(x0), cy * H - fh / 2 - round(y0)
            bx0, by0 = max(0.0, fx0), max(0.0, fy0)
            bx1, by1 = min(crop.width, fx0 + fw), min(crop.height, fy0 + fh)
            if bx1 - bx0 < 8 or by1 - by0 < 8:
                continue
            truth = Box(round(bx0), round(by0), round(bx1 - bx0), round(by1 - by0))
            real_cov = truth.w * truth.h / (crop.width * crop.height)
            real_cut = (bx1 - bx0) < fw - 1 or (by1 - by0) < fh - 1
            whole = Box(round(cx * W - fw / 2), round(cy * H - fh / 2), round(fw), round(fh))
            out.append((crop, truth, "AB"[i % 2], real_cov, real_cut, (p, whole)))
    return out


def clip(b: Box, w: int, h: int) -> Box:
    x0, y0 = max(0, b.x), max(0, b.y)
    x1, y1 = min(w, b.x + b.w), min(h, b.y + b.h)
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="facedet")
    ap.add_argument("--min-side", type=int, default=40, help="smallest labelled face used, px (default 40)")
    ap.add_argument("--weights", metavar="PT_OR_ONNX", help="facedet settings use these weights instead of the shipped ones")
    args = ap.parse_args()
    datasets.require()
    cases = closeup_set(args.min_side)
    moe_test = [p for _, p in datasets.moeimouto10()[1]]
    crops = {
        "moeimouto10 test": moe_test,
        "danbooru6": [p for _, p in datasets.danbooru6()],
        "newgame8 faces": [p for _, p in datasets.newgame8_singles()],
    }
    decoded = {k: [load_image(p) for p in v] for k, v in crops.items()}
    print(f"# close-ups; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    n_cut = sum(c[4] for c in cases)
    print(
        f"cartoonface300 close-ups: {len(cases)} faces of at least {args.min_side} px "
        f"({sum(c[2] == 'A' for c in cases)} in half A), {n_cut} cut by the border\n"
    )
    # the same faces in their whole pictures, for the plain network: which are hard anyway
    plain, pictures = detector("facedet@1+pad"), {}  # version 1 without its second look
    for *_, (p, _) in cases:
        if p not in pictures:
            pictures[p] = [f.box for f in plain.detect(load_image(p))]
    in_whole = [matched(pictures[p], [whole], 0.5) == 1 for *_, (p, whole) in cases]
    print(f"found in their whole pictures (facedet@1 without its second look, IoU 0.5): {np.mean(in_whole):.3f}\n")
    rows = []
    for setting in args.settings.split(","):
        det = detector(setting, args.weights)
        t0 = time.perf_counter()
        hit5 = {"A": [], "B": []}
        hit3 = []
        by_cov: dict[str, list[bool]] = {}
        cut_hits: list[bool] = []
        found_ok: list[bool] = []
        for crop, truth, half, cov, cut, _ in cases:
            found = [clip(f.box, crop.width, crop.height) for f in det.detect(crop)]
            ok = matched(found, [truth], 0.5) == 1
            hit5[half].append(ok)
            hit3.append(matched(found, [truth], 0.3) == 1)
            band = "40-60%" if cov < 0.6 else "60-80%" if cov < 0.8 else "80-100%"
            by_cov.setdefault(band, []).append(ok)
            if cut:
                cut_hits.append(ok)
            found_ok.append(ok)
        with_face = {k: np.mean([bool(det.detect(im)) for im in ims]) for k, ims in decoded.items()}
        all5 = hit5["A"] + hit5["B"]
        rows.append(
            [setting, np.mean(all5), np.mean(hit5["A"]), np.mean(hit5["B"]), np.mean(hit3)]
            + [np.mean(by_cov.get(b, [np.nan])) for b in ("40-60%", "60-80%", "80-100%")]
            + [np.mean(cut_hits), np.mean([o for o, w in zip(found_ok, in_whole) if w])]
            + [with_face[k] for k in crops]
        )
        print(f"  [{setting}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    head = [
        "setting",
        "recall@0.5",
        "half A",
        "half B",
        "recall@0.3",
        "cover 40-60%",
        "60-80%",
        "80-100%",
        "cut by border",
        "of those found in the whole picture",
    ]
    head += [f"{k}: with a face" for k in crops]
    print(table(head, rows))


if __name__ == "__main__":
    main()

"""Face detection on real images: recall and precision against labelled boxes, how many
pictures get a face, and the time per picture, for each detector setting, in one run.

    python benchmarks/detection.py                            # facedet (v1), facedet@2 and animeface-2009 (retry)
    python benchmarks/detection.py --settings facedet/640,facedet//0.3,retry@768

Settings:
  facedet[@V][/SIDE[/SCORE[/VETO]]][+padFxG[~FILL][^SCORE]]  charaid's own detector (charaid.models.facedet; the default),
               version V (default: the default version, 1), seeing
               the picture at most SIDE px a side (default Thresholds.facedet_input_side), faces
               scoring at least SCORE (default Thresholds.facedet_min_score for version 1,
               facedet_roi_min_score for version 2), real faces vetoed
               from a Haar score of VETO ("none": no veto; default Thresholds.photo_face_veto),
               looked at again where it found nothing on canvases F, then G times the picture's
               size (default Thresholds.facedet_pad_retry; "+pad" alone: no second look), filled
               with the grey level FILL or the picture's edges ("edge"), keeping faces from SCORE
               (default Thresholds.facedet_pad_min_score)
  plain        animeface-2009 at the picture's size only (charaid before the retry)
  retry        animeface-2009, then, when it finds nothing, reduced copies (Thresholds.detect_retry_scales)
  union-retry  retry + nagadomi's LBP cascade (../shared/data/models), merged
  ...@SIDE     the picture downscaled to at most SIDE px before detection (default 1024,
               Settings.max_detect_side)

Sets: cartoonface300 (300 cartoon/anime images with face boxes: recall = labelled faces matched
by a found box at IoU >= each --iou, each box used once; precision = found boxes matching a label),
tla/raw (107 illustrations, one character each: pictures with a face), web4 (286 web pictures:
pictures with a face), photos (64 photos of people: pictures with a "face", lower is better).
Time: median and mean milliseconds of detection alone per picture (decoding excluded), over
every picture of the four sets, PyTorch on all cores (animeface-2009 is single-threaded).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.models.detectors import Box, make_detector  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402


def detector(setting: str, weights: str | None = None):
    """A detector for a setting name (see the module's help); facedet settings run ``weights``
    (a .pt or .onnx of `charaid train-detector`) instead of the shipped network when given."""
    if setting.startswith("facedet") and weights:
        from charaid.models.facedet import FaceDetectorNet

        det = detector(setting)
        det.net = FaceDetectorNet(det.net.input_side, det.net.min_score, path=weights, version=det.net.version).load()
        return det
    if setting.startswith("facedet"):
        setting, second_look, pad = setting.partition("+pad")
        name, inp, score, veto = (setting.split("/") + ["", "", ""])[:4]
        t = Thresholds()
        if pad:
            pad, _, pad_score = pad.partition("^")
            factors, _, fill = pad.partition("~")
            t = replace(t, facedet_pad_retry=tuple(float(v) for v in factors.split("x") if v), facedet_pad_fill=fill or "128")
            t = replace(t, facedet_pad_min_score=float(pad_score)) if pad_score else t
        elif second_look:
            t = replace(t, facedet_pad_retry=())
        v1 = name == "facedet@1"
        t = replace(
            t,
            facedet_input_side=int(inp) if inp else t.facedet_input_side,
            photo_face_veto=(None if veto == "none" else float(veto)) if veto else t.photo_face_veto,
            **{("facedet_min_score" if v1 else "facedet_roi_min_score"): float(score)} if score else {},
        )
        return make_detector(name, None, t, default_settings().max_detect_side)
    setting, _, side = setting.partition("@")
    max_side = int(side) if side else default_settings().max_detect_side
    t = Thresholds() if "retry" in setting else Thresholds(detect_retry_scales=())
    union = setting.startswith("union")
    return make_detector("union" if union else "animeface", datasets.cascade_xml() if union else None, t, max_side)


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
    ap.add_argument("--settings", default="facedet,facedet@2,retry")
    ap.add_argument("--iou", default="0.5,0.3", help="IoU bars, comma-separated (default 0.5,0.3)")
    ap.add_argument("--weights", metavar="PT_OR_ONNX", help="facedet settings use these weights instead of the shipped ones")
    args = ap.parse_args()
    datasets.require()
    bars = [float(v) for v in args.iou.split(",")]
    cf = []
    for p, yolo in datasets.cartoonface300():
        im = load_image(p)
        W, H = im.size
        cf.append(
            (im, [Box(round((cx - w / 2) * W), round((cy - h / 2) * H), round(w * W), round(h * H)) for cx, cy, w, h in yolo])
        )
    others = {"tla/raw": [p for _, p in datasets.tla_raw()], "web4": [p for _, p in datasets.web4()], "photos": datasets.photos()}
    decoded = {k: [load_image(p) for p in v] for k, v in others.items()}
    print(f"# face detection; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for setting in args.settings.split(","):
        det = detector(setting, args.weights)
        det.detect(cf[0][0])  # warm up (weights, worker process)
        times: list[float] = []

        def timed(im):
            t0 = time.perf_counter()
            faces = det.detect(im)
            times.append(time.perf_counter() - t0)
            return faces

        n_true = n_found = 0
        n_match = {b: 0 for b in bars}
        for im, truth in cf:
            found = [f.box for f in timed(im)]
            n_true, n_found = n_true + len(truth), n_found + len(found)
            for b in bars:
                n_match[b] += matched(found, truth, b)
        with_face = {name: sum(bool(timed(im)) for im in ims) for name, ims in decoded.items()}
        ms = 1000 * np.asarray(times)
        row = [setting]
        for b in bars:
            row += [n_match[b] / max(1, n_true), n_match[b] / max(1, n_found)]
        row += [f"{n_found}/{n_true}"] + [f"{with_face[k]}/{len(v)}" for k, v in others.items()]
        row += [f"{np.median(ms):.0f}", f"{ms.mean():.0f}"]
        rows.append(row)
        print(f"  [{setting}: {ms.sum() / 1000:.0f} s]", file=sys.stderr)
    head = ["setting"] + [h for b in bars for h in (f"recall@{b:g}", f"precision@{b:g}")]
    head += ["found/labelled", "tla/raw with a face", "web4 with a face", "photos with a 'face'", "median ms", "mean ms"]
    print(table(head, rows))
    print(
        f"\ncartoonface300 recall and precision at IoU {', '.join(f'{b:g}' for b in bars)}; "
        f"time over {len(times)} pictures (up to 1024 px a side), detection alone."
    )


if __name__ == "__main__":
    main()

"""EfficientNet-Lite0's input size for face crops (issue 3, item 3): measured, not kept.

    python benchmarks/input_size.py 224 256 288

The default embeds each crop at 224 px (the network's ImageNet size). Anime identity lives in
small details (eye drawing, hair strands), so a larger input might see more of them. Each size
replaces the CNN block of the default features (colour histogram 0.5 and the detector's colours
0.25 beside it, mirror image added); issue 2's protocols, matcher hybrid.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.cues import CueColourEmbedder  # noqa: E402
from charaid.embed import ColourHistogramEmbedder, ConcatEmbedder, EfficientNetLiteEmbedder  # noqa: E402
from charaid.prepare import DetectorSpec  # noqa: E402


def embedder(side: int):
    cnn = EfficientNetLiteEmbedder("lite0")
    if side != cnn.info.input_size:  # another space: its own id, so the benchmark cache keeps them apart
        cnn.info = replace(cnn.info, model_id=f"{cnn.info.model_id}@{side}", input_size=side)
    t = Thresholds()
    return ConcatEmbedder([cnn, ColourHistogramEmbedder(), CueColourEmbedder(t)], [1.0, t.colour_weight, t.cue_colour_weight])


def main() -> None:
    sides = [int(a) for a in sys.argv[1:]] or [224, 256, 288]
    print(f"# input size; matcher hybrid; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows, heads = [], None
    for side in sides:
        sets = accuracy.load_sets(embedder(side), DetectorSpec(max_side=default_settings().max_detect_side))
        heads, row = accuracy.variant_row(side, sets)
        rows.append(row)
    print(table(["input px", *heads[1:]], rows))


if __name__ == "__main__":
    main()

"""Issue 27's photo decision: the cascade's veto on each face and the whole-picture photo check
(charaid.models.photo_check), on the development photos and drawings, tuned on one half and
reported on the other.

    python benchmarks/photo_check.py

Every development photo (64) and drawing (web4, tla/raw, cartoonface300, newgame8/raw) goes
through the shipped detector twice: with no photo decision, and with the cascade's veto alone;
and its centre square through the photo check (probability p). A picture then has a face under:
the cascade alone, the check alone (p below the threshold), or both (the shipped detector).

Halves: the photos and each drawing set split into even and odd pictures, then 3 random splits.
On the tuning half, the threshold is the lowest of ``GRID`` at which no drawing that has a face
with the cascade loses it; the other half is reported: photos with a face (the shipped
combination, and the check alone as if the cascade saw nothing), drawings that lost their face.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds, default_settings  # noqa: E402
from charaid.models.detectors import make_detector  # noqa: E402
from charaid.models.photo_check import photo_probability  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402

GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def pictures() -> dict[str, list[Path]]:
    return {
        "photos": datasets.photos(),
        "web4": [p for _, p in datasets.web4()],
        "tla/raw": [p for _, p in datasets.tla_raw()],
        "cartoonface300": [p for p, _ in datasets.cartoonface300()],
        "newgame8/raw": [p for p, _ in datasets.newgame8_raw_labels()],
    }


def measure(sets: dict[str, list[Path]]) -> dict[str, dict[str, np.ndarray]]:
    """Per set: faces with no photo decision ("none"), with the cascade's veto ("cascade"), and p."""
    t = replace(Thresholds(), photo_picture_min_p=None)
    side = default_settings().max_detect_side
    none, cascade = (
        make_detector("facedet", None, replace(t, photo_face_veto=None), side),
        make_detector("facedet", None, t, side),
    )
    out = {}
    for name, paths in sets.items():
        n, c, p = [], [], []
        for path in paths:
            im = load_image(path)
            n.append(len(none.detect(im)))
            c.append(len(cascade.detect(im)))
            p.append(photo_probability(im))
        out[name] = {"none": np.array(n) > 0, "cascade": np.array(c) > 0, "p": np.array(p)}
        print(f"  [{name}: {len(paths)} pictures]", file=sys.stderr)
    return out


def halves(n: int, seed: int | None) -> np.ndarray:
    """True for the first half: even pictures (seed None) or a random half."""
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    first = np.zeros(n, bool)
    first[order[::2]] = True
    return first


def main() -> None:
    datasets.require()
    least = Thresholds().photo_picture_min_p
    print(f"# photo decision; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    m = measure(pictures())
    drawings = [k for k in m if k != "photos"]
    rows = []
    for name, d in m.items():
        both = d["cascade"] & (d["p"] < least)
        rows.append(
            [
                name,
                len(d["p"]),
                int(d["none"].sum()),
                int(d["cascade"].sum()),
                int((d["none"] & (d["p"] < least)).sum()),
                int(both.sum()),
            ]
        )
    print(table(["set", "pictures", "no photo decision", "cascade's veto", "photo check alone", "both (shipped)"], rows))

    rows = []
    for seed in (None, 0, 1, 2):
        split = {k: halves(len(d["p"]), seed) for k, d in m.items()}
        row: list = ["even / odd" if seed is None else f"random {seed}", [], [], [], []]
        for first in (True, False):

            def lost(T: float, half: bool) -> tuple[int, int]:
                faces = [(m[k]["cascade"] & (split[k] == half)) for k in drawings]
                return sum(int((f & (m[k]["p"] >= T)).sum()) for f, k in zip(faces, drawings)), sum(int(f.sum()) for f in faces)

            T = next((g for g in GRID if lost(g, first)[0] == 0), GRID[-1])
            ph, held = m["photos"], split["photos"] != first
            n_lost, n_faces = lost(T, not first)
            row[1].append(f"{T:g}")
            row[2].append(f"{int((ph['cascade'] & (ph['p'] < T) & held).sum())}/{int(held.sum())}")
            row[3].append(f"{int((ph['none'] & (ph['p'] < T) & held).sum())}/{int(held.sum())}")
            row[4].append(f"{n_lost}/{n_faces}")
        rows.append([row[0]] + [", ".join(v) for v in row[1:]])
    head = ["split", "threshold chosen", "held-out photos with a face (both)", "the check alone", "held-out drawings' faces lost"]
    print("\n" + table(head, rows))
    print(
        f"\nFirst table: pictures with a face, the check at p {least:g} (shipped: the cascade's veto on each face and the check"
        " on the whole picture). Second: tuned on one half, reported on the other (the first half tuned, then the second)."
    )


if __name__ == "__main__":
    main()

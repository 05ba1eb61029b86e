"""One answer per face in pictures of several characters: newgame8's multi-character illustrations.

    python benchmarks/multi.py [--workers 2]

`newgame8/raw` labels each of its 320 illustrations with the SET of characters it shows. The
271 that show one character are enrolled (largest face of each, as `charaid enroll` does, into a
temporary gallery); the 49 that show two or more are recognised as `charaid recognize` does
(the gallery's decision model: named, probably X or unknown), and as `--closed` does (every
face named by its first guess). No illustration is in both. For each
listed character: is it named on some face of its picture (recall)? For each name given: is
it one of the picture's characters (precision)? Also the faces found against the characters
listed, and how many pictures get their whole set right.

These are 8 look-alikes of one series (New Game!), the hard case: the single-face figures of the
same gallery are in benchmarks/accuracy.py ("newgame8 (5-fold)").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.jobs.enroll import enroll_items  # noqa: E402
from charaid.models.detectors import DEFAULT_DETECTOR, DETECTOR_NAMES  # noqa: E402
from charaid.pipeline.prepare import (
    DetectorSpec,  # noqa: E402
    prepare_many,  # noqa: E402
)
from charaid.recognition.recognize import Recognizer  # noqa: E402
from charaid.storage.gallery import Gallery  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="processes for decoding and detection (default 2)")
    ap.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=[n for n in DETECTOR_NAMES if n not in ("cascade", "union")],  # those need a cascade file
        help=f"face detector (default {DEFAULT_DETECTOR})",
    )
    args = ap.parse_args()
    datasets.require()
    labelled = datasets.newgame8_raw_labels()
    singles = [(labels[0], p) for p, labels in labelled if len(labels) == 1]
    multi = [(p, set(labels)) for p, labels in labelled if len(labels) > 1]
    print(f"# multi-character pictures: newgame8, detector {args.detector}; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "g.sqlite") as g:
        t = time.time()
        spec = DetectorSpec(args.detector)
        s = enroll_items(g, singles, spec=spec, workers=args.workers)
        enrol_s = time.time() - t
        rec = Recognizer(g)
        assert rec.spec.name == spec.name
        thr = rec.threshold
        t = time.time()
        prepared = list(prepare_many([p for p, _ in multi], True, rec.spec, args.workers, with_hash=False))
        embedded = rec.embed_faces(prepared)
        rec_s = time.time() - t
        answers = {"decision model (default)": rec.name_faces(embedded)}
        rec.closed = True
        answers["--closed"] = rec.name_faces(embedded)
    print(
        f"Enrolled {len(singles)} single-character pictures ({len(s.characters)} characters, "
        f"{len(s.no_face)} without a face found) in {enrol_s:.0f} s; raw threshold {thr:.3f} (calibrated by the gallery); "
        f"recognised in {rec_s:.1f} s.\n"
    )
    rows, missed_default = [], Counter()
    for how, results in answers.items():
        listed = found = given = right = whole = faces = p_given = p_right = 0
        missed: Counter = Counter()
        for (_path, truth), r in zip(multi, results):
            names = {f.character for f in r.faces if f.character}
            maybe = {f.probable for f in r.faces if f.probable} - names
            tops = {f.top[0].character for f in r.faces if f.top}
            listed += len(truth)
            found += len(truth & names)
            given += len(names)
            right += len(names & truth)
            p_given += len(maybe)
            p_right += len(maybe & truth)
            whole += names == truth
            faces += len(r.faces)
            for c in truth - names:
                missed["not detected or unknown" if c not in tops else "probable" if c in maybe else "top guess, not named"] += 1
        if not missed_default:
            missed_default = missed
        rows.append(
            [
                how,
                len(multi),
                listed,
                faces,
                f"{found} ({found / max(1, listed):.3f})",
                given,
                f"{right} ({right / max(1, given):.3f})",
                f"{p_right} of {p_given}",
                whole,
            ]
        )
    print(
        table(
            [
                "answer",
                "pictures",
                "characters listed",
                "faces found",
                "characters named (recall)",
                "names given",
                "names right (precision)",
                "probable names right",
                "pictures with exactly their set",
            ],
            rows,
        )
    )
    print(f"\nListed characters not named (default): {dict(missed_default)}")


if __name__ == "__main__":
    main()

"""`charaid sort` on messy real-world pictures: web4 (4 characters of 4 series) plus 64 photos.

    python benchmarks/sort_web4.py [--enrol 20] [--union] [--faces-only] [--train] [--leave-out NAME]

The first --enrol images of each web4 character (by file name) are enrolled with `charaid
enroll` (largest face of each picture); the rest of web4 and the 64 photos are copied into one
SRC folder (in a temporary folder; nothing is copied into the repository) and sorted with
`charaid sort SRC DST --json`, as a user runs it. A web4 picture counts as right when it lands
in its character's folder (with copy-each, a picture with two known characters is in both; it
counts as right if one of them is its own); a photo is right in `_no_face` or `_unknown`.
By default `sort` falls back on the whole picture when no face is named (charaid.recognition.picture);
`--faces-only` measures faces alone. `--leave-out NAME` enrols no picture of that character and
sorts all of them: they are right anywhere but a named character's folder (``_maybe`` included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import cli, machine, table  # noqa: E402

from charaid.models.detectors import DETECTOR_NAMES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--enrol", type=int, default=20, help="pictures per character to enrol (default 20)")
    ap.add_argument(
        "--union", action="store_true", help="detect with animeface-2009 and the LBP cascade of ../shared/data/models together"
    )
    ap.add_argument(
        "--detector",
        choices=[n for n in DETECTOR_NAMES if n not in ("cascade", "union")],  # those need a cascade file
        help="detector of enrol and sort (default: charaid's default, facedet)",
    )
    ap.add_argument("--faces-only", action="store_true", help="sort by faces alone (no whole-picture fallback)")
    ap.add_argument("--train", action="store_true", help="run `charaid train` (defaults) between enrol and sort, as a user may")
    ap.add_argument("--leave-out", metavar="NAME", help="enrol nothing of this web4 character: its pictures are unknowns")
    ap.add_argument(
        "--rows", help="also write sort's JSON lines, each with its true character, to this file (for a look at the misses)"
    )
    args = ap.parse_args()
    det = ["--detector", "union", "--cascade", str(datasets.cascade_xml())] if args.union else []
    if args.detector:
        det = ["--detector", args.detector]
    how = ["--faces-only"] if args.faces_only else []
    datasets.require()
    items = datasets.web4()
    by_char: dict[str, list[Path]] = {}
    for c, p in items:
        by_char.setdefault(c, []).append(p)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        enrol, src, truth = tmp / "enrol", tmp / "src", {}
        for c, ps in by_char.items():
            ps = sorted(ps, key=lambda p: p.name)
            out = c == args.leave_out
            if not out:
                (enrol / c).mkdir(parents=True)
                for p in ps[: args.enrol]:
                    shutil.copy(p, enrol / c / p.name)
            for p in ps if out else ps[args.enrol :]:
                name = f"{c}__{p.name}"
                src.mkdir(exist_ok=True)
                shutil.copy(p, src / name)
                truth[name] = f"!{c}" if out else c
        for p in datasets.photos():
            shutil.copy(p, src / f"photo__{p.name}")
            truth[f"photo__{p.name}"] = None
        g = tmp / "g.sqlite"
        t = time.time()
        cli("enroll", str(enrol), "--gallery", str(g), "-q", *det)
        enrol_s = time.time() - t
        train_s = None
        if args.train:
            t = time.time()
            tr = cli("train", "--gallery", str(g), "-q")
            train_s = time.time() - t
            print(tr.stderr.strip(), file=sys.stderr)
        t = time.time()
        r = cli("sort", str(src), str(tmp / "dst"), "--gallery", str(g), "--json", "-q", *det, *how)
        wall = time.time() - t
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    summary = rows[-1]["summary"]
    right, where, by, maybe = Counter(), Counter(), Counter(), Counter()
    for row in rows[:-1]:
        name = Path(row["path"]).name
        want, got = truth[name], set(row["folders"])
        kind = "photo" if want is None else "not enrolled" if want.startswith("!") else "web4"
        if kind == "web4":
            ok = want in got
            maybe[want in {f.removeprefix("_maybe/") for f in got if f.startswith("_maybe/")}] += 1
        elif kind == "photo":
            ok = bool(got & {"_no_face", "_unknown"}) and len(got) == 1
        else:  # a character never enrolled: anywhere but a named folder
            ok = all(f.startswith("_") for f in got)
        right[kind, ok] += 1
        if row.get("by_picture"):
            by[kind, ok] += 1
        where[kind, ",".join(sorted(got)) if kind == "photo" or not ok else "right folder"] += 1
    if args.rows:
        with open(args.rows, "w") as f:
            for row in rows[:-1]:
                f.write(json.dumps({**row, "truth": truth[Path(row["path"]).name]}) + "\n")
    n_web, n_photo = right["web4", True] + right["web4", False], right["photo", True] + right["photo", False]
    n_out = right["not enrolled", True] + right["not enrolled", False]
    mode = ", ".join(
        filter(
            None,
            [
                "union detector" if args.union else "",
                f"detector {args.detector}" if args.detector else "",
                "after charaid train" if args.train else "",
                "faces only" if args.faces_only else "faces, then whole pictures",
                f"{args.leave_out} not enrolled" if args.leave_out else "",
            ],
        )
    )
    print(f"# charaid sort on web4 + photos ({mode}); {machine()}; {time.strftime('%Y-%m-%d')}\n")
    print(
        f"Enrolled {args.enrol} pictures per character ({enrol_s:.0f} s); "
        f"{'' if train_s is None else f'charaid train {train_s:.0f} s; '}sorted {summary['images']} pictures "
        f"in {summary['seconds']} s ({summary['images_per_second']} images/s; {wall:.0f} s wall with start-up).\n"
    )
    print(
        table(
            ["pictures", "count", "in the right folder", "share"],
            [
                ["web4 (not enrolled)", n_web, right["web4", True], right["web4", True] / max(1, n_web)],
                ["photos", n_photo, right["photo", True], right["photo", True] / max(1, n_photo)],
            ]
            + (
                [
                    [
                        f"{args.leave_out} (never enrolled: kept out of named folders)",
                        n_out,
                        right["not enrolled", True],
                        right["not enrolled", True] / max(1, n_out),
                    ]
                ]
                if n_out
                else []
            ),
        )
    )
    print(
        "\nWhere the others went: "
        + "; ".join(f"{k[0]} -> {k[1]}: {v}" for k, v in sorted(where.items()) if k[1] != "right folder")
    )
    print(
        f"web4 pictures in _maybe/<their own character>: {maybe[True]} (they count as not right above). "
        f"Placed by the whole picture (no face named): web4 {by['web4', True] + by['web4', False]} "
        f"({by['web4', True]} right), photos {by['photo', True] + by['photo', False]}."
    )


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()

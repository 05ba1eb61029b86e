"""How long `charaid train` takes on the gallery size issue 3 names: 10 characters x 50 faces.

    python benchmarks/train_time.py [--per-character 50]

The first --per-character faces (by file name) of each moeimouto10 training character are
enrolled with `charaid enroll --no-detect`; then `charaid train` runs with its defaults (the
calibration run included) and is timed as a user would see it, start-up and re-embedding of
the gallery included. The moeimouto10 test faces are then recognised with the tuned model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import cli, machine, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-character", type=int, default=50)
    args = ap.parse_args()
    datasets.require()
    train, test = datasets.moeimouto10()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per: dict[str, list[Path]] = {}
        for c, p in train:
            per.setdefault(c, []).append(p)
        for c, ps in per.items():
            (tmp / "faces" / c).mkdir(parents=True)
            for p in sorted(ps, key=lambda p: p.name)[: args.per_character]:
                shutil.copy(p, tmp / "faces" / c / p.name)
        g = str(tmp / "g.sqlite")
        cli("enroll", str(tmp / "faces"), "--gallery", g, "--no-detect", "-q")
        t = time.time()
        r = cli("train", "--gallery", g, "-q")
        secs = time.time() - t
        tail = r.stderr.strip().splitlines()[-3:]
        test_dir = tmp / "test"
        for c, p in test:
            (test_dir / c).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, test_dir / c / p.name)
        rec = cli("recognize", str(test_dir), "--gallery", g, "--no-detect", "--json", "-q")
        rows = [json.loads(x) for x in rec.stdout.splitlines()]
        top1 = sum(Path(x["path"]).parent.name == x["faces"][0]["top"][0]["character"] for x in rows) / len(rows)
        named = sum(Path(x["path"]).parent.name == x["faces"][0]["character"] for x in rows) / len(rows)
    print(f"# charaid train time; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    print(
        table(
            ["gallery", "charaid train (wall, defaults)", "moe test top-1 after", "moe test named right (threshold applied)"],
            [[f"{len(per)} characters x {args.per_character} faces", f"{secs:.0f} s ({secs / 60:.1f} min)", top1, named]],
        )
    )
    print("\ncharaid train said: " + " / ".join(tail))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()

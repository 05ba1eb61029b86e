"""Enrolling a folder of 450 face crops (15 characters x 30) with the default settings, as a new
user does: `charaid enroll DIR --no-detect` and `charaid enroll DIR`, whole CLI processes.

    python benchmarks/enrol_crops.py [--per 30]

The crops are moeimouto10's train faces (10 characters, ~160 px) and danbooru6's (the first 5
characters, 96 px), linked into a temporary DIR/<character>/ tree (nothing is copied into the
repository). Reports wall time, faces enrolled and files that failed. It exists because such a
run once never finished: animeface-2009's C code, searching a crop for its colours, ran for
ever on one crop; every native call on a picture now has a time limit (charaid.watchdog).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per", type=int, default=30, help="crops per character (default 30)")
    args = ap.parse_args()
    tr, _ = datasets.moeimouto10()
    items = tr + [(c, p) for c, p in datasets.danbooru6() if c in sorted({c for c, _ in datasets.danbooru6()})[:5]]
    tmp = Path(tempfile.mkdtemp())
    root = tmp / "crops"
    counts: dict[str, int] = {}
    for c, p in items:
        if counts.get(c, 0) >= args.per:
            continue
        counts[c] = counts.get(c, 0) + 1
        (root / c).mkdir(parents=True, exist_ok=True)
        (root / c / f"{counts[c]:03d}{p.suffix}").symlink_to(p)
    n = sum(counts.values())
    print(f"# enrolling {n} face crops ({len(counts)} characters); {machine()}; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for label, extra in [("enroll DIR --no-detect", ["--no-detect"]), ("enroll DIR (faces detected in the crops)", [])]:
        g = tmp / f"g{len(rows)}.sqlite"
        t = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "charaid.cli", "enroll", str(root), "-q", "--gallery", str(g), *extra],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        secs = time.perf_counter() - t
        summary = (r.stderr.strip().splitlines() or ["?"])[-1]
        errors = sum(1 for line in r.stderr.splitlines() if "took over" in line or "crashed" in line)
        rows.append([label, n, r.returncode, f"{secs:.1f}", f"{n / secs:.1f}", errors, summary])
    print(table(["command", "crops", "exit", "seconds", "crops/s", "stopped by the time limit", "charaid says"], rows))


if __name__ == "__main__":
    main()

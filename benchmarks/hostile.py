"""Hostile input at scale: the generator of tests/test_hostile.py at 10,000+ entries.

    python benchmarks/hostile.py [--entries 10000] [--timeout 3600]

Writes the entries (truncated and bit-flipped files of every format, 0-byte and random files,
every mode, EXIF orientations, bombs, a FIFO, symlink loops, /dev/zero, odd and non-UTF-8
names; 8% good drawn portraits) into a temporary folder, enrols the three drawn characters
into a new gallery, then runs `charaid recognize --json`, `charaid sort` and `charaid enroll`
(each sub-folder taken as a character) over them. For each run: exit status, tracebacks,
whether it hung (ran past --timeout), stdout lines that are not UTF-8 JSON, bad files not
reported in exactly one stderr line, peak memory of the process and its workers, and files a
second.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import machine, table  # noqa: E402
from hostile_inputs import make_hostile, run_measured  # noqa: E402

from charaid.jobs.synth import CAST, write_training_set  # noqa: E402
from charaid.names import shown  # noqa: E402


def run(tmp: Path, args: list[str], timeout: float) -> dict:
    t = time.time()
    try:
        p, peak = run_measured(tmp, *args, timeout=timeout)
        hung, rc, out, err = False, p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        hung, rc, out, err, peak = True, None, e.stdout or b"", e.stderr or b"", float("nan")
    seconds = time.time() - t
    bad_json = 0
    for line in out.splitlines():
        try:
            json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad_json += 1
    text = err.decode("utf-8", "replace")
    return {
        "rc": rc,
        "hung": hung,
        "tracebacks": text.count("Traceback"),
        "bad_json": bad_json,
        "stderr_lines": text.splitlines(),
        "seconds": seconds,
        "peak_mb": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds a run may take before it counts as hung")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="charaid-hostile-"))
    t = time.time()
    man = make_hostile(tmp / "in", args.entries, seed=0)
    made = time.time() - t
    files = [e for e in man.entries if e.expect != "silent"]
    bad = [e for e in man.entries if e.expect == "bad"]
    gallery = tmp / "g.sqlite"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "charaid.cli",
            "enroll",
            "-q",
            "--gallery",
            str(gallery),
            str(write_training_set(tmp / "train", CAST[:3], per_character=6)),
        ],
        check=True,
        capture_output=True,
    )
    runs = {
        "recognize --json": ["recognize", "--json", "-q", "--gallery", str(gallery), str(man.root)],
        "sort --json": ["sort", "--json", "-q", "--gallery", str(gallery), str(man.root), str(tmp / "sorted")],
        "enroll": ["enroll", "-q", "--gallery", str(tmp / "g2.sqlite"), str(man.root)],
    }
    rows = []
    for name, cmd in runs.items():
        r = run(tmp, cmd, args.timeout)
        unreported = sum(1 for e in bad if sum(shown(str(e.path)) in ln for ln in r["stderr_lines"]) != 1)
        rows.append(
            [
                name,
                len(files),
                r["rc"],
                "yes" if r["hung"] else "no",
                r["tracebacks"],
                r["bad_json"],
                f"{unreported} of {len(bad)}",
                len(r["stderr_lines"]),
                f"{r['peak_mb']:.0f}",
                f"{r['seconds']:.0f}",
                f"{len(files) / r['seconds']:.1f}",
            ]
        )
        print(f"{name}: done in {r['seconds']:.0f} s", file=sys.stderr)
    print(
        f"# hostile input at scale: {machine()}; {time.strftime('%Y-%m-%d')}; {len(man.entries)} entries "
        f"({len(bad)} certainly bad, {len(man.of('good'))} good portraits, the rest may or may not decode); "
        f"written in {made:.0f} s\n"
    )
    print(
        table(
            [
                "run",
                "files",
                "exit",
                "hung",
                "tracebacks",
                "stdout lines not UTF-8 JSON",
                "bad files not in exactly 1 line",
                "stderr lines",
                "peak MB",
                "seconds",
                "files/s",
            ],
            rows,
        )
    )
    print(f"\nmemory of this script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; inputs in {tmp}")


if __name__ == "__main__":
    main()

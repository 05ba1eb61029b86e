"""Rerun the product's benchmarks and rewrite their tables in docs/benchmarks.md.

    python -m benchmarks.report                 # the quick set (917 s on 2 cores from cold caches, 2026-11-29)
    python -m benchmarks.report --only speed,detection
    python -m benchmarks.report --list          # every section, its command and whether it is quick

docs/benchmarks.md holds one block per section between ``<!-- report:NAME -->`` and
``<!-- /report:NAME -->``. A rerun replaces that block with the command, the machine, the date,
the run's seconds and what the script printed; the prose around the blocks, and every section
not rerun, stay as they are. Sections that need more than the quick set's time (training runs,
the self-supervised embedder's weights, 10,000 hostile files) are rerun with ``--only``.

Run it alone on the machine: speed figures measured beside another job are not today's numbers.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


@dataclass(frozen=True)
class Section:
    name: str
    args: tuple[str, ...]
    #: in the default run (the set that fits in 30 minutes: 917 s from cold caches on 2 cores)
    quick: bool
    #: what the rerun needs beyond ../shared/data, if anything
    needs: str = ""
    #: the file of docs/ that holds its block: experiments.md for measurements that chose a
    #: setting or a library and need no rerun with the product
    doc: str = "benchmarks.md"

    @property
    def command(self) -> str:
        return "python " + " ".join(self.args)


SECTIONS = (
    Section("accuracy", ("benchmarks/accuracy.py", "--method", "hybrid"), True),
    Section("kshot", ("benchmarks/kshot.py",), True),
    Section("detection", ("benchmarks/detection.py", "--settings", "facedet,facedet@1,facedet@2,retry"), True),
    Section("closeups", ("benchmarks/closeups.py", "--settings", "facedet,facedet@1,retry"), True),
    Section("photo_check", ("benchmarks/photo_check.py",), True),
    Section("detector_runtime", ("benchmarks/detector_runtime.py",), True, doc="experiments.md"),
    Section("speed", ("benchmarks/speed.py",), True),
    Section("speed_pairs", ("benchmarks/speed.py", "--pairs", "5"), False),
    Section("sort_web4", ("benchmarks/sort_web4.py",), True),
    Section("multi", ("benchmarks/multi.py",), True),
    Section("decisions", ("benchmarks/decisions.py", "--sizes"), True),
    Section("sort_web4_leave_out", ("benchmarks/sort_web4.py", "--leave-out", "Hua_Cheng"), True),
    Section("label_groups", ("benchmarks/label_groups.py",), True),
    Section("discover", ("benchmarks/discover.py",), True),
    Section("search_character", ("benchmarks/search_character.py",), True),
    Section("serve_load", ("benchmarks/serve_load.py", "--clients", "8", "--seconds", "60", "--single-seconds", "30"), True),
    Section("enrol_crops", ("benchmarks/enrol_crops.py",), False, doc="experiments.md"),
    Section("train_time", ("benchmarks/train_time.py", "--per-character", "50"), False, doc="experiments.md"),
    Section("finetune", ("benchmarks/finetune.py", "--parts", "closed"), False, doc="experiments.md"),
    Section("index_search", ("benchmarks/index_search.py",), False, doc="experiments.md"),
    Section(
        "ann", ("benchmarks/ann.py", "--n", "1000000", "--backends", "ivf", "--nprobe", "1,4,16,64"), False, doc="experiments.md"
    ),
    Section("hostile", ("benchmarks/hostile.py", "--entries", "10000"), False),
)
BY_NAME = {s.name: s for s in SECTIONS}


def block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- report:{re.escape(name)} -->\n)(.*?)(<!-- /report:{re.escape(name)} -->)", re.S)


def run(section: Section) -> str:
    """Run one benchmark; the Markdown that goes between its markers."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, *section.args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{section.command} failed with exit {proc.returncode}: {tail[0]}")
    # a script's title line repeats what the block's first line says; its other headings sit
    # under this section's (#### and below)
    out = re.sub(r"^# .*\n?", "", proc.stdout.strip(), flags=re.M).strip()
    out = re.sub(r"^(#{2,3}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", out, flags=re.M)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return f"`{section.command}`: {machine()}; {time.strftime('%Y-%m-%d')}; {seconds:.0f} s.\n\n{out}\n"


def rewrite(text: str, name: str, body: str) -> str:
    pat = block(name)
    if not pat.search(text):
        raise KeyError(f"docs/benchmarks.md has no <!-- report:{name} --> block")
    return pat.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma-separated sections (of: {', '.join(BY_NAME)})")
    ap.add_argument("--list", action="store_true", help="list the sections and exit")
    ap.add_argument("--doc", type=Path, help="the file to rewrite (default: the section's, docs/benchmarks.md for most)")
    args = ap.parse_args(argv)
    if args.list:
        for s in SECTIONS:
            print(f"{s.name:18} {'quick' if s.quick else '     '}  {s.command}" + (f"   [needs {s.needs}]" if s.needs else ""))
        return 0
    if args.only:
        unknown = [n for n in args.only.split(",") if n not in BY_NAME]
        if unknown:
            ap.error(f"unknown section(s) {', '.join(unknown)}; choose from: {', '.join(BY_NAME)}")
        chosen = [BY_NAME[n] for n in args.only.split(",")]
    else:
        chosen = [s for s in SECTIONS if s.quick]
    failed = []
    for s in chosen:
        print(f"[report] {s.command}", file=sys.stderr, flush=True)
        try:
            body = run(s)
        except RuntimeError as e:  # one broken benchmark must not cost the others' tables
            print(f"[report] {e}", file=sys.stderr)
            failed.append(s.name)
            continue
        doc = args.doc or DOC.parent / s.doc
        text = doc.read_text(encoding="utf-8")
        doc.write_text(rewrite(text, s.name, body), encoding="utf-8")  # after each: an interrupted report keeps what ran
    if failed:
        print(f"[report] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

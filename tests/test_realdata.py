"""End to end on real illustrations from ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_cli

CHARS = ["nishikino_maki", "sakurauchi_riko", "takimoto_hifumi"]


@pytest.mark.slow
def test_enrol_face_crops_then_name_full_illustrations(shared, tmp_path):
    train = tmp_path / "train"
    for c in CHARS:
        (train / c).mkdir(parents=True)
        for i in range(1, 16):  # symbolic links: the images stay where they are, never copied
            os.symlink(shared / "tla" / "faces" / c / f"{i}.jpg", train / c / f"{i}.jpg")
    g = tmp_path / "g.sqlite"
    r = run_cli("enroll", str(train), "--no-detect", "--gallery", str(g), "-q")
    # takimoto_hifumi 3.jpg and 11.jpg are the same file: enrolled once, reported as a duplicate
    assert r.returncode == 0 and "enrolled 44 faces of 3 characters" in r.stdout and "1 duplicates" in r.stdout, (
        r.stdout + r.stderr
    )
    tests = [p for c in CHARS for p in sorted((shared / "tla" / "raw" / c).glob("3[3-4].*"))]
    r = run_cli("recognize", *map(str, tests), "--gallery", str(g), "--json", "-q")
    assert r.returncode == 0, r.stderr
    right = 0
    for line in r.stdout.splitlines():
        obj = json.loads(line)
        truth = obj["path"].split("/")[-2]
        if obj["faces"]:
            biggest = max(obj["faces"], key=lambda f: f["box"][2] * f["box"][3])
            right += biggest["top"][0]["character"] == truth
    assert right >= len(tests) - 1, r.stdout

"""The CLI as a new user meets it (issue 29, item 6): what a missing store, an impossible
threshold, an empty folder, a usage error or a second enrolment get; where summaries and
problems go; the evaluation report; the demo's folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image


def test_search_refuses_a_missing_store(tmp_path, synth_scene):
    r = run_cli("search", str(synth_scene), "--store", str(tmp_path / "nosuch.sqlite"))
    assert r.returncode == 1 and "no face store here" in r.stderr and "charaid index" in r.stderr
    assert not (tmp_path / "nosuch.sqlite").exists(), "a search must not make an empty store"


def test_thresholds_outside_the_score_range_are_refused(gallery_path, synth_scene):
    for bad in ["7", "-0.5", "nan?"]:
        r = run_cli("gallery", "threshold", bad, "--gallery", str(gallery_path))
        assert r.returncode == 1 and ("score range" in r.stderr or "not a number" in r.stderr), (bad, r.stderr)
    r = run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--threshold", "1.5")
    assert r.returncode == 1 and "outside the score range 0 to 1" in r.stderr
    r = run_cli("gallery", "threshold", "0.4", "--gallery", str(gallery_path))
    assert r.returncode == 0 and json.loads(r.stdout)["threshold"] == 0.4


def test_empty_folders_say_there_is_nothing_to_do(gallery_path, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("recognize", str(empty), "--gallery", str(gallery_path))
    assert r.returncode == 2 and "no pictures here" in r.stderr and r.stdout == ""
    r = run_cli("sort", str(empty), str(tmp_path / "out"), "--gallery", str(gallery_path))
    assert r.returncode == 2 and "nothing to sort" in r.stderr
    assert not (tmp_path / "out" / ".charaid").exists(), "no run is recorded for nothing"


def test_usage_errors_exit_1_as_the_readme_says():
    r = run_cli("recognize", "--no-such-option", "x.jpg")
    assert r.returncode == 1 and "usage:" in r.stderr
    assert run_cli("--version").returncode == 0


@pytest.mark.slow
def test_stdout_has_results_and_summaries_stderr_the_problems(gallery_path, synth_train, synth_scene, tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    shutil.copy(synth_scene, pics / "scene.png")
    (pics / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    r = run_cli("recognize", str(pics), "--gallery", str(gallery_path), "-q")
    assert r.returncode == 2
    assert "broken.png" not in r.stdout and r.stderr.count("broken.png") == 1, "an error is said once, on stderr"
    assert "scene.png: 3 faces" in r.stdout
    s = run_cli("sort", str(pics), str(tmp_path / "sorted"), "--gallery", str(gallery_path), "-q")
    assert "sorted 2 images" in s.stdout and "akane: 1" in s.stdout, s.stdout + s.stderr
    g = tmp_path / "g.sqlite"
    e = run_cli("enroll", str(synth_train), "--gallery", str(g), "-q")
    assert e.returncode == 0 and e.stdout.startswith("enrolled "), e.stdout + e.stderr


def test_detect_counts_one_face_in_the_singular(synth_train):
    r = run_cli("detect", str(synth_train / "akane" / "00.png"), "-q")
    assert r.returncode == 0 and ": 1 face [" in r.stdout, r.stdout


@pytest.mark.slow
def test_enrolling_an_unchanged_folder_again_reads_no_file(synth_train, tmp_path):
    """The second run skips each file by its size and modification time: a file whose content
    changed behind an unchanged stamp is not even read, and no warning is repeated."""
    folder = tmp_path / "chars"
    shutil.copytree(synth_train, folder)
    Image.new("RGB", (200, 200), (250, 250, 250)).save(folder / "akane" / "blank.png")  # no face
    g = tmp_path / "g.sqlite"
    first = run_cli("enroll", str(folder), "--gallery", str(g), "-q")
    assert first.returncode == 0 and "blank.png: no face found" in first.stderr
    victim = folder / "sora" / "00.png"
    st = victim.stat()
    victim.write_bytes(b"\x00" * st.st_size)  # same size, unreadable content...
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the same modification time
    again = run_cli("enroll", str(folder), "--gallery", str(g), "-q")
    assert again.returncode == 0, again.stderr
    assert "no face found" not in again.stderr and "00.png" not in again.stderr, again.stderr
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    assert f"({n} already there" in again.stdout, again.stdout
    (folder / "akane" / "blank.png").touch()  # a changed file is read again
    third = run_cli("enroll", str(folder), "--gallery", str(g), "-q")
    assert "blank.png: no face found" in third.stderr


def test_evaluate_report_has_a_title_the_misnamed_and_the_dropped(synth_train, tmp_path):
    data = tmp_path / "set"
    shutil.copytree(synth_train, data)
    Image.new("RGB", (200, 200), (250, 250, 250)).save(data / "akane" / "blank.png")
    r = run_cli("evaluate", str(data), "--folds", "2", "--report", str(tmp_path / "rep"), "-q")
    assert r.returncode == 2, r.stderr  # a picture was left out
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.startswith(f"# charaid evaluate {data}, 2-fold: hybrid, ")
    assert "## Misnamed pictures (" in md and "## Pictures left out (1)" in md and "blank.png: no face found" in md
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["dropped"] == [{"path": str(data / "akane" / "blank.png"), "reason": "no face found"}]
    assert all(set(m) == {"path", "truth", "guess", "score"} and m["truth"] != m["guess"] for m in rep["misnamed"])


@pytest.mark.slow
def test_the_demo_writes_into_the_data_folder_not_the_current_one(tmp_path):
    work, data = tmp_path / "checkout", tmp_path / "data"
    work.mkdir()
    env = dict(os.environ, CHARAID_GALLERY=str(data / "gallery.sqlite"))
    r = subprocess.run([sys.executable, "-m", "charaid.cli", "demo"], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert list(work.iterdir()) == [], "the demo left files in the current folder"
    assert (data / "demo" / "scene.annotated.png").is_file() and str(data / "demo") in r.stdout + r.stderr
    assert np.asarray(Image.open(data / "demo" / "scene.annotated.png")).std() > 0


def test_the_progress_bar_starts_when_the_models_are_loaded(gallery_path, synth_train):
    """The bar times pictures, not start-up: one small picture shows 00:00 elapsed, where
    loading the detector and the CNN alone takes a second or more."""
    import re

    r = run_cli("recognize", str(synth_train / "akane" / "00.png"), "--gallery", str(gallery_path), "--json")
    assert r.returncode == 0, r.stderr
    elapsed = re.findall(r"\| 1/1 \[(\d\d:\d\d)<", r.stderr)
    assert elapsed and elapsed[-1] == "00:00", r.stderr[-500:]

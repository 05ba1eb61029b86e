"""charaid sort: layout, never overwriting, incremental runs, and surviving SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import run_cli

from charaid.jobs.sort import decide, folder_name, free_name
from charaid.models.detectors import Box
from charaid.pipeline.match import Candidate
from charaid.recognition.recognize import FaceResult, ImageResult


def face(name, score):
    return FaceResult(Box(0, 0, 10, 10), 0.9, name, score, [Candidate(name or "x", score)])


def test_decide_layout():
    assert decide(ImageResult("a", []), "copy-each", 0.5) == ["_no_face"]
    assert decide(ImageResult("a", [face(None, 0.3)]), "copy-each", 0.5) == ["_unknown"]
    assert decide(ImageResult("a", [face("ann", 0.4)]), "copy-each", 0.5) == ["_unknown"]  # below --min-score
    two = ImageResult("a", [face("bob", 0.7), face("ann", 0.9), face("ann", 0.6)])
    assert decide(two, "copy-each", 0.5) == ["ann", "bob"]
    assert decide(two, "primary", 0.5) == ["ann"]
    assert decide(two, "group", 0.5) == ["_group/ann+bob"]
    assert decide(ImageResult("a", [face("ann", 0.4)]), "copy-each") == ["ann"]  # the decision named it: no raw floor


def test_decide_files_a_probable_face_under_maybe():
    maybe = FaceResult(Box(0, 0, 10, 10), 0.9, None, 0.4, [Candidate("ann", 0.4)], probable="ann", probability=0.4)
    likelier = FaceResult(Box(0, 0, 10, 10), 0.9, None, 0.45, [Candidate("bob", 0.45)], probable="bob", probability=0.45)
    assert decide(ImageResult("a", [maybe]), "copy-each") == ["_maybe/ann"]
    assert decide(ImageResult("a", [maybe, likelier]), "copy-each") == ["_maybe/bob"]
    assert decide(ImageResult("a", [maybe, face("cid", 0.9)]), "copy-each") == ["cid"], "a named face comes first"


def test_folder_names_are_safe():
    assert folder_name("../../etc") == "_.._etc" and folder_name("..") == "_unnamed"
    assert "/" not in folder_name("a/b") and not folder_name(".hidden").startswith(".")
    assert folder_name("  ") == "_unnamed" and folder_name("アスナ") == "アスナ"


def test_free_name_never_overwrites(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"one")
    h_two = hashlib.sha256(b"two").hexdigest()
    p, dup = free_name(tmp_path, "a.jpg", h_two)
    assert p.name == "a (1).jpg" and not dup
    p, dup = free_name(tmp_path, "a.jpg", hashlib.sha256(b"one").hexdigest())
    assert p.name == "a.jpg" and dup


def tree_hashes(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".charaid" not in p.parts:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def synth_src(tmp_path, synth_scene):
    """Drawn pictures: portraits of two enrolled characters, one unknown, a group, a blank, a bad file."""
    from PIL import Image

    from charaid.jobs.synth import CAST, portrait

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for k in range(2):
        portrait(CAST[0], 100 + k).save(src / f"akane_{k}.png")
        portrait(CAST[1], 100 + k).save(src / "sub" / f"sora_{k}.png")
    portrait(CAST[3], 100).save(src / "midori.png")  # never enrolled
    shutil.copy(synth_scene, src / "group.png")  # akane, midori, sora
    Image.new("RGB", (200, 200), (240, 240, 240)).save(src / "blank.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return src


@pytest.mark.slow
def test_sort_copy_layout_incremental_and_undo(gallery_path, synth_src, tmp_path):
    dst = tmp_path / "dst"
    before = tree_hashes(synth_src)
    r = run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--json", "-q")
    assert r.returncode == 2, r.stderr  # the broken file
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    summary = lines[-1]["summary"]
    got = {Path(p).relative_to(dst).as_posix() for p in map(str, dst.rglob("*.png"))}
    assert got == {
        "akane/akane_0.png",
        "akane/akane_1.png",
        "sora/sora_0.png",
        "sora/sora_1.png",
        "akane/group.png",
        "sora/group.png",  # copy-each: a group picture goes to every named character
        "_unknown/midori.png",
        "_no_face/blank.png",
    }
    assert summary["errors"] == 1 and summary["copied"] == 8 and tree_hashes(synth_src) == before
    broken = [l for l in lines[:-1] if l.get("path", "").endswith("broken.jpg")][0]
    assert broken["folders"] == [] and broken["error"]
    # second run over the unchanged SRC: nothing to do, not even recognition
    r = run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--json", "-q")
    s2 = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert s2["unchanged"] == 7 and s2["images"] == 1 and s2["copied"] == 0  # only the broken file is retried
    # a new file is picked up alone
    shutil.copy(synth_src / "akane_0.png", synth_src / "akane_copy.png")
    r = run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--json", "-q")
    s3 = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert s3["images"] == 2 and s3["copied"] == 1 and (dst / "akane" / "akane_copy.png").exists()
    r = run_cli("sort", "--list-runs", str(dst), "--json")
    runs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [x["run"] for x in runs] == [1, 2, 3] and all(x["status"] == "done" for x in runs)
    assert run_cli("sort", "--undo", "3", str(dst)).returncode == 0
    assert not (dst / "akane" / "akane_copy.png").exists() and (dst / "akane" / "akane_0.png").exists()
    assert run_cli("sort", "--undo", "1", str(dst)).returncode == 0
    assert tree_hashes(dst) == {}  # copies removed, empty folders too


def test_dry_run_touches_nothing(gallery_path, synth_src, tmp_path):
    dst = tmp_path / "dst"
    r = run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--dry-run", "-q")
    assert "akane_0.png  ->  akane" in r.stdout and "group.png  ->  akane, sora" in r.stdout
    assert not dst.exists()


def test_group_and_primary_and_clashes(gallery_path, synth_src, tmp_path):
    dst = tmp_path / "dst"
    (dst / "akane").mkdir(parents=True)
    (dst / "akane" / "akane_0.png").write_bytes(b"another file with the same name")
    shutil.copy(synth_src / "akane_1.png", dst / "akane" / "akane_1.png")  # identical content
    r = run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--multi", "group", "--json", "-q")
    s = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert (dst / "_group" / "akane+sora" / "group.png").exists()
    assert (dst / "akane" / "akane_0 (1).png").exists()  # clash: suffix, the other file kept
    assert (dst / "akane" / "akane_0.png").read_bytes() == b"another file with the same name"
    assert s["duplicates"] == 1 and not (dst / "akane" / "akane_1 (1).png").exists()


@pytest.mark.slow
def test_symlinks_are_not_followed_out_of_src(gallery_path, synth_src, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(synth_src / "akane_0.png", outside)
    (synth_src / "link.png").symlink_to(outside)
    dst = tmp_path / "dst"
    r = run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--move", "-q")
    assert "link.png: symbolic link, not followed" in r.stderr
    assert outside.exists() and (synth_src / "link.png").is_symlink()


def _wait_for_moment(proc, dst: Path, rng: random.Random) -> bool:
    """Wait for a random moment to kill ``proc``: one kill in four anywhere after start (start-up,
    recognition, journal writes), the others once files are moving, at a random point among the
    moves. False when the process ended first."""
    if rng.random() < 0.25:
        try:
            proc.wait(timeout=rng.uniform(0.2, 8.0))
            return False
        except subprocess.TimeoutExpired:
            return True
    count = len(tree_hashes(dst)) if dst.exists() else 0
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        now = len(tree_hashes(dst)) if dst.exists() else 0
        if now > count:
            time.sleep(rng.uniform(0.0, 1.5))
            return proc.poll() is None
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_sort_move_survives_sigkill(shared, tmp_path):
    """SIGKILL `sort --move` at random moments, at least 20 times, resuming each time: every
    file ends up exactly once, in SRC or DST, with its original bytes, and --undo restores SRC
    exactly. SRC is on another file system when /dev/shm exists, so moves are verified copies."""
    from charaid.jobs.enroll import enroll_items
    from charaid.storage.gallery import Gallery

    gallery = tmp_path / "g.sqlite"
    dan = sorted((shared / "danbooru6").iterdir())
    with Gallery(gallery) as g:  # 3 characters known, 3 not
        enroll_items(g, [(d.name, p) for d in dan[:3] for p in sorted(d.iterdir())[:20]], detect=False)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    src = Path(tempfile.mkdtemp(dir=base)) / "src"
    try:
        for d in dan:  # about 330 real pictures, in two levels of folders
            for p in sorted(d.iterdir())[20:75]:
                (src / d.name[:8]).mkdir(parents=True, exist_ok=True)
                shutil.copy(p, src / d.name[:8] / p.name)
        for p in sorted((shared / "moeimouto10" / "test").rglob("*.png"))[:30]:
            (src / "moe").mkdir(exist_ok=True)
            shutil.copy(p, src / "moe" / p.name)
        original = tree_hashes(src)
        dst = tmp_path / "dst"
        cmd = [sys.executable, "-m", "charaid.cli", "sort", "--gallery", str(gallery), "-q", "--workers", "0"]
        rng = random.Random(7)
        kills = 0
        first = True
        progress = []  # files in DST at each kill: the kills must land mid-sort, not only at start-up
        while True:
            args = [str(src), str(dst), "--move", "--multi", "primary"] if first else ["--resume", str(dst)]
            errf = open(tmp_path / "stderr.txt", "w+")
            proc = subprocess.Popen(cmd + args, stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)
            if kills < 20 and _wait_for_moment(proc, dst, rng):
                os.killpg(proc.pid, signal.SIGKILL)  # the workers too
                proc.wait()
                kills += 1
                progress.append(len(tree_hashes(dst)) if dst.exists() else 0)
                first = first and not (dst / ".charaid" / "journal.sqlite").exists()
                continue
            proc.wait(timeout=600)
            errf.seek(0)
            assert proc.returncode in (0, 2), errf.read()
            if kills >= 20:
                break
            # finished before 20 kills: undo and start over, killing sooner
            assert run_cli("sort", "--undo", "1", str(dst)).returncode == 0
            shutil.rmtree(dst)
            first = True
        # every source file exists exactly once, in SRC or DST, with its original bytes
        now_src = tree_hashes(src)
        in_dst = [h for h in tree_hashes(dst).values()]
        assert not any(".charaid-tmp-" in p for p in map(str, dst.rglob("*")))
        assert all(original[rel] == h for rel, h in now_src.items())  # what stayed is untouched
        assert sorted(list(now_src.values()) + in_dst) == sorted(original.values())  # each file once
        assert kills >= 20
        assert len({n for n in progress if 0 < n < len(original)}) >= 5, progress
        runs = json.loads(run_cli("sort", "--list-runs", str(dst), "--json").stdout.splitlines()[-1])
        r = run_cli("sort", "--undo", str(runs["run"]), str(dst))
        assert r.returncode == 0, r.stderr
        assert tree_hashes(src) == original  # same paths, same bytes
    finally:
        shutil.rmtree(src.parent, ignore_errors=True)


@pytest.mark.slow
def test_a_sorted_and_checked_folder_can_be_enrolled(gallery_path, synth_src, tmp_path):
    """Sort, put right what sort could not know, enrol the result: sort's own folders are no characters."""
    dst = tmp_path / "dst"
    run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "--multi", "group", "-q")
    assert {p.name for p in dst.iterdir()} >= {"akane", "sora", "_unknown", "_no_face", "_group"}
    (dst / "midori").mkdir()
    shutil.move(dst / "_unknown" / "midori.png", dst / "midori" / "midori.png")  # the user names the unknown
    r = run_cli("enroll", str(dst), "--gallery", str(gallery_path), "-q")
    assert r.returncode == 0, r.stderr
    for skipped in ("_unknown", "_no_face", "_group"):
        assert f"{dst / skipped}: a folder of charaid sort, not a character; skipped" in r.stderr
    r = run_cli("gallery", "list", "--json", "--gallery", str(gallery_path))
    names = [json.loads(l)["character"] for l in r.stdout.splitlines()]
    assert names == ["akane", "hikari", "midori", "sora"]
    r = run_cli("evaluate", str(dst), "--folds", "2", "-q")
    assert f"{dst / '_group'}: a folder of charaid sort" in r.stderr


@pytest.mark.slow
def test_unknowns_sorted_again_once_the_gallery_knows_them(gallery_path, synth_src, tmp_path):
    """After enrolling the character sort did not know, `sort DST/_unknown DST --move` files its
    pictures; any other folder of DST is refused, and the run can be undone like any other."""
    from charaid.jobs.synth import CAST, portrait

    dst = tmp_path / "dst"
    run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "-q")
    assert (dst / "_unknown" / "midori.png").exists()
    r = run_cli("sort", str(dst / "_unknown"), str(dst), "--gallery", str(gallery_path), "-q")
    assert r.returncode == 1 and "add --move" in r.stderr
    r = run_cli("sort", str(dst / "akane"), str(dst), "--move", "--gallery", str(gallery_path), "-q")
    assert r.returncode == 1 and "sort only sorts its own _unknown, _no_face and _maybe folders again" in r.stderr
    before = tree_hashes(dst)
    r = run_cli("sort", str(dst / "_no_face"), str(dst), "--move", "--gallery", str(gallery_path), "-q")
    assert r.returncode == 0 and tree_hashes(dst) == before  # still no face: the blank picture stays
    more = tmp_path / "more" / "midori"
    more.mkdir(parents=True)
    for k in range(6):
        portrait(CAST[3], k).save(more / f"{k}.png")
    assert run_cli("enroll", str(more.parent), "--gallery", str(gallery_path), "-q").returncode == 0
    r = run_cli("sort", str(dst / "_unknown"), str(dst), "--move", "--gallery", str(gallery_path), "--json", "-q")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["moved"] == 1 and summary["folders"] == {"midori": 1}
    assert (dst / "midori" / "midori.png").exists() and not (dst / "_unknown" / "midori.png").exists()
    assert run_cli("sort", "--undo", str(summary["run"]), str(dst)).returncode == 0
    assert tree_hashes(dst) == before


@pytest.mark.slow
def test_a_group_picture_in_two_folders_gives_each_its_own_face(gallery_path, synth_src, tmp_path):
    """sort's default copy-each puts the group picture under akane and sora; enrolling that
    folder gives each of them the face most like them (akane is left, sora right), not the
    largest face twice, and a second enrolment does nothing."""
    from charaid.storage.gallery import Gallery

    dst = tmp_path / "dst"
    run_cli("sort", str(synth_src), str(dst), "--gallery", str(gallery_path), "-q")
    assert (dst / "akane" / "group.png").exists() and (dst / "sora" / "group.png").exists()
    r = run_cli("enroll", str(dst), "--gallery", str(gallery_path), "-q")
    assert r.returncode == 0, r.stderr
    h = hashlib.sha256((dst / "akane" / "group.png").read_bytes()).hexdigest()
    with Gallery(gallery_path) as g:
        faces = dict(g.content_faces(h))
        pictures = g.db.execute("SELECT count(*) FROM pictures WHERE content_hash = ?", (h,)).fetchone()[0]
    assert set(faces) == {"akane", "sora"}
    assert faces["akane"][0] + faces["akane"][2] <= faces["sora"][0]  # akane's face lies left of sora's
    assert pictures == 0  # a picture of several characters is no character's look
    r = run_cli("enroll", str(dst), "--gallery", str(gallery_path), "-q")
    assert r.returncode == 0 and "enrolled 0 faces" in r.stdout, r.stdout + r.stderr

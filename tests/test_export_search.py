"""``charaid export`` (a character's training set, kohya's layout) from a gallery and from a face
store, and ``charaid search --character`` over the store."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from PIL import Image


def test_export_kohya_layout_from_the_gallery(gallery_path, tmp_path):
    out = tmp_path / "lora"
    r = run_cli(
        "export", "akane", str(out), "--gallery", str(gallery_path), "--size", "256", "--tags", "red hair, school uniform"
    )
    assert r.returncode == 0, r.stderr
    folder = out / "10_akane 1girl"
    images = sorted(folder.glob("*.png"))
    assert len(images) == 6 and all(Image.open(p).size == (256, 256) for p in images)
    for p in images:
        assert p.with_suffix(".txt").read_text(encoding="utf-8") == "akane, 1girl, red hair, school uniform\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["files"]) == 6 and all(f["source"] and len(f["box"]) == 4 for f in manifest["files"])
    again = run_cli("export", "akane", str(out), "--gallery", str(gallery_path), "--size", "256")
    assert again.returncode == 0 and "0 faces" in again.stdout and "6 duplicates" in again.stdout
    pics = run_cli(
        "export", "sora", str(tmp_path / "plain"), "--gallery", str(gallery_path), "--what", "pictures", "--format", "folder"
    )
    assert pics.returncode == 0 and len(list((tmp_path / "plain").glob("*.png"))) == 6
    assert not list((tmp_path / "plain").glob("*.txt"))
    bad = run_cli("export", "nobody", str(tmp_path / "x"), "--gallery", str(gallery_path))
    assert bad.returncode == 1 and "no character named 'nobody'" in bad.stderr


@pytest.mark.slow
def test_search_character_and_export_from_the_face_store(gallery_path, synth_train, synth_scene, tmp_path):
    store = tmp_path / "faces.sqlite"
    r = run_cli("index", str(synth_train), str(synth_scene), "--store", str(store), "-q", "--workers", "0")
    assert r.returncode == 0, r.stderr
    s = run_cli("search", "--character", "hikari", "--store", str(store), "--gallery", str(gallery_path), "--json")
    assert s.returncode == 0, s.stderr
    found = [json.loads(line) for line in s.stdout.splitlines()]
    paths = {f["path"] for f in found}
    hikari = {str(p) for p in (synth_train / "hikari").iterdir()}
    assert len(paths & hikari) >= 5, found  # her own pictures (the gallery was enrolled from them)
    assert not paths & {str(p) for p in (synth_train / "akane").iterdir()}, "no other character's picture"
    assert all(0 <= f["score"] <= 1 and len(f["box"]) == 4 for f in found)
    e = run_cli("export", "hikari", str(tmp_path / "from-store"), "--store", str(store), "--gallery", str(gallery_path))
    assert e.returncode == 0, e.stderr
    assert len(list((tmp_path / "from-store" / "10_hikari 1girl").glob("*.txt"))) == len(paths)
    missing = run_cli("search", "--character", "hikari", "--store", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 1 and "no face store here" in missing.stderr

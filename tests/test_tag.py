"""``charaid tag``: names and face regions into XMP sidecars, read back by exiftool (Debian's
libimage-exiftool-perl, which .ci/run installs), a foreign field kept, the pictures untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest
from conftest import run_cli
from PIL import Image

from charaid.storage.xmp import Region, merge, read_names, sidecar_path

FOREIGN = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Rating="4">
<dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"""


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _exiftool(*paths) -> list[dict]:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool not found: apt install libimage-exiftool-perl (.ci/run does)")
    out = subprocess.run(
        ["exiftool", "-j", "-struct", "-RegionInfo", "-RegionInfoMP", "-Subject", "-PersonInImage", "-Rating", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_merge_replaces_only_its_own_regions_and_names():
    first = merge(FOREIGN, (1000, 500), [Region("路飞", (100, 50, 200, 100))])
    again = merge(first, (1000, 500), [Region("アスナ", (10, 10, 50, 50)), Region(None, (500, 0, 40, 40))])
    assert read_names(again) == ["アスナ"]
    assert 'Rating="4"' in again and "holiday" in again and "路飞" not in again
    assert merge(again, (1000, 500), [Region("アスナ", (10, 10, 50, 50)), Region(None, (500, 0, 40, 40))]) == again


def test_tag_writes_undoes_and_dry_runs_on_drawn_pictures(gallery_path, synth_scene, tmp_path):
    pic = tmp_path / "scene.png"
    shutil.copy(synth_scene, pic)
    env = {"CHARAID_GALLERY": str(gallery_path)}
    dry = run_cli("tag", str(pic), "--dry-run", "-q", env=env)
    assert dry.returncode == 0, dry.stderr
    row = json.loads(dry.stdout.splitlines()[0])
    assert sorted(row["names"]) == ["akane", "sora"] and not sidecar_path(pic).exists(), "a dry run writes nothing"
    r = run_cli("tag", str(pic), "-q", env=env)
    assert r.returncode == 0 and "undo: charaid tag --undo " in r.stdout, r.stdout + r.stderr
    side = sidecar_path(pic)
    assert side.name == "scene.png.xmp" and sorted(read_names(side.read_text())) == ["akane", "sora"]
    run = int(r.stdout.rsplit("--undo ", 1)[1].split()[0])
    u = run_cli("tag", "--undo", str(run), env=env)
    assert u.returncode == 0 and not side.exists(), u.stdout + u.stderr
    r = run_cli("tag", str(pic), "-q", env=env)
    side.write_text(side.read_text().replace("</rdf:RDF>", "<!-- the user's edit --></rdf:RDF>"))
    run = int(r.stdout.rsplit("--undo ", 1)[1].split()[0])
    u = run_cli("tag", "--undo", str(run), env=env)
    assert u.returncode == 2 and "changed since charaid wrote it" in u.stderr and side.exists(), "an edited sidecar is left alone"


@pytest.mark.slow
def test_exiftool_reads_back_names_and_regions_on_real_pictures(shared, tmp_path):
    raw = shared / "tla" / "raw"
    enrol = tmp_path / "enrol"
    pics = tmp_path / "pics"
    pics.mkdir()
    for folder in sorted(raw.iterdir()):
        files = sorted(folder.glob("*"))
        (enrol / folder.name).mkdir(parents=True)
        for p in files[:6]:
            shutil.copy(p, enrol / folder.name / p.name)
    maki = sorted((raw / "nishikino_maki").glob("*"))[6:]
    jpg = next(p for p in maki if p.suffix == ".jpg")
    png = next(p for p in maki if p.suffix == ".png")
    shutil.copy(jpg, pics / "a.jpg")
    shutil.copy(png, pics / "b.png")
    Image.open(jpg).save(pics / "c.webp", quality=95)
    (pics / "a.jpg.xmp").write_text(FOREIGN)  # the user's own sidecar
    g = tmp_path / "g.sqlite"
    assert run_cli("enroll", str(enrol), "--gallery", str(g), "-q").returncode == 0
    before = {p.name: _sha(p) for p in pics.iterdir() if p.suffix != ".xmp"}
    rec = run_cli("recognize", str(pics), "--gallery", str(g), "--json", "-q")
    boxes = {json.loads(line)["path"]: json.loads(line)["faces"] for line in rec.stdout.splitlines()}
    r = run_cli("tag", str(pics), "--gallery", str(g), "--json", "-q")
    assert r.returncode == 0, r.stderr
    rows = {json.loads(line)["path"]: json.loads(line) for line in r.stdout.splitlines()}
    assert {p.name: _sha(p) for p in pics.iterdir() if p.suffix != ".xmp"} == before, "pictures are byte-identical"
    named = 0
    for path, row in rows.items():
        if not row["names"]:
            continue
        named += 1
        meta = _exiftool(row["sidecar"])[0]
        w, h = Image.open(path).size
        regions = meta["RegionInfo"]["RegionList"]
        assert meta["RegionInfo"]["AppliedToDimensions"] == {"W": w, "H": h, "Unit": "pixel"}
        assert [x["Name"] for x in regions] == row["names"] == [f["character"] for f in boxes[path] if f["character"]]
        for reg, face in zip(regions, [f for f in boxes[path] if f["character"]]):
            x, y, bw, bh = face["box"]  # recognize's box: the same pixels (no reduction at these sizes)
            assert reg["Area"]["X"] == pytest.approx((x + bw / 2) / w, abs=2e-6)
            assert reg["Area"]["Y"] == pytest.approx((y + bh / 2) / h, abs=2e-6)
            assert reg["Area"]["W"] == pytest.approx(bw / w, abs=2e-6) and reg["Area"]["H"] == pytest.approx(bh / h, abs=2e-6)
            assert reg["Type"] == "Face" and reg["Area"]["Unit"] == "normalized"
        assert meta["PersonInImage"] == row["names"] or [meta["PersonInImage"]] == row["names"]
        assert [x["PersonDisplayName"] for x in meta["RegionInfoMP"]["Regions"]] == row["names"]
    assert named >= 2, rows
    kept = _exiftool(pics / "a.jpg.xmp")[0]
    assert kept.get("Rating") == 4 and "holiday" in kept["Subject"], "the user's own fields survive"


@pytest.mark.slow
def test_in_file_writes_the_xmp_inside_keeps_pixels_and_undoes(gallery_path, synth_scene, tmp_path):
    """``--in-file``: the names go inside the JPEG, PNG and WebP (exiftool reads them back), the
    decoded pixels stay identical, the file's own XMP fields survive, and the run is undone."""
    import numpy as np

    _exiftool(synth_scene)  # skips without exiftool
    scene = Image.open(synth_scene).convert("RGB")
    pics = {}
    for ext, kw in ((".jpg", {"quality": 92}), (".png", {}), (".webp", {"lossless": True})):
        p = tmp_path / f"scene{ext}"
        scene.save(p, **kw)
        pics[ext] = p
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-xmp:Rating=3", str(pics[".jpg"])], check=True)
    pixels = {ext: np.asarray(Image.open(p).convert("RGB")) for ext, p in pics.items()}
    env = {"CHARAID_GALLERY": str(gallery_path)}
    r = run_cli("tag", *map(str, pics.values()), "--in-file", "-q", env=env)
    assert r.returncode == 0 and "changed 3 pictures' own XMP" in r.stdout, r.stdout + r.stderr
    assert not list(tmp_path.glob("*.xmp")), "no sidecar with --in-file"
    for ext, p in pics.items():
        meta = _exiftool(p)[0]
        names = sorted(x["Name"] for x in meta["RegionInfo"]["RegionList"])
        assert names == ["akane", "sora"], (ext, meta)
        assert np.array_equal(np.asarray(Image.open(p).convert("RGB")), pixels[ext]), f"{ext}: pixels changed"
    assert _exiftool(pics[".jpg"])[0].get("Rating") == 3, "the file's own XMP field survives"
    run = int(r.stdout.rsplit("--undo ", 1)[1].split()[0])
    u = run_cli("tag", "--undo", str(run), env=env)
    assert u.returncode == 0 and "3 sidecars put back, 0 left" in u.stdout, u.stdout + u.stderr
    for ext, p in pics.items():
        meta = _exiftool(p)[0]
        assert "RegionInfo" not in meta, ext
    assert _exiftool(pics[".jpg"])[0].get("Rating") == 3

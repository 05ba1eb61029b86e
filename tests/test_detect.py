"""Face detection and cropping, on drawn pictures and on real illustrations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from charaid.jobs.synth import CAST, group_picture, portrait
from charaid.models.detectors import AnimeFaceDetector, Box, Face, crop_face, make_detector, nms
from charaid.pipeline.images import load_image


def test_drawn_portrait_gives_one_face_with_landmarks_and_colours():
    d = CAST[0]  # akane: red hair, dark red eyes
    faces = AnimeFaceDetector().detect(portrait(d, seed=3))
    assert len(faces) == 1
    f = faces[0]
    assert 0.5 <= f.score <= 1.0 and f.detector == "animeface"
    assert set(f.landmarks) == {"left_eye", "right_eye", "mouth", "nose", "chin"}
    assert f.landmarks["left_eye"][1] < f.landmarks["mouth"][1]  # eyes above the mouth
    hair, skin = np.array(f.colours["hair"]), np.array(f.colours["skin"])
    assert hair[0] > hair[1] + 80 and hair[0] > hair[2] + 80, f"red hair expected, got {f.colours['hair']}"
    assert skin.min() > 180, f"light skin expected, got {f.colours['skin']}"


@pytest.mark.parametrize("name", ["animeface", "facedet"])
def test_group_picture_gives_every_face_left_to_right(name):
    d = {c.name: c for c in CAST}
    im = group_picture([d["akane"], d["midori"], d["sora"]], seed=1)
    faces = sorted(make_detector(name).detect(im), key=lambda f: f.box.x)
    assert len(faces) == 3
    assert faces[0].box.x < im.size[0] / 3 < faces[1].box.x < 2 * im.size[0] / 3 < faces[2].box.x


def test_animeface_finds_faces_in_real_illustrations(shared):
    """Guards the Pillow >= 12 pitfall: animeface then returns nothing, silently."""
    paths = sorted((shared / "tla" / "raw" / "nishikino_maki").iterdir())[:5]
    det = AnimeFaceDetector()
    found = [len(det.detect(load_image(p))) for p in paths]
    assert sum(n > 0 for n in found) >= 4, found


def test_refuses_pillow_12(monkeypatch):
    import PIL

    monkeypatch.setattr(PIL, "__version__", "12.0.0")
    with pytest.raises(RuntimeError, match="pillow<12"):
        AnimeFaceDetector()


def test_large_images_are_downscaled_and_boxes_mapped_back():
    small = portrait(CAST[0], seed=5, size=320)
    big = small.resize((1280, 1280), Image.BICUBIC)
    f_small = AnimeFaceDetector(max_side=2000).detect(small)[0].box
    f_big = AnimeFaceDetector(max_side=400).detect(big)[0].box  # detected at 400 px, mapped to 1280
    assert f_big.iou(f_small.scaled(4.0)) > 0.7, (f_big, f_small)


def test_a_close_up_missed_at_full_size_is_found_in_a_reduced_copy():
    small = portrait(CAST[0], seed=1, size=320)
    close_up = small.resize((1024, 1024), Image.BICUBIC)  # the face fills the frame
    from charaid.config import Thresholds

    assert AnimeFaceDetector(Thresholds(detect_retry_scales=())).detect(close_up) == [], "animeface alone misses it"
    faces = AnimeFaceDetector().detect(close_up)
    assert len(faces) == 1
    expected = AnimeFaceDetector().detect(small)[0].box.scaled(1024 / 320)
    assert faces[0].box.iou(expected) > 0.4, (faces[0].box, expected)
    eyes = faces[0].landmarks["left_eye"], faces[0].landmarks["right_eye"]
    assert all(expected.x <= x <= expected.x + expected.w and expected.y <= y <= expected.y + expected.h for x, y in eyes), (
        "landmarks are mapped back to the picture's own pixels"
    )


def test_retry_finds_faces_in_real_web_pictures(shared):
    """web4 pictures where animeface-2009 finds no face at full size (close-ups)."""
    from charaid.config import Thresholds

    names = ["Emilia/Emilia_68.jpg", "Emilia/Emilia_87.jpg", "Gojo_Satoru/Gojo_Satoru_64.jpg"]
    ims = [load_image(shared / "web4" / n) for n in names]
    assert [len(AnimeFaceDetector(Thresholds(detect_retry_scales=())).detect(im)) for im in ims] == [0, 0, 0]
    assert [len(AnimeFaceDetector().detect(im)) for im in ims] == [1, 1, 1]


def test_cascade_and_union_on_real_illustration(shared):
    xml = shared / "models" / "lbpcascade_animeface.xml"
    im = load_image(sorted((shared / "tla" / "raw" / "takimoto_hifumi").iterdir())[0])
    casc = make_detector("cascade", xml).detect(im)
    anime = make_detector("animeface").detect(im)
    union = make_detector("union", xml).detect(im)
    assert casc and all(f.detector == "cascade" and 0 < f.score < 1 for f in casc)
    assert len(union) >= max(len(casc), len(anime))
    # the same face found by both appears once in the union, with animeface's landmarks
    for a in anime:
        same = [u for u in union if u.box.iou(a.box) > 0.3]
        assert len(same) == 1 and same[0].landmarks


def test_make_detector_errors(tmp_path):
    with pytest.raises(ValueError, match="choose one of: facedet, animeface, cascade, union"):
        make_detector("yolo")
    with pytest.raises(ValueError, match="needs a cascade XML"):
        make_detector("cascade")
    with pytest.raises(FileNotFoundError, match="cascade file not found"):
        make_detector("cascade", tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<nothing/>")
    with pytest.raises(ValueError, match="not an OpenCV cascade"):
        make_detector("cascade", bad)


def test_nms_keeps_one_per_face_and_prefers_landmarks():
    a = Face(Box(10, 10, 100, 100), 0.9, "cascade")
    b = Face(Box(15, 12, 95, 100), 0.6, "animeface", landmarks={"nose": (60, 60)})
    c = Face(Box(300, 10, 80, 80), 0.7, "cascade")
    inner = Face(Box(30, 30, 40, 40), 0.95, "cascade")  # a face inside a face is the same face
    kept = nms([a, b, c, inner], iou=0.3)
    assert {f.box for f in kept} == {b.box, c.box}


def test_crop_is_square_with_margin_and_edge_padding():
    im = Image.new("RGB", (200, 100), (0, 200, 0))
    crop = crop_face(im, Box(150, 10, 40, 40), margin=0.5)
    assert crop.size == (80, 80)  # 40 * (1 + 2 * 0.5)
    a = np.asarray(crop)
    assert (a[..., 1] == 200).all() and (a[..., 0] == 0).all()  # edge repeated, no black frame
    assert crop_face(im, Box(150, 10, 40, 40), margin=0.25, size=64).size == (64, 64)


def test_crop_outside_image_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        crop_face(Image.new("RGB", (50, 50)), Box(500, 500, 10, 10), margin=0.0)


def test_box_iou():
    assert Box(0, 0, 10, 10).iou(Box(0, 0, 10, 10)) == 1.0
    assert Box(0, 0, 10, 10).iou(Box(20, 20, 5, 5)) == 0.0
    assert abs(Box(0, 0, 10, 10).iou(Box(5, 0, 10, 10)) - 50 / 150) < 1e-9

"""charaid's own face detector: training runs and resumes, the shipped weights find real faces,
and galleries record the detector that cut their faces."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charaid.jobs.synth import CAST, group_picture
from charaid.models import facedet
from charaid.models.detectors import DEFAULT_DETECTOR, Box, make_detector
from charaid.pipeline.images import load_image
from charaid.training.augment import make_sample
from charaid.training.detector import DetectorTrainConfig, load_frames, targets, train_detector


def test_targets_put_one_peak_per_face_with_its_size():
    boxes = np.array([[16, 16, 80, 96], [200, 40, 232, 72]], np.float32)
    heat, size, off, mask = targets(boxes, 256)
    assert mask.sum() == 2 and heat.max() == 1.0 and (heat == 1.0).sum() == 2
    iy, ix = np.argwhere(mask == 1)[0]
    assert np.allclose(np.exp(size[:, iy, ix]) * facedet.STRIDE, [64, 80], atol=0.5)
    assert (0 <= off).all() and (off < 1).all()


@pytest.mark.slow
def test_augmented_samples_keep_boxes_on_the_picture(shared_train):
    frames = load_frames(shared_train / "icartoonface")[:20]
    rng = np.random.default_rng(0)
    n = 0
    for _ in range(30):
        a, boxes = make_sample(frames, [], rng, 192)
        assert a.shape == (192, 192, 3) and a.dtype == np.uint8
        assert ((boxes >= 0) & (boxes <= 192)).all() and (boxes[:, 2] > boxes[:, 0]).all()
        n += len(boxes)
    assert n > 10, "most training pictures hold faces"


def test_closeup_samples_fill_overflow_or_are_cut_by_the_frame(shared_train):
    """``closeups`` (issue 27): one face zoomed in, from 40% of the picture's side to more than
    the picture."""
    from charaid.training.detector import load_faces

    frames = load_frames(shared_train / "icartoonface")[:20]
    faces = load_faces(shared_train / "faces64", limit=20)
    rng = np.random.default_rng(0)
    sides, cut = [], 0
    for _ in range(40):
        a, boxes = make_sample(frames, faces, rng, 128, closeups=1.0)
        assert a.shape == (128, 128, 3) and len(boxes) >= 1
        sides.append(float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))))
        cut += bool(((boxes[:, :2] <= 0.5) | (boxes[:, 2:] >= 127.5)).any())
    assert np.median(sides) >= 0.5 * 128 and min(sides) >= 0.3 * 128, sides
    assert cut >= 8, "some faces are cut by the border"


@pytest.mark.slow
@pytest.mark.parametrize("closeups", [0.0, 0.5])
def test_tiny_training_run_loss_falls_and_resumes(shared_train, tmp_path, closeups):
    frames = load_frames(shared_train / "icartoonface")[:12]
    cfg = DetectorTrainConfig(side=128, batch=4, steps=16, lr=4e-3, warmup=1, checkpoint_seconds=1e9, closeups=closeups)
    first = train_detector(shared_train, tmp_path, cfg, progress=False, faces_limit=50, frames=frames, stop_after=8)
    assert not first["done"] and first["step"] == 8 and (tmp_path / "checkpoint.pt").is_file()
    second = train_detector(shared_train, tmp_path, cfg, progress=False, faces_limit=50, frames=frames)
    assert second["done"] and second["step"] == 16, "the second call resumed at step 8 and finished"
    losses = second["history"]
    assert len(losses) == 16
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    w = Path(second["weights"])
    assert w.name == facedet.WEIGHTS_FILE and w.stat().st_size < 25e6
    assert (tmp_path / facedet.ONNX_FILE).is_file(), "the ONNX twin is written too"
    net = facedet.FaceDetectorNet(path=str(w), min_score=0.0)
    assert net.detect_arrays([load_image(shared_train / "faces64" / "1.jpg")])[0], "its weights load and answer"
    with pytest.raises(ValueError, match="other settings"):
        train_detector(shared_train, tmp_path, DetectorTrainConfig(side=160, steps=16), progress=False, frames=frames)


def test_shipped_weights_are_package_data_and_small():
    p = Path(facedet.weights_path())
    assert p.is_file() and p.stat().st_size < 25e6
    import torch

    saved = torch.load(p, map_location="cpu", weights_only=True)
    assert saved["model_id"] == facedet.MODEL_ID and saved["version"] == facedet.MODEL_VERSION
    o = Path(facedet.onnx_path())
    assert o.is_file() and o.stat().st_size < 25e6


def test_onnx_runtime_and_pytorch_give_the_same_faces():
    d = {c.name: c for c in CAST}
    im = group_picture([d["akane"], d["sora"]], seed=2)
    ort_faces = facedet.FaceDetectorNet().detect_arrays([im])[0]
    torch_faces = facedet.FaceDetectorNet(path=facedet.weights_path()).detect_arrays([im])[0]
    assert len(ort_faces) == len(torch_faces) == 2
    for a, b in zip(ort_faces, torch_faces):
        assert abs(a.x - b.x) < 1 and abs(a.w - b.w) < 1 and abs(a.score - b.score) < 1e-3


def test_shipped_detector_finds_faces_in_real_illustrations(shared):
    """Offline: the weights come from the package, nothing is downloaded."""
    assert DEFAULT_DETECTOR == "facedet"
    det = make_detector()
    paths = sorted((shared / "tla" / "raw" / "sakurauchi_riko").iterdir())[:6]
    found = [det.detect(load_image(p)) for p in paths]
    assert sum(bool(f) for f in found) >= 5, [len(f) for f in found]
    for faces in found:
        for f in faces:
            assert f.detector == f"facedet@{facedet.DEFAULT_VERSION}" and 0 < f.score <= 1 and f.box.w > 10
            assert set(f.landmarks) >= {"left_eye", "right_eye", "nose", "mouth"}


def test_batch_detection_equals_one_by_one(shared):
    det = make_detector()
    ims = [load_image(p) for p in sorted((shared / "tla" / "raw" / "nishikino_maki").iterdir())[:3]]
    one = [[f.box.as_list() for f in det.detect(im)] for im in ims]
    batch = [[f.box.as_list() for f in faces] for faces in det.detect_batch(ims)]
    assert len(batch) == 3
    for a, b in zip(one, batch):
        assert len(a) == len(b)
        assert a == b, "a picture gets the same faces alone and in a batch"


# -- galleries record their detector -------------------------------------------------------------


def _names(result) -> list:
    return [f.character for f in sorted(result.faces, key=lambda f: f.box.x)]


def _same_answers_as_before(gallery, detector: str, scene, before) -> None:
    """The migrated gallery records ``detector``, recognition crops with it, and answers as before."""
    from charaid.recognition.recognize import Recognizer

    assert gallery.detector == detector
    rec = Recognizer(gallery)
    assert rec.spec.name == detector, "recognition crops the way enrolment did"
    now = rec.recognize_image(load_image(scene))
    assert _names(now) == _names(before) == ["akane", None, "sora"]
    assert [f.box for f in now.faces] == [f.box for f in before.faces]
    assert [round(f.score, 5) for f in now.faces] == [round(f.score, 5) for f in before.faces]


def test_gallery_made_before_keeps_animeface_crops_and_answers(tmp_path, synth_train, synth_scene):
    from charaid.jobs.enroll import enroll_items, labelled_images
    from charaid.pipeline.images import load_image
    from charaid.pipeline.prepare import DetectorSpec
    from charaid.recognition.recognize import Recognizer
    from charaid.storage.gallery import Gallery

    p = tmp_path / "old.sqlite"
    with Gallery(p) as g:
        enroll_items(g, labelled_images(synth_train), spec=DetectorSpec("animeface"))
        today = Recognizer(g, detector=DetectorSpec("animeface")).recognize_image(load_image(synth_scene))
    db = sqlite3.connect(p)  # as a gallery of charaid before it recorded its detector (schema 3)
    db.execute("DELETE FROM meta WHERE key = 'detector'")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    with Gallery(p) as g:  # migrated: a gallery with faces was cut by animeface-2009
        _same_answers_as_before(g, "animeface", synth_scene, today)
        with pytest.raises(ValueError, match="cut by the animeface detector"):
            enroll_items(g, labelled_images(synth_train), spec=DetectorSpec("facedet"))


@pytest.mark.slow
def test_new_gallery_records_facedet_and_moves_between_detectors(tmp_path, synth_train, synth_scene):
    from conftest import run_cli

    gp = tmp_path / "g.sqlite"
    r = run_cli("enroll", str(synth_train), "--gallery", str(gp), "--detector", "animeface")
    assert r.returncode == 0, r.stderr
    r = run_cli("gallery", "detector", "--gallery", str(gp))
    assert r.returncode == 0 and '"detector": "animeface"' in r.stdout
    r = run_cli("gallery", "detector", "facedet", "--gallery", str(gp), "-q")
    assert r.returncode == 0, r.stderr
    assert "18 faces cut again by facedet@3, 0 kept" in r.stderr, r.stderr
    assert '"detector": "facedet@3"' in r.stdout, "plain facedet is its default version, 3"
    r = run_cli("recognize", str(synth_scene), "--gallery", str(gp), "--json")
    assert r.returncode == 0, r.stderr
    import json

    faces = sorted(json.loads(r.stdout)["faces"], key=lambda f: f["box"][0])
    assert [f["character"] for f in faces] == ["akane", None, "sora"]


@pytest.mark.slow
def test_init_starts_from_given_weights(shared_train, tmp_path):
    """--init: the first steps from the shipped weights score far better than from ImageNet's
    backbone and a new head (a new head's loss starts near 8, the shipped one's near 1.5)."""
    frames = load_frames(shared_train / "icartoonface")[:12]
    kw = dict(progress=False, faces_limit=50, frames=frames, stop_after=2)
    base = DetectorTrainConfig(side=256, batch=4, steps=16, lr=1e-6, warmup=1, checkpoint_seconds=1e9)
    fresh = train_detector(shared_train, tmp_path / "fresh", base, **kw)
    init = train_detector(shared_train, tmp_path / "init", replace(base, init=facedet.weights_path()), **kw)
    assert np.mean(init["history"]) < 0.5 * np.mean(fresh["history"]), (init["history"], fresh["history"])


def test_gallery_cut_by_facedet_version_1_keeps_its_crops_and_answers(tmp_path, synth_train, synth_scene):
    """A gallery made before versions recorded plain "facedet": it is migrated to "facedet@1",
    recognises with version 1, and refuses version 2's faces until moved."""
    from charaid.jobs.enroll import enroll_items, labelled_images
    from charaid.pipeline.prepare import DetectorSpec
    from charaid.recognition.recognize import Recognizer
    from charaid.storage.gallery import Gallery

    p = tmp_path / "v1.sqlite"
    with Gallery(p) as g:
        enroll_items(g, labelled_images(synth_train), spec=DetectorSpec("facedet@1"))
        assert g.detector == "facedet@1"
        today = Recognizer(g).recognize_image(load_image(synth_scene))
    db = sqlite3.connect(p)  # as charaid wrote it before version 2 (schema 4, plain name)
    db.execute("UPDATE meta SET value = 'facedet' WHERE key = 'detector'")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    with Gallery(p) as g:
        _same_answers_as_before(g, "facedet@1", synth_scene, today)
        with pytest.raises(ValueError, match="cut by the facedet@1 detector, not facedet@2"):
            enroll_items(g, labelled_images(synth_train), spec=DetectorSpec("facedet@2"))


def test_version_1_outputs_are_unchanged_by_the_second_output():
    """The shipped ONNX file gained the head's features as a second output; its maps, and so
    version 1's faces, are those of the PyTorch weights it was exported from."""
    d = {c.name: c for c in CAST}
    im = group_picture([d["akane"], d["sora"]], seed=3)
    a = facedet.FaceDetectorNet(version=1).detect_arrays([im])[0]
    b = facedet.FaceDetectorNet(version=1, path=facedet.weights_path()).detect_arrays([im])[0]
    assert len(a) == len(b) == 2 and all(abs(x.score - y.score) < 1e-3 for x, y in zip(a, b))
    with pytest.raises(ValueError, match="unknown facedet version 7; choose one of: 1, 2, 3, 4"):
        facedet.FaceDetectorNet(version=7)
    with pytest.raises(ValueError, match="facedet@2"):
        make_detector("facedet@7")


def test_photo_veto_drops_real_faces_and_keeps_drawn_ones(shared):
    """The network takes faces in photos of people for anime faces; the Haar veto (2 of 3 crops)
    drops them, and keeps the drawn faces of illustrations."""
    from charaid.config import Thresholds

    photos = [load_image(p) for p in sorted((shared / "photos").glob("*.jpg"))[:10]]
    drawn = [load_image(p) for p in sorted((shared / "tla" / "raw" / "nishikino_maki").iterdir())[:6]]
    bare = make_detector("facedet", thresholds=replace(Thresholds(), photo_face_veto=None, photo_picture_min_p=None))
    vetoed = make_detector("facedet", thresholds=replace(Thresholds(), photo_picture_min_p=None))
    assert sum(bool(bare.detect(im)) for im in photos) >= 8, "without the veto most photos get a 'face'"
    assert sum(bool(vetoed.detect(im)) for im in photos) <= 1
    assert sum(bool(vetoed.detect(im)) for im in drawn) == sum(bool(bare.detect(im)) for im in drawn) >= 5


def test_the_veto_skips_windows_much_smaller_than_the_face(shared):
    """The veto's cascade looks only at windows of at least ``photo_veto_min_window`` of the
    face's side (the small ones are most of its cost): the same faces as a search down to the
    cascade's floor, on photos and drawings; with windows larger than the face, it misses most
    real faces, so the floor is what the veto searches."""
    from charaid.config import Thresholds

    pictures = [load_image(p) for p in sorted((shared / "photos").glob("*.jpg"))[:10]]
    pictures += [load_image(p) for p in sorted((shared / "tla" / "raw" / "nishikino_maki").iterdir())[:6]]
    t = replace(Thresholds(), photo_picture_min_p=None)  # the cascade's veto alone
    assert 0 < t.photo_veto_min_window < 0.85, "a real face's counting window is at least 0.85 of its box"
    floor = make_detector("facedet", thresholds=replace(t, photo_veto_min_window=0.0))
    shipped = make_detector("facedet")
    assert [len(shipped.detect(im)) for im in pictures] == [len(floor.detect(im)) for im in pictures]
    too_big = make_detector("facedet", thresholds=replace(t, photo_veto_min_window=1.3))
    assert sum(bool(too_big.detect(im)) for im in pictures[:10]) >= 5, "windows larger than the face miss most real faces"


def test_a_face_that_fills_the_frame_is_found_on_a_wider_canvas(shared):
    """A close-up: the picture is one illustration's face and nothing more. The network, trained
    on faces up to about half the picture, finds nothing at full size; the second look, on a grey
    canvas twice the picture's size, finds the face covering the frame (version 1 and so version 3,
    whose check runs only where the second look finds nothing)."""
    from charaid.config import Thresholds

    whole = load_image(shared / "tla" / "raw" / "takimoto_hifumi" / "16.png")
    face = make_detector("facedet").detect(whole)[0].box
    closeup = whole.crop((face.x, face.y, face.x + face.w, face.y + face.h))
    without = make_detector("facedet@1", thresholds=replace(Thresholds(), facedet_pad_retry=()))
    assert without.detect(closeup) == [], "the test needs a close-up the network misses at full size"
    found = make_detector("facedet@1").detect(closeup)
    assert len(found) == 1
    b = found[0].box
    assert b.x >= 0 and b.y >= 0 and b.x + b.w <= closeup.width and b.y + b.h <= closeup.height, "cut to the picture"
    assert b.iou(Box(0, 0, closeup.width, closeup.height)) >= 0.7
    assert found[0].score >= Thresholds().facedet_pad_min_score


def test_the_second_look_keeps_photos_of_people_faceless(shared):
    """The canvas makes photos' faces look drawn at low scores: the second look keeps a face only
    from ``facedet_pad_min_score`` (photos of people stay without a face, as before it, even
    without the whole-picture photo check)."""
    from charaid.config import Thresholds

    photos = [load_image(p) for p in sorted((shared / "photos").glob("*.jpg"))]
    det = make_detector("facedet", thresholds=replace(Thresholds(), photo_picture_min_p=None))
    assert sum(bool(det.detect(im)) for im in photos) <= 1


def test_the_network_input_holds_the_numbers_the_detector_was_trained_on():
    """``letterbox_nchw`` (written once, for inference) gives, bit for bit, the numbers version 1
    was trained and exported with: the picture reduced to 512 px (bilinear), minus the ImageNet
    mean, over its deviation, in float32, then zeros to a multiple of 32; ``letterbox`` is the
    same as HWC."""
    rng = np.random.default_rng(0)
    for size in [(700, 333), (300, 200), (64, 97)]:
        im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        x, s = facedet.letterbox_nchw(im, 512)
        small = (
            im if s == 1.0 else im.resize((round(size[0] * s), round(size[1] * s)), Image.Resampling.BILINEAR, reducing_gap=2.0)
        )
        want = (np.asarray(small, np.float32) - facedet.MEAN) / facedet.STD
        H, W = want.shape[:2]
        assert s == min(1.0, 512 / max(size)) and x.shape == (1, 3, H + (-H % 32), W + (-W % 32))
        assert np.array_equal(x[0, :, :H, :W], want.transpose(2, 0, 1)) and not x[0, :, H:, :].any() and not x[0, :, :, W:].any()
        a, _ = facedet.letterbox(im, 512)
        assert a.flags.c_contiguous and np.array_equal(a.transpose(2, 0, 1), x[0])


def test_a_big_picture_gives_the_faces_of_its_smaller_copy_in_its_own_pixels(shared):
    """facedet reads a picture over ``max_detect_side`` whole (the network reduces it), and its
    boxes are in that picture's pixels: a tla illustration enlarged 2.5x gives the same faces,
    2.5x as large and as far from the corner."""
    det = make_detector(DEFAULT_DETECTOR)
    im = next(im for p in sorted((shared / "tla" / "raw" / "nishikino_maki").glob("*")) if max((im := load_image(p)).size) <= 800)
    big = im.resize((round(im.width * 2.5), round(im.height * 2.5)), Image.Resampling.BICUBIC)
    small, large = det.detect(im), det.detect(big)
    assert small and len(large) == len(small)
    for a, b in zip(small, large):
        for u, v in zip(a.box.as_list(), b.box.as_list()):
            assert abs(v - 2.5 * u) <= 0.06 * 2.5 * max(a.box.w, a.box.h), (a.box, b.box)


def test_version_4_looks_at_each_box_again_and_keeps_the_faces(shared):
    """Version 4 is version 3 with each face's box averaged with a zoomed second look: the same faces
    and scores, boxes moved a little; a face with no peak in its crop, or one that fills the
    picture, keeps its box."""
    from charaid.config import Thresholds
    from charaid.models.detectors import Face

    pictures = [load_image(p) for p in sorted((shared / "tla" / "raw" / "nishikino_maki").iterdir())[:5]]
    v3, v4 = make_detector("facedet@3"), make_detector("facedet@4")
    moved = 0
    for im in pictures:
        a, b = v3.detect(im), v4.detect(im)
        assert [f.score for f in a] == [f.score for f in b] and len(a) >= 1
        assert all(fa.box.iou(fb.box) >= 0.6 for fa, fb in zip(a, b))
        assert all(fb.detector == "facedet@4" and fb.landmarks for fb in b)
        moved += sum(fa.box != fb.box for fa, fb in zip(a, b))
    assert moved >= 1, "the second look moves some boxes"
    blank = Image.new("RGB", (300, 300), (128, 128, 128))
    lone = Face(Box(100, 100, 50, 50), 0.9, "facedet@4", {})
    assert v4._refine(blank, [lone])[0].box == lone.box, "no peak: the box stays"
    t = Thresholds()
    big = Face(Box(10, 10, round(300 * t.facedet_refine_max_share) + 5, 200), 0.9, "facedet@4", {})
    assert v4._refine(pictures[0].resize((300, 300)), [big])[0] is big, "a face that fills the picture keeps its box"

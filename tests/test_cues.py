"""charaid.models.colours: the detector's hair/skin/eye colours as a block of the default features."""

from __future__ import annotations

import pickle

import numpy as np
from PIL import Image

from charaid.config import Thresholds
from charaid.jobs.synth import CAST, portrait
from charaid.models import colours as cues
from charaid.models.crops import FaceCrop
from charaid.models.detectors import AnimeFaceDetector
from charaid.models.embedders import CueColourEmbedder, default_embedder, imagenet_embedder, uses_colours
from charaid.models.zoo import embedders as builtin_embedders
from charaid.pipeline.images import load_image
from charaid.pipeline.prepare import DetectorSpec, prepare_image

DESIGN = {d.name: d for d in CAST}


def test_lab_of_known_colours():
    assert np.allclose(cues.lab((255, 255, 255)), (100, 0, 0), atol=0.5)
    assert np.allclose(cues.lab((255, 0, 0)), (53.2, 80.1, 67.2), atol=0.5)
    assert np.allclose(cues.lab((0, 0, 0)), (0, 0, 0), atol=0.5)


def test_detected_crops_carry_their_faces_colours_through_pickling():
    im = portrait(DESIGN["akane"], seed=2)
    prep = prepare_image("akane.png", True, DetectorSpec(), with_hash=False, image=im)
    assert len(prep.crops) == 1
    crop = pickle.loads(pickle.dumps(prep.crops[0]))  # as it comes back from a worker process
    assert isinstance(crop, FaceCrop) and crop.searched and crop.face is not None
    assert crop.image.info == {} or "charaid" not in str(crop.image.info)  # nothing rides on the image
    carried = np.asarray(crop.colours)
    assert carried.shape == (9,)
    assert np.allclose(carried, cues.face_colours(prep.faces[0], im))
    assert carried[7] > 15, f"dark red eyes have a positive a*, got {carried[6:]}"
    # found again inside the crop by animeface-2009 (what a crop re-read from the gallery gets):
    # the same hair and skin, the same eye hue (charaid's detector places its eye sample where
    # eyes lie on average, beside this drawing's dark pupil: the eyes' lightness differs)
    again = cues.search_colours(crop.image)
    assert again is not None and again[7] > 15 and np.abs(again[:6] - carried[:6]).max() < 15
    assert np.abs(again[7:] - carried[7:]).max() < 15


def test_no_detect_crops_are_searched_in_the_worker():
    prep = prepare_image("akane.png", False, DetectorSpec(), with_hash=False, image=portrait(DESIGN["akane"], seed=1))
    assert prep.crops[0].searched
    v = prep.crops[0].colours
    assert v is not None and v[7] > 15, f"dark red eyes have a positive a*, got {v and v[6:]}"
    off = prepare_image(
        "akane.png",
        False,
        DetectorSpec(thresholds=Thresholds(cue_colour_weight=0)),
        with_hash=False,
        image=portrait(DESIGN["akane"], seed=1),
    )
    assert not off.crops[0].searched  # not needed, not paid for


def test_colours_are_repeatable():
    """animeface-2009's own colour estimates change from call to call; charaid's must not."""
    ims = [portrait(d, seed=1) for d in CAST]
    first = [cues.search_colours(im) for im in ims]
    again = [cues.search_colours(im) for im in reversed(ims)][::-1]
    assert all(a is not None and np.array_equal(a, b) for a, b in zip(first, again))


def test_block_is_unit_length_with_a_face_and_zero_without():
    crops = [portrait(DESIGN["akane"], seed=1), Image.new("RGB", (224, 224), (128, 128, 128))]
    X = CueColourEmbedder().embed_batch(crops)
    assert abs(np.linalg.norm(X[0]) - 1) < 1e-5
    assert not X[1].any()


def test_a_bare_crop_is_searched_and_a_cut_face_keeps_its_sampled_colours(monkeypatch):
    """A bare image is a crop about which nothing is known: the colour block searches it; a
    FaceCrop cut from its picture carries colours sampled at the landmarks, and is never searched."""
    import charaid

    raw = portrait(DESIGN["akane"], seed=1)
    searched = FaceCrop(raw, colours=cues.search_colours(raw), searched=True)
    assert np.allclose(default_embedder().embed_batch([raw])[0], default_embedder().embed_batch([searched])[0], atol=1e-5)
    assert np.allclose(charaid.embed_faces([raw])[0], default_embedder().embed_batch([searched])[0], atol=1e-5)
    assert imagenet_embedder().embed_batch([raw]).shape == (1, imagenet_embedder().dim)  # no colour block: fine
    prep = prepare_image("akane.png", True, DetectorSpec(), with_hash=False, image=raw)

    def refuse(_):
        raise AssertionError("a crop cut from its picture was searched again")

    monkeypatch.setattr(cues, "search_colours", refuse)
    cut = prep.crops[0]
    v = default_embedder().embed_batch([cut])[0]
    # the colour block is the sampled colours', not a search's
    z = (cut.colours - np.asarray(Thresholds().cue_colour_mean)) / np.asarray(Thresholds().cue_colour_std)
    assert np.allclose(CueColourEmbedder().embed_batch([cut])[0], z / np.linalg.norm(z), atol=1e-5)
    assert v.shape == (default_embedder().dim,)


def test_block_puts_real_faces_of_one_character_together(shared):
    """moeimouto10 test faces, 6 of each character: the colours alone are closer within a
    character than between characters (on average)."""
    e = CueColourEmbedder()
    X, y = [], []
    for folder in sorted((shared / "moeimouto10" / "test").iterdir()):
        crops = [prepare_image(p, False, DetectorSpec(), with_hash=False).crops[0] for p in sorted(folder.iterdir())[:6]]
        X.append(e.embed_batch(crops))
        y += [folder.name] * len(crops)
    X, y = np.vstack(X), np.array(y)
    found = X.any(axis=1)
    assert found.mean() > 0.8, f"face found again in only {found.mean():.0%} of the crops"
    S = X @ X.T
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool) & found[:, None] & found[None, :]
    diff = (y[:, None] != y[None, :]) & found[:, None] & found[None, :]
    assert S[same].mean() > S[diff].mean() + 0.3, (S[same].mean(), S[diff].mean())


def test_default_joins_the_block_and_old_galleries_keep_their_space():
    d, old = default_embedder(), imagenet_embedder()
    assert d.model_id == old.model_id + "+animeface-colours-lab9*0.25" and d.dim == old.dim + 9
    known = builtin_embedders()
    assert known[old.model_id]().model_id == old.model_id  # a gallery enrolled before opens as it was
    assert default_embedder(Thresholds(cue_colour_weight=0)).model_id == old.model_id


def test_real_faces_get_colours_from_detection(shared):
    paths = sorted((shared / "tla" / "raw" / "nishikino_maki").iterdir())[:3]
    det = AnimeFaceDetector()
    got = 0
    for p in paths:
        im = load_image(p)
        for f in det.detect(im):
            v = cues.face_colours(f, im)
            assert v is not None and np.isfinite(v).all()
            got += 1
    assert got >= 2


def test_spaces_without_the_colours_do_not_search_crops_for_them(tmp_path):
    from charaid.recognition.recognize import Recognizer
    from charaid.recognition.spaces import tuned_embedder
    from charaid.storage.gallery import Gallery

    assert uses_colours(default_embedder()) and not uses_colours(imagenet_embedder())
    assert not uses_colours(tuned_embedder(imagenet_embedder(), cue_weight=0.0))  # a model tuned before them
    spec = DetectorSpec()
    assert spec.for_embedder(default_embedder()) is spec
    assert spec.for_embedder(imagenet_embedder()).thresholds.cue_colour_weight == 0
    # a gallery of the older space: its recogniser's crops come without a search
    old = imagenet_embedder()
    with Gallery(tmp_path / "old.sqlite") as g:
        rec = Recognizer(g, embedder=old)
        assert rec.spec.thresholds.cue_colour_weight == 0
        prep = prepare_image("akane.png", False, rec.spec, with_hash=False, image=portrait(DESIGN["akane"], seed=1))
        assert not prep.crops[0].searched and prep.crops[0].colours is None


def test_face_colours_read_from_the_face_s_window_equal_the_whole_picture_s():
    """``face_colours`` reads only the part of the picture around the face: the same nine numbers
    as from the whole picture, also for faces cut by the border."""
    from charaid.models.colours import face_colours
    from charaid.models.detectors import Box, Face

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    lm = {"left_eye": (30, 40), "right_eye": (60, 40), "nose": (45, 55), "mouth": (45, 70)}
    for dx, dy in [(100, 100), (-25, -30), (280, 200), (0, -45)]:
        face = Face(Box(10 + dx, 20 + dy, 70, 70), 1.0, "facedet@1", {k: (x + dx, y + dy) for k, (x, y) in lm.items()})
        whole = face_colours(face, np.asarray(image))
        window = face_colours(face, image)
        assert (whole is None and window is None) or np.array_equal(whole, window), (dx, dy)
        if (dx, dy) == (100, 100):
            assert window is not None
            pal = image.convert("P")
            assert np.array_equal(face_colours(face, pal), face_colours(face, np.asarray(pal.convert("RGB")))), "any mode, as RGB"

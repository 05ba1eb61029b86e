"""Names in any script: annotated pictures and the confusion plot draw 路飞, アスナ and 김
with real glyphs, never the missing-glyph box."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageDraw

from charaid import fonts
from charaid.models.detectors import Box
from charaid.recognition.annotate import annotate
from charaid.recognition.recognize import FaceResult

NAMES = ["路飞", "アスナ", "김", "Zoë", "Ñandú"]


def test_every_name_has_its_glyphs():
    for name in NAMES:
        assert fonts.missing_glyphs(name) == [], name
    assert fonts.missing_glyphs("\U000f0001") == ["\U000f0001"], "a character no font has is reported"


def test_each_glyph_differs_from_the_missing_glyph_box():
    """Rendered one by one, no character of the names is drawn as its font's box."""
    for name in NAMES:
        for part, font in fonts.runs(name, 24):
            box = bytes(font.getmask("\U000f0000"))
            for ch in part:
                assert bytes(font.getmask(ch)) != box, f"{ch!r} of {name!r} drawn as a box"


def _label_pixels(name: str) -> np.ndarray:
    im = Image.new("RGB", (400, 300), (255, 255, 255))
    out = annotate(im, [FaceResult(Box(100, 120, 120, 120), 0.9, name, 0.8, [])])
    return np.asarray(out)[80:120, 100:400]


def test_annotated_pictures_draw_the_names_not_boxes():
    """The same picture labelled with two names in CJK script differs in the label (boxes would
    be identical), and a label drawn in CJK has ink inside it (white glyphs on the colour)."""
    a, b = _label_pixels("路飞"), _label_pixels("アスナ")
    white = (a > 240).all(axis=2).sum()
    assert white > 30, "no glyph drawn"
    # same length in boxes would give the same white pattern; real glyphs differ
    assert (a != _label_pixels("路路")).any() and (a != b).any()


def test_the_label_of_a_face_at_the_top_edge_does_not_cover_it():
    im = Image.new("RGB", (400, 300), (255, 255, 255))
    out = np.asarray(annotate(im, [FaceResult(Box(100, 0, 120, 120), 0.9, "路飞", 0.8, [])]))
    inside = out[10:110, 110:210]  # the face, inside its box
    assert (inside == 255).all(), "the label was drawn over the face"
    assert (out[121:160, 100:220] != 255).any(), "the label goes below the box"


def test_the_confusion_plot_warns_of_no_missing_glyph(tmp_path):
    from charaid.jobs.evaluate import EvalReport, plot_confusion

    report = EvalReport(classes=["路飞", "アスナ", "김"], confusion=np.eye(3, dtype=int) * 2, n=6, top1=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion(report, tmp_path / "c.png")
    glyph = [str(w.message) for w in caught if "Glyph" in str(w.message) or "missing from" in str(w.message)]
    assert glyph == [], glyph
    assert Image.open(tmp_path / "c.png").size[0] > 100


def test_draw_text_and_bbox_agree():
    im = Image.new("RGB", (300, 60), (0, 0, 0))
    d = ImageDraw.Draw(im)
    fonts.draw_text(d, (0, 0), "路飞 Zoë", 24, (255, 255, 255))
    l, t, r, b = fonts.text_bbox(d, "路飞 Zoë", 24)
    ink = np.argwhere(np.asarray(im)[:, :, 0] > 0)
    assert ink[:, 1].max() <= r + 1 and ink[:, 0].max() <= b + 1

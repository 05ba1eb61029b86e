"""The library, the CLI and evaluate default to what recognize does (issue 28)."""

from __future__ import annotations

import numpy as np

import charaid
from charaid.cli.parser import build_parser
from charaid.config import Thresholds
from charaid.jobs.synth import CAST, portrait
from charaid.models.detectors import crop_face
from charaid.pipeline.match import DEFAULT_METHOD, Matcher
from charaid.pipeline.prepare import DetectorSpec, prepare_image


def test_library_detects_and_crops_as_recognize_does():
    image = portrait(CAST[0], seed=0, size=320)
    faces = charaid.detect_faces(image)
    assert faces and faces[0].detector.startswith("facedet")
    crop = charaid.crop_face(image, faces[0])
    t = Thresholds()
    wide = crop_face(image, faces[0].box, t.facedet_crop_margin)
    assert crop.size == wide.size != crop_face(image, faces[0].box).size
    # and it is the crop the pipeline cuts, at the pipeline's stored side
    prepared = prepare_image("portrait.png", spec=DetectorSpec(), with_hash=False, image=image)
    side = prepared.crops[0].image.size[0]
    a = np.asarray(crop.resize((side, side)), np.float32)
    assert np.abs(a - np.asarray(prepared.crops[0].image, np.float32)).mean() < 8


def test_matcher_and_evaluate_default_to_the_products_matcher():
    assert DEFAULT_METHOD == Thresholds().default_matcher == Matcher().method == "hybrid"
    args = build_parser().parse_args(["evaluate", "some/dir"])
    assert args.method == "hybrid"
    assert build_parser().parse_args(["evaluate", "d", "--method", "hybrid-balanced"]).method == "hybrid-balanced"

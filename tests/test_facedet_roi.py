"""The detector's second stage (facedet version 2): its sampling and box arithmetic, a tiny
training run, and the shipped stage on real illustrations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from charaid.models import facedet, facedet_roi
from charaid.models.detectors import make_detector
from charaid.pipeline.images import load_image


def test_sampling_reads_the_map_where_the_box_lies():
    # a map whose value is its own x (channel 0) and y (channel 1) cell coordinate
    H, W = 20, 30
    fmap = np.stack([np.tile(np.arange(W, dtype=np.float32), (H, 1)), np.tile(np.arange(H, dtype=np.float32)[:, None], (1, W))])
    box = np.array([[80, 40, 144, 104]], np.float32)  # 64 px, centre (112, 72): cell (13.5, 8.5) at stride 8
    v = facedet_roi.sample_features(fmap, box, 1.0, 8).reshape(2, facedet_roi.GRID, facedet_roi.GRID)
    assert np.allclose(v[0].mean(), 112 / 8 - 0.5, atol=1e-4) and np.allclose(v[1].mean(), 72 / 8 - 0.5, atol=1e-4)
    assert (np.diff(v[0], axis=1) > 0).all() and np.allclose(np.diff(v[0], axis=0), 0), "x grows along a row only"
    # grown by GROW: the grid spans 1.25 x 64 px = 10 cells, points a grid step apart
    step = 64 * facedet_roi.GROW / facedet_roi.GRID / 8
    assert np.allclose(np.diff(v[0], axis=1), step, atol=1e-4)


def test_box_deltas_and_overlaps():
    boxes = np.array([[10, 20, 50, 100], [0, 0, 100, 100]], np.float32)
    truth = np.array([[20, 20, 60, 100], [0, 0, 50, 50]], np.float32)
    d = facedet_roi.box_deltas(boxes, truth)
    assert np.allclose(d[0], [0.25, 0, 0, 0]) and np.allclose(d[1], [-0.25, -0.25, np.log(0.5), np.log(0.5)])
    assert np.allclose(np.diag(facedet_roi.iou_matrix(truth, truth)), 1.0)
    assert np.isclose(facedet_roi.iou_matrix(boxes[1:], truth[1:])[0, 0], 0.25)


@pytest.mark.slow
def test_tiny_second_stage_training_run(shared_train, tmp_path):
    from charaid.training.detector import load_frames
    from charaid.training.roi import RoiTrainConfig, train_roi

    frames = load_frames(shared_train / "icartoonface")[:40]
    cfg = RoiTrainConfig(epochs=6, batch=64)
    r = train_roi(frames, tmp_path, cfg, progress=False)
    assert r["faces"] > 20 and r["candidates"] > 200
    assert r["losses"][-1] < r["losses"][0], r["losses"]
    w = Path(r["weights"])
    assert w.name == facedet_roi.ROI_FILE and w.stat().st_size < 25e6
    again = train_roi(frames, tmp_path, cfg, progress=False)  # the candidates' features are reused
    assert again["collect_s"] == 0 and again["losses"] == r["losses"], "seeded: the same MLP again"
    net = facedet.FaceDetectorNet(version=2, roi_path=str(w), min_score=0.0)
    faces = net.detect_arrays([load_image(next((shared_train / "icartoonface" / "images").glob("*.jpg")))])[0]
    assert faces and all(0 <= f.score <= 1 for f in faces), "the written stage loads and answers"


def test_shipped_second_stage_finds_the_faces_version_1_finds(shared):
    """On real illustrations version 2 finds a face wherever version 1 does, on the same box
    (the second stage rescores; it does not move boxes, so crops stay version 1's)."""
    paths = sorted((shared / "tla" / "raw" / "takimoto_hifumi").iterdir())[:6]
    ims = [load_image(p) for p in paths]
    v1, v2 = make_detector("facedet@1"), make_detector("facedet@2")
    assert Path(facedet_roi.roi_path()).stat().st_size < 25e6
    for im in ims:
        a, b = v1.detect(im), v2.detect(im)
        if a:
            assert b, "version 2 keeps a face version 1 found"
            assert a[0].box in [f.box for f in b]

"""The detector's close-up check (facedet version 3): its inputs, a tiny training run, and the
shipped check on close-ups cut from real illustrations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from charaid.models import facedet_closeup as fc
from charaid.models.checks import LogisticCheck
from charaid.models.detectors import Box, make_detector
from charaid.pipeline.images import load_image


def test_inputs_hold_the_features_the_score_the_share_and_the_pass():
    vec = np.eye(3, 1280, dtype=np.float32)
    x = fc.candidate_inputs(vec, [0.2, 0.3, 0.5], [1.0, 0.25, 1e-9], [1.0, 2.0, 3.0])
    assert x.shape == (3, 1280 + 2 + len(fc.PASSES))
    assert np.allclose(x[:, 1280], [0.2, 0.3, 0.5])
    assert np.allclose(x[:, 1281], [0.0, np.log(0.25), np.log(1e-4)]), "the share's log, floored"
    assert (x[:, -3:] == np.eye(3)).all(), "one-hot: the picture, the 2x canvas, the 3x canvas"


def test_check_probabilities_follow_its_weights(tmp_path):
    coef = np.zeros(1285, np.float32)
    coef[1280] = 10.0  # the peak's score alone
    check = LogisticCheck(coef, -3.0)
    p = check.probabilities(fc.candidate_inputs(np.zeros((2, 1280), np.float32), [0.1, 0.5], [0.5, 0.5], [1.0, 1.0]))
    assert np.allclose(p, 1 / (1 + np.exp([2.0, -2.0])))
    path = tmp_path / "check.npz"
    check.save(str(path), seed=0)
    again = fc.load_check(str(path))
    assert np.allclose(again.coef, coef) and again.intercept == pytest.approx(-3.0)


def test_missing_check_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="close-up check is missing.*train-detector-closeup"):
        fc.load_check(str(tmp_path / "none.npz"))


@pytest.mark.slow
def test_tiny_closeup_training_run(shared_train, tmp_path):
    from charaid.training.closeup import CloseupTrainConfig, train_closeup
    from charaid.training.detector import load_frames

    frames = load_frames(shared_train / "icartoonface")[:60]
    r = train_closeup(frames, tmp_path, CloseupTrainConfig(views=1), progress=False)
    assert r["views"] > 40 and r["candidates"] > 20 and 0 < r["faces"] < r["candidates"], r
    w = Path(r["weights"])
    assert w.name == fc.CLOSEUP_FILE and w.stat().st_size < 25e6
    z = np.load(tmp_path / "candidates.npz")
    p = fc.load_check(str(w)).probabilities(z["inputs"])
    faces, rest = p[z["labels"]], p[~z["labels"]]
    assert faces.mean() > rest.mean(), "the check it learnt ranks its faces above the rest"
    again = train_closeup(frames, tmp_path, CloseupTrainConfig(views=1), progress=False)
    assert again["collect_s"] == 0 and again["candidates"] == r["candidates"], "the candidates are reused"


def _closeups(shared: Path, n: int):
    """Faces of cartoonface300 of at least 64 px, each cut so that it fills the picture: the crop
    is the face's own box, moved by a fifth of its side, alternately right and down, so that part of
    the face lies outside it (as in benchmarks/closeups.py); with the face's box in the crop."""
    from charaid.training.augment import yolo_boxes

    out = []
    root = shared / "cartoonface300"
    for p in sorted((root / "images").glob("*.jpg")):
        im = load_image(p)
        W, H = im.size
        for cx, cy, w, h in yolo_boxes(root / "labels" / (p.stem + ".txt")):
            fw, fh = w * W, h * H
            if min(fw, fh) < 64:
                continue
            dx, dy = (0.2 * fw, 0.0) if len(out) % 2 == 0 else (0.0, 0.2 * fh)
            x0, y0 = max(0, round(cx * W - fw / 2 + dx)), max(0, round(cy * H - fh / 2 + dy))
            x1, y1 = min(W, round(cx * W + fw / 2 + dx)), min(H, round(cy * H + fh / 2 + dy))
            fx0, fy0 = round(cx * W - fw / 2) - x0, round(cy * H - fh / 2) - y0
            face = Box(
                max(0, fx0), max(0, fy0), min(x1 - x0, fx0 + round(fw)) - max(0, fx0), min(y1 - y0, fy0 + round(fh)) - max(0, fy0)
            )
            out.append((im.crop((x0, y0, x1, y1)), face))
            if len(out) == n:
                return out
    return out


def test_version_3_finds_faces_that_fill_the_picture(shared):
    """Faces of real pictures cut to fill the frame: version 3 finds every one version 1 finds,
    on the same box, and more of them (its check runs only where version 1 finds nothing)."""
    cases = _closeups(shared, 30)
    assert len(cases) == 30
    v1, v3 = make_detector("facedet@1"), make_detector("facedet@3")
    assert Path(fc.closeup_path()).stat().st_size < 25e6
    found1 = found3 = 0
    for im, face in cases:
        a, b = v1.detect(im), v3.detect(im)
        if a:
            assert [f.box for f in a] == [f.box for f in b], "where version 1 finds faces, version 3 answers the same"
        found1 += any(f.box.iou(face) >= 0.5 for f in a)
        found3 += any(f.box.iou(face) >= 0.5 for f in b)
    assert found3 > found1, (found1, found3)


def test_training_commands_name_a_missing_data_folder(tmp_path):
    """The stage commands and the photo check's, given a folder without ../shared/train's frames,
    exit 1 with one line naming it."""
    from conftest import run_cli

    for cmd in ("train-detector-closeup", "train-detector-roi", "train-photo-check"):
        r = run_cli(cmd, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
        assert r.returncode == 1, (cmd, r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "nowhere: no icartoonface/images here" in lines[0], (cmd, r.stderr)
    assert not (tmp_path / "out").exists(), "nothing is written"

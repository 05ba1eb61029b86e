"""charaid train: fine-tunes, survives interruption, and its model survives a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from charaid.recognition.spaces import TUNED_PREFIX, models_dir
from charaid.storage.gallery import Gallery
from charaid.training.tune import TrainConfig, augment, fine_tune


def test_augment_keeps_hue():
    import random

    im = Image.new("RGB", (100, 100), (200, 40, 60))
    for seed in range(10):
        a = np.asarray(augment(im, random.Random(seed), 64).convert("HSV"), float)
        hue = a[..., 0][a[..., 1] > 50]
        assert abs(np.median(hue) - np.asarray(im.convert("HSV"))[0, 0, 0]) <= 3  # colours are identity


def test_fine_tune_separates_characters(synth_train, tmp_path):
    from charaid.jobs.enroll import labelled_images
    from charaid.training.tune import TunedEmbedder

    items = labelled_images(synth_train)
    crops = [Image.open(p).convert("RGB") for _, p in items]
    labels = [c for c, _ in items]
    cfg = TrainConfig(epochs=4, views=2)
    state, st = fine_tune(crops, labels, cfg)
    assert st.epoch == 4 and st.losses[-1] < st.losses[0]
    X = TunedEmbedder(state, cfg, "t").embed_batch(crops)
    assert X.shape == (len(crops), cfg.proj_dim) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    y = np.array(labels)
    S = X @ X.T
    same = S[y[:, None] == y[None, :]].mean()
    other = S[y[:, None] != y[None, :]].mean()
    assert same > other + 0.2

    # a model saved now joins the face's colours (charaid.models.colours); one saved before them keeps its space
    import torch

    from charaid.recognition.spaces import load_tuned, save_tuned

    g = tmp_path / "g.sqlite"
    emb = save_tuned(g, state, cfg, {"faces": len(crops)})
    core_id = emb.model_id.split("*", 1)[0]
    assert emb.model_id.endswith("+animeface-colours-lab9*0.25") and emb.dim == cfg.proj_dim + 9
    assert load_tuned(g, core_id).model_id == emb.model_id
    f = models_dir(g) / f"{core_id}.pt"
    saved = torch.load(f, weights_only=False)
    del saved["meta"]["cue_colour_weight"]
    torch.save(saved, f)
    old = load_tuned(g, core_id)
    assert old.model_id == core_id and old.dim == cfg.proj_dim


@pytest.mark.slow
def test_train_then_restart_gives_same_answers(gallery_path, synth_scene):
    r = run_cli("train", "--gallery", str(gallery_path), "--epochs", "5", "-q")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model_id"].startswith(TUNED_PREFIX) and out["epochs"] == 5 and out["threshold"] is not None
    assert "animeface-colours-lab9" in out["model_id"], "the tuned space keeps the face's colours"
    assert "calibration: AUROC" in r.stderr, "the user is told how well the tuned model rejects unknown faces"
    assert "median character has 6 faces" in r.stderr, "and, with 6 faces a character, that tuning measured worse"
    # ... and how the gallery's model before training did on the same held-out faces
    assert "the gallery's current model on the same faces: top-1" in r.stderr
    before = out["calibration"]["before"]
    assert before["model_id"].startswith("efficientnet-lite0") and 0 <= before["top1"] <= 1 and 0 <= before["auroc"] <= 1
    assert before["switch"] == "default", "the name `charaid gallery model` takes to go back"
    with Gallery(gallery_path) as g:
        assert g.model_id == out["model_id"] and not g.missing_vectors(g.model_id)
    assert (models_dir(gallery_path) / f"{out['model_id'].split('*')[0]}.pt").exists()
    assert not (models_dir(gallery_path) / "train-checkpoint.pt").exists()
    # two new processes load the tuned model from disk and answer identically
    a = run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--json")
    b = run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--json")
    assert a.returncode == 0 and a.stdout == b.stdout
    faces = sorted(json.loads(a.stdout)["faces"], key=lambda f: f["box"][0])
    assert [f["top"][0]["character"] for f in (faces[0], faces[2])] == ["akane", "sora"]
    # new enrolments go into the tuned space
    r = run_cli("gallery", "list", "--gallery", str(gallery_path))
    assert TUNED_PREFIX in r.stderr
    # the ImageNet space is still there: switch back, and forth again
    models = [json.loads(x) for x in run_cli("gallery", "model", "--gallery", str(gallery_path)).stdout.splitlines()]
    assert len(models) == 2 and [m["model_id"] for m in models if m["active"]] == [out["model_id"]]
    back = run_cli("gallery", "model", "default", "--gallery", str(gallery_path))
    assert back.returncode == 0 and "now compares with efficientnet" in back.stderr, back.stderr
    c = run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--json")
    faces = sorted(json.loads(c.stdout)["faces"], key=lambda f: f["box"][0])
    assert [f["top"][0]["character"] for f in (faces[0], faces[2])] == ["akane", "sora"]
    again = run_cli("gallery", "model", out["model_id"], "--gallery", str(gallery_path))
    assert again.returncode == 0, again.stderr
    th = json.loads(run_cli("gallery", "threshold", "--gallery", str(gallery_path)).stdout)
    assert th["calibration"]["source"] == "training run" and abs(th["threshold"] - out["threshold"]) < 1e-4
    bad = run_cli("gallery", "model", "nonsense", "--gallery", str(gallery_path))
    assert bad.returncode == 1 and "unknown model 'nonsense'" in bad.stderr


@pytest.mark.slow
def test_interrupted_training_resumes(gallery_path):
    ck = models_dir(gallery_path) / "train-checkpoint.pt"
    cmd = [
        sys.executable,
        "-m",
        "charaid.cli",
        "train",
        "--gallery",
        str(gallery_path),
        "--epochs",
        "60",
        "--no-calibration",
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not ck.exists():
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ck.exists()
    r = run_cli("train", "--gallery", str(gallery_path), "--epochs", "60", "--no-calibration", "-q")
    assert r.returncode == 0, r.stderr
    assert "resumed an interrupted run at epoch" in r.stderr
    assert json.loads(r.stdout)["epochs"] == 60 and not ck.exists()


@pytest.mark.slow
def test_time_limit_stops_and_resumes(gallery_path):
    r = run_cli("train", "--gallery", str(gallery_path), "--epochs", "400", "--minutes", "0.01", "--no-calibration", "-q")
    assert r.returncode == 3 and "run `charaid train` again to resume" in r.stderr
    with Gallery(gallery_path) as g:
        assert not g.model_id.startswith(TUNED_PREFIX)  # unchanged until a run finishes


def test_train_needs_two_characters(tmp_path, synth_train):
    from charaid.jobs.enroll import enroll_items, labelled_images

    g = tmp_path / "one.sqlite"
    with Gallery(g) as gal:
        enroll_items(gal, [x for x in labelled_images(synth_train) if x[0] == "akane"])
    r = run_cli("train", "--gallery", str(g), "-q")
    assert r.returncode == 1 and "at least 2 characters" in r.stderr
    with Gallery(g) as gal:
        enroll_items(gal, [x for x in labelled_images(synth_train) if x[0] == "sora"])
    r = run_cli("train", "--gallery", str(g), "--epochs", "1", "-q")
    assert r.returncode == 0 and "none can be held out to calibrate" in r.stderr, r.stderr


def test_train_advises_against_itself_with_few_faces_a_character():
    from charaid.training.tune import few_faces_advice

    msg = few_faces_advice({"a": 8, "b": 12, "c": 40}, 30)
    assert msg is not None and "median character has 12 faces" in msg and "gallery model default" in msg
    assert few_faces_advice({"a": 30, "b": 31, "c": 5}, 30) is None  # the median decides, not the smallest

"""The embedder experiment (``experiments/selfsup.py``, not shipped): each method's loss falls,
an interrupted run resumes to the same weights, and the result embeds a real face crop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

SELFSUP = Path(__file__).resolve().parents[1] / "experiments" / "selfsup.py"


_ss = load_script(SELFSUP, "selfsup")
EmbedderTrainConfig, load_embedder, load_faces, nt_xent, supcon_loss, train_embedder = (
    _ss.EmbedderTrainConfig,
    _ss.load_embedder,
    _ss.load_faces,
    _ss.nt_xent,
    _ss.supcon_loss,
    _ss.train_embedder,
)

TINY = EmbedderTrainConfig(input_size=64, views=3, batch=16, epochs=6, lr=3e-3, warmup_steps=2)


@pytest.fixture(scope="module")
def faces(shared_train):
    got = load_faces(shared_train, TINY, limit=32)
    assert len(got) == 32
    return got


def test_nt_xent_is_low_for_matching_views_and_high_for_shuffled_ones():
    z = torch.randn(16, 32)
    same = nt_xent(z, z + 0.01 * torch.randn(16, 32), 0.2)
    other = nt_xent(z, torch.randn(16, 32), 0.2)
    assert same < 0.5 < other


def test_supcon_is_low_when_each_character_s_views_agree():
    labels = torch.arange(8).repeat_interleave(4)
    centres = torch.randn(8, 32)
    same = supcon_loss(centres[labels] + 0.01 * torch.randn(32, 32), labels, 0.2)
    other = supcon_loss(torch.randn(32, 32), labels, 0.2)
    assert same < other - 1


@pytest.mark.parametrize("method", ["simclr", "byol", "supcon", "simclr+supcon"])
def test_a_few_steps_make_the_loss_fall(faces, tmp_path, method):
    """supcon learns from named crops: here the 32 faces as 8 'characters' of 4 faces each."""
    named = (faces, [f"c{i // 4}" for i in range(len(faces))])
    cfg = replace(TINY, method="simclr", supcon_weight=1.0) if method == "simclr+supcon" else replace(TINY, method=method)
    if method == "supcon":
        cfg = replace(cfg, batch=32, classes_per_batch=8)
    r = train_embedder(None, tmp_path, cfg, progress=False, faces=faces, named=named)
    assert r["done"] and r["epoch"] == 6
    assert r["history"][-1] < r["history"][0], r["history"]


def test_an_interrupted_run_resumes_to_the_same_weights(faces, tmp_path):
    cfg = replace(TINY, epochs=3)
    whole = train_embedder(None, tmp_path / "whole", cfg, progress=False, faces=faces)
    first = train_embedder(None, tmp_path / "cut", cfg, progress=False, faces=faces, minutes=0)
    assert not first["done"] and first["epoch"] == 1
    second = train_embedder(None, tmp_path / "cut", cfg, progress=False, faces=faces)
    assert second["done"] and second["history"][0] == first["history"][0]
    a = torch.load(whole["weights"], weights_only=False)["top"]
    b = torch.load(second["weights"], weights_only=False)["top"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="other settings"):
        train_embedder(None, tmp_path / "cut", replace(cfg, epochs=4, lr=1e-2), progress=False, faces=faces)


def test_trained_weights_embed_a_real_crop(faces, tmp_path):
    r = train_embedder(None, tmp_path, replace(TINY, epochs=1), progress=False, faces=faces)
    emb = load_embedder(r["weights"])
    assert emb.model_id == "charaid-ssl-lite0-v1" and emb.dim == 1280
    v = emb.embed_batch(faces[:3])
    assert v.shape == (3, 1280) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert np.allclose(emb.embed(faces[0]), v[0], atol=1e-4)
    assert v[0] @ v[1] < 0.9999  # different faces, different vectors


def test_cli_names_a_folder_without_training_faces(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, str(SELFSUP), "--data", str(tmp_path), "--out", str(tmp_path / "o"), "-q"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and str(tmp_path) in r.stderr and "faces64" in r.stderr


def test_cli_names_the_missing_identities_folder_for_supcon(tmp_path):
    import subprocess
    import sys

    (tmp_path / "faces64").mkdir()
    r = subprocess.run(
        [sys.executable, str(SELFSUP), "--data", str(tmp_path), "--method", "supcon", "--out", str(tmp_path / "o"), "-q"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and str(tmp_path / "identities") in r.stderr

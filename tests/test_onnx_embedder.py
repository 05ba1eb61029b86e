"""Inference without torch: the ONNX export gives PyTorch's vectors, and answering a picture
imports neither torch nor scikit-learn (issue 28)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from charaid.jobs.synth import CAST, portrait
from charaid.models.embedders import EfficientNetLiteEmbedder, lite0_onnx_path
from charaid.pipeline.logistic import balanced_weights, fit_logistic

#: How far apart the two runtimes' unit vectors may be, per component (measured: 4.9e-7).
TOLERANCE = 1e-4


def _crops(shared=None, n: int = 12) -> list[Image.Image]:
    if shared is None:
        return [portrait(d, seed=k, size=224) for d in CAST for k in range(3)][:n]
    files = sorted((shared / "moeimouto10" / "test").glob("*/*.png"))[:: max(1, 600 // n)][:n]
    return [Image.open(f).convert("RGB") for f in files]


def _both(crops):
    onnx = EfficientNetLiteEmbedder(runtime="onnx")
    assert onnx.runtime == "onnx", f"the shipped export is missing: {lite0_onnx_path()}"
    return onnx.embed_batch(crops), EfficientNetLiteEmbedder(runtime="torch").embed_batch(crops)


@pytest.mark.slow
def test_onnx_gives_torchs_vectors_on_drawn_faces():
    a, b = _both(_crops())
    assert a.shape == b.shape == (12, 1280) and a.dtype == np.float32
    assert np.abs(a - b).max() < TOLERANCE


def test_onnx_gives_torchs_vectors_on_real_faces(shared):
    a, b = _both(_crops(shared, 16))
    assert np.abs(a - b).max() < TOLERANCE
    # and different faces stay different: the export is not answering a constant
    assert (a @ a.T)[np.triu_indices(len(a), 1)].min() < 0.95


def test_batch_sizes_agree_and_empty_batch():
    crops = _crops()[:5]
    e1, e3 = EfficientNetLiteEmbedder(batch_size=1), EfficientNetLiteEmbedder(batch_size=3)
    assert np.abs(e1.embed_batch(crops) - e3.embed_batch(crops)).max() < 1e-5
    assert e1.embed_batch([]).shape == (0, 1280)


def test_unknown_runtime_lists_choices():
    with pytest.raises(ValueError, match="onnx, torch"):
        EfficientNetLiteEmbedder(runtime="tensorrt")


def test_export_command_rebuilds_the_shipped_vectors(tmp_path):
    from charaid.models.embedders import normalised_batch
    from charaid.models.runtime import onnx_session
    from charaid.training.export import export_lite0

    out = tmp_path / "lite0.onnx"
    r = run_cli("export-embedder", "--out", str(out))  # the command the README gives
    assert r.returncode == 0 and out.is_file(), r.stderr
    again = export_lite0(tmp_path / "again.onnx")  # and the library call behind it
    assert again.stat().st_size == out.stat().st_size
    e = EfficientNetLiteEmbedder(runtime="onnx")
    x = normalised_batch(_crops()[:4], e.info)
    fresh = onnx_session(str(out)).run(["f"], {"x": x})[0]
    shipped = onnx_session(str(lite0_onnx_path())).run(["f"], {"x": x})[0]
    assert np.abs(fresh - shipped).max() < 1e-3 * np.abs(shipped).max()


NO_TORCH = textwrap.dedent(
    """
    import sys
    from charaid.cli import main

    gallery, picture, out = sys.argv[1:4]
    for argv in (
        ["recognize", "--gallery", gallery, "--json", picture],
        ["detect", "--json", picture],
        ["sort", "--gallery", gallery, "--json", str(picture).rsplit("/", 1)[0], out],
    ):
        code = main(argv)
        assert code == 0, (argv, code)
    from fastapi.testclient import TestClient
    from pathlib import Path
    from charaid.web.app import ServerConfig, create_app

    with TestClient(create_app(ServerConfig(Path(gallery)))) as c:
        with open(picture, "rb") as f:
            r = c.post("/api/recognize", files={"file": ("p.png", f, "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["faces"], r.json()
    heavy = sorted(m for m in ("torch", "sklearn", "matplotlib", "faiss") if m in sys.modules)
    print("HEAVY", heavy)
    """
)


def test_answers_import_no_torch_nor_sklearn(gallery_path, synth_scene, tmp_path):
    pictures = tmp_path / "in"
    pictures.mkdir()
    picture = pictures / "scene.png"
    picture.write_bytes(synth_scene.read_bytes())
    r = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(gallery_path), str(picture), str(tmp_path / "sorted")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "HEAVY []" in r.stdout, r.stdout[-2000:]


@pytest.mark.parametrize("k", [2, 4])
def test_logistic_reaches_the_optimum(k):
    rng = np.random.default_rng(k)
    centres = rng.normal(size=(k, 8))
    y = np.repeat(np.arange(k), 15)
    X = centres[y] + rng.normal(scale=0.8, size=(len(y), 8))
    c = 2.0
    m = fit_logistic(X, y, c, None, k)
    P = m.predict_proba(X)
    assert P.shape == (len(y), k) and np.allclose(P.sum(axis=1), 1.0)
    # at the optimum of mean cross-entropy + ||W||^2 / (2 C n), the gradient vanishes
    n = len(y)
    R = (P - np.eye(k)[y]) / n
    if k == 2:
        grad_w = R[:, 1] @ X + m.coef[0] / (c * n)
        grad_b = R[:, 1].sum()
    else:
        grad_w = R.T @ X + m.coef / (c * n)
        grad_b = R.sum(axis=0)
    assert np.abs(grad_w).max() < 1e-5 and np.abs(grad_b).max() < 1e-5
    assert (P.argmax(axis=1) == y).mean() > 0.8


def test_balanced_weights_make_each_class_weigh_the_same():
    y = np.array([0] * 9 + [1] * 3)
    w = balanced_weights(y, 2)
    assert np.isclose(w[y == 0].sum(), w[y == 1].sum()) and np.isclose(w.sum(), len(y))
    X = np.r_[np.zeros((9, 2)), np.ones((3, 2))] + np.random.default_rng(0).normal(scale=2.0, size=(12, 2))
    plain, fair = fit_logistic(X, y, 1.0, None, 2), fit_logistic(X, y, 1.0, w, 2)
    # weighting the rare class up moves probability towards it on every face
    assert (fair.predict_proba(X)[:, 1] > plain.predict_proba(X)[:, 1]).all()

"""Embedders: declared space, unit vectors, batch = singles, identity cues."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from charaid.jobs.synth import CAST, portrait
from charaid.models.embedders import ColourHistogramEmbedder, ConcatEmbedder, EfficientNetLiteEmbedder, default_embedder


@pytest.fixture(scope="module")
def faces():
    # cut as the pipeline cuts crops: carrying their face colours (found again in each)
    return [portrait(d, seed=k, size=224) for d in CAST for k in range(2)]


def test_default_embedder_declares_its_space():
    e = default_embedder()
    assert e.dim == 1280 + 192 + 9
    assert "efficientnet-lite0" in e.model_id and "hsv-hist" in e.model_id and "animeface-colours" in e.model_id
    assert e.info.input_size == 224 and len(e.info.mean) == 3 and len(e.info.std) == 3


def test_vectors_are_unit_float32_and_batch_equals_singles(faces):
    e = default_embedder()
    X = e.embed_batch(faces)
    assert X.shape == (len(faces), e.dim) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    one = e.embed(faces[3])
    assert np.allclose(one, X[3], atol=1e-4)
    assert e.embed_batch([]).shape == (0, e.dim)


def test_mirror_invariant_cnn(faces):
    """The CNN block averages the crop with its mirror, so a mirrored face embeds the same."""
    e = EfficientNetLiteEmbedder()
    a, b = e.embed_batch([faces[0], ImageOps.mirror(faces[0])])
    assert float(a @ b) > 0.999


def test_same_character_closer_than_others(faces):
    X = default_embedder().embed_batch(faces)
    S = X @ X.T
    for i in range(0, len(faces), 2):  # pairs of the same design
        others = [S[i, j] for j in range(len(faces)) if j // 2 != i // 2]
        assert S[i, i + 1] > max(others)


def test_colour_histogram_sees_hair_colour():
    e = ColourHistogramEmbedder()
    red, red2, blue = (Image.new("RGB", (64, 64), c) for c in [(220, 40, 40), (210, 45, 42), (40, 60, 220)])
    a, b, c = e.embed_batch([red, red2, blue])
    assert a @ b > 0.9 > 0.1 > a @ c


def test_concat_weights_blocks():
    e = ConcatEmbedder([ColourHistogramEmbedder(), ColourHistogramEmbedder()], [1.0, 0.5])
    v = e.embed(Image.new("RGB", (10, 10), (10, 200, 10)))
    n = e.parts[0].dim
    assert abs(np.linalg.norm(v[:n]) / np.linalg.norm(v[n:]) - 2.0) < 1e-5
    assert abs(np.linalg.norm(v) - 1.0) < 1e-5
    with pytest.raises(ValueError):
        ConcatEmbedder([ColourHistogramEmbedder()], [1.0, 2.0])


def test_loading_weights_prints_nothing_on_stdout():
    from charaid.models.embedders import open_efficientnet_torch

    open_efficientnet_torch.cache_clear()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        EfficientNetLiteEmbedder().embed(Image.new("RGB", (50, 50)))
    assert out.getvalue() == ""


def test_unknown_variant_lists_choices():
    with pytest.raises(ValueError, match="lite0, lite1, lite2"):
        EfficientNetLiteEmbedder("b7")


def test_channels_last_layout_gives_the_plain_layouts_vectors(faces):
    """The cached EfficientNet runs in channels-last memory for speed; its vectors must be those
    of the usual NCHW layout (a layout bug would silently change every stored vector)."""
    import torch

    from charaid.models.embedders import nhwc_to_tensor, open_efficientnet_torch, pooled_features

    arr = np.stack([np.asarray(f.convert("RGB").resize((224, 224)), np.float32) / 255.0 for f in faces[:4]])
    x = nhwc_to_tensor(arr)
    assert x.shape == (4, 3, 224, 224) and x.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(x.numpy(), arr.transpose(0, 3, 1, 2))
    model = open_efficientnet_torch("lite0")
    with torch.inference_mode():
        fast = pooled_features(model, x).numpy()
        plain = pooled_features(model, x.contiguous()).numpy()
    assert np.allclose(fast, plain, atol=1e-4)


def test_the_extra_framings_are_embedded_only_for_the_faces_asked(faces):
    """``FacePipeline.embed(..., reframe=...)``: a face left out repeats its usual vector at the
    other framing, and its crop there never reaches the embedder."""
    from charaid.models.crops import FaceCrop
    from charaid.pipeline.faces import FacePipeline
    from charaid.pipeline.prepare import DetectorSpec, PreparedImage

    emb = default_embedder()
    seen: list[int] = []
    real = emb.embed_batch

    def counting(crops):
        seen.append(len(crops))
        return real(crops)

    emb.embed_batch = counting  # type: ignore[method-assign]
    usual = [FaceCrop(faces[0]), FaceCrop(faces[2])]
    wider = [FaceCrop(faces[1]), FaceCrop(faces[3])]  # stand-ins for the wider cuts
    prep = PreparedImage("pic.png", faces=[None, None], crops=usual, framings=[wider])
    pipe = FacePipeline(DetectorSpec(), emb)
    V = pipe.embed([prep], reframe=lambda V0: [False, True])[0].vectors
    assert seen == [2, 1], "the second framing is embedded for the one face asked for"
    assert np.array_equal(V[1, 0], V[0, 0]) and not np.allclose(V[1, 1], V[0, 1])
    seen.clear()
    V = pipe.embed([prep])[0].vectors
    assert seen == [2, 2] and not np.allclose(V[1, 0], V[0, 0])

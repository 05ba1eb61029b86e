"""Open-set decisions (issue 26): the cohort, the decision model, three answers, --closed, _maybe."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from charaid.config import Settings, Thresholds
from charaid.models.cohort import cohort_file_name, load_cohort, save_cohort
from charaid.models.embedders import default_embedder, imagenet_embedder
from charaid.pipeline.decide import DECISION_VERSION, decide, fit_decision


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".charaid" not in p.parts
    }


@pytest.mark.parametrize("make", [default_embedder, imagenet_embedder], ids=["default", "imagenet"])
def test_the_shipped_cohort_loads_offline_and_matches_its_embedder(make):
    emb = make()
    X = load_cohort(emb.model_id)
    assert X is not None, f"no cohort shipped for {emb.model_id}"
    assert X.shape == (3000, emb.dim) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-3)
    assert load_cohort("some-other-model") is None


def test_a_cohort_file_of_another_model_is_never_used(tmp_path):
    X = np.eye(4, dtype=np.float32)
    save_cohort(tmp_path / cohort_file_name("model-a"), X, "model-b", {"test": 4})  # named for a, holds b
    assert load_cohort("model-a", (str(tmp_path),)) is None
    save_cohort(tmp_path / cohort_file_name("model-b"), X, "model-b", {"test": 4})
    got = load_cohort("model-b", (str(tmp_path),))
    assert got is not None and np.allclose(got, X, atol=1e-3)


def test_three_answers_from_probabilities():
    out = decide(np.array([0.9, 0.4, 0.1, 0.4]), ["a", "b", "c", None], named_at=0.55, probable_at=0.25)
    assert [d.tier for d in out] == ["named", "probable", "unknown", "unknown"]
    assert (out[0].character, out[1].probable, out[2].character, out[2].probable) == ("a", "b", None, None)
    closed = decide(np.array([0.9, 0.4, 0.1]), ["a", "b", "c"], 0.55, 0.25, closed=True)
    assert [d.character for d in closed] == ["a", "b", "c"], "closed world: every first guess is named"


def test_small_galleries_have_no_decision_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    assert fit_decision(["a"] * 4 + ["b"] * 4, X, "hybrid", None) is None  # two characters: none can be held out


@pytest.mark.slow
def test_the_decision_model_on_a_real_gallery(shared):
    """tla's three look-alikes enrolled from the author's training crops: the test crops are named
    (none wrongly), and faces of characters it never saw (danbooru6) are mostly not."""
    from charaid.jobs.evaluate import embed_items
    from charaid.pipeline.decide import CohortNorm, GalleryView, decide_faces

    def items(root: Path, pick):
        return [(d.name, p) for d in sorted(root.iterdir()) if d.is_dir() for p in sorted(d.iterdir()) if pick(p)]

    emb = default_embedder()
    train = embed_items(items(shared / "tla" / "faces", lambda p: int(p.stem) <= 30), emb, False)
    test = embed_items(items(shared / "tla" / "faces", lambda p: int(p.stem) > 30), emb, False)
    others = embed_items(items(shared / "danbooru6", lambda p: p.stem.endswith(("0", "5"))), emb, False)
    cohort = load_cohort(emb.model_id)
    model = fit_decision(train.labels, train.X, "hybrid", cohort)
    assert model is not None and model.summary["auroc"] > 0.8
    view = GalleryView.build(train.labels, train.X, "hybrid", CohortNorm(cohort))
    t = Thresholds()
    known = decide_faces(view.matcher, view, model, test.X, 5, t)
    right = sum(d.character == truth for (_, d), truth in zip(known, test.labels))
    wrong = sum(d.character not in (None, truth) for (_, d), truth in zip(known, test.labels))
    assert right >= 15 and wrong == 0, (right, wrong)
    strangers = decide_faces(view.matcher, view, model, others.X, 5, t)
    named = sum(d.character is not None for _, d in strangers)
    assert named <= 0.2 * len(strangers), f"{named} of {len(strangers)} strangers named"
    assert all(0.0 <= (d.probability or 0.0) <= 1.0 for _, d in known + strangers)


def _recognizer(gallery, **thresholds):
    from charaid.recognition.recognize import Recognizer

    s = Settings()
    return Recognizer(gallery, settings=replace(s, thresholds=replace(s.thresholds, **thresholds)))


def test_sort_files_probable_pictures_under_maybe_and_undoes_them_exactly(gallery_path, synth_train, tmp_path):
    from charaid.jobs.sort import Sorter, SortOptions, undo
    from charaid.storage.gallery import Gallery

    src = tmp_path / "src"
    src.mkdir()
    for i, p in enumerate(sorted(synth_train.rglob("*.png"))[::3]):
        (src / f"{i}.png").write_bytes(p.read_bytes())
    before = tree_hashes(src)
    dst = tmp_path / "dst"
    with Gallery(gallery_path) as g:
        rec = _recognizer(g, decision_named=1.01, decision_probable=0.0)  # nothing sure, everything probable
        assert rec.decision_model is not None
        s = Sorter(rec, dst, SortOptions(move=True, pictures=False)).run(src)
    maybe = {p.parent.name for p in (dst / "_maybe").rglob("*.png")}
    assert maybe and maybe <= {"akane", "sora", "hikari"}
    assert sum(1 for _ in (dst / "_maybe").rglob("*.png")) == len(before) and not any(src.iterdir())
    undo(dst, s.run_id)
    assert tree_hashes(src) == before
    assert not (dst / "_maybe").exists() or not any((dst / "_maybe").rglob("*.png"))


def test_closed_names_every_face_found(gallery_path, synth_scene):
    plain = json.loads(run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--json", "-q").stdout)
    closed = json.loads(run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--json", "-q", "--closed").stdout)
    assert len(plain["faces"]) == len(closed["faces"]) == 3
    assert None in [f["character"] for f in plain["faces"]], "midori was never enrolled"
    assert all(f["character"] == f["top"][0]["character"] for f in closed["faces"])
    for f in plain["faces"]:
        assert {"probable", "probability"} <= set(f)
        assert f["probability"] is not None and 0 <= f["probability"] <= 1
        assert f["character"] is None or f["probable"] is None


def test_an_old_gallery_fits_its_decision_model_and_a_stale_one_is_refitted(gallery_path):
    from charaid.recognition.recognize import GALLERY_DECISION_KEY
    from charaid.storage.gallery import Gallery

    with Gallery(gallery_path) as g:
        assert g.get_json(GALLERY_DECISION_KEY) is None  # made before decisions existed
        model = _recognizer(g).decision_model
        assert model is not None and model.revision == g.revision
        stored = g.get_json(GALLERY_DECISION_KEY)
        assert stored["version"] == DECISION_VERSION
        g.set_json(GALLERY_DECISION_KEY, {**stored, "version": 0, "coef": [0.0] * len(stored["coef"])})
        again = _recognizer(g).decision_model
        assert again is not None and again.version == DECISION_VERSION and again.coef == stored["coef"]


def test_evaluate_closed_measures_without_unknowns(synth_train, tmp_path):
    r = run_cli("evaluate", str(synth_train), "--folds", "2", "--closed", "--no-detect", "--report", str(tmp_path / "rep"), "-q")
    assert r.returncode == 0, r.stderr
    assert "Closed world (--closed)" in r.stdout and "unknowns: AUROC" not in r.stdout
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["closed"] is True and rep["unknown"] is None
    r = run_cli("evaluate", str(synth_train), "--folds", "2", "--no-detect", "-q")
    assert r.returncode == 0, r.stderr
    assert "unknowns: AUROC" in r.stdout and "as recognize answers (decision model)" in r.stdout


def test_a_face_its_usual_crop_names_keeps_that_answer_and_is_not_reframed(gallery_path):
    """Recognition embeds the extra framings only for faces that the usual crop leaves unnamed
    (``Recognizer.reframe``), so ``decide`` must answer from the usual crop wherever it names."""
    from charaid.recognition.recognize import Recognizer
    from charaid.storage.gallery import Gallery

    with Gallery(gallery_path) as g:
        labels, X, _ = g.vectors()
        rec = Recognizer(g)
        names = sorted(set(labels))
        a = next(i for i, c in enumerate(labels) if c == names[0])
        b = next(i for i, c in enumerate(labels) if c == names[1])
        rng = np.random.default_rng(0)
        noise = rng.normal(size=X.shape[1]).astype(np.float32)
        noise /= np.linalg.norm(noise)
        usual = np.stack([X[a], noise])  # face 0 is an enrolled face of names[0]; face 1 is nothing
        other = np.stack([X[b], X[b]])  # the other framing shows names[1] for both
        assert list(rec.reframe(usual)) == [False, True]
        (m0, d0), (m1, d1) = rec.decide(np.stack([usual, other]))
        assert d0.character == names[0], "the usual crop named it: the other framing is not asked"
        assert d1.character == names[1], "the usual crop named nothing: the framing trusted most answers"

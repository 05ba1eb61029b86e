"""The SQLite gallery: spaces never mixed, re-enrolment a no-op, all-or-nothing batches."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from charaid.errors import EmbeddingSpaceError, GalleryError, UnknownCharacterError
from charaid.storage.gallery import Gallery, NewSample

DIM = 8


def sample(name: str, h: str, seed: int = 0, box=None) -> NewSample:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return NewSample(name, h, v / np.linalg.norm(v), f"/src/{h}.png", box, Image.new("RGB", (40, 40), (seed % 255, 0, 0)))


@pytest.fixture
def g(tmp_path):
    with Gallery(tmp_path / "g.sqlite") as gal:
        yield gal


def test_add_and_read_back(g):
    r = g.add([sample("ann", "h1", 1), sample("ann", "h2", 2), sample("bob", "h3", 3, box=(1, 2, 3, 4))], "m", DIM)
    assert r.added == 3 and g.model_id == "m" and g.dim == DIM
    assert [(c.name, c.samples) for c in g.characters()] == [("ann", 2), ("bob", 1)]
    labels, X, ids = g.vectors()
    assert list(labels) == ["ann", "ann", "bob"] and X.shape == (3, DIM) and X.dtype == np.float32
    s = g.samples("bob")[0]
    assert s.box == (1, 2, 3, 4) and s.source_path == "/src/h3.png"
    assert g.crop(s.id).size == (40, 40)


def test_reenrolling_is_a_no_op(g):
    g.add([sample("ann", "h1", 1)], "m", DIM)
    rev = g.revision
    r = g.add([sample("ann", "h1", 1)], "m", DIM)
    assert (r.added, r.duplicates) == (0, 1) and len(g) == 1 and g.revision == rev
    r = g.add([sample("bob", "h1", 1)], "m", DIM)  # same face filed under another name
    assert r.added == 0 and r.conflicts == [("/src/h1.png", "ann")]


def test_spaces_are_never_mixed(g):
    g.add([sample("ann", "h1")], "model-a", DIM)
    with pytest.raises(EmbeddingSpaceError, match="model-a"):
        g.add([sample("ann", "h2")], "model-b", DIM)
    with pytest.raises(EmbeddingSpaceError):
        g.add([NewSample("ann", "h3", np.zeros(DIM + 1, np.float32))], "model-a", DIM + 1)
    with pytest.raises(EmbeddingSpaceError, match="dim"):
        g.add([NewSample("ann", "h3", np.zeros(3, np.float32))], "model-a", DIM)
    assert len(g) == 1


def test_rename_merge_remove(g):
    g.add([sample("ann", "h1", 1), sample("bob", "h2", 2), sample("cat", "h3", 3)], "m", DIM)
    g.rename_character("ann", "anne")
    with pytest.raises(ValueError, match="merge"):
        g.rename_character("bob", "anne")
    g.rename_character("bob", "anne", merge=True)
    assert [(c.name, c.samples) for c in g.characters()] == [("anne", 2), ("cat", 1)]
    assert g.remove_character("cat") == 1
    with pytest.raises(UnknownCharacterError, match="known: anne"):
        g.remove_character("cat")
    sid = g.samples("anne")[0].id
    g.remove_sample(sid)
    assert len(g) == 1
    with pytest.raises(KeyError):
        g.remove_sample(sid)


def test_names_no_character_may_have(g):
    """Empty, padded, and sort's own folder names are refused by add, rename and the pictures."""
    from charaid.storage.pictures import NewPicture, add_pictures

    g.add([sample("ann", "h1", 1)], "m", DIM)
    for bad, why in [("", "empty"), (" ann", "padded"), ("_unknown", "reserved for charaid sort"), ("_group", "reserved")]:
        with pytest.raises(ValueError, match=why):
            g.add([sample(bad, "h2", 2)], "m", DIM)
        if bad == bad.strip():  # rename strips what it is given
            with pytest.raises(ValueError, match=why):
                g.rename_character("ann", bad)
        with pytest.raises(ValueError, match=why):
            add_pictures(g, [NewPicture(bad, "p1", np.zeros(DIM, np.float32))], "m", DIM)
    assert [c.name for c in g.characters()] == ["ann"] and len(g) == 1


def test_failed_batch_leaves_gallery_as_it_was(g, monkeypatch):
    g.add([sample("ann", "h0")], "m", DIM)
    import charaid.storage.gallery as gm

    calls = {"n": 0}
    real = gm.encode_crop

    def flaky(im, side):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(im, side)

    monkeypatch.setattr(gm, "encode_crop", flaky)
    with pytest.raises(OSError):
        g.add([sample("bob", f"h{i}", i) for i in range(1, 6)], "m", DIM)
    assert len(g) == 1 and g.names() == ["ann"]


def test_not_a_gallery(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"hello, not a database" * 100)
    with pytest.raises(GalleryError, match="not a charaid gallery"):
        Gallery(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(GalleryError, match="not a charaid gallery"):
        Gallery(other)


def test_newer_schema_refused(tmp_path):
    p = tmp_path / "g.sqlite"
    Gallery(p).close()
    with sqlite3.connect(p) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(GalleryError, match="newer charaid"):
        Gallery(p)


def test_reembedding_and_activating_another_model(g):
    g.add([sample("ann", "h1", 1), sample("bob", "h2", 2)], "m1", DIM)
    with pytest.raises(EmbeddingSpaceError, match="embed them first"):
        g.activate_model("m2", 4)
    assert len(g.missing_vectors("m2")) == 2
    g.set_vectors("m2", 4, [(s.id, np.ones(4, np.float32)) for s in g.samples()])
    g.activate_model("m2", 4)
    labels, X, _ = g.vectors()
    assert g.model_id == "m2" and X.shape == (2, 4)
    assert g.vectors("m1")[1].shape == (2, DIM)  # the old space stays until removed


@pytest.mark.slow
def test_killed_mid_enrol_loses_nothing(tmp_path):
    """SIGKILL during `charaid enroll`: committed batches stay whole, nothing is half-written,
    and running the command again finishes the job."""
    from charaid.jobs.synth import CAST, write_training_set

    first = write_training_set(tmp_path / "first", CAST[:1], per_character=4)
    second = write_training_set(tmp_path / "second", CAST[1:3], per_character=14)
    gp = tmp_path / "g.sqlite"
    env = dict(os.environ, CHARAID_BATCH_SIZE="4")
    cmd = [sys.executable, "-m", "charaid.cli", "enroll", "--workers", "0", "-q", "--gallery", str(gp)]
    assert subprocess.run(cmd + [str(first)], env=env, capture_output=True).returncode == 0
    with Gallery(gp) as g:
        n_first = len(g)
    assert n_first == 4
    proc = subprocess.Popen(cmd + [str(second)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    n = n_first
    while time.time() < deadline and proc.poll() is None:
        with sqlite3.connect(f"file:{gp}?mode=ro", uri=True) as db:
            n = db.execute("SELECT count(*) FROM samples").fetchone()[0]
        if n >= n_first + 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(gp) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n_samples = db.execute("SELECT count(*) FROM samples").fetchone()[0]
        n_vectors = db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    assert n_samples == n_vectors  # no sample without its vector
    assert (n_samples - n_first) % 4 == 0 and n_samples < n_first + 28  # whole batches only, killed early
    assert subprocess.run(cmd + [str(second)], env=env, capture_output=True).returncode == 0
    with Gallery(gp) as g:
        assert len(g) == n_first + 28
        assert {c.name: c.samples for c in g.characters()} == {"akane": 4, "sora": 14, "hikari": 14}


def test_schema_migrates_forward_keeping_data(tmp_path):
    """A gallery made by the first schema (no labelling tables) opens, upgrades, keeps its faces."""
    from charaid.storage.schema import GALLERY_MIGRATIONS as MIGRATIONS
    from charaid.storage.schema import SCHEMA_VERSION

    p = tmp_path / "old.sqlite"
    with sqlite3.connect(p) as db:  # exactly what version 1 created
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
    with Gallery(p) as g:
        g.add([sample("ann", "h1")], "m", DIM)
    with sqlite3.connect(p) as db:
        db.executescript(
            "DROP TABLE label_faces; DROP TABLE label_rejections; DROP TABLE label_actions; DROP TABLE pictures; "
            "PRAGMA user_version = 1;"
        )
    with Gallery(p) as g:
        assert g.names() == ["ann"] and len(g) == 1
        assert g.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert g.db.execute("SELECT count(*) FROM label_faces").fetchone()[0] == 0
        assert g.db.execute("SELECT count(*) FROM pictures").fetchone()[0] == 0


def test_transaction_is_all_or_nothing(tmp_path):
    from charaid.storage.schema import transaction

    db = sqlite3.connect(str(tmp_path / "t.sqlite"), isolation_level=None)
    db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(ZeroDivisionError):
        with transaction(db):
            db.execute("INSERT INTO t VALUES (1)")
            1 / 0  # noqa: B018 (the error is the point)
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # rolled back
    with transaction(db):
        db.execute("INSERT INTO t VALUES (2)")
    assert db.execute("SELECT x FROM t").fetchall() == [(2,)]

"""``charaid discover``: characters found in a folder without labels, and the measures behind it."""

from __future__ import annotations

import json

import numpy as np
from conftest import run_cli

from charaid.jobs.discover import bcubed, clicks_to_name, neighbours_for, shared_neighbours, snn_clusters


def test_bcubed_and_clicks_on_known_clusterings():
    truth = ["a", "a", "a", "b", "b", "c"]
    assert bcubed(truth, [1, 1, 1, 2, 2, 3]) == (1.0, 1.0, 1.0)
    p, r, f = bcubed(truth, [1, 1, 1, 1, 1, 1])  # one cluster: pure recall, poor precision
    assert r == 1.0 and p < 0.5 and 0 < f < 0.6
    assert clicks_to_name(truth, [1, 1, 1, 2, 2, 3], share=1.0) == 3  # one click a cluster
    assert clicks_to_name(truth, [1, 2, 3, 4, 5, 6], share=1.0) == 6  # one by one
    assert clicks_to_name(truth, [1, 1, 1, 1, 1, 2], share=1.0) == 4  # name it "a", take out b, b; then c


def test_shared_neighbour_clusters_follow_the_groups_biggest_first():
    rng = np.random.default_rng(0)
    centres = np.eye(16)[:3]
    X = np.concatenate([c + 0.05 * rng.standard_normal((n, 16)) for c, n in zip(centres, (48, 120, 80))])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = snn_clusters(X, 8, 0.05)
    truth = [0] * 48 + [1] * 120 + [2] * 80
    p, _, f = bcubed(truth, ids)
    assert p == 1.0 and f >= 0.8, "no cluster mixes two groups"  # a big uniform group may come in a few parts
    sizes = np.bincount(ids)
    assert (np.diff(sizes) <= 0).all(), "numbered biggest first"
    assert bcubed(truth, snn_clusters(X, 8, 0.0))[1] == 1.0 and len(set(snn_clusters(X, 8, 0.99).tolist())) > 100
    J = shared_neighbours(X, 8).toarray()
    assert np.allclose(np.diag(J), 1.0) and J[0, 1] > 0 and J[0, 200] == 0
    assert neighbours_for(18, 10) == 3 and neighbours_for(765, 10) == 10


def test_above_the_dense_limit_clusters_are_connected_faces(monkeypatch):
    import charaid.jobs.discover as d

    rng = np.random.default_rng(1)
    X = np.concatenate([c + 0.05 * rng.standard_normal((100, 16)) for c in np.eye(16)[:2]])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    monkeypatch.setattr(d, "DENSE_LIMIT", 10)
    assert bcubed([0] * 100 + [1] * 100, d.snn_clusters(X, 8, 0.05))[:2] == (1.0, 1.0)  # connected faces: whole groups


def test_discover_groups_drawn_characters_and_names_known_ones(gallery_path, synth_train):
    r = run_cli("discover", str(synth_train), "--no-gallery", "--json", "-q", "--gallery", str(gallery_path))
    assert r.returncode == 0, r.stderr
    faces = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(faces) == 18 and all(f["character"] is None and f["cluster"] for f in faces)
    truth = [f["path"].split("/")[-2] for f in faces]
    p, rec, f = bcubed(truth, [x["cluster"] for x in faces])
    assert f >= 0.8, (p, rec, f)
    known = run_cli("discover", str(synth_train), "--json", "-q", "--gallery", str(gallery_path))
    named = [json.loads(line) for line in known.stdout.splitlines()]
    assert sum(1 for x in named if x["character"] == x["path"].split("/")[-2]) >= 15  # the gallery knows them
    human = run_cli("discover", str(synth_train), "--no-gallery", "-q", "--gallery", str(gallery_path))
    assert human.stdout.startswith("cluster 1: ") and "proposed characters" in human.stdout

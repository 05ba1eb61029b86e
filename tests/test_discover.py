"""``charaid discover``: characters found in a folder without labels, and the measures behind it."""

from __future__ import annotations

import json

import numpy as np
from conftest import run_cli

from charaid.jobs.discover import average_linkage, bcubed, clicks_to_name, cohort_link


def test_bcubed_and_clicks_on_known_clusterings():
    truth = ["a", "a", "a", "b", "b", "c"]
    assert bcubed(truth, [1, 1, 1, 2, 2, 3]) == (1.0, 1.0, 1.0)
    p, r, f = bcubed(truth, [1, 1, 1, 1, 1, 1])  # one cluster: pure recall, poor precision
    assert r == 1.0 and p < 0.5 and 0 < f < 0.6
    assert clicks_to_name(truth, [1, 1, 1, 2, 2, 3], share=1.0) == 3  # one click a cluster
    assert clicks_to_name(truth, [1, 2, 3, 4, 5, 6], share=1.0) == 6  # one by one
    assert clicks_to_name(truth, [1, 1, 1, 1, 1, 2], share=1.0) == 4  # name it "a", take out b, b; then c


def test_average_linkage_cuts_at_the_link_and_numbers_biggest_first():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    X = np.concatenate([c + 0.05 * rng.standard_normal((n, 8)) for c, n in zip(centres, (2, 5, 3))])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = average_linkage(X, 0.8)
    assert ids.tolist() == [2, 2, 0, 0, 0, 0, 0, 1, 1, 1]
    assert len(set(average_linkage(X, 0.9999).tolist())) == 10 and set(average_linkage(X, -1.0).tolist()) == {0}
    C = rng.standard_normal((500, 8))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    assert cohort_link(C, 0.99) > cohort_link(C, 0.5)


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

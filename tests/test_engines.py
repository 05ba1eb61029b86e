"""One pipeline, two engines: recognize, sort and enroll on Ray give the local engine's answers.

Real pictures (tla's three characters): a gallery is enrolled on each engine, then the same
gallery recognises and sorts the held-back pictures on each. A broken file is among them, so
the engines must also agree on what fails and why.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from charaid.jobs.enroll import enroll_items
from charaid.jobs.sort import Sorter, SortOptions
from charaid.pipeline.faces import FacePipeline, RunOptions, group
from charaid.recognition.recognize import Recognizer
from charaid.storage.gallery import Gallery

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from charaid.pipeline.ray_engine import start_ray

    start_ray(cpus=2)
    yield
    ray.shutdown()


def _split(shared, tmp_path):
    enrol, test = [], tmp_path / "test"
    test.mkdir()
    for folder in sorted((shared / "tla" / "raw").iterdir()):
        pics = sorted(folder.glob("*"))
        enrol += [(folder.name, p) for p in pics[:4]]
        for p in pics[4:6]:
            shutil.copy(p, test / f"{folder.name}-{p.name}")
    (test / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return enrol, test


def _answers(results):
    return [(r.path, r.error, [(f.box.as_list(), f.character, f.probable, round(f.score, 4)) for f in r.faces]) for r in results]


def test_group_batches_by_weight_size_and_age():
    assert list(group(range(7), lambda _: 1, 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(group([5, 1, 1, 9, 1], lambda x: x, 6)) == [[5, 1], [1, 9], [1]]
    assert list(group(range(3), lambda _: 1, 100, every_s=0.0)) == [[0], [1], [2]]
    with pytest.raises(ValueError, match="local, ray"):
        RunOptions(engine="spark")


def test_ray_engine_gives_the_local_answers(shared, tmp_path, ray_local):
    enrol, test = _split(shared, tmp_path)
    ray = RunOptions(engine="ray", workers=2)
    galleries = {}
    for name, opts in [("local", None), ("ray", ray)]:
        g = Gallery(tmp_path / f"{name}.sqlite")
        s = enroll_items(g, enrol, options=opts)
        galleries[name] = (g, s)
    (gl, sl), (gr, sr) = galleries["local"], galleries["ray"]
    assert sl.added == sr.added >= 10 and sl.pictures == sr.pictures and sl.no_face == sr.no_face
    la, Xa, _ = gl.vectors()
    lb, Xb, _ = gr.vectors()
    assert list(la) == list(lb)
    np.testing.assert_allclose(Xa, Xb, atol=1e-4)

    paths = sorted(test.iterdir())
    rec = Recognizer(gl)
    local = _answers(rec.recognize_paths(paths, pictures=True))
    on_ray = _answers(rec.recognize_paths(paths, pictures=True, options=ray))
    assert local == on_ray
    assert sum(1 for _, err, _ in local if err) == 1 and any(f[1] for _, _, fs in local for f in fs)

    plans = {}
    for name, engine in [("local", "local"), ("ray", "ray")]:
        opts = SortOptions(workers=2 if engine == "ray" else 0, engine=engine)
        s = Sorter(rec, tmp_path / f"sorted-{name}", opts).run(test, dry_run=False)
        got = sorted(
            (p.relative_to(tmp_path / f"sorted-{name}").as_posix())
            for p in (tmp_path / f"sorted-{name}").rglob("*")
            if p.is_file() and not p.name.startswith(".") and ".charaid" not in p.parts
        )
        plans[name] = (got, s.per_folder, len(s.errors))
    assert plans["local"] == plans["ray"]
    assert plans["local"][2] == 1, "the broken file is reported by both"
    for g, _ in galleries.values():
        g.close()


def test_pipeline_pickles_for_the_actors():
    """What Ray sends each actor: the job's pipeline, its detector spec and embedder included."""
    import pickle

    from charaid.models.embedders import default_embedder
    from charaid.pipeline.prepare import DetectorSpec

    p = pickle.loads(pickle.dumps(FacePipeline(DetectorSpec(), default_embedder())))
    assert p.embedder.model_id == default_embedder().model_id and p.spec == DetectorSpec()

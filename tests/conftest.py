"""Shared fixtures. Real images come from ../shared/data and are never copied into the repo;
tests that need them skip with a clear message where that folder is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHARAID_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real images not found at {SHARED} (../shared/data): real-image test skipped")
    return SHARED


@pytest.fixture(scope="session")
def shared_train() -> Path:
    p = SHARED.parent / "train"
    if not (p / "icartoonface").is_dir():
        pytest.skip(f"training data not found at {p} (../shared/train): training test skipped")
    return p


@pytest.fixture(scope="session")
def synth_train(tmp_path_factory) -> Path:
    """DIR/<character>/<images> of three drawn characters, six portraits each."""
    from charaid.jobs.synth import CAST, write_training_set

    return write_training_set(tmp_path_factory.mktemp("synth") / "train", CAST[:3], per_character=6)


@pytest.fixture(scope="session")
def synth_scene(tmp_path_factory) -> Path:
    """A group picture: akane, midori (never enrolled), sora, left to right."""
    from charaid.jobs.synth import CAST, group_picture

    p = tmp_path_factory.mktemp("scene") / "scene.png"
    d = {c.name: c for c in CAST}
    group_picture([d["akane"], d["midori"], d["sora"]], seed=1).save(p)
    return p


@pytest.fixture(scope="session")
def _enrolled(tmp_path_factory, synth_train) -> Path:
    from charaid.jobs.enroll import enroll_items, labelled_images
    from charaid.storage.gallery import Gallery

    p = tmp_path_factory.mktemp("gal") / "gallery.sqlite"
    with Gallery(p) as g:
        enroll_items(g, labelled_images(synth_train))
    return p


@pytest.fixture
def gallery_path(_enrolled, tmp_path) -> Path:
    """A fresh copy of a gallery with the three drawn characters enrolled."""
    p = tmp_path / "gallery.sqlite"
    shutil.copy(_enrolled, p)
    return p


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``charaid ARGS`` in a new process, as a user would run it."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "charaid.cli", *args], capture_output=True, text=True, env=e, timeout=timeout)


def load_script(path: Path, name: str):
    """A script outside the package (benchmarks/, experiments/) imported as module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod

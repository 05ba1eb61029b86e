"""Ray as the engine beyond one machine (``charaid index --engine ray [--ray-address ADDR]``).

The per-image work is exactly the local engine's (``prepare_image`` then
``store.embed_prepared``), run by Ray Data ``map_batches`` on a pool of stateful actors: each
actor loads the detector and the CNN once and keeps them. With no address, Ray starts a local
instance on this machine; with one (``ray://head:10001`` or ``auto``), the actors run on the
cluster and every node needs charaid installed and the images at the same paths (a shared
file system). Results come back to this process in input order and are written to the face
store as the local engine writes them, so resuming and searching are the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from charaid.models.detectors import Box
from charaid.storage.store import IndexedImage


class _FaceActor:
    """Holds the models in a Ray worker; called with batches of paths."""

    def __init__(self, spec, threads: int = 1):
        import torch

        from charaid.models.embedders import imagenet_embedder

        torch.set_num_threads(max(1, threads))
        self.embedder = imagenet_embedder()  # the face store's space (cli.common._store)
        self.spec = spec.for_embedder(self.embedder)

    def __call__(self, batch: dict) -> dict:
        from charaid.pipeline.prepare import prepare_image
        from charaid.storage.store import embed_prepared

        preps = [prepare_image(str(p), True, self.spec, with_hash=False) for p in batch["path"]]
        rows = embed_prepared(preps, self.embedder)
        return {
            "path": np.array([r.path for r in rows], dtype=object),
            "meta": np.array(
                [
                    json.dumps(
                        {
                            "size": r.size,
                            "mtime": r.mtime,
                            "image_size": r.image_size,
                            "error": r.error,
                            "boxes": [b.as_list() for b in r.boxes],
                            "scores": [float(s) for s in r.scores],
                        }
                    )
                    for r in rows
                ],
                dtype=object,
            ),
            "vectors": np.array(
                [
                    (r.vectors if r.vectors is not None else np.zeros((0, 0), np.float32)).astype(np.float32).tobytes()
                    for r in rows
                ],
                dtype=object,
            ),
        }


def _from_row(row: dict, dim: int) -> IndexedImage:
    m = json.loads(row["meta"])
    boxes = [Box(*b) for b in m["boxes"]]
    V = np.frombuffer(row["vectors"], np.float32).reshape(len(boxes), dim) if boxes else None
    return IndexedImage(
        str(row["path"]),
        m["size"],
        m["mtime"],
        tuple(m["image_size"]) if m["image_size"] else None,
        boxes,
        m["scores"],
        V,
        m["error"],
    )


def start_ray(address: str | None = None, cpus: int | None = None) -> None:
    """Connect to ``address``, or start a quiet local Ray instance (once per process)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray engine needs Ray: pip install 'ray[data]==2.60.0'") from None
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=cpus, **kw)


def index_ray(
    paths: Iterable[str], spec, dim: int, address: str | None = None, actors: int = 0, batch_size: int = 8, window: int = 2048
) -> Iterator[IndexedImage]:
    """Index ``paths`` with Ray Data; yields results in input order, ``window`` paths at a time
    (so a list of millions is never held whole, and each window's results can be committed)."""
    import logging

    import ray

    start_ray(address)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # our own progress bar and summary say enough
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    n_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    it = iter(paths)
    while True:
        chunk = [str(p) for _, p in zip(range(window), it)]
        if not chunk:
            return
        # Blocks made here, in the driver: no Ray task has to wait for a CPU the actors hold.
        ds = ray.data.from_items(
            [{"path": p} for p in chunk], override_num_blocks=max(1, min(-(-len(chunk) // batch_size), 4 * n_actors))
        )
        out = ds.map_batches(
            _FaceActor,
            fn_constructor_kwargs={"spec": spec},
            batch_size=batch_size,
            concurrency=min(n_actors, max(1, len(chunk) // batch_size)),
            num_cpus=1,
            batch_format="numpy",
        )
        for row in out.iter_rows():
            yield _from_row(row, dim)

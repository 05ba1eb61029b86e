"""Ray as the engine beyond one machine (``--engine ray [--ray-address ADDR]`` on recognize,
sort, enroll and index).

The per-picture work is exactly the local engine's (:class:`FacePipeline`: decode, detect,
crop, embed), run by Ray Data ``map_batches`` on a pool of stateful actors: each actor gets a
copy of the job's pipeline (its detector spec and embedder, tuned models included) and loads
the models once. With no address Ray starts a local instance on this machine; with one
(``ray://head:10001`` or ``auto``) the actors run on the cluster, and every node needs charaid
installed and the pictures at the same paths (a shared file system). Results come back to the
calling process in input order, where the job uses them as the local engine's.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

# The pipeline's types are not imported here: charaid.pipeline.faces imports this module.


class _PipelineActor:
    """Holds a pipeline in a Ray worker; called with batches of paths."""

    def __init__(self, pipeline: bytes, options: bytes, threads: int = 1):
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        self.pipeline = pickle.loads(pipeline)  # a charaid.pipeline.faces.FacePipeline
        self.options = pickle.loads(options)  # and its RunOptions
        self.pipeline.embedder.load()

    def __call__(self, batch: dict) -> dict:
        opts = self.options
        # in this actor's process; a native detector in a watched one, so no picture stalls the actor
        preps = list(self.pipeline.prepared([str(p) for p in batch["path"]], opts, workers=0))
        out = self.pipeline.embed(preps, opts.select)
        if not opts.keep_crops:
            for e in out:
                e.prep = replace(e.prep, crops=[], framings=[])
        return {"item": np.array([pickle.dumps(e) for e in out], dtype=object)}


def start_ray(address: str | None = None, cpus: int | None = None) -> None:
    """Connect to ``address``, or start a quiet local Ray instance (once per process)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray engine needs Ray: pip install 'charaid[ray]'") from None
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=cpus, **kw)


def run_ray(
    pipeline: Any,
    paths: Iterable[str | Path],
    options: Any,
    batch_size: int = 8,
    window: int = 2048,
) -> Iterator[Any]:
    """``pipeline`` over ``paths`` with Ray Data, in input order, ``window`` paths at a time (so a
    list of millions is never held whole, and each window's results can be committed).
    ``options.workers`` actors (0: one per CPU of the cluster)."""
    # our own progress bar and summary say enough: Ray Data logs errors only (read when it configures its loggers)
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    import ray
    import ray.data

    start_ray(options.ray_address)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    n_actors = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    kwargs = {"pipeline": pickle.dumps(pipeline), "options": pickle.dumps(options)}
    it = iter(paths)
    while True:
        chunk = [str(p) for _, p in zip(range(window), it)]
        if not chunk:
            return
        # Blocks made here, in the driver: no Ray task has to wait for a CPU the actors hold.
        ds = ray.data.from_items(
            [{"path": p} for p in chunk], override_num_blocks=max(1, min(-(-len(chunk) // batch_size), 4 * n_actors))
        )
        with warnings.catch_warnings():  # max_restarts goes through ray_remote_args, which Ray 2.60 calls deprecated
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            out = ds.map_batches(
                _PipelineActor,
                fn_constructor_kwargs=kwargs,
                batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=min(n_actors, max(1, len(chunk) // batch_size))),
                num_cpus=1,
                max_restarts=0,  # a lost actor fails its pictures rather than restarting from arguments Ray may have freed
                batch_format="numpy",
            )
        for row in out.iter_rows():
            yield pickle.loads(row["item"])

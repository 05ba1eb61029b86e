"""Helpers shared by the commands: exit codes, progress bars, the gallery path, the detector."""

from __future__ import annotations

import sys
from pathlib import Path

from charaid.config import default_settings

EXIT_OK, EXIT_SETUP, EXIT_INPUT, EXIT_STOPPED = 0, 1, 2, 3


def _progress(total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=quiet, leave=False, dynamic_ncols=True)


def _warn(msg: str) -> None:
    from tqdm import tqdm

    from charaid.names import one_line

    tqdm.write(f"charaid: {one_line(msg)}", file=sys.stderr)


def _settings(args):
    """The command's settings: read from the environment once, when the command starts
    (charaid.config.default_settings), and passed to every job it runs."""
    s = getattr(args, "settings", None)
    if s is None:
        s = args.settings = default_settings()
    return s


def _gallery_path(args) -> Path:
    return Path(args.gallery).expanduser() if args.gallery else _settings(args).gallery


def _detector_spec(args, gallery=None):
    """The detector asked for; else the one that cut ``gallery``'s faces; else the default."""
    from charaid.models.detectors import DEFAULT_DETECTOR
    from charaid.pipeline.prepare import DetectorSpec

    s = _settings(args)
    recorded = gallery.detector if gallery is not None else None
    name = args.detector or ("cascade" if args.cascade and recorded not in ("cascade", "union") else recorded) or DEFAULT_DETECTOR
    spec = DetectorSpec(
        name, str(args.cascade) if args.cascade else None, s.max_detect_side, s.thresholds, crop_side=s.stored_crop_side
    )
    spec.build()  # fail now, once, with a clear message (bad cascade path, Pillow too new...)
    return spec


def _workers(args, n: int) -> int:
    from charaid.pipeline.prepare import default_workers

    return default_workers(n) if args.workers is None else args.workers


def _run_options(args, n: int = 10**9, **kw):
    """How a batch command reads its ``n`` pictures: ``--engine``, ``--ray-address``, ``--workers``
    (on Ray the number of actors, 0: one per CPU of the cluster)."""
    from charaid.pipeline.faces import RunOptions

    engine = getattr(args, "engine", "local")
    workers = (args.workers or 0) if engine == "ray" else _workers(args, n)
    return RunOptions(workers=workers, engine=engine, ray_address=getattr(args, "ray_address", None), **kw)


def _sync_index(g, args=None) -> None:
    """Big galleries: bring the ANN index up to date now rather than at the next recognition."""
    limit = (_settings(args) if args is not None else default_settings()).exact_search_limit
    if len(g) >= limit:
        from charaid.storage.index import GalleryIndex

        GalleryIndex(g, exact_limit=limit).ensure()


def _open_recognizer(args, gallery):
    from charaid.recognition.recognize import Recognizer

    spec = None if args.no_detect else _detector_spec(args, gallery)
    return Recognizer(
        gallery,
        detector=spec,
        threshold=args.threshold,
        top_k=args.top_k,
        settings=_settings(args),
        closed=getattr(args, "closed", False),
    )


def _store(args, must_exist: bool = False):
    """The face store and its embedder; ``must_exist``: refuse a store that is not there (a
    search in a misspelt path must not quietly make an empty one)."""
    from charaid.models.embedders import imagenet_embedder
    from charaid.storage.store import FaceStore

    path = Path(args.store).expanduser() if args.store else _settings(args).store
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"{path}: no face store here; fill one first: charaid index PATH... --store {path}")
    emb = imagenet_embedder()
    return FaceStore(path, emb.model_id, emb.dim), emb

"""Which embedder makes a gallery's vectors: the built-in default, or a model tuned on it.

A gallery records the model id of its active space; :func:`embedder_for` rebuilds that exact
embedder, so a new process gets the same vectors (and the same answers) as the one that
enrolled. Tuned models live beside the gallery, in ``<gallery file>.models/<model id>.pt``.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

from charaid.config import Thresholds
from charaid.errors import EmbeddingSpaceError
from charaid.models import zoo
from charaid.models.embedders import ColourHistogramEmbedder, ConcatEmbedder, Embedder, default_embedder
from charaid.pipeline.match import Calibration
from charaid.storage.gallery import Gallery

TUNED_PREFIX = "tuned-lite0-"


def models_dir(gallery_path: str | Path) -> Path:
    p = Path(gallery_path)
    return p.with_name(p.name + ".models")


def tuned_embedder(core: Embedder, thresholds: Thresholds | None = None, cue_weight: float | None = None) -> Embedder:
    """The tuned network joined, as the default embedder is, with the colour histogram
    (``tuned_colour_weight``) and the face's hair/skin/eye colours (``cue_weight``, by default
    ``tuned_cue_weight``; a saved model records the weight it was tuned with)."""
    t = thresholds or Thresholds()
    w = t.tuned_cue_weight if cue_weight is None else cue_weight
    parts, weights = [core], [1.0]
    if t.tuned_colour_weight > 0:
        parts.append(ColourHistogramEmbedder())
        weights.append(t.tuned_colour_weight)
    if w > 0:
        from charaid.models.embedders import CueColourEmbedder

        parts.append(CueColourEmbedder(t))
        weights.append(w)
    return core if len(parts) == 1 else ConcatEmbedder(parts, weights)


def save_tuned(gallery_path: str | Path, top_state: dict, cfg, meta: dict) -> Embedder:
    """Write a tuned model beside the gallery; returns its embedder (whose id names the file)."""
    import torch

    from charaid.models.tuned import TunedEmbedder

    meta = {**meta, "cue_colour_weight": Thresholds().tuned_cue_weight}
    buf = io.BytesIO()
    torch.save({"top": top_state, "config": asdict(cfg), "meta": meta}, buf)
    data = buf.getvalue()
    core_id = TUNED_PREFIX + hashlib.sha256(data).hexdigest()[:16]
    d = models_dir(gallery_path)
    d.mkdir(parents=True, exist_ok=True)
    target = d / f"{core_id}.pt"
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    (d / f"{core_id}.json").write_text(json.dumps({"config": asdict(cfg), **meta}, indent=1, default=str))
    return tuned_embedder(TunedEmbedder(top_state, cfg, core_id), cue_weight=meta["cue_colour_weight"])


def load_tuned(gallery_path: str | Path, core_id: str) -> Embedder:
    import torch

    from charaid.models.tuned import TrainConfig, TunedEmbedder

    f = models_dir(gallery_path) / f"{core_id}.pt"
    if not f.is_file():
        raise EmbeddingSpaceError(f"{gallery_path}: its vectors come from the tuned model {core_id}, but {f} is missing")
    saved = torch.load(f, map_location="cpu", weights_only=False)
    cue_weight = saved.get("meta", {}).get("cue_colour_weight", 0.0)  # models saved before the colours: none
    return tuned_embedder(TunedEmbedder(saved["top"], TrainConfig(**saved["config"]), core_id), cue_weight=cue_weight)


def embedder_for(gallery: Gallery) -> Embedder:
    """The embedder whose space ``gallery`` compares in (the default one for a new gallery)."""
    mid = gallery.model_id
    if mid is None:
        return default_embedder()
    known = zoo.embedders()
    if mid in known:
        return known[mid]()
    if mid.startswith(TUNED_PREFIX):
        core_id = mid.split("*", 1)[0]
        emb = load_tuned(gallery.path, core_id)
        if emb.model_id != mid:
            raise EmbeddingSpaceError(f"{gallery.path}: model {mid!r} does not match the file's {emb.model_id!r}")
        return emb
    raise EmbeddingSpaceError(
        f"{gallery.path}: its vectors come from model {mid!r}, which this charaid cannot rebuild "
        f"(known: {', '.join(known)}, or a tuned model file in {models_dir(gallery.path)})"
    )


def gallery_models(gallery: Gallery) -> list[tuple[str, int]]:
    """(model id, samples with its vector) for every model that has embedded this gallery."""
    return gallery.model_counts()


def switch_model(gallery: Gallery, model: str, batch: int = 32) -> Embedder:
    """Make ``model`` the space the gallery compares in: ``"default"`` (the default, untuned features) or
    the id of a model that embedded it before (a tuned one needs its file beside the gallery).
    Samples without a vector of that model are embedded from their stored crops first; a tuned
    model gets back the threshold of its own training run."""
    if model == "default":
        emb = default_embedder()
    elif model in (known := zoo.embedders()):
        emb = known[model]()
    elif model.startswith(TUNED_PREFIX):
        emb = load_tuned(gallery.path, model.split("*", 1)[0])
    else:
        have = ", ".join(m for m, _ in gallery_models(gallery)) or "none"
        raise ValueError(f"unknown model {model!r}; choose 'default' or one this gallery has used: {have}")
    missing = gallery.missing_vectors(emb.model_id)
    for i in range(0, len(missing), batch):
        part = missing[i : i + batch]
        crops = [gallery.crop(j) for j in part]
        gallery.set_vectors(emb.model_id, emb.dim, zip(part, emb.embed_batch(crops)))
    gallery.activate_model(emb.model_id, emb.dim)
    meta_f = models_dir(gallery.path) / f"{emb.model_id.split('*', 1)[0]}.json"
    if emb.model_id.startswith(TUNED_PREFIX) and meta_f.is_file():
        cal = json.loads(meta_f.read_text()).get("calibration")
        if cal:
            keep_training_calibration(gallery, emb.model_id, cal)
    return emb


def keep_training_calibration(gallery: Gallery, model_id: str, cal: dict) -> None:
    """Make a tuned model's own calibration run (held-out characters of its training) the
    gallery's unknown threshold; ``cal`` is that run's summary as ``charaid train`` saves it."""
    calibration = Calibration(
        Thresholds().tuned_matcher,
        cal["threshold"],
        model_id,
        gallery.revision,
        cal["known_accuracy"],
        cal["unknown_rejected"],
        cal["n_known"],
        cal["n_unknown"],
        cal["auroc"],
        source="training run",
    )
    gallery.set_json("calibration", calibration.to_dict())

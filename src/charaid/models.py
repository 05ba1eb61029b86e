"""Which embedder makes a gallery's vectors: the built-in default, or a model tuned on it.

A gallery records the model id of its active space; :func:`embedder_for` rebuilds that exact
embedder, so a new process gets the same vectors (and the same answers) as the one that enrolled.
"""

from __future__ import annotations

from .embed import Embedder, default_embedder
from .errors import EmbeddingSpaceError
from .gallery import Gallery


def builtin_embedders() -> dict[str, "callable"]:
    d = default_embedder()
    return {d.model_id: default_embedder}


def embedder_for(gallery: Gallery) -> Embedder:
    """The embedder whose space ``gallery`` compares in (the default one for a new gallery)."""
    mid = gallery.model_id
    if mid is None:
        return default_embedder()
    known = builtin_embedders()
    if mid in known:
        return known[mid]()
    raise EmbeddingSpaceError(
        f"{gallery.path}: its vectors come from model {mid!r}, which this charaid cannot rebuild "
        f"(known: {', '.join(known)})"
    )

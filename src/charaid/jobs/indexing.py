"""``charaid index``: every face of a big folder into the face store (charaid.storage.store).

The pictures go through the one pipeline (charaid.pipeline.faces.FacePipeline) on either
engine; this job turns each result into the store's record, on the process that writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from charaid.pipeline.faces import EmbeddedImage, FacePipeline, RunOptions
from charaid.storage.store import IndexedImage, file_stamp


def indexed(e: EmbeddedImage) -> IndexedImage:
    """The store's record of one picture after the pipeline."""
    p = e.prep
    size, mtime = file_stamp(p.path) or (None, None)
    r = IndexedImage(p.path, size, mtime, image_size=p.size, error=p.error)
    if p.ok:
        r.boxes = [p.box(i) for i in e.chosen]
        r.scores = [p.score(i) for i in e.chosen]
        r.vectors = e.vectors[0]
    return r


def index_paths(paths: Iterable[str], pipeline: FacePipeline, options: RunOptions) -> Iterator[IndexedImage]:
    """Index ``paths``, in order (a bad file is a record with its error)."""
    opts = RunOptions(
        detect=True, workers=options.workers, engine=options.engine, ray_address=options.ray_address, keep_crops=False
    )
    for e in pipeline.run(paths, opts):
        yield indexed(e)

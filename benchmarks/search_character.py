"""``charaid search --character``: does it find a character's pictures in a face store?

    python benchmarks/search_character.py

tla/raw's 107 illustrations (3 characters) are indexed into a face store; the gallery holds
tla's training face crops (the author split's training half, enrolled whole as --no-detect
crops, as tla end to end does). For each character: the pictures found, how many are hers
(precision), and how many of her pictures were found (recall).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.jobs.enroll import enroll_items  # noqa: E402
from charaid.jobs.find import find_character  # noqa: E402
from charaid.jobs.indexing import index_paths  # noqa: E402
from charaid.models.embedders import imagenet_embedder  # noqa: E402
from charaid.pipeline.faces import FacePipeline, RunOptions  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402
from charaid.storage.gallery import Gallery  # noqa: E402
from charaid.storage.store import FaceStore  # noqa: E402


def main() -> None:
    t0 = time.time()
    raw = datasets.tla_raw()
    truth = {str(p): c for c, p in raw}
    tr, _ = datasets.tla_author_split()
    tmp = Path(tempfile.mkdtemp())
    emb = imagenet_embedder()
    print(f"# search --character: {machine()}; {time.strftime('%Y-%m-%d')}\n")
    with FaceStore(tmp / "faces.sqlite", emb.model_id, emb.dim) as store, Gallery(tmp / "g.sqlite") as g:
        store.write(list(index_paths([str(p) for _, p in raw], FacePipeline(DetectorSpec(), emb), RunOptions(workers=2))))
        enroll_items(g, tr, detect=False)
        rows = []
        for character in sorted({c for c, _ in raw}):
            found = find_character(store, g, emb, character)
            mine = sum(1 for f in found if truth.get(f.path) == character)
            total = sum(1 for c in truth.values() if c == character)
            rows.append([character, total, len(found), mine, mine / max(1, len(found)), mine / total])
    print(f"# indexed {len(raw)} pictures; gallery of {len(tr)} face crops; {time.time() - t0:.0f} s in all")
    print(table(["character", "her pictures", "pictures found", "hers", "precision", "recall"], rows))


if __name__ == "__main__":
    main()

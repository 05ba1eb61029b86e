"""`charaid index` throughput (1 and 2 local workers, Ray) and crop-robust `charaid search`.

    python benchmarks/index_search.py [--parts throughput,search] [--queries 150]

throughput: `charaid index` (the CLI, as a user runs it, start-up included) over tla/raw and
            web4 (393 illustrations) into a new store each time: --workers 1, --workers 2, and
            --engine ray (a local Ray instance, 2 actors), in the same run.
search:     from the images indexed above that have a face, --queries are drawn (seed 0); each
            is queried as: a 20% crop (a window of 80% of the width and 80% of the height at a
            random place), a 40% crop (60% x 60%), a mirror image, and a 20% crop of the mirror.
            Recall@k: the source image is among the first k images returned. charaid: faces of
            the query (or the whole query when no face is found) against the face store, best
            face per image. Baseline: IQDB-style whole-image Haar wavelet signatures
            (benchmarks/wavelet.py) over the same images.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402
from wavelet import WaveletIndex  # noqa: E402

OUT = datasets.ROOT / "bench-out" / "index"


def index_run(label: str, extra: list[str], folders: list[Path], n: int) -> list:
    store = OUT / f"{label}.sqlite"
    for f in OUT.glob(f"{label}.sqlite*"):
        subprocess.run(["rm", "-rf", str(f)], check=True)
    t = time.time()
    r = subprocess.run(
        [sys.executable, "-m", "charaid.cli", "index", *map(str, folders), "--store", str(store), "-q", *extra],
        capture_output=True,
        text=True,
    )
    secs = time.time() - t
    if r.returncode not in (0, 2):
        raise SystemExit(f"{label}: charaid index failed:\n{r.stderr[-3000:]}")
    print(f"  [{label}: {r.stderr.strip().splitlines()[-1]}]", file=sys.stderr, flush=True)
    return [label, " ".join(extra) or "(defaults)", n, f"{secs:.0f}", f"{n / secs:.2f}"]


def variants(im: Image.Image, rng) -> dict[str, Image.Image]:
    def crop(img, cut):
        w, h = img.size
        cw, ch = int(round(w * (1 - cut))), int(round(h * (1 - cut)))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return img.crop((x, y, x + cw, y + ch))

    flip = im.transpose(Image.FLIP_LEFT_RIGHT)
    return {"20% crop": crop(im, 0.2), "40% crop": crop(im, 0.4), "mirror": flip, "20% crop of mirror": crop(flip, 0.2)}


def search_part(store_path: Path, queries: int) -> list:
    from charaid.models.embedders import imagenet_embedder
    from charaid.pipeline.images import load_image
    from charaid.pipeline.prepare import prepare_image
    from charaid.storage.store import FaceStore

    emb = imagenet_embedder()  # the face store's space (charaid.cli.common._store)
    store = FaceStore(store_path, emb.model_id, emb.dim)
    rows = store._db.execute(
        "SELECT i.path, count(f.id) FROM images i LEFT JOIN faces f ON f.image_id = i.id "
        "WHERE i.error IS NULL GROUP BY i.id ORDER BY i.path"
    ).fetchall()
    all_paths = [p for p, _ in rows]
    with_face = [p for p, k in rows if k]
    rng = np.random.default_rng(0)
    picked = sorted(rng.choice(with_face, min(queries, len(with_face)), replace=False).tolist())
    t = time.time()
    wav = WaveletIndex()
    for p in all_paths:
        wav.add(p, load_image(p))
    print(f"  [wavelet signatures of {len(all_paths)} images: {time.time() - t:.0f} s]", file=sys.stderr, flush=True)
    hits: dict[tuple[str, str], list[tuple[int, int]]] = {}
    lat = []
    for qi, p in enumerate(picked):
        for name, q in variants(load_image(p), rng).items():
            t = time.perf_counter()
            prep = prepare_image(p, True, image=q, with_hash=False)
            if not prep.crops:
                prep = prepare_image(p, False, image=q, with_hash=False)
            found = store.search(emb.embed_batch(prep.crops), 10)
            # best similarity per image over the query's faces
            best: dict[str, float] = {}
            for hs in found:
                for h in hs:
                    best[h.path] = max(best.get(h.path, -1.0), h.similarity)
            ours = sorted(best, key=best.get, reverse=True)[:10]
            lat.append(time.perf_counter() - t)
            base = wav.search(q, 10)
            for method, ranked in (("charaid search (faces)", ours), ("IQDB-style wavelets (whole image)", base)):
                rank = ranked.index(p) + 1 if p in ranked else 99
                hits.setdefault((method, name), []).append(rank)
        if qi % 25 == 24:
            print(f"  [{qi + 1}/{len(picked)} queries]", file=sys.stderr, flush=True)
    out = []
    for (method, name), ranks in hits.items():
        r = np.array(ranks)
        out.append([method, name, len(r), float((r <= 1).mean()), float((r <= 10).mean())])
    out.sort(key=lambda r: (r[1], r[0]))
    print(
        f"  [charaid search: {np.median(lat) * 1000:.0f} ms median per query, detection included; "
        f"{len(all_paths)} images, {store.counts()['faces']} faces indexed]",
        file=sys.stderr,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="throughput,search")
    ap.add_argument("--queries", type=int, default=150)
    args = ap.parse_args()
    datasets.require()
    OUT.mkdir(parents=True, exist_ok=True)
    folders = [datasets.SHARED / "tla" / "raw", datasets.SHARED / "web4"]
    n = sum(1 for f in folders for p in f.rglob("*") if p.is_file())
    print(f"# charaid index and search; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    if "throughput" in args.parts:
        rows = [
            index_run("workers-1", ["--workers", "1"], folders, n),
            index_run("workers-2", ["--workers", "2"], folders, n),
            index_run("ray", ["--engine", "ray", "--workers", "2"], folders, n),
        ]
        print("## `charaid index` throughput (tla/raw + web4, start-up included)\n")
        print(table(["run", "options", "images", "seconds", "images/s"], rows))
    if "search" in args.parts:
        store = OUT / "workers-2.sqlite"
        if not store.exists():
            index_run("workers-2", ["--workers", "2"], folders, n)
        print("\n## search by image: crops and mirror images of indexed illustrations\n")
        print(table(["method", "query", "queries", "recall@1", "recall@10"], search_part(store, args.queries)))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()

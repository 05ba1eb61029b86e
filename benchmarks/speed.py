"""Speed on this machine, charaid beside the seed's pipeline, in the same run.

    python benchmarks/speed.py [--images N]
    python benchmarks/speed.py --pairs 5   # only end to end: the seed, then charaid, 5 times

With ``--pairs N``, the seed's pipeline and charaid's (2 worker processes started while the
models load) run in turn, each in a fresh Python process, N times; it prints each pair's ratio
and their median (the machine's speed drifts by 10% and more within minutes, so one pair is not
enough to say whether 10x holds).

- end to end on full illustrations (tla/raw): decode, detect, crop, embed, match;
  charaid with 0 and 2 worker processes (these started in the clock, and started before it with
  their detector loaded, as the seed's model and charaid's embedder are), on Ray with 1 and 2
  actors, and the seed's pipeline: animeface-2009 at full
  resolution, each face resized to 299 px and run through Inception-v3 (random weights: the
  same arithmetic as the pretrained network), one image at a time;
- milliseconds per face embedding (batches of 32), the CNN on ONNX Runtime and in PyTorch;
- the first answer: a one-picture ``charaid recognize`` against ``python -c "import torch"``;
- seconds to enrol a 30-image character: 30 face crops (--no-detect) and 30 full illustrations,
  into a new gallery, weights already loaded (and the CLI's whole run, Python start included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds  # noqa: E402
from charaid.jobs.enroll import enroll_items  # noqa: E402
from charaid.models.crops import FaceCrop  # noqa: E402
from charaid.models.detectors import AnimeFaceDetector, crop_face  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.faces import RunOptions  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402
from charaid.pipeline.prepare import warm_workers  # noqa: E402
from charaid.recognition.recognize import Recognizer  # noqa: E402
from charaid.storage.gallery import Gallery  # noqa: E402


def seed_pipeline(paths: list[Path]) -> tuple[float, int]:
    import torch
    from seed_inception import InceptionV3

    net = InceptionV3().eval()
    det = AnimeFaceDetector(Thresholds(detect_retry_scales=()), max_side=100_000)  # the seed: full resolution, no retry
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    faces = 0
    with torch.inference_mode():
        net(torch.zeros(1, 3, 299, 299))  # warm-up
        t = time.perf_counter()
        for p in paths:
            im = load_image(p)
            for f in det.detect(im):
                crop = crop_face(im, f.box, 0.0, 299)
                x = torch.from_numpy(np.asarray(crop, np.float32) / 255.0).permute(2, 0, 1)[None]
                net((x - mean) / 0.5)
                faces += 1
        return time.perf_counter() - t, faces


def charaid_pipeline(
    paths: list[Path], gallery: Path, workers: int, engine: str = "local", warm: bool = False
) -> tuple[float, int]:
    """``recognize`` over ``paths``; on Ray, ``workers`` actors (Ray itself started before the
    clock, the actors and their model loading on it: what a run pays). With ``warm``, the
    local worker processes start and load the detector before the clock, as ``charaid
    recognize`` starts them while it loads the embedder (and as the seed's model is loaded
    before its clock); else their start-up is timed."""
    with Gallery(gallery) as g:
        rec = Recognizer(g)
        rec.embedder.load()
        _ = rec.threshold  # calibration done before timing
        if engine == "ray":
            from charaid.pipeline.ray_engine import start_ray

            start_ray(cpus=os.cpu_count())
        opts = RunOptions(workers=workers, engine=engine)
        if warm:
            warm_workers(rec.pipeline.spec, workers, wait=True)
        t = time.perf_counter()
        faces = sum(len(r.faces) for r in rec.recognize_paths(paths, options=opts))
        return time.perf_counter() - t, faces


def first_answer(tmp: Path, tr: list, picture: Path, runs: int = 5) -> str:
    """Median wall time of ``charaid recognize PICTURE`` on a 3-character gallery against
    ``python -c "import torch"``, alternated in the same run (issue 28's first answer)."""
    chars = sorted({c for c, _ in tr})[:3]
    gal = tmp / "three.sqlite"
    with Gallery(gal) as g:
        enroll_items(g, [(c, p) for c, p in tr if c in chars][:30], detect=False)
    rec = [sys.executable, "-m", "charaid.cli", "recognize", "--gallery", str(gal), str(picture)]
    subprocess.run(rec, check=True, capture_output=True)  # calibrates the gallery once
    times: dict[str, list[float]] = {"recognize": [], "torch": []}
    for _ in range(runs):
        for name, cmd in (("recognize", rec), ("torch", [sys.executable, "-c", "import torch"])):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t)
    r, tt = statistics.median(times["recognize"]), statistics.median(times["torch"])
    return (
        f"First answer: `charaid recognize one.jpg` (3 characters) {r:.2f} s wall against {tt:.2f} s for "
        f'`python -c "import torch"` (median of {runs}, alternated; {r / tt:.2f}x).\n'
    )


def pairs(n: int, raw: list[Path], tmp: Path) -> None:
    """``n`` alternated runs of the seed's pipeline and charaid's, each in a fresh process."""
    gal = tmp / "tla.sqlite"
    with Gallery(gal) as g:
        enroll_items(g, datasets.tla_author_split()[0], detect=False)
    me = [sys.executable, str(Path(__file__).resolve()), "--images", str(len(raw)), "--gallery", str(gal), "--one"]
    runs, ratios = [], []
    for _ in range(n):
        seed, ours = (
            float(subprocess.run(me + [w], check=True, capture_output=True, text=True).stdout) for w in ("seed", "charaid")
        )
        ratios.append(seed / ours)
        runs.append(f"{seed:.1f} / {ours:.2f} s = {seed / ours:.2f}x")
    print(f"Seed / charaid (2 workers, started while models load), in turn: {'; '.join(runs)}.")
    print(f"Median of {n}: {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}x).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=0, help="use only the first N illustrations (default: all)")
    ap.add_argument("--pairs", type=int, default=0, help="only end to end: N alternated pairs, each run in its own process")
    ap.add_argument("--one", choices=["seed", "charaid"], help=argparse.SUPPRESS)  # one run of a pair; prints its seconds
    ap.add_argument("--gallery", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    raw = [p for _, p in datasets.tla_raw()]
    if args.images:
        raw = raw[: args.images]
    if args.one:
        secs = seed_pipeline(raw)[0] if args.one == "seed" else charaid_pipeline(raw, args.gallery, 2, warm=True)[0]
        print(secs)
        return
    if args.pairs:
        print(
            f"# speed, {args.pairs} pairs: {machine()}; {time.strftime('%Y-%m-%d')}; {len(raw)} full illustrations of tla/raw\n"
        )
        pairs(args.pairs, raw, Path(tempfile.mkdtemp()))
        return
    print(f"# speed: {machine()}; {time.strftime('%Y-%m-%d')}; {len(raw)} full illustrations of tla/raw\n")
    tmp = Path(tempfile.mkdtemp())
    emb = default_embedder().load()

    # enrolment of one 30-image character, crops and full illustrations
    tr, _ = datasets.tla_author_split()
    crops30 = [(c, p) for c, p in tr if c == "nishikino_maki"][:30]
    raws30 = [(c, p) for c, p in datasets.tla_raw() if c == "nishikino_maki"][:30]
    rows = []
    for name, items, detect in [("30 face crops (--no-detect)", crops30, False), ("30 full illustrations", raws30, True)]:
        with Gallery(tmp / f"enrol-{detect}.sqlite") as g:
            t = time.perf_counter()
            s = enroll_items(g, items, detect=detect, embedder=emb, workers=2 if detect else 0)
            lib = time.perf_counter() - t
        folder = tmp / f"cli-{detect}" / "nishikino_maki"
        folder.mkdir(parents=True)
        for _, p in items:
            (folder / p.name).symlink_to(p)
        t = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "charaid.cli",
            "enroll",
            str(folder.parent),
            "-q",
            "--gallery",
            str(tmp / f"cli-{detect}.sqlite"),
        ]
        subprocess.run(cmd + ([] if detect else ["--no-detect"]), check=True, capture_output=True)
        rows.append([name, s.added, f"{lib:.2f}", f"{time.perf_counter() - t:.2f}"])
    print("## enrol a 30-image character\n")
    print(table(["input", "faces enrolled", "seconds (library, model loaded)", "seconds (CLI, whole process)"], rows))

    # embedding speed: the default embedder on each runtime of its CNN, same crops, same run
    images = [load_image(p).resize((256, 256)) for _, p in tr[:64]]
    t = time.perf_counter()
    # a crop given alone has its colours searched again (as a detected face's are not): timed apart
    crops = [FaceCrop(im).with_colours() for im in images]
    search_ms = (time.perf_counter() - t) / len(images) * 1000
    ms = {}
    for runtime in ("torch", "onnx"):
        os.environ["CHARAID_EMBEDDER_RUNTIME"] = runtime
        e = default_embedder().load()
        e.embed_batch(crops[:8])
        t = time.perf_counter()
        e.embed_batch(crops)
        ms[runtime] = (time.perf_counter() - t) / len(crops) * 1000
    os.environ.pop("CHARAID_EMBEDDER_RUNTIME")
    print(
        f"\nEmbedding: {ms['onnx']:.1f} ms per face on ONNX Runtime, {ms['torch']:.1f} ms in PyTorch "
        f"({ms['torch'] / ms['onnx']:.2f}x; {emb.model_id}, mirror included, batches of 8, colours known). "
        f"Searching a bare crop for its colours (a face crop enrolled with --no-detect): {search_ms:.1f} ms more.\n"
    )
    print(first_answer(tmp, tr, raw[0]))

    # end to end
    gal = tmp / "tla.sqlite"
    with Gallery(gal) as g:
        enroll_items(g, tr, detect=False, embedder=emb)
    rows = []
    for label, fn in [
        ("seed: animeface full-res + Inception-v3 299 px, 1 process", lambda: seed_pipeline(raw)),
        ("charaid, 1 process", lambda: charaid_pipeline(raw, gal, 0)),
        ("charaid, 2 worker processes, started in the clock", lambda: charaid_pipeline(raw, gal, 2)),
        ("charaid, 2 worker processes, started while models load", lambda: charaid_pipeline(raw, gal, 2, warm=True)),
        ("charaid, --engine ray, 1 actor", lambda: charaid_pipeline(raw, gal, 1, "ray")),
        ("charaid, --engine ray, 2 actors", lambda: charaid_pipeline(raw, gal, 2, "ray")),
    ]:
        secs, faces = fn()
        rows.append([label, len(raw), faces, f"{secs:.1f}", f"{len(raw) / secs:.2f}"])
    base = float(rows[0][4])
    for r in rows:
        r.append(f"{float(r[4]) / base:.2f}x")
    print("## end to end on full illustrations\n")
    print(table(["pipeline", "images", "faces", "seconds", "images/s", "vs seed"], rows))


if __name__ == "__main__":
    main()

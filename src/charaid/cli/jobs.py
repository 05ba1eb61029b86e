"""Longer jobs: sort a folder, fine-tune (train), serve the web app, the face store (index, search)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from charaid.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_STOPPED,
    _detector_spec,
    _gallery_path,
    _progress,
    _run_options,
    _settings,
    _store,
    _warn,
    _workers,
)
from charaid.names import json_line, shown


def cmd_sort(args) -> int:
    from charaid.jobs import sort as srt
    from charaid.pipeline.images import iter_image_paths
    from charaid.recognition.recognize import Recognizer
    from charaid.storage.gallery import Gallery
    from charaid.storage.journal import Journal

    if args.list_runs or args.undo is not None or args.resume:
        if len(args.paths) != 1:
            raise ValueError("--list-runs, --undo and --resume take one folder: the destination DST")
        dst = Path(args.paths[0])
        if not (dst / ".charaid" / "journal.sqlite").exists():
            raise FileNotFoundError(f"{dst}: no sort journal here (not a charaid sort destination)")
        if args.list_runs:
            j = Journal(dst)
            for r in j.runs():
                acts = j.actions(r.id)
                row = {
                    "run": r.id,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started)),
                    "status": r.status,
                    "src": r.src,
                    "options": r.options,
                    "files": len({a.src for a in acts}),
                    "copied": sum(a.kind == "copy" and a.state == "done" for a in acts),
                    "moved": sum(a.kind == "move" and a.state == "done" for a in acts),
                }
                print(
                    json_line(row)
                    if args.json
                    else f"run {row['run']}  {row['started']}  {row['status']:8s} {'move' if r.options.get('move') else 'copy'}  "
                    f"{row['files']} files ({row['copied']} copied, {row['moved']} moved)  from {r.src}"
                )
            j.close()
            return EXIT_OK
        if args.undo is not None:
            n, problems = srt.undo(dst, args.undo, on_error=lambda p, r: _warn(f"{p}: {r}"))
            print(f"run {args.undo} undone: {n} files put back or removed, {len(problems)} problems")
            return EXIT_INPUT if problems else EXIT_OK
    else:
        if len(args.paths) != 2:
            raise ValueError("sort takes SRC and DST (or --resume/--undo RUN/--list-runs with DST alone)")
        src, dst = (Path(p) for p in args.paths)
    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first")
    failed = 0

    def on_error(p, r):
        nonlocal failed
        failed += 1
        _warn(f"{p}: {r}")

    def on_decision(d):
        if args.json or args.dry_run:
            row = {
                "path": str(d.src),
                "folders": d.folders,
                "faces": d.faces,
                "characters": [{"character": c, "score": sc} for c, sc in d.characters],
                "by_picture": d.by_picture,
                "error": d.error,
            }
            if args.json:
                print(json_line(row), flush=True)
            else:
                print(f"{shown(str(d.src))}  ->  {', '.join(d.folders) if d.folders else 'stays (' + str(d.error) + ')'}")

    with Gallery(gp) as g:
        rec = Recognizer(
            g, detector=_detector_spec(args, g), threshold=args.threshold, settings=_settings(args), closed=args.closed
        )
        rec.pipeline.load()  # before the progress bar: it times pictures, not start-up
        if args.resume:
            workers = _workers(args, 100)
            with _progress(None, "sort (resume)", args.quiet) as bar:
                s = srt.resume(dst, rec, workers, on_progress=bar.update, on_error=on_error, on_decision=on_decision)
            if s is None:
                print(f"nothing to resume in {dst}: its last run finished", file=sys.stderr)
                return EXIT_OK
        else:
            n = sum(1 for _ in iter_image_paths([src])) if src.is_dir() else 0
            if n == 0 and src.is_dir():
                _warn(f"{src}: no pictures here (nothing to sort; no run recorded)")
                return EXIT_INPUT
            run = _run_options(args, n)
            rec.pipeline.load(run)  # its workers start while the folder is listed against the journal
            opts = srt.SortOptions(
                args.move,
                args.multi,
                args.min_score,
                run.workers,
                args.rescan,
                not args.faces_only,
                engine=run.engine,
                ray_address=run.ray_address,
            )
            with _progress(n, "sort", args.quiet) as bar:
                s = srt.Sorter(rec, dst, opts).run(
                    src, on_progress=bar.update, on_error=on_error, on_decision=on_decision, dry_run=args.dry_run
                )
    summary = {
        "run": s.run_id,
        "images": s.images,
        "unchanged": s.unchanged,
        "folders": dict(sorted(s.per_folder.items())),
        "copied": s.copied,
        "moved": s.moved,
        "duplicates": s.duplicates,
        "errors": len(s.errors),
        "seconds": round(s.seconds, 1),
        "images_per_second": round(s.images_per_second, 2),
        "dry_run": bool(args.dry_run),
    }
    if args.json:
        print(json_line({"summary": summary}))
    lines = [
        f"{'planned' if args.dry_run else 'sorted'} {s.images} images in {s.seconds:.1f} s "
        f"({s.images_per_second:.1f}/s); {s.unchanged} unchanged since the last run"
    ]
    lines += [f"  {k}: {v}" for k, v in sorted(s.per_folder.items())]
    lines.append(
        f"  copied {s.copied}, moved {s.moved}, duplicates skipped {s.duplicates}, errors {len(s.errors)}"
        + (f"; run {s.run_id} (undo: charaid sort --undo {s.run_id} {dst})" if s.run_id else "")
    )
    # the summary is a result: stdout, unless stdout holds JSON lines only
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    return EXIT_INPUT if s.errors else EXIT_OK


def _search_character(args, store, emb) -> int:
    """``search --character NAME``: the indexed pictures where the gallery's NAME is found."""
    from charaid.jobs.find import find_character
    from charaid.names import character_name
    from charaid.storage.gallery import Gallery

    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; --character names the characters of a gallery")
    with store, Gallery(gp) as g:
        found = find_character(store, g, emb, character_name(args.character), threshold=args.threshold)
    for f in found[: args.k] if args.k else found:
        print(f.to_json() if args.json else f"{f.score:.3f}  {f.path}  {f.box.as_list()}", flush=True)
    print(f"{args.character}: found in {len(found)} indexed pictures", file=sys.stderr)
    return EXIT_OK


def cmd_train(args) -> int:
    from tqdm import tqdm

    from charaid.storage.gallery import Gallery
    from charaid.training.tune import TrainConfig, train_gallery

    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first")
    cfg = TrainConfig(epochs=args.epochs) if args.epochs else TrainConfig()
    bars: dict[str, tqdm] = {}

    def on_epoch(stage: str, epoch: int, total: int, loss: float) -> None:
        if stage not in bars:
            bars[stage] = tqdm(
                total=total, desc=f"train ({stage})", unit="epoch", file=sys.stderr, disable=args.quiet, leave=False
            )
            bars[stage].update(epoch - 1)
        bars[stage].update(1)
        bars[stage].set_postfix(loss=f"{loss:.3f}")

    with Gallery(gp) as g:
        res = train_gallery(g, cfg, args.minutes, not args.no_calibration, on_epoch, lambda m: _warn(m))
        for b in bars.values():
            b.close()
        if res.resumed_from:
            _warn(f"resumed an interrupted run at epoch {res.resumed_from}")
        if res.model_id is None:
            _warn(f"stopped at the time limit after epoch {res.epochs_done} of {res.epochs}; run `charaid train` again to resume")
            return EXIT_STOPPED
        if args.cohort_data:
            _tuned_cohort(g, args.cohort_data)
    cal = res.calibration or {}
    print(
        json.dumps(
            {
                "model_id": res.model_id,
                "faces": res.faces,
                "characters": res.characters,
                "epochs": res.epochs_done,
                "seconds": round(res.seconds, 1),
                "threshold": cal.get("threshold"),
                "calibration": cal or None,
            },
            default=str,
        )
    )
    return EXIT_OK


def cmd_serve(args) -> int:
    import uvicorn

    from charaid.storage.gallery import Gallery
    from charaid.web.app import ServerConfig, create_app

    gp = _gallery_path(args)
    Gallery(gp).close()  # create it (empty) if new, fail now if it is not a gallery
    label_dir = Path(args.label_dir).resolve() if args.label_dir else None
    if label_dir is not None and not label_dir.is_dir():
        raise NotADirectoryError(f"{args.label_dir}: not a folder")
    # Requests run side by side, one core each, rather than one at a time on all cores.
    os.environ.setdefault("CHARAID_THREADS", "1")
    cfg = ServerConfig.for_host(gp, args.host, label_dir=label_dir, max_upload_mb=args.max_upload_mb, private=args.private)
    app = create_app(cfg)
    url = f"http://{args.host if ':' not in args.host else '[' + args.host + ']'}:{args.port}/"
    print(f"charaid serve: gallery {gp}" + (f", labelling {label_dir}" if label_dir else ""), file=sys.stderr)
    if cfg.token:
        what = "every API call" if cfg.private else "changing the gallery"
        print(f"bound to {args.host}: {what} needs this token (header X-Charaid-Token): {cfg.token}", file=sys.stderr)
        print(f"open {url}?token={cfg.token}", file=sys.stderr)
    else:
        print(f"open {url}  (API docs: {url}docs)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def cmd_index(args) -> int:
    from charaid.jobs.indexing import index_paths
    from charaid.pipeline.faces import FacePipeline
    from charaid.pipeline.images import iter_image_paths
    from charaid.storage.store import pending_paths

    store, emb = _store(args)
    pipeline = FacePipeline(_detector_spec(args), emb, _settings(args)).load()  # before the progress bar
    failed = done = faces = 0
    t0 = time.time()
    with store, _progress(None, "index", args.quiet) as bar:
        todo = pending_paths(store, map(str, iter_image_paths(args.paths)), args.rescan)
        results = index_paths(todo, pipeline, _run_options(args))
        batch = []
        for r in results:
            bar.update(1)
            batch.append(r)
            done += 1
            faces += len(r.boxes)
            if r.error:
                failed += 1
                _warn(f"{r.path}: {r.error}")
            if args.json:
                bar.clear()
                print(json_line(r.to_dict()), flush=True)
            if len(batch) >= 64:
                store.write(batch)
                batch = []
        store.write(batch)
        n = store.sync_index()
        c = store.counts()
    secs = time.time() - t0
    print(
        f"charaid: indexed {done} new images ({faces} faces, {failed} failed) in {secs:.1f} s"
        f" ({done / max(secs, 1e-9):.2f} images/s); the store holds {c['images']} images, {c['faces']} faces;"
        f" index: {len(n)} vectors ({n.backend})",
        file=sys.stderr,
    )
    return EXIT_INPUT if failed else EXIT_OK


def cmd_search(args) -> int:
    from charaid.errors import ImageError
    from charaid.pipeline.images import load_image
    from charaid.pipeline.prepare import DetectorSpec, PreparedImage, prepare_image

    store, emb = _store(args, must_exist=True)
    if args.character is not None:
        return _search_character(args, store, emb)
    if not args.images:
        raise ValueError("search takes IMAGE... (faces like theirs) or --character NAME (a gallery's character)")
    spec = (DetectorSpec() if args.no_detect else _detector_spec(args)).for_embedder(emb)
    failed = 0
    with store:
        for path in args.images:
            try:
                im = load_image(path)
            except ImageError as e:
                im, prep = None, PreparedImage(path, error=e.reason)
            if im is not None:
                prep = prepare_image(path, not args.no_detect, spec, with_hash=False, image=im)
                if prep.ok and not prep.crops:  # no face found: take the whole picture as the face
                    prep = prepare_image(path, False, spec, with_hash=False, image=im)
            if prep.error:
                failed += 1
                _warn(f"{path}: {prep.error}")
                out = {"path": path, "faces": [], "error": prep.error}
            else:
                hits = store.search(emb.embed_batch(prep.crops), args.k or 10)
                out = {
                    "path": path,
                    "error": None,
                    "faces": [{"box": prep.box(i).as_list(), "hits": [h.to_dict() for h in hs]} for i, hs in enumerate(hits)],
                }
            if args.json:
                print(json_line(out), flush=True)
            else:
                print(f"{path}: {len(out['faces'])} face(s)")
                for f in out["faces"]:
                    print(f"  face {f['box']}:")
                    for h in f["hits"]:
                        print(f"    {h['similarity']:.3f}  {h['path']}  {h['box']}")
    return EXIT_INPUT if failed else EXIT_OK


def cmd_train_detector(args) -> int:
    from dataclasses import replace

    from charaid.training.detector import DetectorTrainConfig, train_detector

    data = Path(args.data)
    if not (data / "icartoonface" / "images").is_dir():
        raise FileNotFoundError(f"{data}: no icartoonface/images here (the training data of ../shared/train)")
    cfg = DetectorTrainConfig()
    given = (
        ("steps", args.steps),
        ("side", args.side),
        ("seed", args.seed),
        ("lr", args.lr),
        ("warmup", args.warmup),
        ("init", str(Path(args.init).resolve()) if args.init else None),
        ("closeups", args.closeups),
    )
    changes: dict[str, Any] = {k: v for k, v in given if v is not None}
    cfg = replace(cfg, **changes)
    r = train_detector(data, args.out, cfg, minutes=args.minutes, device=args.device, progress=not args.quiet)
    print(json.dumps({k: v for k, v in r.items() if k != "history"}))  # the loss of every step stays in the checkpoint
    if not r["done"]:
        _warn(f"stopped at step {r['step']} of {r['steps']}; run the same command again to resume")
        return EXIT_STOPPED
    _warn(f"weights written to {r['weights']}; copy them to src/charaid/weights/ to ship them")
    return EXIT_OK


def _training_frames(args):
    """iCartoonFace's frames of ``--data`` and the first stage's ``--weights`` (None: the shipped network)."""
    from charaid.training.detector import load_frames

    data = Path(args.data) / "icartoonface"
    if not (data / "images").is_dir():
        raise FileNotFoundError(f"{args.data}: no icartoonface/images here (the training data of ../shared/train)")
    return load_frames(data), str(Path(args.weights).resolve()) if args.weights else None


def _trained(r: dict) -> int:
    print(json.dumps(r))
    _warn(f"weights written to {r['weights']}; copy them to src/charaid/weights/ to ship them")
    return EXIT_OK


def cmd_train_detector_roi(args) -> int:
    from dataclasses import replace

    from charaid.training.roi import RoiTrainConfig, train_roi

    frames, weights = _training_frames(args)
    cfg = replace(RoiTrainConfig(seed=args.seed), **({"epochs": args.epochs} if args.epochs else {}))
    return _trained(train_roi(frames, args.out, cfg, weights=weights, progress=not args.quiet))


def cmd_train_detector_closeup(args) -> int:
    from dataclasses import replace

    from charaid.training.closeup import CloseupTrainConfig, train_closeup

    frames, weights = _training_frames(args)
    cfg = replace(CloseupTrainConfig(seed=args.seed), **({"views": args.views} if args.views else {}))
    return _trained(train_closeup(frames, args.out, cfg, weights=weights, progress=not args.quiet))


def cmd_train_photo_check(args) -> int:
    from charaid.training.photo_check import PhotoCheckTrainConfig, train_photo_check

    cfg = PhotoCheckTrainConfig(seed=args.seed)
    return _trained(train_photo_check(args.data, args.out, cfg, photos=args.photos, progress=not args.quiet))


def _tuned_cohort(g, data: str) -> None:
    """A tuned model's own cohort (its space differs from the shipped ones'), beside its weights."""
    from charaid.models.cohort import cohort_file_name, save_cohort
    from charaid.recognition.spaces import embedder_for, models_dir
    from charaid.training.cohort import build_cohort

    emb = embedder_for(g)
    X, sources = build_cohort(data, emb)
    out = save_cohort(models_dir(g.path) / cohort_file_name(emb.model_id), X, emb.model_id, sources)
    _warn(f"cohort of {len(X)} faces for {emb.model_id} written to {out}")


def cmd_build_cohort(args) -> int:
    from charaid.models import zoo
    from charaid.models.cohort import WEIGHTS_DIR, cohort_file_name, save_cohort
    from charaid.models.embedders import default_embedder, imagenet_embedder
    from charaid.training.cohort import build_cohort

    known = zoo.embedders()
    if args.model in ("default", "imagenet"):
        emb = default_embedder() if args.model == "default" else imagenet_embedder()
    elif args.model in known:
        emb = known[args.model]()
    else:
        raise ValueError(f"unknown model {args.model!r}; choose 'default', 'imagenet' or one of: {', '.join(known)}")
    X, sources = build_cohort(args.data, emb, args.frames, args.small, args.seed, args.workers)
    out = save_cohort(Path(args.out) if args.out else WEIGHTS_DIR / cohort_file_name(emb.model_id), X, emb.model_id, sources)
    print(
        json.dumps({"model_id": emb.model_id, "faces": len(X), "sources": sources, "file": str(out), "bytes": out.stat().st_size})
    )
    return EXIT_OK


def cmd_export_embedder(args) -> int:
    import time

    from charaid.models.embedders import lite0_onnx_path
    from charaid.training.export import export_lite0

    t0 = time.time()
    out = export_lite0(Path(args.out) if args.out else lite0_onnx_path())
    print(
        json.dumps(
            {
                "model_id": "efficientnet-lite0-imagenet-flip",
                "file": str(out),
                "bytes": out.stat().st_size,
                "seconds": round(time.time() - t0, 1),
            }
        )
    )
    return EXIT_OK

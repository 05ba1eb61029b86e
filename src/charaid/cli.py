"""The ``charaid`` command: a thin layer over the library.

Exit status: 0 when every input was used, 2 when any input failed (it is reported on stderr and,
with ``--json``, in the ``error`` field), 1 for a usage or set-up error, 3 when ``train`` stopped
at its time limit (running it again resumes). With ``--json`` stdout
holds one JSON object per line and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import default_settings
from .detect import DETECTORS
from .errors import EmbeddingSpaceError, GalleryError, UnknownCharacterError

EXIT_OK, EXIT_SETUP, EXIT_INPUT, EXIT_STOPPED = 0, 1, 2, 3


def _progress(total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=quiet, leave=False, dynamic_ncols=True)


def _warn(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"charaid: {msg}", file=sys.stderr)


def _gallery_path(args) -> Path:
    return Path(args.gallery).expanduser() if args.gallery else default_settings().gallery


def _detector_spec(args):
    from .prepare import DetectorSpec

    s = default_settings()
    name = args.detector or ("cascade" if args.cascade else "animeface")
    spec = DetectorSpec(name, str(args.cascade) if args.cascade else None, s.max_detect_side, s.thresholds)
    spec.build()  # fail now, once, with a clear message (bad cascade path, Pillow too new...)
    return spec


def _workers(args, n: int) -> int:
    from .prepare import default_workers

    return default_workers(n) if args.workers is None else args.workers


# -- commands ------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from .demo import run_demo

    out = Path(args.out)
    t0 = time.time()
    print(f"Drawing 3 characters x 8 portraits and a group picture into {out}/ ...", file=sys.stderr)
    r = run_demo(out)
    faces = sorted(r.result.faces, key=lambda f: f.box.x)
    print(f"Gallery: {r.gallery} (akane, sora, hikari enrolled)")
    print(f"Recognised {r.scene} ({len(faces)} faces, left to right):")
    for f, want in zip(faces, r.expected + [None] * len(faces)):
        top = ", ".join(f"{c.character} {c.score:.2f}" for c in f.top)
        print(f"  {str(f.box.as_list()):>22}  {f.character or 'unknown':8s} score {f.score:.2f}   top: {top}")
    print(f"Annotated picture: {r.annotated}")
    ok = r.correct
    print(("OK: " if ok else "UNEXPECTED: ") + f"expected {[e or 'unknown' for e in r.expected]} ({time.time() - t0:.1f} s)")
    return EXIT_OK if ok else EXIT_INPUT


def _sync_index(g) -> None:
    """Big galleries: bring the ANN index up to date now rather than at the next recognition."""
    limit = default_settings().exact_search_limit
    if len(g) >= limit:
        from .index import GalleryIndex

        GalleryIndex(g, exact_limit=limit).ensure()


def cmd_enroll(args) -> int:
    from .enroll import enroll_items, labelled_images
    from .gallery import Gallery

    items = labelled_images(args.dir)
    spec = None if args.no_detect else _detector_spec(args)
    with Gallery(_gallery_path(args)) as g, _progress(len(items), "enrol", args.quiet) as bar:
        s = enroll_items(
            g, items, detect=not args.no_detect, spec=spec, workers=_workers(args, len(items)),
            on_progress=bar.update, on_error=lambda p, r: _warn(f"{p}: {r}"),
        )
        for src, other in s.conflicts:
            _warn(f"{src}: already enrolled as {other!r}; skipped")
        _sync_index(g)
        print(
            f"enrolled {s.added} faces of {len(s.characters)} characters and {s.pictures} whole pictures into {g.path} "
            f"({s.unchanged} already there, {s.duplicates} duplicates, {len(s.no_face)} without a face, "
            f"{len(s.errors)} unreadable); "
            f"gallery now {len(g)} faces of {len(g.characters())} characters",
            file=sys.stderr,
        )
    return EXIT_INPUT if s.errors else EXIT_OK


def _open_recognizer(args, gallery):
    from .recognize import Recognizer

    spec = None if args.no_detect else _detector_spec(args)
    return Recognizer(gallery, detector=spec, threshold=args.threshold, top_k=args.top_k)


def cmd_recognize(args) -> int:
    from .annotate import annotate, annotated_path
    from .gallery import Gallery
    from .images import iter_image_paths, load_image

    paths = list(iter_image_paths(args.paths))
    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first (charaid enroll DIR --gallery {gp})")
    failed = 0
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    out = None
    if args.output:
        done = _resume_output(Path(args.output))
        if done:
            _warn(f"{args.output}: {len(done)} images already done, resuming with the rest")
            paths = [p for p in paths if str(p) not in done]
        out = open(args.output, "a", encoding="utf-8")
    with Gallery(gp) as g, _progress(len(paths), "recognise", args.quiet) as bar:
        rec = _open_recognizer(args, g)
        if not g.names():
            _warn(f"{gp}: the gallery is empty, every face will be unknown")
        for res in rec.recognize_paths(paths, detect=not args.no_detect, workers=_workers(args, len(paths)), pictures=args.picture):
            bar.update(1)
            if res.error:
                failed += 1
                _warn(f"{res.path}: {res.error}")
            if out is not None:
                out.write(res.to_json() + "\n")
                out.flush()
            if args.json:
                bar.clear()
                print(res.to_json(), flush=True)
            elif out is None:
                _print_human(res)
            if args.annotate and not res.error:
                annotate(load_image(res.path), res.faces).save(annotated_path(args.annotate, res.path))
    if out is not None:
        out.close()
    return EXIT_INPUT if failed else EXIT_OK


def _resume_output(path: Path) -> set[str]:
    """Paths already answered in a JSON-lines output file; a line torn by a kill is cut off."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as fh:
            fh.truncate(len(data))
    done = set()
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            done.add(json.loads(line)["path"])
        except (ValueError, KeyError, TypeError):
            continue
    return done


def _print_human(res) -> None:
    if res.error:
        print(f"{res.path}: error: {res.error}")
        return
    print(f"{res.path}: {len(res.faces)} face{'s' if len(res.faces) != 1 else ''}")
    for f in res.faces:
        top = ", ".join(f"{c.character} {c.score:.2f}" for c in f.top)
        print(f"  {str(f.box.as_list()):>22}  {f.character or 'unknown'}  ({f.score:.2f})  top: {top}")


def cmd_detect(args) -> int:
    from .annotate import annotated_path
    from .images import iter_image_paths, load_image
    from .prepare import prepare_many

    paths = list(iter_image_paths(args.paths))
    spec = _detector_spec(args)
    failed = 0
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    with _progress(len(paths), "detect", args.quiet) as bar:
        for prep in prepare_many(paths, True, spec, _workers(args, len(paths)), with_hash=False):
            bar.update(1)
            faces = [{"box": f.box.as_list(), "score": round(f.score, 4)} for f in prep.faces if f is not None]
            if prep.error:
                failed += 1
                _warn(f"{prep.path}: {prep.error}")
            if args.json:
                print(json.dumps({"path": prep.path, "faces": faces, "error": prep.error}, ensure_ascii=False), flush=True)
            elif not prep.error:
                print(f"{prep.path}: {len(faces)} faces " + " ".join(f"{f['box']}@{f['score']:.2f}" for f in faces))
            if args.annotate and prep.ok:
                from PIL import ImageDraw

                im = load_image(prep.path)
                dr = ImageDraw.Draw(im)
                for f in prep.faces:
                    x, y, w, h = f.box.as_list()
                    dr.rectangle([x, y, x + w, y + h], outline=(255, 0, 80), width=max(2, max(im.size) // 300))
                im.save(annotated_path(args.annotate, prep.path))
    return EXIT_INPUT if failed else EXIT_OK


def cmd_evaluate(args) -> int:
    from . import evaluate as ev
    from .embed import default_embedder

    embedder = default_embedder()
    spec = None if args.no_detect else _detector_spec(args)
    errors: list[str] = []

    def embed(root):
        from .enroll import labelled_images

        n = len(labelled_images(root))
        with _progress(n, f"embed {Path(root).name}", args.quiet) as bar:
            return ev.embed_labelled(
                root, embedder, not args.no_detect, spec, _workers(args, n),
                on_error=lambda p, r: (errors.append(p), _warn(f"{p}: {r}")), on_progress=bar.update,
            )

    data = embed(args.dir)
    if args.test:
        test = embed(args.test)
        report = ev.evaluate_split(data, test, args.method)
        if report.unknown is None:
            report.unknown = ev.leave_out_unknowns(data, test, method=args.method)
    else:
        report = ev.evaluate_folds(data, args.folds, args.method)
        tr, te = ev.split_holdout(data, 1 / args.folds)
        report.unknown = ev.leave_out_unknowns(tr, te, method=args.method)
    print(report.to_markdown())
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report.to_dict(), indent=1))
        (out / "report.md").write_text(report.to_markdown())
        ev.plot_confusion(report, out / "confusion.png")
        print(f"report written to {out}/ (report.md, report.json, confusion.png)", file=sys.stderr)
    return EXIT_INPUT if errors else EXIT_OK


def cmd_sort(args) -> int:
    from . import sort as srt
    from .gallery import Gallery
    from .images import iter_image_paths
    from .journal import Journal
    from .recognize import Recognizer

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
                row = {"run": r.id, "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started)), "status": r.status,
                       "src": r.src, "options": r.options, "files": len({a.src for a in acts}),
                       "copied": sum(a.kind == "copy" and a.state == "done" for a in acts),
                       "moved": sum(a.kind == "move" and a.state == "done" for a in acts)}
                print(json.dumps(row) if args.json else
                      f"run {row['run']}  {row['started']}  {row['status']:8s} {'move' if r.options.get('move') else 'copy'}  "
                      f"{row['files']} files ({row['copied']} copied, {row['moved']} moved)  from {r.src}")
            j.close()
            return EXIT_OK
        if args.undo is not None:
            n, problems = srt.undo(dst, args.undo, on_error=lambda p, r: _warn(f"{p}: {r}"))
            print(f"run {args.undo} undone: {n} files put back or removed, {len(problems)} problems", file=sys.stderr)
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
            row = {"path": str(d.src), "folders": d.folders, "faces": d.faces,
                   "characters": [{"character": c, "score": sc} for c, sc in d.characters], "by_picture": d.by_picture,
                   "error": d.error}
            if args.json:
                print(json.dumps(row, ensure_ascii=False), flush=True)
            else:
                print(f"{d.src}  ->  {', '.join(d.folders) if d.folders else 'stays (' + str(d.error) + ')'}")

    with Gallery(gp) as g:
        rec = Recognizer(g, detector=_detector_spec(args), threshold=args.threshold)
        if args.resume:
            workers = _workers(args, 100)
            with _progress(None, "sort (resume)", args.quiet) as bar:
                s = srt.resume(dst, rec, workers, on_progress=bar.update, on_error=on_error, on_decision=on_decision)
            if s is None:
                print(f"nothing to resume in {dst}: its last run finished", file=sys.stderr)
                return EXIT_OK
        else:
            n = sum(1 for _ in iter_image_paths([src]))
            opts = srt.SortOptions(args.move, args.multi, args.min_score, _workers(args, n), args.rescan, not args.faces_only)
            with _progress(n, "sort", args.quiet) as bar:
                s = srt.Sorter(rec, dst, opts).run(src, on_progress=bar.update, on_error=on_error,
                                                   on_decision=on_decision, dry_run=args.dry_run)
    summary = {"run": s.run_id, "images": s.images, "unchanged": s.unchanged, "folders": dict(sorted(s.per_folder.items())),
               "copied": s.copied, "moved": s.moved, "duplicates": s.duplicates, "errors": len(s.errors),
               "seconds": round(s.seconds, 1), "images_per_second": round(s.images_per_second, 2), "dry_run": bool(args.dry_run)}
    if args.json:
        print(json.dumps({"summary": summary}))
    lines = [f"{'planned' if args.dry_run else 'sorted'} {s.images} images in {s.seconds:.1f} s "
             f"({s.images_per_second:.1f}/s); {s.unchanged} unchanged since the last run"]
    lines += [f"  {k}: {v}" for k, v in sorted(s.per_folder.items())]
    lines.append(f"  copied {s.copied}, moved {s.moved}, duplicates skipped {s.duplicates}, errors {len(s.errors)}"
                 + (f"; run {s.run_id} (undo: charaid sort --undo {s.run_id} {dst})" if s.run_id else ""))
    print("\n".join(lines), file=sys.stderr)
    return EXIT_INPUT if s.errors else EXIT_OK


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .gallery import Gallery
    from .train import TrainConfig, train_gallery

    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first")
    cfg = TrainConfig(epochs=args.epochs) if args.epochs else TrainConfig()
    bars: dict[str, tqdm] = {}

    def on_epoch(stage: str, epoch: int, total: int, loss: float) -> None:
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=f"train ({stage})", unit="epoch", file=sys.stderr, disable=args.quiet, leave=False)
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
    cal = res.calibration or {}
    print(json.dumps({"model_id": res.model_id, "faces": res.faces, "characters": res.characters,
                      "epochs": res.epochs_done, "seconds": round(res.seconds, 1),
                      "threshold": cal.get("threshold"), "calibration": cal or None}, default=str))
    return EXIT_OK


def cmd_serve(args) -> int:
    import uvicorn

    from .gallery import Gallery
    from .web.app import ServerConfig, create_app

    gp = _gallery_path(args)
    Gallery(gp).close()  # create it (empty) if new, fail now if it is not a gallery
    label_dir = Path(args.label_dir).resolve() if args.label_dir else None
    if label_dir is not None and not label_dir.is_dir():
        raise NotADirectoryError(f"{args.label_dir}: not a folder")
    cfg = ServerConfig.for_host(gp, args.host, label_dir=label_dir, max_upload_mb=args.max_upload_mb)
    app = create_app(cfg)
    url = f"http://{args.host if ':' not in args.host else '[' + args.host + ']'}:{args.port}/"
    print(f"charaid serve: gallery {gp}" + (f", labelling {label_dir}" if label_dir else ""), file=sys.stderr)
    if cfg.token:
        print(f"bound to {args.host}: changing the gallery needs this token (header X-Charaid-Token): {cfg.token}", file=sys.stderr)
        print(f"open {url}?token={cfg.token}", file=sys.stderr)
    else:
        print(f"open {url}  (API docs: {url}docs)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def _store(args):
    from .embed import imagenet_embedder
    from .store import FaceStore

    emb = imagenet_embedder()
    path = Path(args.store).expanduser() if args.store else default_settings().store
    return FaceStore(path, emb.model_id, emb.dim), emb


def cmd_index(args) -> int:
    from .images import iter_image_paths
    from .store import index_local, pending_paths

    spec = _detector_spec(args)
    store, emb = _store(args)
    failed = done = faces = 0
    t0 = time.time()
    with store, _progress(None, "index", args.quiet) as bar:
        todo = pending_paths(store, iter_image_paths(args.paths), args.rescan)
        if args.engine == "ray":
            from .distributed import index_ray

            results = index_ray(todo, spec, emb.dim, address=args.ray_address, actors=args.workers or 0)
        else:
            results = index_local(todo, emb, spec, _workers(args, 10**9))
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
                print(json.dumps(r.to_dict(), ensure_ascii=False), flush=True)
            if len(batch) >= 64:
                store.write(batch)
                batch = []
        store.write(batch)
        n = store.sync_index()
        c = store.counts()
    secs = time.time() - t0
    print(f"charaid: indexed {done} new images ({faces} faces, {failed} failed) in {secs:.1f} s"
          f" ({done / max(secs, 1e-9):.2f} images/s); the store holds {c['images']} images, {c['faces']} faces;"
          f" index: {len(n)} vectors ({n.backend})", file=sys.stderr)
    return EXIT_INPUT if failed else EXIT_OK


def cmd_search(args) -> int:
    from .errors import ImageError
    from .images import load_image
    from .prepare import PreparedImage, prepare_image

    spec = None if args.no_detect else _detector_spec(args)
    store, emb = _store(args)
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
                hits = store.search(emb.embed_batch(prep.crops), args.k)
                out = {"path": path, "error": None, "faces": [
                    {"box": (f.box.as_list() if f is not None else [0, 0, *prep.size]), "hits": [h.to_dict() for h in hs]}
                    for f, hs in zip(prep.faces, hits)]}
            if args.json:
                print(json.dumps(out, ensure_ascii=False), flush=True)
            else:
                print(f"{path}: {len(out['faces'])} face(s)")
                for f in out["faces"]:
                    print(f"  face {f['box']}:")
                    for h in f["hits"]:
                        print(f"    {h['similarity']:.3f}  {h['path']}  {h['box']}")
    return EXIT_INPUT if failed else EXIT_OK


def cmd_gallery(args) -> int:
    from .gallery import Gallery
    from .recognize import GALLERY_THRESHOLD_KEY, Recognizer

    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here")
    with Gallery(gp) as g:
        if args.action == "list":
            chars = g.characters()
            if args.json:
                for c in chars:
                    print(json.dumps({"character": c.name, "samples": c.samples}, ensure_ascii=False))
            else:
                for c in chars:
                    print(f"{c.name}\t{c.samples}")
                print(f"{len(chars)} characters, {len(g)} faces, model {g.model_id}", file=sys.stderr)
        elif args.action == "remove":
            n = g.remove_character(args.name)
            _sync_index(g)
            print(f"removed {args.name!r} and its {n} faces", file=sys.stderr)
        elif args.action == "rename":
            g.rename_character(args.old, args.new, merge=args.merge)
            print(f"renamed {args.old!r} to {args.new!r}", file=sys.stderr)
        elif args.action == "threshold":
            if args.value == "auto":
                g.set_json(GALLERY_THRESHOLD_KEY, None)
            elif args.value is not None:
                g.set_json(GALLERY_THRESHOLD_KEY, {"threshold": float(args.value)})
            rec = Recognizer(g)
            cal = rec.calibration
            src = "override" if g.get_json(GALLERY_THRESHOLD_KEY) else "calibrated" if cal.n_known else "default"
            if src == "default":
                print("this gallery is too small to calibrate its own threshold (it needs 3 characters, "
                      f"2 faces each); the default {rec.threshold:.2f} is used", file=sys.stderr)
            print(json.dumps({"threshold": round(rec.threshold, 4), "source": src, "calibration": cal.to_dict()}, default=str))
        elif args.action == "model":
            from .models import gallery_models, switch_model

            if args.model:
                emb = switch_model(g, args.model)
                _sync_index(g)
                print(f"{g.path} now compares with {emb.model_id}", file=sys.stderr)
            for mid, n in gallery_models(g):
                print(json.dumps({"model_id": mid, "samples": n, "active": mid == g.model_id}))
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------------
def _float_or_auto(v: str) -> str:
    if v != "auto":
        float(v)
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="charaid", description="Recognise anime characters in pictures.")
    p.add_argument("--version", action="version", version=f"charaid {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, gallery=True, detect=True):
        if gallery:
            sp.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)")
        if detect:
            sp.add_argument("--detector", choices=DETECTORS, help="face detector (default animeface; cascade if --cascade is given)")
            sp.add_argument("--cascade", metavar="XML", help="OpenCV cascade file, e.g. lbpcascade_animeface.xml")
            sp.add_argument("--workers", type=int, metavar="N", help="processes for decoding and detection (default: all cores for batches)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sp = sub.add_parser("demo", help="enrol 3 drawn characters and recognise a group picture (no data needed)")
    sp.add_argument("--out", default="charaid-demo", help="folder for the demo's pictures and gallery (default ./charaid-demo)")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("enroll", help="add characters from DIR/<character>/<images> to the gallery")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--no-detect", action="store_true", help="each image is already a face crop")
    common(sp)
    sp.set_defaults(func=cmd_enroll)

    sp = sub.add_parser("recognize", aliases=["recognise"], help="name the characters in images")
    sp.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    sp.add_argument("--no-detect", action="store_true", help="each image is already a face crop")
    sp.add_argument("--top-k", type=int, default=5, metavar="K", help="candidates per face (default 5)")
    sp.add_argument("--threshold", type=float, metavar="T", help="scores below T are 'unknown' (default: the gallery's calibrated value)")
    sp.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    sp.add_argument("--annotate", metavar="OUTDIR", help="write each image with boxes and names to OUTDIR")
    sp.add_argument("--output", metavar="FILE", help="append JSON lines to FILE; run again to resume: images already in FILE are skipped")
    sp.add_argument("--picture", action="store_true",
                    help="when no face is named, compare the whole picture with the enrolled pictures (adds a 'picture' field)")
    common(sp)
    sp.set_defaults(func=cmd_recognize)

    sp = sub.add_parser("detect", help="find anime faces in images")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    sp.add_argument("--annotate", metavar="OUTDIR", help="write each image with its face boxes to OUTDIR")
    common(sp, gallery=False)
    sp.set_defaults(func=cmd_detect)

    sp = sub.add_parser("evaluate", help="measure recognition on labelled folders")
    sp.add_argument("dir", metavar="DIR", help="DIR/<character>/<images>")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--test", metavar="DIR2", help="fit on DIR, test on DIR2 (characters missing from DIR are unknowns)")
    g.add_argument("--folds", type=int, default=5, help="k-fold cross-validation on DIR (default 5)")
    sp.add_argument("--report", metavar="OUT", help="folder for report.md, report.json and confusion.png")
    sp.add_argument("--no-detect", action="store_true", help="each image is already a face crop")
    sp.add_argument("--method", default="logreg", choices=["logreg", "prototype", "knn"], help="matcher (default logreg)")
    common(sp, gallery=False)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("sort", help="sort pictures into DST/<character>/ folders (copy or move; resumable; undoable)")
    sp.add_argument("paths", nargs="+", metavar="SRC DST", help="source and destination folders (DST alone with --resume, --undo, --list-runs)")
    sp.add_argument("--move", action="store_true", help="move instead of copy (each move is verified before the source goes)")
    sp.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    sp.add_argument("--multi", choices=["copy-each", "group", "primary"], default="copy-each",
                    help="pictures with several characters: into each folder (default), DST/_group/A+B/, or the most confident")
    sp.add_argument("--min-score", type=float, metavar="S", help="faces scoring below S are unknown (default: the gallery's threshold)")
    sp.add_argument("--threshold", type=float, help=argparse.SUPPRESS)
    sp.add_argument("--json", action="store_true", help="one JSON line per picture, then a summary line")
    sp.add_argument("--rescan", action="store_true", help="look at every file again, even unchanged ones")
    sp.add_argument("--faces-only", action="store_true",
                    help="sort by faces alone: a picture with no named face goes to _no_face/_unknown, never by its whole-picture look")
    sp.add_argument("--resume", action="store_true", help="finish the last interrupted run in DST")
    sp.add_argument("--undo", type=int, metavar="RUN", help="put every file of run RUN back where it was")
    sp.add_argument("--list-runs", action="store_true", help="list the runs recorded in DST")
    common(sp)
    sp.set_defaults(func=cmd_sort)

    sp = sub.add_parser("train", help="fine-tune the embedder on the gallery's faces (minutes on a CPU; resumable)")
    sp.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)")
    sp.add_argument("--epochs", type=int, metavar="N", help="epochs (default 20)")
    sp.add_argument("--minutes", type=float, metavar="N", help="stop after this long; running train again resumes")
    sp.add_argument("--no-calibration", action="store_true", help="skip the held-out run that calibrates the unknown threshold")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("serve", help="web pages to recognise, label and manage the gallery, and a REST API")
    sp.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; elsewhere, changes need a token)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--label-dir", metavar="DIR", help="folder of unlabelled images for the labelling page (nothing outside it is read)")
    sp.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (default 20 MB)")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("index", help="embed every face of big folders into a face store, for search by image (resumable)")
    sp.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    sp.add_argument("--store", metavar="S", help="face store file (default: $CHARAID_STORE, else one in your data folder)")
    sp.add_argument("--engine", choices=["local", "ray"], default="local", help="local processes (default) or Ray Data actors")
    sp.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to use (default: start Ray on this machine)")
    sp.add_argument("--rescan", action="store_true", help="index every image again, even unchanged ones")
    sp.add_argument("--json", action="store_true", help="one JSON object per newly indexed image on stdout")
    common(sp, gallery=False)
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("search", help="find the indexed faces most like the faces of an image (robust to crops and flips)")
    sp.add_argument("images", nargs="+", metavar="IMAGE")
    sp.add_argument("--store", metavar="S", help="face store file (default: $CHARAID_STORE, else one in your data folder)")
    sp.add_argument("--k", type=int, default=10, help="images to return per face (default 10)")
    sp.add_argument("--no-detect", action="store_true", help="the image is already a face crop")
    sp.add_argument("--json", action="store_true", help="one JSON object per query image on stdout")
    common(sp, gallery=False)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("gallery", help="list, remove or rename characters; show or set the threshold; switch models")
    gsub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = gsub.add_parser("list", help="characters and their face counts")
    a.add_argument("--json", action="store_true")
    a = gsub.add_parser("remove", help="delete a character and its faces")
    a.add_argument("name")
    a = gsub.add_parser("rename", help="rename a character")
    a.add_argument("old")
    a.add_argument("new")
    a.add_argument("--merge", action="store_true", help="if NEW exists, move OLD's faces into it")
    a = gsub.add_parser("threshold", help="show the unknown threshold; set it with VALUE, or 'auto' to calibrate")
    a.add_argument("value", nargs="?", type=_float_or_auto, metavar="VALUE|auto")
    a = gsub.add_parser("model", help="list the models that embedded the gallery; switch with MODEL ('default': the default, untuned features)")
    a.add_argument("model", nargs="?", metavar="MODEL|default")
    for a in gsub.choices.values():
        a.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY)")
    sp.set_defaults(func=cmd_gallery)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("charaid: interrupted" + ("; run `charaid train` again to resume" if args.command == "train" else ""), file=sys.stderr)
        return 130
    except (FileNotFoundError, NotADirectoryError, ValueError, GalleryError, EmbeddingSpaceError,
            UnknownCharacterError, RuntimeError) as e:
        print(f"charaid: error: {e}", file=sys.stderr)
        return EXIT_SETUP


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

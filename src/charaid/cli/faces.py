"""Commands on faces and the gallery: demo, enroll, recognize, detect, evaluate, gallery."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from charaid.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    _detector_spec,
    _gallery_path,
    _open_recognizer,
    _progress,
    _run_options,
    _settings,
    _sync_index,
    _warn,
    _workers,
)
from charaid.names import json_line, shown


def cmd_demo(args) -> int:
    from charaid.jobs.demo import run_demo

    # not the current folder: run from a checkout, the demo must not leave files for git to show
    out = Path(args.out).expanduser() if args.out else _settings(args).gallery.parent / "demo"
    t0 = time.time()
    print(f"Drawing 3 characters x 8 portraits and a group picture into {out}/ ...", file=sys.stderr)
    r = run_demo(out)
    faces = sorted(r.result.faces, key=lambda f: f.box.x)
    print(f"Gallery: {r.gallery} (akane, sora, hikari enrolled)")
    print(f"Recognised {r.scene} ({len(faces)} faces, left to right):")
    for f, _want in zip(faces, r.expected + [None] * len(faces)):
        top = ", ".join(f"{c.character} {c.score:.2f}" for c in f.top)
        print(f"  {str(f.box.as_list()):>22}  {f.label:8s} score {f.score:.2f}   top: {top}")
    print(f"Annotated picture: {r.annotated}")
    ok = r.correct
    print(("OK: " if ok else "UNEXPECTED: ") + f"expected {[e or 'unknown' for e in r.expected]} ({time.time() - t0:.1f} s)")
    return EXIT_OK if ok else EXIT_INPUT


def cmd_enroll(args) -> int:
    from charaid.jobs.enroll import enroll_items, labelled_images
    from charaid.recognition.spaces import embedder_for
    from charaid.storage.gallery import Gallery

    items = labelled_images(args.dir, on_skip=lambda p, why: _warn(f"{p}: {why}"))
    with Gallery(_gallery_path(args)) as g:
        spec = None if args.no_detect else _detector_spec(args, g)
        embedder = embedder_for(g).load()  # before the progress bar: it times pictures, not start-up
        bar = _progress(len(items), "enrol", args.quiet)
        s = enroll_items(
            g,
            items,
            detect=not args.no_detect,
            spec=spec,
            embedder=embedder,
            on_progress=bar.update,
            on_error=lambda p, r: _warn(f"{p}: {r}"),
            options=_run_options(args, len(items)),
            settings=_settings(args),
        )
        bar.close()
        for src, other in s.conflicts:
            _warn(f"{src}: already enrolled as {other!r}; skipped")
        _sync_index(g, args)
        print(
            f"enrolled {s.added} faces of {len(s.characters)} characters and {s.pictures} whole pictures into {g.path} "
            f"({s.unchanged} already there, {s.duplicates} duplicates, {len(s.no_face)} without a face, "
            f"{len(s.errors)} unreadable); "
            f"gallery now {len(g)} faces of {len(g.characters())} characters"
        )
    return EXIT_INPUT if s.errors else EXIT_OK


def cmd_recognize(args) -> int:
    from charaid.pipeline.images import iter_image_paths, load_image
    from charaid.recognition.annotate import annotate, annotated_path
    from charaid.storage.gallery import Gallery

    paths = list(iter_image_paths(args.paths))
    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first (charaid enroll DIR --gallery {gp})")
    if not paths:
        _warn(f"{', '.join(map(str, args.paths))}: no pictures here (nothing to recognise)")
        return EXIT_INPUT
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
    with Gallery(gp) as g:
        rec = _open_recognizer(args, g)
        opts = _run_options(args, len(paths), detect=not args.no_detect)
        rec.pipeline.load(opts)  # before the progress bar: it times pictures, not start-up
        if not g.names():
            _warn(f"{gp}: the gallery is empty, every face will be unknown")
        bar = _progress(len(paths), "recognise", args.quiet)
        for res in rec.recognize_paths(paths, detect=not args.no_detect, pictures=args.picture, options=opts):
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
        bar.close()
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
        return  # a problem: said once, on stderr
    print(f"{shown(res.path)}: {len(res.faces)} face{'s' if len(res.faces) != 1 else ''}")
    for f in res.faces:
        top = ", ".join(f"{c.character} {c.score:.2f}" for c in f.top)
        sure = "" if f.probability is None else f", p {f.probability:.2f}"
        print(f"  {str(f.box.as_list()):>22}  {f.label}  ({f.score:.2f}{sure})  top: {top}")


def cmd_detect(args) -> int:
    from charaid.pipeline.images import iter_image_paths, load_image
    from charaid.pipeline.prepare import prepare_many
    from charaid.recognition.annotate import annotated_path

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
                print(json_line({"path": prep.path, "faces": faces, "error": prep.error}), flush=True)
            elif not prep.error:
                n = len(faces)
                print(
                    f"{shown(prep.path)}: {n} face{'' if n == 1 else 's'} "
                    + " ".join(f"{f['box']}@{f['score']:.2f}" for f in faces)
                )
            if args.annotate and prep.ok:
                from PIL import ImageDraw

                im = load_image(prep.path)
                dr = ImageDraw.Draw(im)
                for i in range(len(prep.faces)):
                    x, y, w, h = prep.box(i).as_list()
                    dr.rectangle([x, y, x + w, y + h], outline=(255, 0, 80), width=max(2, max(im.size) // 300))
                im.save(annotated_path(args.annotate, prep.path))
    return EXIT_INPUT if failed else EXIT_OK


def cmd_evaluate(args) -> int:
    from charaid.jobs import evaluate as ev
    from charaid.models.embedders import default_embedder

    embedder = default_embedder()
    spec = None if args.no_detect else _detector_spec(args)
    errors: list[tuple[str, str]] = []

    def embed(root):
        from charaid.jobs.enroll import labelled_images

        n = len(labelled_images(root, on_skip=lambda p, why: _warn(f"{p}: {why}")))
        with _progress(n, f"embed {Path(root).name}", args.quiet) as bar:
            return ev.embed_labelled(
                root,
                embedder,
                not args.no_detect,
                spec,
                _workers(args, n),
                on_error=lambda p, r: (errors.append((p, r)), _warn(f"{p}: {r}")),
                on_progress=bar.update,
            )

    from charaid.models.cohort import load_cohort

    cohort = load_cohort(embedder.model_id)
    data = embed(args.dir)
    if args.test:
        test = embed(args.test)
        report = ev.evaluate_split(data, test, args.method)
        if report.unknown is None and not args.closed:
            report.unknown = ev.leave_out_unknowns(data, test, method=args.method, cohort=cohort)
    else:
        report = ev.evaluate_folds(data, args.folds, args.method)
        if not args.closed:
            tr, te = ev.split_holdout(data, 1 / args.folds)
            report.unknown = ev.leave_out_unknowns(tr, te, method=args.method, cohort=cohort)
    report.closed = args.closed
    report.dropped = errors
    what = f"{args.dir}" + (f" -> {args.test}" if args.test else f", {args.folds}-fold")
    report.title = f"charaid evaluate {what}: {args.method}, {embedder.model_id}, {time.strftime('%Y-%m-%d')}"
    print(report.to_markdown())
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report.to_dict(), indent=1))
        (out / "report.md").write_text(report.to_markdown())
        ev.plot_confusion(report, out / "confusion.png")
        print(f"report written to {out}/ (report.md, report.json, confusion.png)", file=sys.stderr)
    return EXIT_INPUT if errors else EXIT_OK


def cmd_gallery(args) -> int:
    from charaid.recognition.recognize import GALLERY_THRESHOLD_KEY, Recognizer
    from charaid.storage.gallery import Gallery

    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here")
    with Gallery(gp) as g:
        if args.action == "list":
            chars = g.characters()
            if args.json:
                for c in chars:
                    print(json_line({"character": c.name, "samples": c.samples}))
            else:
                for c in chars:
                    print(f"{c.name}\t{c.samples}")
                print(f"{len(chars)} characters, {len(g)} faces, model {g.model_id}", file=sys.stderr)
        elif args.action == "remove":
            n = g.remove_character(args.name)
            _sync_index(g, args)
            print(f"removed {args.name!r} and its {n} faces", file=sys.stderr)
        elif args.action == "rename":
            g.rename_character(args.old, args.new, merge=args.merge)
            print(f"renamed {args.old!r} to {args.new!r}", file=sys.stderr)
        elif args.action == "threshold":
            if args.value == "auto":
                g.set_json(GALLERY_THRESHOLD_KEY, None)
            elif args.value is not None:
                g.set_json(GALLERY_THRESHOLD_KEY, {"threshold": float(args.value)})
            rec = Recognizer(g, settings=_settings(args))
            cal = rec.calibration
            src = "override" if g.get_json(GALLERY_THRESHOLD_KEY) else "calibrated" if cal.n_known else "default"
            if src == "default":
                print(
                    "this gallery is too small to calibrate its own threshold (it needs 3 characters, "
                    f"2 faces each); the default {rec.threshold:.2f} is used",
                    file=sys.stderr,
                )
            print(json.dumps({"threshold": round(rec.threshold, 4), "source": src, "calibration": cal.to_dict()}, default=str))
        elif args.action == "detector":
            if args.name:
                from charaid.jobs.redetect import move_detector

                args.detector = args.name
                spec = _detector_spec(args)
                with _progress(len(g), "detect again", args.quiet) as bar:
                    r = move_detector(g, spec, _workers(args, len(g)), on_progress=bar.update)
                _sync_index(g, args)
                for sid, why in r.kept:
                    _warn(f"sample {sid}: kept its old crop ({why})")
                print(f"{g.path}: {r.recut} faces cut again by {r.detector}, {len(r.kept)} kept as they were", file=sys.stderr)
            print(json.dumps({"detector": g.detector}))
        elif args.action == "model":
            from charaid.recognition.spaces import gallery_models, switch_model

            if args.model:
                emb = switch_model(g, args.model)
                _sync_index(g, args)
                print(f"{g.path} now compares with {emb.model_id}", file=sys.stderr)
            for mid, n in gallery_models(g):
                print(json.dumps({"model_id": mid, "samples": n, "active": mid == g.model_id}))
    return EXIT_OK


def cmd_models(args) -> int:
    """Every built-in model: detectors by --detector name, embedders by the model id galleries record."""
    from charaid.models.zoo import cards

    for c in cards():
        if args.json:
            print(json_line(c.to_dict()))
        else:
            version = f" v{c.version}" if c.version is not None else ""
            print(f"{c.kind:9} {c.id}{version}{'  (default)' if c.default else ''}\n          {c.source}")
    return EXIT_OK

"""Commands between charaid and the user's own collection: discover (characters found without
folders), tag (names into XMP sidecars) and export (a character's pictures as a training set)."""

from __future__ import annotations

import contextlib
import sys
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
    _store,
    _warn,
)
from charaid.names import json_line


def _tag_runs(args) -> Path:
    """Where tag journals its runs (to undo them): tag-runs/ in charaid's data folder."""
    return _settings(args).gallery.parent / "tag-runs"


def cmd_tag(args) -> int:
    from charaid.jobs.tag import TagJournal, tag_paths, undo
    from charaid.pipeline.images import iter_image_paths
    from charaid.storage.gallery import Gallery

    if args.undo is not None:
        restored, left = undo(_tag_runs(args), args.undo, on_error=lambda p, r: _warn(f"{p}: {r}"))
        print(f"tag run {args.undo} undone: {restored} sidecars put back, {left} left as they are")
        return EXIT_INPUT if left else EXIT_OK
    if not args.paths:
        raise ValueError("tag takes pictures or folders (or --undo RUN)")
    paths = [p for p in iter_image_paths(args.paths) if p.suffix.lower() != ".xmp"]
    if not paths:
        _warn(f"{', '.join(args.paths)}: no pictures here (nothing to tag)")
        return EXIT_INPUT
    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first")
    journal = None if args.dry_run else TagJournal(_tag_runs(args))
    failed = written = 0
    with Gallery(gp) as g:
        rec = _open_recognizer(args, g)
        rec.pipeline.load()
        bar = _progress(len(paths), "tag", args.quiet)
        opts = _run_options(args, len(paths))
        for t in tag_paths(rec, paths, opts, args.probable, args.unknown, args.dry_run, journal, in_file=args.in_file):
            bar.update(1)
            if t.error:
                failed += 1
                _warn(f"{t.path}: {t.error}")
            written += t.changed
            if args.json or args.dry_run:
                bar.clear()
                print(json_line(t.to_dict()), flush=True)
        bar.close()
    verb = "would change" if args.dry_run else "changed"
    what = "pictures' own XMP" if args.in_file else "sidecars"
    run = f"; undo: charaid tag --undo {journal.run}" if journal is not None and written else ""
    print(
        f"tag: {verb} {written} {what} of {len(paths)} pictures ({failed} failed){run}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return EXIT_INPUT if failed else EXIT_OK


def cmd_export(args) -> int:
    from charaid.config import Thresholds
    from charaid.jobs.export import ExportOptions, Source, export_character, gallery_sources
    from charaid.names import character_name
    from charaid.storage.gallery import Gallery

    opts = ExportOptions(
        args.what,
        args.size,
        args.format,
        args.repeats,
        args.trigger,
        args.klass,
        tuple(t for t in (args.tags or "").split(",") if t.strip()),
    )
    name = character_name(args.character)
    gp = _gallery_path(args)
    if not gp.exists():
        raise FileNotFoundError(f"{gp}: no gallery here; enrol characters first")
    t = Thresholds()
    with Gallery(gp) as g:
        margin = t.facedet_crop_margin if (g.detector or "facedet").startswith("facedet") else t.crop_margin
        if args.store:
            from charaid.jobs.find import find_character

            store, emb = _store(args, must_exist=True)
            with store:
                found = find_character(store, g, emb, name)
            sources = [Source(f.path, tuple(f.box.as_list())) for f in found]  # type: ignore[arg-type]
            margin = t.facedet_crop_margin  # the store's faces are cut by charaid's detector
        else:
            if name not in g.names():
                from charaid.errors import UnknownCharacterError

                raise UnknownCharacterError(name, g.names())
            sources = gallery_sources(g, name)
    s = export_character(name, sources, args.out, opts, margin, on_error=lambda p, r: _warn(f"{p}: {r}"))
    print(
        f"export: {s.written} {opts.what} of {name} into {s.folder} ({s.duplicates} duplicates skipped, "
        f"{len(s.skipped)} unreadable); manifest: {Path(args.out) / 'manifest.json'}"
    )
    return EXIT_INPUT if s.skipped else EXIT_OK


def cmd_discover(args) -> int:
    from charaid.jobs.discover import discover
    from charaid.models.embedders import default_embedder
    from charaid.pipeline.faces import FacePipeline
    from charaid.pipeline.images import iter_image_paths
    from charaid.storage.gallery import Gallery

    paths = list(iter_image_paths(args.paths))
    if not paths:
        _warn(f"{', '.join(args.paths)}: no pictures here (nothing to discover)")
        return EXIT_INPUT
    gp = _gallery_path(args)
    use_gallery = gp.exists() and not args.no_gallery
    with Gallery(gp) if use_gallery else contextlib.nullcontext() as g:
        rec = _open_recognizer(args, g) if g is not None else None
        pipeline = rec.pipeline if rec is not None else FacePipeline(_detector_spec(args), default_embedder(), _settings(args))
        pipeline.load()
        bar = _progress(len(paths), "discover", args.quiet)
        opts = _run_options(args, len(paths))
        faces = discover(paths, pipeline, rec, opts, args.link, on_progress=bar.update)
        bar.close()
    if args.json:
        for f in faces:
            print(f.to_json())
    else:
        clusters: dict[int, list] = {}
        for f in faces:
            if f.cluster is not None:
                clusters.setdefault(f.cluster, []).append(f)
        named = [f for f in faces if f.character]
        for cid in sorted(clusters):
            members = clusters[cid]
            print(f"cluster {cid}: {len(members)} face{'s' if len(members) != 1 else ''}")
            for f in members[:5]:
                print(f"  {f.path}  {f.box}")
            if len(members) > 5:
                print(f"  ... and {len(members) - 5} more")
        if named:
            print(f"known to the gallery: {len(named)} faces")
    n_clusters = len({f.cluster for f in faces if f.cluster is not None})
    print(
        f"discover: {len(faces)} faces in {len(paths)} pictures: {sum(1 for f in faces if f.character)} named by the gallery, "
        f"{n_clusters} proposed characters for the rest",
        file=sys.stderr if args.json else sys.stdout,
    )
    return EXIT_OK

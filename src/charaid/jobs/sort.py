"""``charaid sort``: a folder of pictures becomes a folder per character, safely.

Layout: ``DST/<character>/<file>``; pictures with several known characters follow ``multi``
(``copy-each``: into each character's folder; ``group``: ``DST/_group/<A>+<B>/``;
``primary``: the most confident character's folder); ``DST/_maybe/<character>/`` holds
pictures whose faces are not named but one is probably that character (to check, then enrol or
move), ``DST/_unknown/`` pictures with faces but none known, ``DST/_no_face/`` pictures without
a face. Unreadable files stay where they are and are listed.

Nothing is ever overwritten (a name clash gets a `` (1)`` suffix; identical content already
there is skipped as a duplicate) and every action goes through :mod:`charaid.storage.journal`, so an
interrupted run can be resumed and any run undone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from charaid.names import folder_name
from charaid.pipeline.faces import RunOptions
from charaid.pipeline.images import iter_image_paths, sha256_file
from charaid.recognition.recognize import ImageResult, Recognizer
from charaid.storage.journal import (
    GROUP,
    JOURNAL_DIR,
    MAYBE,
    NO_FACE,
    TMP_PREFIX,
    UNKNOWN,
    Journal,
    SortError,
    exclusive,
    place_copy,
    place_move,
)

MULTI = ("copy-each", "group", "primary")
#: The destination's folders that `charaid sort DST/_unknown DST --move` may sort again.
AGAIN = (UNKNOWN, NO_FACE, MAYBE)


@dataclass(frozen=True)
class SortOptions:
    move: bool = False
    multi: str = "copy-each"
    #: Faces scoring below this count as unknown (default: the gallery's threshold).
    min_score: float | None = None
    workers: int = 0
    #: Look at every file again, ignoring what earlier runs recorded.
    rescan: bool = False
    #: A picture with no named face is compared whole with the enrolled pictures (charaid.recognition.picture).
    pictures: bool = True
    #: Where detection and embedding run (charaid.pipeline.faces.ENGINES); moves and the
    #: journal stay in this process, one writer.
    engine: str = "local"
    ray_address: str | None = None

    def as_dict(self) -> dict:
        return {"move": self.move, "multi": self.multi, "min_score": self.min_score, "pictures": self.pictures}


@dataclass
class Decision:
    """Where one picture goes (``folders``, first is the most confident), or why it stays."""

    src: Path
    hash: str | None
    folders: list[str]
    characters: list[tuple[str, float]] = field(default_factory=list)
    faces: int = 0
    error: str | None = None
    #: True when the folder comes from the whole picture, not from a face.
    by_picture: bool = False


@dataclass
class SortSummary:
    run_id: int | None = None
    images: int = 0
    unchanged: int = 0
    per_folder: Counter = field(default_factory=Counter)
    copied: int = 0
    moved: int = 0
    duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def named_faces(result: ImageResult, min_score: float | None = None) -> dict[str, float]:
    """Each character named in a picture with its best score (``min_score``: a raw score the
    user asked for, below which a named face counts as unknown)."""
    best: dict[str, float] = {}
    for f in result.faces:
        if f.character is not None and (min_score is None or f.score >= min_score):
            best[f.character] = max(best.get(f.character, 0.0), f.score)
    return best


def probable_face(result: ImageResult) -> str | None:
    """The likeliest "probably X" of a picture with no named face."""
    cands = [f for f in result.faces if f.probable is not None]
    return max(cands, key=lambda f: f.probability or 0.0).probable if cands else None


def decide(result: ImageResult, multi: str, min_score: float | None = None) -> list[str]:
    """The destination folders of a recognised picture, most confident first."""
    best = named_faces(result, min_score)
    if not best:  # no face named: the whole picture's answer, then a probable face's
        if result.picture is not None and result.picture.character is not None:
            return [folder_name(result.picture.character)]
        maybe = probable_face(result)
        if maybe is not None:
            return [f"{MAYBE}/{folder_name(maybe)}"]
        return [UNKNOWN if result.faces else NO_FACE]
    names = sorted(best, key=lambda n: -best[n])
    if len(names) == 1 or multi == "primary":
        return [folder_name(names[0])]
    if multi == "group":
        return [f"{GROUP}/" + "+".join(folder_name(n) for n in sorted(names))]
    return [folder_name(n) for n in names]


def free_name(folder: Path, name: str, content_hash: str) -> tuple[Path, bool]:
    """(path, is_duplicate): ``folder/name``, or ``name (k)`` if taken by other content; a file
    with the same content already there makes it a duplicate."""
    stem, suffix = os.path.splitext(name)
    k = 0
    while True:
        p = folder / (name if k == 0 else f"{stem} ({k}){suffix}")
        if not p.exists():
            return p, False
        try:
            if p.is_file() and sha256_file(p) == content_hash:
                return p, True
        except OSError:
            pass
        k += 1


class Sorter:
    def __init__(self, recognizer: Recognizer | None, dst: str | Path, options: SortOptions = SortOptions()):
        if options.multi not in MULTI:
            raise ValueError(f"unknown --multi {options.multi!r}; choose one of: {', '.join(MULTI)}")
        self.rec = recognizer
        self.dst = Path(dst).resolve()
        self.opt = options

    # -- planning (reads only) --------------------------------------------------------------------
    def sources(
        self, src: Path, journal: Journal | None, summary: SortSummary, on_error: Callable[[str, str], None]
    ) -> list[Path]:
        """Pictures under ``src`` still to do; symbolic links and the destination are left out
        (unless ``src`` is one of the destination's own folders, sorted again)."""
        src = src.resolve()
        again = self.sorts_again(src)
        out = []
        for p in iter_image_paths([src]):
            sp = str(p)
            if not again and (self.dst == p or self.dst in p.parents):
                continue  # DST inside SRC: never sort our own output
            if p.is_symlink():
                summary.errors.append((sp, "symbolic link, not followed"))
                on_error(sp, "symbolic link, not followed")
                continue
            if journal is not None and not self.opt.rescan and not again:  # sorting again: the gallery has changed
                try:
                    st = p.stat()
                except OSError as e:
                    summary.errors.append((sp, f"cannot read ({e.strerror or e})"))
                    on_error(sp, f"cannot read ({e.strerror or e})")
                    continue
                if journal.seen_unchanged(sp, st.st_size, st.st_mtime_ns):
                    summary.unchanged += 1
                    continue
            out.append(p)
        return out

    def sorts_again(self, src: Path) -> bool:
        """True when ``src`` is one of the destination's own folders of pictures it could not
        name (``_unknown``, ``_no_face``), to be sorted again after the gallery has learnt more;
        any other folder inside the destination is refused (it holds sort's own output)."""
        src = src.resolve()
        if src != self.dst and self.dst not in src.parents:
            return False
        rel = src.relative_to(self.dst).parts
        if not rel or rel[0] not in AGAIN:
            where = "the destination itself" if not rel else f"inside the destination {self.dst}"
            raise ValueError(f"{src}: {where}; sort only sorts its own {', '.join(AGAIN[:-1])} and {AGAIN[-1]} folders again")
        return True

    def decisions(self, paths: list[Path]) -> Iterator[Decision]:
        """What to do with each picture, in order. A batch is decided (and so journalled) when it
        is full or ``journal_every_s`` old, whichever comes first: a kill on a slow machine loses
        at most those seconds of work."""
        assert self.rec is not None
        min_score = self.opt.min_score
        opts = RunOptions(
            workers=self.opt.workers,
            with_hash=True,
            with_picture=self.opt.pictures,
            engine=self.opt.engine,
            ray_address=self.opt.ray_address,
            flush_every_s=self.rec.settings.journal_every_s,
            keep_crops=False,
        )
        for batch in self.rec.batches(paths, opts):
            for e, res in zip(batch, self.rec.name_faces(batch, self.opt.pictures)):
                prep = e.prep
                if prep.error:
                    yield Decision(Path(prep.path), prep.content_hash, [], error=prep.error)
                    continue
                chars = sorted(((c, round(v, 4)) for c, v in named_faces(res, min_score).items()), key=lambda x: -x[1])
                whole = res.picture if not chars else None
                pic = whole is not None and whole.character is not None
                if whole is not None and whole.character is not None:
                    chars = [(whole.character, round(whole.score, 4))]
                yield Decision(
                    Path(prep.path),
                    prep.content_hash,
                    decide(res, self.opt.multi, min_score),
                    chars,
                    len(res.faces),
                    by_picture=pic,
                )

    # -- doing ----------------------------------------------------------------------------------
    def run(
        self, src: str | Path, on_progress=None, on_error=None, on_decision=None, dry_run: bool = False, run_id: int | None = None
    ) -> SortSummary:
        """Sort ``src`` into the destination (``dry_run``: decide and report, touch nothing)."""
        src = Path(src)
        if not src.is_dir():
            raise NotADirectoryError(f"{src}: not a folder")
        if self.sorts_again(src) and not self.opt.move and not dry_run:
            raise ValueError(f"{src}: sorting the destination's own folder again moves its pictures out of it: add --move")
        on_error = on_error or (lambda p, r: None)
        with contextlib.nullcontext() if dry_run else exclusive(self.dst):
            return self._run(src, on_progress, on_error, on_decision, dry_run, run_id)

    def _run(self, src: Path, on_progress, on_error, on_decision, dry_run: bool, run_id: int | None) -> SortSummary:
        t0 = time.time()
        summary = SortSummary()
        journal = None if dry_run and not (self.dst / JOURNAL_DIR).exists() else Journal(self.dst)
        try:
            if journal is not None and not dry_run:
                if run_id is None:
                    run_id = journal.start_run(str(src.resolve()), self.opt.as_dict())
                else:
                    journal.set_status(run_id, "running")
                summary.run_id = run_id
            # The journal and run this run writes to (none for a dry run).
            live = (journal, run_id) if journal is not None and run_id is not None and not dry_run else None
            # Files done by an earlier (or the interrupted) run are in the journal's cache, so a
            # resume simply looks at SRC again: what was moved is gone, what was copied is known.
            paths = self.sources(src, journal, summary, on_error)
            for d in self.decisions(paths):
                summary.images += 1
                if on_decision:
                    on_decision(d)
                if d.error:
                    summary.errors.append((str(d.src), d.error))
                    on_error(str(d.src), d.error)
                    if live is not None:
                        live[0].plan(live[1], str(d.src), None, d.hash, "error", None, d.error)
                else:
                    for f in d.folders:
                        summary.per_folder[f] += 1
                    if live is not None:
                        self._apply(live[0], live[1], d, summary, on_error)
                if on_progress:
                    on_progress(1)
            if live is not None:
                live[0].set_status(live[1], "done")
        finally:
            if journal is not None:
                journal.close()
        summary.seconds = time.time() - t0
        return summary

    def _apply(self, journal: Journal, run_id: int, d: Decision, summary: SortSummary, on_error) -> None:
        try:
            st = d.src.stat()
        except OSError as e:
            summary.errors.append((str(d.src), f"vanished or unreadable ({e.strerror or e})"))
            on_error(str(d.src), f"vanished or unreadable ({e.strerror or e})")
            return
        if d.folders == [d.src.parent.name] and d.src.parent.parent == self.dst:
            return  # sorted again into the folder it is in: it stays
        # In a move, every copy comes first and the move itself last: the source goes only
        # once all its destinations hold it.
        steps = [(f, "copy") for f in d.folders[1:]] + [(d.folders[0], "move" if self.opt.move else "copy")]
        ok = True
        for folder, kind in steps:
            ok &= self._place(journal, run_id, d, folder, kind, summary, on_error)
        if ok:
            journal.remember(str(d.src), st.st_size, st.st_mtime_ns, d.hash or "", run_id, "+".join(d.folders))

    def _place(self, journal, run_id, d: Decision, folder: str, kind: str, summary: SortSummary, on_error) -> bool:
        target_dir = self.dst / folder
        for _attempt in range(3):
            target, dup = free_name(target_dir, d.src.name, d.hash or "")
            if dup:
                journal.plan(run_id, str(d.src), str(target), d.hash, "duplicate", folder, "identical file already there")
                summary.duplicates += 1
                return True
            aid = journal.plan(run_id, str(d.src), str(target), d.hash, kind, folder)
            try:
                (place_move if kind == "move" else place_copy)(d.src, target, d.hash or "", str(aid))
            except SortError as e:
                journal.mark(aid, "failed", str(e))
                if e.errno == 17:  # the name was taken meanwhile: pick another
                    continue
                summary.errors.append((str(d.src), str(e)))
                on_error(str(d.src), str(e))
                return False
            except OSError as e:
                journal.mark(aid, "failed", f"{e.strerror or e}")
                summary.errors.append((str(d.src), f"{e.strerror or e}"))
                on_error(str(d.src), f"{e.strerror or e}")
                return False
            journal.mark(aid, "done")
            if kind == "move":
                summary.moved += 1
            else:
                summary.copied += 1
            return True
        return False


# -- resume and undo ------------------------------------------------------------------------------
def clean_temp_files(dst: Path) -> int:
    n = 0
    for root, _dirs, files in os.walk(dst):
        for f in files:
            if f.startswith(TMP_PREFIX):
                try:
                    os.unlink(os.path.join(root, f))
                    n += 1
                except OSError:
                    pass
    return n


def reconcile(journal: Journal, run_id: int) -> list[tuple[str, str]]:
    """Settle actions a killed process left 'planned': finish them if half done, else forget them.
    Returns problems that need a person (both copies gone would be one; the protocol prevents it)."""
    problems = []
    for a in journal.actions(run_id, ("planned",)):
        src, dst = Path(a.src), Path(a.dst) if a.dst else None
        dst_ok = dst is not None and dst.is_file() and sha256_file(dst) == a.hash
        if dst_ok:
            if a.kind == "move" and src.exists() and sha256_file(src) == a.hash:
                os.unlink(src)  # the destination is whole: finish the move
            journal.mark(a.id, "done")
        elif src.exists():
            journal.mark(a.id, "failed", "interrupted before the file was placed; will be redone")
        else:
            journal.mark(a.id, "failed", "source and destination both missing")
            problems.append((a.src, "source and destination both missing"))
    return problems


def resume(dst: str | Path, recognizer: Recognizer, workers: int = 0, **callbacks) -> SortSummary | None:
    """Finish the last interrupted run in ``dst`` with its own options (None: nothing to finish)."""
    dst = Path(dst).resolve()
    with exclusive(dst):
        return _resume(dst, recognizer, workers, **callbacks)


def _resume(dst: Path, recognizer: Recognizer, workers: int, **callbacks) -> SortSummary | None:
    journal = Journal(dst)
    try:
        run = journal.last_unfinished()
        if run is None:
            return None
        if run.status == "undoing":
            raise ValueError(f"{dst}: run {run.id} was being undone; run `charaid sort --undo {run.id}` again")
        clean_temp_files(dst)
        reconcile(journal, run.id)
    finally:
        journal.close()
    o = run.options
    opts = SortOptions(
        move=o["move"], multi=o["multi"], min_score=o["min_score"], workers=workers, pictures=o.get("pictures", False)
    )
    return Sorter(recognizer, dst, opts).run(run.src, run_id=run.id, **callbacks)


def undo(dst: str | Path, run_id: int, on_error=None) -> tuple[int, list[tuple[str, str]]]:
    """Put every file of ``run_id`` back where it was; returns (files restored or removed, problems)."""
    dst = Path(dst).resolve()
    with exclusive(dst):
        return _undo(dst, run_id, on_error)


def _undo(dst: Path, run_id: int, on_error) -> tuple[int, list[tuple[str, str]]]:
    journal = Journal(dst)
    problems: list[tuple[str, str]] = []
    n = 0
    try:
        journal.run(run_id)
        clean_temp_files(dst)
        problems += reconcile(journal, run_id)
        journal.set_status(run_id, "undoing")
        for a in reversed(journal.actions(run_id, ("done",))):
            if a.kind not in ("copy", "move"):
                continue
            if a.dst is None:
                continue
            src, target = Path(a.src), Path(a.dst)
            try:
                if a.kind == "copy":
                    if target.exists():
                        if sha256_file(target) != a.hash:
                            raise SortError(0, f"{target} changed since it was sorted; kept")
                        os.unlink(target)
                else:
                    if src.exists():
                        if sha256_file(src) != a.hash:
                            raise SortError(0, f"{src} exists with other content; {target} kept")
                        if target.exists() and sha256_file(target) == a.hash:
                            os.unlink(target)
                    elif target.exists():
                        if sha256_file(target) != a.hash:
                            raise SortError(0, f"{target} changed since it was sorted; kept")
                        place_move(target, src, a.hash, f"undo-{a.id}")
                    else:
                        raise SortError(0, f"{a.src}: neither the source nor {target} exists")
                journal.mark(a.id, "undone")
                n += 1
            except OSError as e:
                journal.mark(a.id, "done", f"undo failed: {e}")
                problems.append((a.src, str(e)))
                if on_error:
                    on_error(a.src, str(e))
        journal.forget_run(run_id)
        _remove_empty_dirs(dst)
        journal.set_status(run_id, "undone" if not problems else "done")
    finally:
        journal.close()
    return n, problems


def _remove_empty_dirs(root: Path) -> None:
    for d, _dirs, _files in os.walk(root, topdown=False):
        p = Path(d)
        if p == root or JOURNAL_DIR in p.relative_to(root).parts:
            continue
        try:
            p.rmdir()  # only succeeds when empty
        except OSError:
            pass

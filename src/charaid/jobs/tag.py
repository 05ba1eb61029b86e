"""``charaid tag PATH...``: the names charaid finds, written where other tools read them.

Each picture is recognised (the one pipeline, either engine) and its named faces go into its
XMP sidecar (charaid.storage.xmp): MWG and Microsoft face regions, ``dc:subject`` keywords and
``Iptc4xmpExt:PersonInImage``. The picture itself is never opened for writing. Unknown and
merely probable faces get no name unless asked (``probable``: "probably X" is written as X;
``unknown``: an unnamed face region). Every sidecar written or changed is journalled with what
it held before, so a run can be undone (:func:`undo`) as long as nobody changed the sidecar since.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from charaid.pipeline.faces import RunOptions
from charaid.recognition.recognize import ImageResult, Recognizer
from charaid.storage.xmp import Region, merge, sidecar_path

ORIENTED_SWAP = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter


@dataclass
class Tagged:
    """What ``tag`` did (or, dry, would do) for one picture."""

    path: str
    sidecar: str | None = None
    names: list[str] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)
    changed: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "sidecar": self.sidecar,
            "names": self.names,
            "regions": self.regions,
            "changed": self.changed,
            "error": self.error,
        }


def displayed_size(path: str | Path) -> tuple[int, int] | None:
    """The picture's full size as shown (EXIF orientation applied), read from its header."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:
        return None
    return (h, w) if orientation in ORIENTED_SWAP else (w, h)


def regions_of(res: ImageResult, probable: bool = False, unknown: bool = False) -> list[Region]:
    """The regions to write for a recognised picture, in full-size pixels."""
    out = []
    for f in res.faces:
        name = f.character or (f.probable if probable else None)
        if name is None and not unknown:
            continue
        out.append(Region(name, tuple(f.box.as_list())))  # type: ignore[arg-type]
    return out


def _scaled(regions: list[Region], got: tuple[int, int], full: tuple[int, int]) -> list[Region]:
    """Boxes found in a reduced decode, in the picture's full pixels."""
    sx, sy = full[0] / got[0], full[1] / got[1]
    if abs(sx - 1) < 1e-9 and abs(sy - 1) < 1e-9:
        return regions
    return [
        Region(r.name, (round(r.box[0] * sx), round(r.box[1] * sy), round(r.box[2] * sx), round(r.box[3] * sy))) for r in regions
    ]


class TagJournal:
    """The sidecars one run wrote, each with what it held before (JSON lines, one file a run)."""

    def __init__(self, folder: Path, run: int | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.run = (
            run if run is not None else 1 + max((int(p.stem) for p in folder.glob("*.jsonl") if p.stem.isdigit()), default=0)
        )
        self.path = folder / f"{self.run}.jsonl"

    def record(self, sidecar: Path, before: str | None, after: str) -> None:
        row = {"sidecar": str(sidecar), "before": before, "after_sha256": hashlib.sha256(after.encode()).hexdigest()}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed over it)."""
    tmp = path.with_name(path.name + ".charaid-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def tag_paths(
    rec: Recognizer,
    paths: Iterable[str | Path],
    options: RunOptions | None = None,
    probable: bool = False,
    unknown: bool = False,
    dry_run: bool = False,
    journal: TagJournal | None = None,
) -> Iterator[Tagged]:
    """Recognise ``paths`` and write their sidecars (``dry_run``: say what would be written)."""
    for res in rec.recognize_paths(paths, options=options):
        t = Tagged(res.path, error=res.error)
        if res.error is None:
            regions = regions_of(res, probable, unknown)
            full = displayed_size(res.path) or res.size
            if regions and full and res.size:
                regions = _scaled(regions, res.size, full)
                sidecar = sidecar_path(res.path)
                before = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
                try:
                    after = merge(before, full, regions)
                except Exception as e:  # a sidecar charaid cannot read is left as it is
                    t.error = f"{sidecar}: not a readable XMP sidecar ({type(e).__name__}: {e}); left unchanged"
                    yield t
                    continue
                t.sidecar, t.changed = str(sidecar), after != before
                t.names = [r.name for r in regions if r.name]
                t.regions = [{"name": r.name, "box": list(r.box)} for r in regions]
                if t.changed and not dry_run:
                    if journal is not None:
                        journal.record(sidecar, before, after)
                    _write(sidecar, after)
        yield t


def undo(folder: Path, run: int, on_error: Callable[[str, str], None] | None = None) -> tuple[int, int]:
    """Put back the sidecars of run ``run`` as they were; one that was changed since is left
    alone and reported. Returns (restored, left)."""
    path = folder / f"{run}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tag run {run} recorded")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    restored = left = 0
    for row in reversed(rows):  # last write first: a sidecar written twice ends as before the first
        sidecar = Path(row["sidecar"])
        now = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
        if now is None or hashlib.sha256(now.encode()).hexdigest() != row["after_sha256"]:
            left += 1
            if on_error:
                on_error(str(sidecar), "changed since charaid wrote it; left as it is")
            continue
        if row["before"] is None:
            sidecar.unlink()
        else:
            _write(sidecar, row["before"])
        restored += 1
    path.rename(path.with_name(f"{run}.undone-{int(time.time())}.jsonl"))
    return restored, left

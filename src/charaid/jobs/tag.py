"""``charaid tag PATH...``: the names charaid finds, written where other tools read them.

Each picture is recognised (the one pipeline, either engine) and its named faces go into its
XMP sidecar (charaid.storage.xmp): MWG and Microsoft face regions, ``dc:subject`` keywords and
``Iptc4xmpExt:PersonInImage``. The picture itself is never opened for writing, unless asked
(``in_file``): then the same packet, merged with the one the file holds, is written inside the
JPEG, PNG or WebP by exiftool (a separate program, Artistic/GPL licence, not linked; it rewrites
the metadata block and never re-encodes the pixels). Unknown and
merely probable faces get no name unless asked (``probable``: "probably X" is written as X;
``unknown``: an unnamed face region). Every sidecar written or changed is journalled with what
it held before, so a run can be undone (:func:`undo`) as long as nobody changed the sidecar since.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from charaid.pipeline.faces import RunOptions
from charaid.recognition.recognize import ImageResult, Recognizer
from charaid.storage.xmp import Region, fingerprint, merge, sidecar_path

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
    """The sidecars (or pictures, ``in_file``) one run wrote, each with the XMP it held before
    (JSON lines, one file a run)."""

    def __init__(self, folder: Path, run: int | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.run = (
            run if run is not None else 1 + max((int(p.stem) for p in folder.glob("*.jsonl") if p.stem.isdigit()), default=0)
        )
        self.path = folder / f"{self.run}.jsonl"

    def record(self, sidecar: Path, before: str | None, after: str, in_file: bool = False) -> None:
        row = {
            "sidecar": str(sidecar),
            "in_file": in_file,
            "before": before,
            "after_sha256": _digest(after, in_file),
        }
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _exiftool() -> str:
    exe = shutil.which("exiftool")
    if exe is None:
        raise RuntimeError("writing inside the pictures needs exiftool (Debian: apt install libimage-exiftool-perl)")
    return exe


def read_embedded(picture: str | Path) -> str | None:
    """The XMP packet a picture holds (None: none)."""
    r = subprocess.run([_exiftool(), "-xmp", "-b", "--", str(picture)], capture_output=True, timeout=60)
    text = r.stdout.decode("utf-8", "replace").strip()
    return text or None


def write_embedded(picture: str | Path, text: str | None) -> None:
    """Put ``text`` as the picture's XMP packet (None: remove it); the pixels are not touched."""
    exe = _exiftool()
    with tempfile.TemporaryDirectory() as tmp:
        if text is None:
            args = ["-xmp:all="]
        else:
            (Path(tmp) / "packet.xmp").write_text(text, encoding="utf-8")
            args = [f"-xmp<={Path(tmp) / 'packet.xmp'}"]
        r = subprocess.run([exe, "-q", "-q", "-overwrite_original", *args, "--", str(picture)], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise OSError(f"exiftool could not write the XMP ({r.stderr.decode('utf-8', 'replace').strip() or r.returncode})")


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
    in_file: bool = False,
) -> Iterator[Tagged]:
    """Recognise ``paths`` and write their sidecars (``in_file``: their own XMP; ``dry_run``:
    say what would be written)."""
    for res in rec.recognize_paths(paths, options=options):
        t = Tagged(res.path, error=res.error)
        if res.error is None:
            regions = regions_of(res, probable, unknown)
            # the boxes are in the decoded picture's pixels; only one reduced at decoding
            # (max_work_side) needs its full size read again from the header
            reduced = res.size is not None and max(res.size) >= rec.settings.max_work_side
            full = (displayed_size(res.path) or res.size) if reduced else res.size
            if regions and full and res.size:
                regions = _scaled(regions, res.size, full)
                sidecar = Path(res.path) if in_file else sidecar_path(res.path)
                try:
                    if in_file:
                        before = read_embedded(sidecar)
                    else:
                        before = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
                    after = merge(before, full, regions)
                except (OSError, subprocess.SubprocessError, UnicodeError, ValueError, ET.ParseError) as e:
                    t.error = f"{sidecar}: its XMP cannot be read ({type(e).__name__}: {e}); left unchanged"
                    yield t
                    continue
                t.sidecar, t.changed = str(sidecar), after != before
                t.names = [r.name for r in regions if r.name]
                t.regions = [{"name": r.name, "box": list(r.box)} for r in regions]
                if t.changed and not dry_run:
                    if journal is not None:
                        journal.record(sidecar, before, after, in_file)
                    try:
                        write_embedded(sidecar, after) if in_file else _write(sidecar, after)
                    except (OSError, subprocess.SubprocessError) as e:
                        t.error, t.changed = f"{sidecar}: {e}", False
        yield t


def _digest(text: str, in_file: bool = False) -> str:
    """A digest of a packet charaid wrote: of every character but whitespace for a sidecar (a
    sidecar edited since is left alone), of charaid's own regions and names for a packet inside a
    picture (exiftool re-serialises it there: charaid.storage.xmp.fingerprint)."""
    if not in_file:
        return hashlib.sha256("".join(text.split()).encode()).hexdigest()
    try:
        return hashlib.sha256(fingerprint(text).encode()).hexdigest()
    except (ValueError, ET.ParseError):
        return ""


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
        in_file = row.get("in_file", False)
        if in_file:
            now = read_embedded(sidecar) if sidecar.is_file() else None
        else:
            now = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
        if now is None or _digest(now, in_file) != row["after_sha256"]:
            left += 1
            if on_error:
                on_error(str(sidecar), "changed since charaid wrote it; left as it is")
            continue
        if in_file:
            write_embedded(sidecar, row["before"])
        elif row["before"] is None:
            sidecar.unlink()
        else:
            _write(sidecar, row["before"])
        restored += 1
    path.rename(path.with_name(f"{run}.undone-{int(time.time())}.jsonl"))
    return restored, left

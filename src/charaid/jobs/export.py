"""``charaid export CHARACTER OUT``: a character's pictures as a training set for LoRA makers.

Sources: the gallery's samples of the character (their source pictures, or the stored crops
where a source is gone), or, with a face store, every indexed picture where the character is
found (charaid.jobs.find). What is written:

- ``faces``: the face, cut as recognition cuts it, square; ``heads``: a wider square around it
  (hair and neck); ``pictures``: the whole picture. ``size``: the side of the squares, or the
  longest side of the pictures (never enlarged).
- ``kohya``: kohya sd-scripts' layout, ``OUT/<repeats>_<trigger> <class>/`` with one ``.txt``
  caption per image, the trigger first and tags joined by ", "; ``folder``: the images alone.
- ``manifest.json``: each file's source picture and box. A picture (or face) already written,
  the same content from another path included, is written once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from charaid.errors import ImageError
from charaid.models.detectors import Box, crop_face
from charaid.names import folder_name
from charaid.pipeline.images import load_image, sha256_file
from charaid.storage.gallery import Gallery

WHATS = ("faces", "heads", "pictures")
FORMATS = ("kohya", "folder")
#: Margin of a head crop (of the face box's side, on every side): hair, ears and neck.
HEAD_MARGIN = 0.75


@dataclass(frozen=True)
class ExportOptions:
    what: str = "faces"
    size: int = 512
    format: str = "kohya"
    repeats: int = 10
    #: The caption's first tag and the folder's identifier (default: the name, spaces as "_").
    trigger: str | None = None
    #: Kohya's class word (the folder's second part, the caption's second tag).
    klass: str = "1girl"
    #: More tags for every caption, after the trigger and the class.
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.what not in WHATS:
            raise ValueError(f"unknown --what {self.what!r}; choose one of: {', '.join(WHATS)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown --format {self.format!r}; choose one of: {', '.join(FORMATS)}")
        if not 16 <= self.size <= 8192:
            raise ValueError(f"--size {self.size}: choose a side between 16 and 8192 pixels")
        if self.repeats < 1:
            raise ValueError(f"--repeats {self.repeats}: at least 1")


@dataclass(frozen=True)
class Source:
    """One picture of the character, and its face there (None: the whole picture is the face)."""

    path: str | None
    box: tuple[int, int, int, int] | None
    sample_id: int | None = None
    #: The gallery's stored crop, for a sample whose source picture is gone.
    crop: Image.Image | None = field(default=None, compare=False)


@dataclass
class ExportSummary:
    folder: str = ""
    written: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def trigger_of(name: str) -> str:
    return folder_name(name).replace(" ", "_")


def gallery_sources(gallery: Gallery, character: str) -> list[Source]:
    """The character's samples: their source pictures and boxes (and stored crops)."""
    out = []
    for s in gallery.samples(character):
        try:
            crop = gallery.crop(s.id)
        except KeyError:
            crop = None
        path = s.source_path if s.source_path and not s.source_path.startswith("label:") else None
        if path is not None and (not Path(path).is_file() or _stale(path, s.content_hash)):
            path = None
        out.append(Source(path, s.box, s.id, crop))
    return out


def _stale(path: str, content_hash: str) -> bool:
    try:
        return sha256_file(path) != content_hash
    except OSError:
        return True


def _cut(src: Source, opts: ExportOptions, margin: float) -> Image.Image:
    """The image to write for ``src`` (ImageError when its picture cannot be read)."""
    if src.path is None:
        if src.crop is None or opts.what != "faces":
            raise ImageError(src.path or f"sample {src.sample_id}", "its source picture is gone (only its face crop is kept)")
        return src.crop.resize((opts.size, opts.size), Image.Resampling.LANCZOS)
    im = load_image(src.path)
    if opts.what == "pictures" or src.box is None:
        if max(im.size) > opts.size:
            im.thumbnail((opts.size, opts.size), Image.Resampling.LANCZOS)
        return im
    return crop_face(im, Box(*src.box), margin if opts.what == "faces" else HEAD_MARGIN, opts.size)


def export_character(
    name: str,
    sources: Iterable[Source],
    out: str | Path,
    opts: ExportOptions,
    face_margin: float,
    on_error: Callable[[str, str], None] | None = None,
) -> ExportSummary:
    """Write ``sources`` of character ``name`` under ``out`` (see the module's docstring)."""
    trigger = opts.trigger or trigger_of(name)
    root = Path(out)
    folder = root / (f"{opts.repeats}_{trigger} {folder_name(opts.klass)}" if opts.format == "kohya" else "")
    folder.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(str(folder))
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"files": []}
    seen = {f["content"] for f in manifest["files"]}
    caption = ", ".join([trigger, opts.klass, *[t.strip() for t in opts.tags if t.strip()]])
    n = len(manifest["files"])
    for src in sources:
        try:
            image = _cut(src, opts, face_margin)
        except ImageError as e:
            summary.skipped.append((e.path, e.reason))
            if on_error:
                on_error(e.path, e.reason)
            continue
        content = hashlib.sha256(image.tobytes()).hexdigest()
        if content in seen:  # the same picture (or face) from another path or sample
            summary.duplicates += 1
            continue
        seen.add(content)
        n += 1
        stem = f"{n:05d}"
        image.save(folder / f"{stem}.png")
        if opts.format == "kohya":
            (folder / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
        manifest["files"].append(
            {
                "file": str((folder / f"{stem}.png").relative_to(root)),
                "source": src.path,
                "box": list(src.box) if src.box else None,
                "sample_id": src.sample_id,
                "content": content,
            }
        )
        summary.written += 1
    manifest.update({"character": name, "options": asdict(opts) | {"tags": list(opts.tags)}, "caption": caption})
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return summary

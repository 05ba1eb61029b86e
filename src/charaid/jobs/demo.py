"""``charaid demo``: the whole pipeline on pictures the project draws itself, no data needed.

Three characters are enrolled from eight drawn portraits each, then a group picture of two of
them and a fourth character nobody enrolled is recognised: the two should be named, the third
should come back "unknown". The gallery, pictures and the annotated result go to one folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charaid.jobs.enroll import enroll_items, labelled_images
from charaid.jobs.synth import CAST, group_picture, write_training_set
from charaid.recognition.annotate import annotate
from charaid.recognition.recognize import ImageResult, Recognizer
from charaid.storage.gallery import Gallery

#: Who is in the demo's group picture, left to right: two enrolled, one unknown.
SCENE = ["akane", "midori", "sora"]
ENROLLED = ["akane", "sora", "hikari"]


@dataclass
class DemoResult:
    folder: Path
    gallery: Path
    scene: Path
    annotated: Path
    result: ImageResult
    expected: list[str | None]

    @property
    def correct(self) -> bool:
        got = [f.character for f in sorted(self.result.faces, key=lambda f: f.box.x)]
        return got == self.expected


def run_demo(folder: str | Path, per_character: int = 8) -> DemoResult:
    """Draw, enrol, recognise; returns what was found and where everything was written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    designs = {d.name: d for d in CAST}
    train = write_training_set(folder / "train", [designs[n] for n in ENROLLED], per_character)
    scene_path = folder / "scene.png"
    scene = group_picture([designs[n] for n in SCENE], seed=1)
    scene.save(scene_path)
    gallery_path = folder / "gallery.sqlite"
    with Gallery(gallery_path) as g:
        enroll_items(g, labelled_images(train))
        rec = Recognizer(g)
        result = rec.recognize_image(scene, name=str(scene_path))
    annotated = folder / "scene.annotated.png"
    annotate(scene, result.faces).save(annotated)
    expected = [n if n in ENROLLED else None for n in SCENE]
    return DemoResult(folder, gallery_path, scene_path, annotated, result, expected)

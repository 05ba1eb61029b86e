"""Settings and thresholds, in one place.

Every tunable number of the pipeline lives here, so that a benchmark can say exactly which
values it measured and a user can override them without reading the code. Settings read from
the environment use the prefix ``CHARAID_`` (``CHARAID_GALLERY``, ``CHARAID_MAX_DETECT_SIDE``...).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

ENV_PREFIX = "CHARAID_"


@dataclass(frozen=True)
class Thresholds:
    """Numbers that decide what counts as a face, a crop and a known character."""

    #: animeface-2009 likelihood below which a candidate is not a face (its own default is 0.5).
    detect_min_score: float = 0.5
    #: Two boxes overlapping more than this (intersection over union) are the same face.
    nms_iou: float = 0.3
    #: Smallest face side, in pixels of the original image, worth recognising.
    min_face_side: int = 24
    #: When animeface-2009 finds no face, it looks again in the picture reduced to these shares of
    #: its size, in turn, until one finds a face: its search window has a largest size, so
    #: close-ups and large faces are missed at full size. It raised the pictures with a face from
    #: 127 to 160 of web4's 286 and from 100 to 106 of tla/raw's 107, for 12% more detection time
    #: (photos of people with a false face: 11 to 19 of 64; docs/benchmarks.md@aef98b0, "Face detection").
    detect_retry_scales: tuple[float, ...] = (0.7, 0.5, 0.35)
    #: charaid's own detector (facedet), version 1: a face-centre peak below this score is not a face.
    facedet_min_score: float = 0.45
    #: facedet version 2: peaks from this score are candidates for the second stage
    #: (charaid.models.facedet_roi), which answers a new score; below ``facedet_roi_min_score``
    #: a candidate is not a face. 0.50 is where cartoonface300's precision at IoU 0.5 stays over
    #: 0.85 (docs/experiments.md, 2026-11-29).
    facedet_candidate_score: float = 0.05
    facedet_roi_min_score: float = 0.50
    #: A face charaid's own detector finds is dropped when OpenCV's frontal-face cascade for
    #: photos (haarcascade_frontalface_default, shipped with OpenCV) scores a real person's face
    #: at least this high (its last stage's weight) in ``photo_veto_votes`` of its crops with
    #: these margins; None keeps every face. A real face is found in every crop of it, an anime
    #: face now and then in one: 4.5 in 2 of 3 keeps tla/raw's 107 illustrations and web4's 232
    #: pictures with a face, with 1 photo of 64 (5.0 in the 0.25 crop alone: 106, 232, 1;
    #: docs/experiments.md, 2026-11-29).
    photo_face_veto: float | None = 4.5
    photo_veto_margins: tuple[float, ...] = (0.25, 0.1, 0.4)
    photo_veto_votes: int = 2
    #: The cascade looks only at windows at least this share of the face's side in each crop: a
    #: real face fills its box (in the 185 crops of development photos where the cascade counts
    #: one, its window is at least 0.85 of the box's side), and the small windows are most of the
    #: cost. 0.6 instead of the cascade's floor of 40 px kept every veto of 1,459 faces (tla/raw,
    #: web4, photos, cartoonface300, danbooru6, moeimouto10's test), let through 2 drawn faces of
    #: newgame8's 539 that the full search dropped, and cut the veto's time in one detection worker
    #: on tla/raw's 107 pictures from 2.2 to 0.9 s (docs/experiments.md, 2026-12-06).
    photo_veto_min_window: float = 0.6
    #: Where faces are left after that veto, the whole picture is checked too: from this probability
    #: of the photo check (charaid.models.photo_check: ImageNet Lite0 features of its centre square),
    #: the picture is a photo and keeps no face; None skips the check. 0.8 is the lowest of 0.5, 0.6,
    #: ..., 0.9, 0.95, ... at which no drawing with a face (web4, tla/raw, cartoonface300,
    #: newgame8/raw) lost it, chosen on each half of the development pictures in turn (even and odd,
    #: and 3 random splits): on the other half no photo of 32 kept a face, and the check alone, as if
    #: the cascade saw nothing, left 0-4 of 32 (docs/experiments.md, 2026-12-07).
    photo_picture_min_p: float | None = 0.8
    #: Version 4 of charaid's detector looks at each face's box again in a crop this many times its
    #: side around it, zoomed so that the box is this many px, and averages the box found there
    #: (its strongest peak from this score) with the first: chosen on even and odd halves of
    #: cartoonface300 among 2, 3 and 4 times at 64 px and 4 times at 96 px (docs/experiments.md, 2026-12-07).
    facedet_refine_context: float = 3.0
    facedet_refine_side: int = 64
    facedet_refine_min_score: float = 0.1
    facedet_refine_max_share: float = 0.4
    #: When charaid's own detector finds no face, it looks again in the picture set in the middle of
    #: a grey canvas this many times its size, in turn, until one finds a face scoring at least
    #: ``facedet_pad_min_score``: it was trained on faces up to about half the picture, so a face
    #: that fills the frame or is cut by the border is missed at full size. () turns it off.
    #: Version 1 only: version 2's scores are another scale (at 0.6 it gave 4 of 64 photos a face).
    #: Close-ups of cartoonface300 (benchmarks/closeups.py) found 0.53 -> 0.69 at score 0.45; the
    #: canvas filled with the picture's edges found 0.57, 1.5x alone 0.56 (docs/experiments.md, 2026-12-06).
    facedet_pad_retry: tuple[float, ...] = (2.0, 3.0)
    #: How the canvas around the picture is filled: "edge" (its border pixels repeated) or a grey level.
    facedet_pad_fill: str = "128"
    #: The score a face found on the canvas needs: the lowest at which neither half of the 64
    #: development photos gains a face and the faces added on cartoonface300 stay as precise as
    #: the detector's own (each half chose 0.6; tuned on one half, the other gained no photo,
    #: web4 +9 / +10 pictures with a face, cartoonface300 +6 / +7 faces and no false one).
    facedet_pad_min_score: float = 0.6
    #: facedet version 3 (charaid.models.facedet_closeup): where the picture and the second look
    #: find no face, the peaks of all three passes from this score are candidates; the
    #: ``facedet_closeup_candidates`` best are checked, and the most probable one from
    #: ``facedet_closeup_min_p`` is the picture's face.
    facedet_closeup_candidate_score: float = 0.1
    facedet_closeup_candidates: int = 6
    facedet_closeup_min_p: float = 0.5
    #: charaid's own detector sees the picture reduced to at most this many pixels a side.
    facedet_input_side: int = 512
    #: Longest time, in seconds, that one picture's face detection (or any native call on one
    #: picture) may take; past it, that file gets an error and the run goes on.
    detect_timeout_s: float = 30.0
    #: Margin added around the detector's box on each side, as a share of the box side.
    #: 0.25 keeps the fringe and the top of the hair, which carry much of a character's identity.
    crop_margin: float = 0.25
    #: The same margin for faces of charaid's own detector, whose boxes are 0.88 of
    #: animeface-2009's side (charaid.models.facedet.BOX_LANDMARKS): 0.35 cuts the same square
    #: (0.88 x 1.70 = 1.5), so crops look like those the features were tuned on.
    facedet_crop_margin: float = 0.35
    #: Used when a gallery is too small to calibrate its own threshold (fewer than 3 characters,
    #: or fewer than 2 samples per character). 0.58 is the mean of the thresholds the default
    #: matcher (hybrid) calibrated for itself on moeimouto10, danbooru6 and newgame8 with 3
    #: characters held out (0.521, 0.626, 0.586; docs/benchmarks.md@aef98b0). Scores are probabilities
    #: times cosines (hybrid), probabilities (logistic regression) or cosines (prototype, k-NN).
    fallback_unknown_threshold: float = 0.58
    #: The decision model (charaid.pipeline.decide) names a face from this probability that its
    #: first guess is right, and says "probably X" from ``decision_probable``; below, unknown.
    #: 0.55 is the lowest that keeps the unknowns protocol's rejection at 0.88 or more on
    #: moeimouto10 and newgame8 (0.50: 0.870 on moeimouto10), chosen there and reported on the rest
    #: (docs/benchmarks.md, "open-set decisions").
    decision_named: float = 0.55
    #: Set, not tuned: a first guess at least one chance in four of being right is worth showing
    #: as a guess (it holds 0.31 / 0.45 / 0.65 of the right first guesses that the threshold
    #: answered "unknown" on moeimouto10 / danbooru6 / newgame8).
    decision_probable: float = 0.25
    #: Recognition cuts each face of charaid's own detector at these margins too, besides
    #: ``facedet_crop_margin``, and keeps the framing its decision trusts most: galleries of crops
    #: cut by other tools (``--no-detect``) frame a face otherwise. tla end to end (the seed's
    #: LBP-cascade crops enrolled), named from p 0.5: 15 of 18 at 0.35 alone, 16 with 0.5 beside
    #: it (at the shipped 0.55: 15 either way; docs/experiments.md, 2026-12-04). Only faces that the
    #: usual crop leaves unnamed are embedded at these too (17 of tla/raw's 115): a named face keeps its answer.
    recognition_framings: tuple[float, ...] = (0.5,)
    #: /label offers unknown faces as one group when every pair of them is closer than this
    #: quantile of the gallery's same-character cosines (complete linkage). Purity on moeimouto10 /
    #: newgame8: 0.907 / 0.771 at 0.25, 0.940 / 0.861 at 0.5, 0.950 / 0.920 at 0.75
    #: (benchmarks/label_groups.py); 0.75 split the drawn look-alikes of tests/test_web.py into
    #: singletons, so 0.25 (the old link) stays until a better check exists.
    label_group_quantile: float = 0.25
    #: ``charaid discover``: nearest faces compared (at most a 20th of the faces: they must fit
    #: inside a character) and the share of them two clusters must have in common to merge, both
    #: chosen on moeimouto10's training half by BCubed F (benchmarks/discover.py, 2026-12-05).
    discover_neighbours: int = 20
    discover_link: float = 0.05
    #: Weight of the colour histogram block relative to the CNN block (both L2-normalised):
    #: 0.5 measured best on moeimouto10, tla and danbooru6 (docs/benchmarks.md@aef98b0).
    colour_weight: float = 0.5
    #: Weight of the face's hair/skin/eye colours (charaid.models.colours) beside the CNN block; 0 leaves
    #: them out. Chosen with animeface-2009's own colour estimates (0.25: mean unknown AUROC
    #: 0.862; 0.5: 0.856 and 2 of the tla author split's 18 faces lost); with the colours
    #: charaid samples at the landmarks instead, 0.25 gives 0.882 (0.5 not measured again).
    #: docs/benchmarks.md@aef98b0, "Detector cues".
    cue_colour_weight: float = 0.25
    #: Mean and spread of the nine cue values (Lab of hair, skin, eyes) over the development
    #: sets' faces (tla, moeimouto10, danbooru6, newgame8; benchmarks/cues.py until aef98b0), to standardise them
    #: (hair measured with the first, plain hair band; not refitted for the skin-free one).
    #: Other values give other vectors: change the block's model id in charaid.models.colours with them.
    cue_colour_mean: tuple[float, ...] = (60.88, 13.26, 10.65, 91.34, 4.29, 12.32, 38.57, 8.27, -0.90)
    cue_colour_std: tuple[float, ...] = (26.21, 17.71, 24.36, 7.14, 6.48, 8.50, 19.92, 14.79, 18.95)
    #: Inverse regularisation strength of the logistic-regression matcher (higher is looser).
    logreg_c: float = 10.0
    #: Matcher of a gallery using ImageNet features (see charaid.pipeline.match; measured best there).
    default_matcher: str = "hybrid"
    #: Matcher of a gallery whose model was tuned on it (``charaid train``).
    tuned_matcher: str = "knn"
    #: Whole-picture fallback (charaid.recognition.picture): a picture is named only if its cosine to the
    #: character's mean picture reaches what this share of the enrolled pictures reach
    #: (out of fold). It keeps out pictures unlike any enrolled one, such as photos: on web4 +
    #: photos, 0.10 named 0 of 64 photos (0.02: 2) for 143 right web4 pictures instead of 152.
    #: Chosen on that set, the only one with whole pictures and negatives (docs/benchmarks.md@aef98b0).
    picture_similarity_quantile: float = 0.10
    #: Weight of the colour histogram beside a tuned model (0: the tuned vector alone).
    tuned_colour_weight: float = 0.0
    #: Weight of the face's hair/skin/eye colours (charaid.models.colours) beside a model tuned from now
    #: on; saved with the model, so models tuned before (without them) keep their space. Held-out
    #: unknowns after fine-tuning, one draw a set: mean AUROC 0.860 alone, 0.883 with the colours
    #: at 0.25 (better on all four sets), 0.891 at 0.5 (worse on danbooru6); 0.25 is the default
    #: features' weight (docs/benchmarks.md@aef98b0, "Fine-tuning ... with the colour cues").
    tuned_cue_weight: float = 0.25
    #: ``charaid train`` advises against itself when the median character has fewer faces than
    #: this: fine-tuning on 5 or 10 faces a character lost 0.06-0.15 top-1 against the untuned
    #: features (moeimouto10, danbooru6, newgame8; 5 seeds each), on 30 it about broke even
    #: (+0.020, -0.011), on all of moeimouto10's (~76) it gained 0.04 (docs/benchmarks.md@aef98b0, "K
    #: faces a character after fine-tuning").
    train_advised_faces: int = 30


#: The values of ``CHARAID_PHOTOS`` (``Settings.photos``).
PHOTO_CHOICES = ("drop", "keep")


@dataclass(frozen=True)
class Settings:
    """Run-time settings, from the environment (``CHARAID_*``) with defaults."""

    #: The SQLite gallery file; ``--gallery`` overrides it.
    gallery: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("charaid")) / "gallery.sqlite")
    #: The face store that ``charaid index`` fills and ``charaid search`` queries; ``--store`` overrides it.
    store: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("charaid")) / "faces.sqlite")
    #: Images are downscaled so that their longer side is at most this before face detection
    #: (animeface-2009's time grows with the pixel count); boxes are mapped back.
    max_detect_side: int = 1024
    #: Images with more pixels than this are refused as decompression bombs.
    max_pixels: int = 80_000_000
    #: Memory one decode may take, in MB (pixels x bytes a pixel of the file's mode): a 152 KB
    #: PNG of 8944 x 8944 16-bit grey is under the pixel limit yet needs 160 MB, and its old
    #: conversion 2 GB. JPEGs over it are decoded reduced (DCT scaling); other formats over it
    #: are refused with a message naming this setting (CHARAID_MAX_DECODE_MB).
    max_decode_mb: int = 256
    #: Longer side pictures are reduced to right after decoding, before any mode conversion, so
    #: that one big picture costs a bounded amount of memory downstream. Faces in a picture this
    #: big are large; detection works at max_detect_side anyway.
    max_work_side: int = 4096
    #: Pictures prepared, then their faces embedded and matched, per batch.
    batch_size: int = 32
    #: Face crops per CNN forward pass: on 2 cores 8 were faster than 32 (49.5 against 60.5 ms a
    #: crop) and took far less memory (peak +40 MB against +500 MB over the loaded model).
    forward_batch: int = 8
    #: ``charaid sort`` decides and journals a batch when it is full or this many seconds old.
    journal_every_s: float = 2.0
    #: CPU threads for the CNN (0: PyTorch's default).
    threads: int = 0
    #: Where the default embedder's CNN runs: "onnx" (ONNX Runtime, the shipped export: no torch
    #: imported) or "torch" (PyTorch, the weights package itself). The same vectors within 1e-4.
    embedder_runtime: str = "onnx"
    #: Side of the face crops stored in the gallery (for re-embedding and training).
    stored_crop_side: int = 256
    #: Galleries and face stores with at least this many vectors are searched through an
    #: approximate nearest-neighbour index (faiss inverted lists) instead of exactly. Exact search
    #: costs ~0.2 ms per 1,000 vectors a query on 2 cores (19.5 ms at 100,000; docs/benchmarks.md@aef98b0, "Nearest-neighbour index").
    exact_search_limit: int = 20_000
    #: What charaid's detector does with photos: "drop" (the default) gives photos of real people
    #: no anime face (the cascade's veto on each face, then the whole-picture photo check);
    #: "keep" turns both off, for collections of photos of figures, cosplay or 3D renders, whose
    #: faces are then found as in drawings (and so are real people's).
    photos: str = "drop"
    thresholds: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings with every ``CHARAID_<FIELD>`` variable applied; a bad value names itself."""
        env = os.environ if environ is None else environ
        base = cls()
        changes: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "thresholds":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            current = getattr(base, f.name)
            try:
                changes[f.name] = Path(raw).expanduser() if isinstance(current, Path) else type(current)(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {type(current).__name__}") from None
        photos = changes.get("photos", base.photos)
        if photos not in PHOTO_CHOICES:
            raise ValueError(f"{ENV_PREFIX}PHOTOS={photos!r}: choose one of {', '.join(PHOTO_CHOICES)}")
        if photos == "keep":
            changes["thresholds"] = replace(base.thresholds, photo_face_veto=None, photo_picture_min_p=None)
        return replace(base, **changes)


def default_settings() -> Settings:
    """The settings of this process: the one place charaid reads its environment (``CHARAID_*``).
    Parsed once for each state of those variables, so a caller that asks for every picture
    pays a dictionary lookup, and a test that sets a variable still sees it."""
    return _settings_for(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX))))


@functools.lru_cache(maxsize=8)
def _settings_for(env: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(env))

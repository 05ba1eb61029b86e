"""The command line: help, the JSON contract, exit statuses, bad files in a batch."""

from __future__ import annotations

import json
import shutil

from conftest import run_cli
from PIL import Image

SUBCOMMANDS = [
    "demo",
    "enroll",
    "recognize",
    "detect",
    "evaluate",
    "gallery",
    "train",
    "train-detector",
    "train-detector-roi",
    "build-cohort",
    "export-embedder",
    "sort",
    "serve",
    "index",
    "search",
    "models",
    "discover",
    "tag",
    "export",
]


def test_help_for_every_command():
    r = run_cli("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in SUBCOMMANDS)
    for c in SUBCOMMANDS:
        r = run_cli(c, "--help")
        assert r.returncode == 0 and "usage: charaid " + c in r.stdout, c
    for a in ["list", "remove", "rename", "threshold", "model", "detector"]:
        r = run_cli("gallery", a, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, a


def test_training_commands_refuse_a_folder_without_their_data(tmp_path):
    """Every command that trains or builds from ../shared/train names the folder and what is
    missing in one line (the fast subset's run of each; the trainings themselves are slow tests)."""
    for cmd in ["train-detector", "train-detector-roi", "build-cohort"]:
        r = run_cli(cmd, "--data", str(tmp_path / "none"), "--out", str(tmp_path / cmd))
        assert r.returncode == 1, (cmd, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("charaid: error: ") and str(tmp_path / "none") in lines[0], (cmd, lines)
        assert not (tmp_path / cmd).exists() or not any((tmp_path / cmd).iterdir()), f"{cmd} wrote output for nothing"
    r = run_cli("train", "--gallery", str(tmp_path / "none.sqlite"))
    assert r.returncode == 1 and "no gallery here" in r.stderr and not (tmp_path / "none.sqlite").exists()


def test_serve_starts_and_answers(gallery_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "charaid.cli", "serve", "--gallery", str(gallery_path), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, body = time.time() + 120, None
        while time.time() < deadline and body is None:
            try:
                body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/characters", timeout=2))
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "serve exited"
                time.sleep(0.3)
        assert body is not None, "charaid serve did not answer in 120 s"
        assert {c["character"] for c in body["characters"]} == {"akane", "sora", "hikari"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_models_lists_every_plug_with_the_defaults_marked():
    from charaid.models.embedders import default_embedder

    r = run_cli("models", "--json")
    assert r.returncode == 0, r.stderr
    cards = [json.loads(line) for line in r.stdout.splitlines()]  # JSON lines only
    detectors = {c["id"]: c for c in cards if c["kind"] == "detector"}
    embedders = {c["id"]: c for c in cards if c["kind"] == "embedder"}
    assert set(detectors) == {"facedet", "facedet@4", "facedet@1", "facedet@2", "animeface", "cascade", "union"}
    assert [k for k, c in detectors.items() if c["default"]] == ["facedet"] and detectors["facedet"]["version"] == 3
    assert detectors["facedet@4"]["version"] == 4
    assert detectors["facedet@1"]["version"] == 1 and detectors["facedet@2"]["version"] == 2
    assert [k for k, c in embedders.items() if c["default"]] == [default_embedder().model_id]
    assert len(embedders) == 2  # galleries made before the colours joined keep their model


def test_recognize_json_contract(gallery_path, synth_scene):
    r = run_cli("recognize", str(synth_scene), "--gallery", str(gallery_path), "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1  # stdout holds JSON lines and nothing else
    obj = json.loads(lines[0])
    assert set(obj) == {"path", "faces", "error"} and obj["path"] == str(synth_scene) and obj["error"] is None
    faces = sorted(obj["faces"], key=lambda f: f["box"][0])
    assert len(faces) == 3
    for f in faces:
        assert set(f) == {"box", "detector_score", "character", "score", "probable", "probability", "top"}
        assert len(f["box"]) == 4 and all(isinstance(v, int) for v in f["box"])
        assert 0 <= f["score"] <= 1 and 0 < f["detector_score"] <= 1
        assert 1 <= len(f["top"]) <= 5 and all(set(t) == {"character", "score"} for t in f["top"])
    assert [f["character"] for f in faces] == ["akane", None, "sora"]
    assert faces[1]["top"][0]["character"] in {"akane", "sora", "hikari"}  # top is filled even when unknown


def test_no_detect_gives_one_whole_image_face(gallery_path, synth_train, tmp_path):
    from charaid.config import Thresholds
    from charaid.models.detectors import crop_face, make_detector

    im = Image.open(synth_train / "hikari" / "00.png").convert("RGB")
    src = tmp_path / "hikari_face.png"  # a face crop cut as the gallery's were (charaid's detector)
    crop_face(im, make_detector().detect(im)[0].box, Thresholds().facedet_crop_margin).save(src)
    r = run_cli("recognize", str(src), "--gallery", str(gallery_path), "--json", "--no-detect", "--top-k", "2")
    obj = json.loads(r.stdout)
    w, h = Image.open(src).size
    assert len(obj["faces"]) == 1 and obj["faces"][0]["box"] == [0, 0, w, h]
    assert obj["faces"][0]["character"] == "hikari" and len(obj["faces"][0]["top"]) == 2


def test_bad_file_in_batch_is_reported_and_skipped(gallery_path, synth_scene, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "b_empty.png").write_bytes(b"")
    (folder / "c_good.png").write_bytes(synth_scene.read_bytes())
    ann = tmp_path / "ann"
    r = run_cli("recognize", str(folder), "--gallery", str(gallery_path), "--json", "--annotate", str(ann))
    assert r.returncode == 2
    objs = {json.loads(l)["path"].rsplit("/", 1)[1]: json.loads(l) for l in r.stdout.splitlines()}
    assert set(objs) == {"a_broken.jpg", "b_empty.png", "c_good.png"}
    assert "corrupt" in objs["a_broken.jpg"]["error"] and objs["a_broken.jpg"]["faces"] == []
    assert "empty file" in objs["b_empty.png"]["error"]
    assert objs["c_good.png"]["error"] is None and len(objs["c_good.png"]["faces"]) == 3
    err_lines = [l for l in r.stderr.splitlines() if "a_broken.jpg" in l]
    assert len(err_lines) == 1 and "corrupt" in err_lines[0]
    assert [p.name for p in ann.iterdir()] == ["c_good.annotated.png"]


def test_detect_json(synth_scene, tmp_path):
    bad = tmp_path / "x.gif"
    bad.write_text("GIF89a?")
    r = run_cli("detect", str(synth_scene), str(bad), "--json")
    assert r.returncode == 2
    a, b = (json.loads(l) for l in r.stdout.splitlines())
    assert a["error"] is None and len(a["faces"]) == 3 and set(a["faces"][0]) == {"box", "score"}
    assert b["faces"] == [] and b["error"]


def test_enroll_twice_is_a_no_op_and_gallery_commands(synth_train, tmp_path):
    g = tmp_path / "g.sqlite"
    r = run_cli("enroll", str(synth_train), "--gallery", str(g), "-q")
    assert r.returncode == 0 and "enrolled 18 faces of 3 characters" in r.stdout, r.stdout + r.stderr
    r = run_cli("enroll", str(synth_train), "-q", env={"CHARAID_GALLERY": str(g)})  # default from the environment
    assert r.returncode == 0 and "enrolled 0 faces" in r.stdout and "18 already there" in r.stdout
    r = run_cli("gallery", "list", "--json", "--gallery", str(g))
    assert [json.loads(l) for l in r.stdout.splitlines()] == [{"character": n, "samples": 6} for n in ["akane", "hikari", "sora"]]
    assert json.loads(run_cli("gallery", "threshold", "--gallery", str(g)).stdout)["source"] == "calibrated"
    assert run_cli("gallery", "rename", "sora", "sora_kasugano", "--gallery", str(g)).returncode == 0
    assert run_cli("gallery", "remove", "hikari", "--gallery", str(g)).returncode == 0
    r = run_cli("gallery", "remove", "nobody", "--gallery", str(g))
    assert r.returncode == 1 and "no character named 'nobody'" in r.stderr
    r = run_cli("gallery", "list", "--gallery", str(g))
    assert r.stdout.split() == ["akane", "6", "sora_kasugano", "6"]
    r = run_cli("gallery", "threshold", "0.3", "--gallery", str(g))
    assert json.loads(r.stdout)["threshold"] == 0.3 and json.loads(r.stdout)["source"] == "override"
    r = run_cli("gallery", "threshold", "auto", "--gallery", str(g))
    assert json.loads(r.stdout)["source"] == "default", "two characters cannot calibrate their own threshold"
    assert "too small to calibrate" in r.stderr


def test_missing_gallery_is_a_clear_error(tmp_path, synth_scene):
    r = run_cli("recognize", str(synth_scene), "--gallery", str(tmp_path / "none.sqlite"))
    assert r.returncode == 1 and "no gallery here" in r.stderr and r.stdout == ""


def test_evaluate_writes_report(synth_train, tmp_path):
    out = tmp_path / "report"
    r = run_cli("evaluate", str(synth_train), "--folds", "3", "--report", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert "top-1" in r.stdout and "AUROC" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["n"] == 18 and rep["top1"] > 0.9 and set(rep["per_character"]) == {"akane", "hikari", "sora"}
    assert (out / "confusion.png").stat().st_size > 1000


def test_recognize_output_file_resumes_after_a_kill(gallery_path, synth_train, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for c in ("akane", "sora"):
        for p in sorted((synth_train / c).glob("*.png"))[:3]:
            shutil.copy(p, src / f"{c}-{p.name}")
    out = tmp_path / "results.jsonl"
    r = run_cli("recognize", str(src), "--gallery", str(gallery_path), "--no-detect", "--output", str(out), "-q")
    assert r.returncode == 0, r.stderr
    full = out.read_text().splitlines()
    assert len(full) == 6 and r.stdout == ""
    # as if killed while writing the third line: two whole lines and a torn one
    out.write_text(full[0] + "\n" + full[1] + "\n" + full[2][:25])
    r = run_cli("recognize", str(src), "--gallery", str(gallery_path), "--no-detect", "--output", str(out), "-q")
    assert r.returncode == 0 and "2 images already done" in r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["path"] for x in lines) == sorted(json.loads(x)["path"] for x in full), "each image exactly once"

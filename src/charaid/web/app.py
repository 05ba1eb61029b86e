"""The FastAPI application: three pages (/, /label, /gallery) and the API they use (/api/...).

Safety: the server binds 127.0.0.1 unless told otherwise; bound elsewhere, every endpoint that
changes the gallery needs the token printed at start-up (and, with ``--private``, recognition too),
and every client is held to a request rate (429). Uploads are limited in size (413) and in the
memory their decoding may take (charaid.pipeline.images), at most ``decode_slots`` decode and recognise at
once, and their content, not their name, decides whether they are images. The labelling folder is the only
folder the server reads, and no path may leave it. Names are only ever sent as JSON and put into
pages as text, never as HTML.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import Body, Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image

from charaid.errors import ImageError, UnknownCharacterError
from charaid.jobs.labelling import LabelSession, OutsideRootError
from charaid.names import character_name
from charaid.pipeline.faces import RunOptions
from charaid.pipeline.images import load_image_bytes
from charaid.pipeline.prepare import prepare_image
from charaid.recognition.recognize import Recognizer
from charaid.storage.gallery import Gallery
from charaid.web.guard import BodyId, EmbeddedId, PathId, RateLimiter, token_matches

STATIC = Path(str(resources.files("charaid.web") / "static"))
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Endpoints that decode and run the models: rate-limited per client beyond loopback.
COSTLY = frozenset({"/api/recognize", "/api/detect", "/api/label/upload", "/api/label/scan"})


@dataclass
class ServerConfig:
    gallery: Path
    host: str = "127.0.0.1"
    label_dir: Path | None = None
    max_upload_mb: float = 20.0
    #: Needed by changing endpoints; None when bound to the loopback interface only.
    token: str | None = None
    #: Recognition and detection need the token too (``charaid serve --private``).
    private: bool = False
    #: Uploads decoded, detected and embedded at once (0: one per CPU core); the rest wait. This
    #: bounds memory (each decode may take up to CHARAID_MAX_DECODE_MB) and uses every core.
    decode_slots: int = 0
    #: Requests a second per client address, and its burst, when bound beyond loopback.
    rate_per_s: float = 5.0
    rate_burst: int = 20

    @classmethod
    def for_host(cls, gallery: Path, host: str, **kw) -> ServerConfig:
        token = None if host in LOCAL_HOSTS else secrets.token_urlsafe(24)
        return cls(gallery, host, token=token, **kw)

    @property
    def slots(self) -> int:
        return self.decode_slots or os.cpu_count() or 1


class UploadRejected(Exception):
    """An upload that is not a usable image: answered like the CLI's JSON, with a 4xx status."""

    def __init__(self, status: int, name: str, reason: str):
        self.status, self.name, self.reason = status, name, reason


def status_for(e: ImageError) -> int:
    r = e.reason
    if "decompression bomb" in r or "over the budget" in r:
        return 413
    if "not an image" in r:
        return 415
    if "empty file" in r:
        return 400
    return 422  # truncated, corrupt


def create_app(cfg: ServerConfig) -> FastAPI:
    try:
        from fastapi_offline import FastAPIOffline  # /docs without a CDN: this machine is offline

        app = FastAPIOffline(title="charaid", version="0.1.0", description="Recognise anime characters in pictures.")
    except ImportError:  # pragma: no cover
        app = FastAPI(title="charaid", version="0.1.0", description="Recognise anime characters in pictures.")
    gallery = Gallery(cfg.gallery)
    rec = Recognizer(gallery)
    labels = LabelSession(gallery, rec, cfg.label_dir)
    limit = int(cfg.max_upload_mb * 1024 * 1024)
    slots = threading.BoundedSemaphore(cfg.slots)
    limiter = RateLimiter(cfg.rate_per_s, cfg.rate_burst) if cfg.token is not None else None
    app.state.gallery, app.state.recognizer, app.state.labels = gallery, rec, labels
    # Warm up now (weights, detector, matcher, threshold), so the first upload answers as fast as the rest.
    rec.embedder.load()
    prepare_image("warm-up", True, rec.spec, with_hash=False, image=Image.new("RGB", (64, 64)))
    _ = rec.threshold
    _ = rec.decision_model

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Refuse what needs no work to refuse: long or NUL paths, floods, oversized uploads."""
        if len(request.url.path) > 2048:
            return JSONResponse({"detail": f"path of {len(request.url.path):,} characters is too long"}, status_code=414)
        if "\x00" in request.url.path:
            return JSONResponse({"detail": "a NUL byte in a path names nothing"}, status_code=404)
        if limiter is not None and request.method == "POST" and request.url.path in COSTLY:
            wait = limiter.allow(request.client.host if request.client else "?")
            if wait:
                return JSONResponse(
                    {"detail": f"too many requests: at most {cfg.rate_per_s:g} a second"},
                    status_code=429,
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
        if request.method in ("POST", "PUT", "PATCH"):
            n = request.headers.get("content-length")
            if n is None and request.headers.get("transfer-encoding"):
                return JSONResponse({"detail": "uploads need a Content-Length"}, status_code=411)
            if n is not None and not n.strip().isdigit():
                return JSONResponse({"detail": f"bad Content-Length {n[:40]!r}"}, status_code=400)
            if n is not None and int(n) > limit + 64 * 1024:
                return JSONResponse({"detail": f"upload of {int(n):,} bytes is over the limit of {limit:,}"}, status_code=413)
        return await call_next(request)

    def need_token(request: Request) -> None:
        if cfg.token is None:
            return
        got = request.headers.get("x-charaid-token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not token_matches(got, cfg.token):
            raise HTTPException(
                401, "this server is reachable from other machines: send the token it printed at start-up (X-Charaid-Token)"
            )

    read_guard = [Depends(need_token)] if cfg.private else []

    def valid_name(name: str) -> str:
        try:
            return character_name(name)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, e: UploadRejected):
        return JSONResponse({"path": e.name, "faces": [], "error": e.reason}, status_code=e.status)

    def read_upload(file: UploadFile) -> tuple[bytes, str]:
        data = file.file.read(limit + 1)
        name = file.filename or "upload"
        if len(data) > limit:
            raise UploadRejected(413, name, f"upload is over the limit of {limit:,} bytes")
        return data, name

    def image_or_error(data: bytes, name: str):
        try:
            return load_image_bytes(data, name)
        except ImageError as e:
            raise UploadRejected(status_for(e), name, e.reason) from None

    # -- pages ------------------------------------------------------------------------------------
    for route, page in [("/", "index.html"), ("/label", "label.html"), ("/gallery", "gallery.html")]:
        app.add_api_route(route, (lambda p=page: FileResponse(STATIC / p, media_type="text/html")), include_in_schema=False)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        try:
            p = (STATIC / name).resolve()
            found = STATIC.resolve() in p.parents and p.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long
            found = False
        if not found:
            raise HTTPException(404, "no such file")
        return FileResponse(p)

    # -- recognition ------------------------------------------------------------------------------
    @app.post(
        "/api/recognize", dependencies=read_guard, summary="Every face in an uploaded image, named or unknown, with the top 5"
    )
    def api_recognize(file: UploadFile = File(...), top_k: int = 5, picture: bool = True):
        data, name = read_upload(file)
        with slots:  # decode, detect and embed outside the gallery's lock, a bounded number at once
            im = image_or_error(data, name)
            del data
            prep = rec.pipeline.prepare(name, RunOptions(with_picture=picture), image=im)
            embedded = rec.embed_faces([prep])
        top_k = max(1, min(top_k, 20))
        with gallery.lock:
            res = rec.name_faces(embedded, top_k=top_k)[0]
        if picture:  # no face named: the whole picture, embedded outside the lock too
            rec.picture_fallback([res], embedded, top_k, embed_guard=slots, match_guard=gallery.lock)
        out = res.to_dict()
        out["size"] = list(im.size)
        out["threshold"] = round(rec.threshold, 4)
        with gallery.lock:
            has_model = rec.decision_model is not None
        t = rec.settings.thresholds
        out["decision"] = {"named": t.decision_named, "probable": t.decision_probable} if has_model else None
        return out

    @app.post("/api/detect", dependencies=read_guard, summary="Face boxes in an uploaded image")
    def api_detect(file: UploadFile = File(...)):
        data, name = read_upload(file)
        with slots:
            im = image_or_error(data, name)
            prep = prepare_image(name, True, rec.spec, with_hash=False, image=im)
        return {
            "path": name,
            "faces": [{"box": prep.box(i).as_list(), "score": round(prep.score(i), 4)} for i in range(len(prep.faces))],
            "error": prep.error,
            "size": list(im.size),
        }

    # -- gallery ----------------------------------------------------------------------------------
    @app.get("/api/characters", summary="Characters with their sample counts and sample ids")
    def api_characters():
        with gallery.lock:
            chars = gallery.characters()
            samples = gallery.samples()
        by: dict[str, list[int]] = {}
        for s in samples:
            by.setdefault(s.character, []).append(s.id)
        return {
            "model_id": gallery.model_id,
            "faces": len(samples),
            "characters": [{"character": c.name, "samples": c.samples, "sample_ids": by.get(c.name, [])} for c in chars],
        }

    @app.get("/api/samples/{sample_id}/crop", summary="A gallery sample's face crop (JPEG)")
    def api_sample_crop(sample_id: PathId):
        try:
            with gallery.lock:
                data = gallery.crop_bytes(sample_id)
        except KeyError:
            raise HTTPException(404, f"no sample {sample_id}") from None
        return Response(data, media_type="image/jpeg")

    @app.delete("/api/samples/{sample_id}", dependencies=[Depends(need_token)], summary="Remove a wrong sample")
    def api_remove_sample(sample_id: PathId):
        with gallery.lock:
            try:
                gallery.remove_sample(sample_id)
            except KeyError:
                raise HTTPException(404, f"no sample {sample_id}") from None
        return {"removed": sample_id}

    @app.post(
        "/api/characters/{name:path}/rename",
        dependencies=[Depends(need_token)],
        summary="Rename, or merge into another character",
    )
    def api_rename(name: str, new: str = Body(..., embed=True), merge: bool = Body(False, embed=True)):
        new = valid_name(new)
        with gallery.lock:
            try:
                gallery.rename_character(name, new, merge=merge)
            except UnknownCharacterError as e:
                raise HTTPException(404, str(e)) from None
            except ValueError as e:
                raise HTTPException(409, str(e)) from None
        return {"renamed": name, "to": new, "merged": merge}

    @app.delete("/api/characters/{name:path}", dependencies=[Depends(need_token)], summary="Remove a character and its samples")
    def api_remove_character(name: str):
        with gallery.lock:
            try:
                n = gallery.remove_character(name)
            except UnknownCharacterError as e:
                raise HTTPException(404, str(e)) from None
        return {"removed": name, "samples": n}

    # -- labelling --------------------------------------------------------------------------------
    def label_call(fn):
        try:
            return fn()
        except OutsideRootError as e:
            raise HTTPException(403, str(e)) from None
        except KeyError as e:
            raise HTTPException(404, str(e.args[0]) if e.args else "not found") from None
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
        except OSError as e:  # a path too long, a folder that vanished
            raise HTTPException(400, f"{e.strerror or e}") from None

    @app.get("/api/label/status", summary="Labelling progress and the folder being labelled")
    def api_label_status():
        p = labels.progress()
        return {
            "done": p.done,
            "left": p.left,
            "not_face": p.not_face,
            "skipped": p.skipped,
            "total": p.total,
            "folder": str(cfg.label_dir) if cfg.label_dir else None,
            "token_required": cfg.token is not None,
        }

    @app.post(
        "/api/label/scan", dependencies=[Depends(need_token)], summary="Queue the faces of the labelling folder (or a subfolder)"
    )
    def api_label_scan(path: str = Body("", embed=True)):
        with slots:  # its pictures are decoded and detected too: they take a slot like an upload
            p = label_call(lambda: labels.scan(path))
        return {"errors": p.errors, **api_label_status()}

    @app.post("/api/label/upload", dependencies=[Depends(need_token)], summary="Queue the faces of uploaded images")
    def api_label_upload(files: list[UploadFile] = File(...)):
        errors = []
        for f in files:
            data, name = read_upload(f)
            with slots:
                err = labels.add_image(data, f"upload:{name}")
            if err:
                errors.append(err)
        return {"errors": errors, **api_label_status()}

    @app.get("/api/label/queue", summary="Faces to label, most uncertain first")
    def api_label_queue(limit: int = 20):
        return {"faces": [q.to_dict() for q in labels.queue(max(1, min(limit, 200)))], **api_label_status()}

    @app.get("/api/label/faces/{face_id}/crop", summary="A queued face's crop (JPEG)")
    def api_label_crop(face_id: PathId):
        return Response(label_call(lambda: labels.crop(face_id)), media_type="image/jpeg")

    @app.post(
        "/api/label/confirm", dependencies=[Depends(need_token)], summary="Name faces (one, or a whole group) and enrol them"
    )
    def api_label_confirm(faces: list[BodyId] = Body(..., embed=True), character: str = Body(..., embed=True)):
        character = valid_name(character)
        n = label_call(lambda: labels.confirm(faces, character))
        return {"confirmed": n, "character": character, **api_label_status()}

    @app.post(
        "/api/label/split", dependencies=[Depends(need_token)], summary="Split a look-alike group that mixes characters in two"
    )
    def api_label_split(faces: list[BodyId] = Body(..., embed=True)):
        return {"groups": label_call(lambda: labels.split(faces))}

    @app.post("/api/label/reject", dependencies=[Depends(need_token)], summary="Never suggest this character for this face again")
    def api_label_reject(face: EmbeddedId, character: str = Body(..., embed=True)):
        character = valid_name(character)
        label_call(lambda: labels.reject(face, character))
        return {"rejected": character, "face": face}

    @app.post("/api/label/status/{face_id}", dependencies=[Depends(need_token)], summary="Mark a face not_face or skipped")
    def api_label_set_status(face_id: PathId, status: str = Body(..., embed=True)):
        label_call(lambda: labels.set_status(face_id, status))
        return {"face": face_id, "status": status}

    @app.post("/api/label/undo", dependencies=[Depends(need_token)], summary="Take back the last labelling action")
    def api_label_undo():
        kind = labels.undo()
        return {"undone": kind, **api_label_status()}

    app.router.on_shutdown.append(gallery.close)
    return app

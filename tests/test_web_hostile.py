"""Every endpoint of charaid serve answers odd requests with a 4xx, never a 5xx (issue 18).

The requests are the ones a stranger on the network or a buggy client sends: ids beyond 64
bits, a NUL byte or 5,000 characters in a path, tokens that are not ASCII, names with ``/`` and
names of 100 KB. The routes are read from the app itself, so a new endpoint is covered too.
"""

from __future__ import annotations

import io
import re
import urllib.parse

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image

from charaid.web.app import ServerConfig, create_app

HUGE = [str(2**64), str(10**30), "-1", "1e9", "x"]
ODD_PATHS = ["%00", "a%00b", "a" * 5000, "..%2F..%2Fetc%2Fpasswd"]
TOKENS = ["\u00e9t\u00e9".encode("utf-8"), "\u6f22\u5b57".encode("utf-8"), b"\xff\xfe", b"Bearer \xe9"]


@pytest.fixture
def app(gallery_path, tmp_path):
    (tmp_path / "label").mkdir()
    return create_app(
        ServerConfig(gallery_path, host="0.0.0.0", token="secret-token", label_dir=tmp_path / "label", rate_burst=10**6)
    )


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def routes(app):
    return [(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in sorted(r.methods)]


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def test_every_route_answers_odd_path_values_with_4xx(app, client):
    seen = 0
    for method, path in routes(app):
        if "{" not in path:
            continue
        for v in HUGE + ODD_PATHS + ["AC%2FDC", "AC/DC", "x" * 20_000]:
            r = client.request(method, fill(path, v), headers={"X-Charaid-Token": "secret-token"}, json={})
            assert r.status_code < 500, f"{method} {fill(path, v)[:80]} -> {r.status_code} {r.text[:200]}"
            seen += 1
    assert seen >= 50


def test_every_write_endpoint_refuses_non_ascii_tokens_with_401(app, client):
    writes = [(m, p) for m, p in routes(app) if m in ("POST", "DELETE") and p not in ("/api/recognize", "/api/detect")]
    assert len(writes) >= 8
    for method, path in writes:
        for tok in TOKENS:
            for header in ("X-Charaid-Token", "Authorization"):
                r = client.request(method, fill(path, "1"), headers={header: tok}, json={})
                assert r.status_code in (401, 422), f"{method} {path} {header}={tok!r} -> {r.status_code} {r.text[:200]}"


def test_huge_ids_in_bodies_are_4xx(client):
    h = {"X-Charaid-Token": "secret-token"}
    for body, url in [
        ({"faces": [2**64], "character": "a"}, "/api/label/confirm"),
        ({"face": 2**64, "character": "a"}, "/api/label/reject"),
        ({"face": -(2**70), "character": "a"}, "/api/label/reject"),
        ({"status": "skipped"}, f"/api/label/status/{2**64}"),
    ]:
        r = client.post(url, json=body, headers=h)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:200])


def test_static_and_scan_paths_with_nul_or_length_are_4xx(client):
    h = {"X-Charaid-Token": "secret-token"}
    for url in ["/static/%00", "/static/a%00.js", "/static/" + "a" * 5000, "/" + "b" * 5000]:
        assert 400 <= client.get(url).status_code < 500, url
    for path in ["a" * 5000, "x\x00y", "../" * 2000, "\udc83"[:0] + "\u00e9" * 3000]:
        r = client.post("/api/label/scan", json={"path": path}, headers=h)
        assert 400 <= r.status_code < 500, (path[:20], r.status_code, r.text[:200])
    r = client.post("/api/recognize", content=b"x", headers={"Content-Length": "nonsense", **h})
    assert 400 <= r.status_code < 500


def test_names_with_slash_are_reachable_and_long_or_control_names_refused(gallery_path):
    app = create_app(ServerConfig(gallery_path))
    with TestClient(app, raise_server_exceptions=False) as c:
        names = [x["character"] for x in c.get("/api/characters").json()["characters"]]
        old = names[0]
        assert c.post(f"/api/characters/{urllib.parse.quote(old)}/rename", json={"new": "AC/DC"}).status_code == 200
        assert "AC/DC" in [x["character"] for x in c.get("/api/characters").json()["characters"]]
        # The page encodes names with encodeURIComponent: '/' arrives as %2F.
        r = c.post(f"/api/characters/{urllib.parse.quote('AC/DC', safe='')}/rename", json={"new": "AC/DC 2"})
        assert r.status_code == 200, r.text
        for bad in ["x" * 100_000, "a\x00b", "two\nlines", "tab\there", "   "]:
            r = c.post(f"/api/characters/{urllib.parse.quote('AC/DC 2', safe='')}/rename", json={"new": bad})
            assert r.status_code == 422, (bad[:10], r.status_code, r.text[:200])
            assert len(r.text) < 2000, "the refusal names the problem, not the whole name"
        r = c.delete(f"/api/characters/{urllib.parse.quote('AC/DC 2', safe='')}")
        assert r.status_code == 200 and "AC/DC 2" not in [x["character"] for x in c.get("/api/characters").json()["characters"]]
        assert c.delete("/api/characters/" + "x" * 20_000).status_code == 414
        assert c.delete("/api/characters/" + "x" * 300).status_code == 404


def test_private_server_asks_the_token_for_recognition_and_limits_the_rate(gallery_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(buf, "PNG")
    files = {"file": ("a.png", buf.getvalue(), "image/png")}
    app = create_app(ServerConfig(gallery_path, host="0.0.0.0", token="t0k", private=True, rate_per_s=0.01, rate_burst=3))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/api/recognize", files=files).status_code == 401
        assert c.post("/api/recognize", files=files, headers={"X-Charaid-Token": "t0k"}).status_code == 200
        assert c.post("/api/detect", files=files, headers={"X-Charaid-Token": "t0k"}).status_code == 200
        r = c.post("/api/recognize", files=files, headers={"X-Charaid-Token": "t0k"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert c.get("/api/characters").status_code == 200, "reading the gallery is not rate-limited"

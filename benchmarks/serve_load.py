"""Load on `charaid serve` over loopback: concurrent clients uploading real images.

    python benchmarks/serve_load.py [--clients 8] [--seconds 60] [--single-seconds 30]

Starts `charaid serve` in its own process with a gallery of the tla characters (enrolled from
tla/raw 1-12 with detection), then uploads full illustrations (tla/raw 13-36 and web4, at most
1024 px) to /api/recognize in a loop: first one client alone for `--single-seconds`, then
`--clients` threads at once for `--seconds`. Reports, for each phase, requests, errors,
latency percentiles, throughput, and the server's resident memory (and its peak); the
speed-up is the many-client throughput over the one-client one. A single request on an idle
server is timed first (the page's promise is an answer within a second for a typical
1000-px illustration).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402
from PIL import Image  # noqa: E402

from charaid.jobs.enroll import enroll_items  # noqa: E402
from charaid.storage.gallery import Gallery  # noqa: E402


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post_image(url: str, data: bytes, name: str) -> tuple[int, float]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read()
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = -1
    return code, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--single-seconds", type=float, default=30)
    args = ap.parse_args()
    from test_browser import Server  # the same way the browser test starts it

    tmp = Path(tempfile.mkdtemp())
    gallery = tmp / "g.sqlite"
    raw = datasets.tla_raw()
    with Gallery(gallery) as g:
        enroll_items(g, [(c, p) for c, p in raw if int(p.stem) <= 12], workers=2)
    images = []
    for _, p in [(c, p) for c, p in raw if int(p.stem) > 12] + datasets.web4()[:60]:
        im = Image.open(p).convert("RGB")
        im.thumbnail((1024, 1024))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        images.append((p.name, buf.getvalue(), im.size))
    server = Server(gallery)
    url = server.url + "/api/recognize"
    rows = []
    try:
        typical = [x for x in images if max(x[2]) >= 900][:10]
        single = sorted(post_image(url, d, n)[1] for n, d, _ in typical)
        for clients, seconds in ((1, args.single_seconds), (args.clients, args.seconds)):
            mem0 = rss_mb(server.proc.pid)
            lat, errors, wall = load(url, images, clients, seconds)
            q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [float("nan")] * 99
            rows.append(
                [
                    clients,
                    f"{wall:.0f}",
                    len(lat) + len(errors),
                    len(errors),
                    f"{q[49] * 1000:.0f}",
                    f"{q[94] * 1000:.0f}",
                    f"{max(lat) * 1000:.0f}",
                    len(lat) / wall,
                    f"{mem0:.0f}",
                    f"{rss_mb(server.proc.pid):.0f}",
                    f"{rss_mb(server.proc.pid, 'VmHWM'):.0f}",
                    sorted(set(errors)),
                ]
            )
    finally:
        server.stop()
    print(f"# serve load: {machine()}; {time.strftime('%Y-%m-%d')}; {len(images)} real images (<= 1024 px)\n")
    print(
        f"Single request on an idle server, {len(typical)} illustrations of 900-1024 px: median "
        f"{statistics.median(single) * 1000:.0f} ms, max {max(single) * 1000:.0f} ms\n"
    )
    for r in rows:
        r[7] = f"{r[7]:.2f}"
    print(
        table(
            [
                "clients",
                "seconds",
                "requests",
                "errors",
                "p50 ms",
                "p95 ms",
                "max ms",
                "requests/s",
                "RSS before MB",
                "RSS after MB",
                "peak RSS MB",
                "error statuses",
            ],
            rows,
        )
    )
    print(f"\nthroughput with {args.clients} clients / with 1: {float(rows[1][7]) / float(rows[0][7]):.2f}x")


def load(url: str, images, clients: int, seconds: float) -> tuple[list[float], list[int], float]:
    lat: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop = time.time() + seconds

    def client(k: int) -> None:
        i = k
        while time.time() < stop:
            name, data, _ = images[i % len(images)]
            code, dt = post_image(url, data, name)
            with lock:
                (lat if code == 200 else errors).append(dt if code == 200 else code)
            i += clients

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat, errors, time.time() - t0


if __name__ == "__main__":
    main()

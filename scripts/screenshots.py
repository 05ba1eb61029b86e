"""Screenshots of the three pages for the README, made with the demo's drawn characters only
(no real artwork is ever committed).

    python scripts/screenshots.py   # writes docs/screenshots/{recognise,label,gallery}.png
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import CHROMIUM, FLAGS, Server  # noqa: E402

from charaid.demo import run_demo  # noqa: E402
from charaid.synth import CAST, portrait  # noqa: E402


def main() -> None:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    demo = run_demo(tmp / "demo")
    unlabelled = tmp / "unlabelled"
    unlabelled.mkdir()
    for k in range(3):
        portrait(CAST[3], 300 + k).save(unlabelled / f"new_{k}.png")
    shutil.copy(demo.scene, unlabelled / "scene.png")
    from playwright.sync_api import sync_playwright

    server = Server(demo.gallery, unlabelled)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = b.new_page(viewport={"width": 1200, "height": 760})
            page.goto(server.url + "/")
            page.set_input_files("#file", str(demo.scene))
            page.wait_for_selector(".box")
            page.locator(".box").nth(1).click()
            page.wait_for_selector("#zoomed")
            page.screenshot(path=str(out / "recognise.png"), full_page=True)
            page.goto(server.url + "/label")
            page.click("#scan")
            page.wait_for_selector("img.big")
            page.screenshot(path=str(out / "label.png"), full_page=True)
            page.goto(server.url + "/gallery")
            page.wait_for_selector(".chars .card")
            page.screenshot(path=str(out / "gallery.png"), full_page=True)
            b.close()
    finally:
        server.stop()
    print(f"wrote {', '.join(str(x.relative_to(ROOT)) for x in sorted(out.glob('*.png')))}")


if __name__ == "__main__":
    main()

"""The README's first command: the demo runs end to end on drawn pictures."""

from conftest import run_cli


def test_demo_names_two_and_rejects_the_unknown(tmp_path):
    r = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: expected ['akane', 'unknown', 'sora']" in r.stdout
    assert (tmp_path / "demo" / "scene.annotated.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "gallery.sqlite").exists()

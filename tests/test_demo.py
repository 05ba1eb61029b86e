"""The README's first command: the demo runs end to end on drawn pictures."""

from conftest import run_cli


def test_demo_names_two_and_rejects_the_unknown(tmp_path):
    r = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: expected ['akane', 'unknown', 'sora']" in r.stdout
    assert (tmp_path / "demo" / "scene.annotated.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "gallery.sqlite").exists()


def test_ci_runs_the_readme_commands():
    """.ci/run must run exactly the test command the README gives a new user, and its demo."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    block = (root / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2, "the README starts with two commands"
    ci = (root / ".ci" / "run").read_text().splitlines()
    assert block[1] in ci, f"the README's test command {block[1]!r} is not a line of .ci/run"
    # the demo as the README runs it (the venv is made above it in .ci/run): no option added
    demo = block[0].split(" && ", 1)[1].replace("pip install ", "pip install -q ")
    assert any(line.split("  #", 1)[0].strip() == demo for line in ci), f"{demo!r} is not a line of .ci/run"

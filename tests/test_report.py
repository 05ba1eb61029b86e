"""benchmarks/report.py: every section it reruns has its block in docs/ (benchmarks.md, or
experiments.md for the measurements that chose a setting), and a rerun replaces that block alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402


def test_every_section_has_its_block_with_its_command():
    doc = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for s in report.SECTIONS:
        m = report.block(s.name).search((ROOT / "docs" / s.doc).read_text(encoding="utf-8"))
        assert m, f"no block for {s.name} in docs/{s.doc}"
        assert f"`{s.command}`" in m.group(2), f"{s.name}: the block does not show `{s.command}`"
        assert (ROOT / s.args[0]).is_file()
    assert len(doc.splitlines()) < 300


def test_rewrite_replaces_one_block_and_keeps_the_rest():
    text = "intro\n<!-- report:a -->\nold a\n<!-- /report:a -->\nmiddle\n<!-- report:b -->\nold b\n<!-- /report:b -->\nend\n"
    out = report.rewrite(text, "a", "new a\n")
    assert out == text.replace("old a\n", "new a\n")
    with pytest.raises(KeyError, match="report:c"):
        report.rewrite(text, "c", "x")


def test_every_charaid_import_of_the_benchmarks_resolves():
    """Benchmarks import charaid inside functions too (run only when measured): each name must exist."""
    import ast
    import importlib

    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "charaid":
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(mod, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                        f"{script.name}: from {node.module} import {alias.name}"
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "charaid":
                        importlib.import_module(alias.name)

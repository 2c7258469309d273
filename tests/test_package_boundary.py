"""The installed package stands alone: no module of vccv_gpu imports the developer tools
(tools/) or the tests' helpers (tests/), which are not installed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = {"tools", "tests"} | {p.stem for p in (ROOT / "tests").glob("*.py")}


def test_no_package_module_imports_tools_or_test_helpers() -> None:
    offenders = []
    modules = sorted((ROOT / "vccv_gpu").rglob("*.py"))
    assert len(modules) > 20
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in OUTSIDE]
    assert not offenders, "\n".join(offenders)

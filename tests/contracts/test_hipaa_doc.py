"""docs/HIPAA.md names, for each safeguard, the test that proves it: each named test exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)?)`|`::(\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_hipaa_map_cites_exists() -> None:
    text = (ROOT / "docs" / "HIPAA.md").read_text()
    cited: list[tuple[str, str]] = []
    for line in text.splitlines():
        current = ""
        for match in CITED.finditer(line):
            if match.group(1):
                current = match.group(1)
                if match.group(2):
                    cited.append((current, match.group(2)[2:]))
                else:
                    cited.append((current, ""))
            elif current:  # `::name` continues the file named before it on the line
                cited.append((current, match.group(3)))
    assert len(cited) > 30
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.exists():
            missing.append(file)
        elif name and name not in _tests_in(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/HIPAA.md cites tests that do not exist: {missing}"

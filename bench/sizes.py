"""Modules over 400 lines and functions over 80 in core/, pages/ and app.py (issue 11's rule).

.venv/bin/python bench/sizes.py       # prints offenders; exit 1 if any
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE, MAX_FUNCTION = 400, 80


def offenders() -> list[str]:
    found = []
    paths = [*sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py")), ROOT / "app.py"]
    for path in paths:
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        lines = source.count("\n") + 1
        if lines > MAX_MODULE:
            found.append(f"module   {lines:4d}  {name}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION:
                    found.append(f"function {length:4d}  {name}:{node.lineno} {node.name}")
    return found


if __name__ == "__main__":
    listed = offenders()
    print("\n".join(listed) or "none")
    sys.exit(1 if listed else 0)

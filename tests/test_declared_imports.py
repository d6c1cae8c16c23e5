"""Every third-party module the code imports is declared, with lower and upper bounds.

The app (``core/``, ``pages/``, ``app.py``) against ``requirements.txt``; the tests and
benchmarks against ``requirements-dev.txt`` (which includes it). ``tests/peers`` runs in its
own environment with its own pinned ``requirements.txt`` and is left out. A module counts when
it is imported anywhere in a file, inside functions too; relative imports are the project's.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Import name → distribution name, where they differ (PEP 503 normalised).
DISTRIBUTION = {
    "yaml": "pyyaml",
    "PIL": "pillow",
    "dateutil": "python-dateutil",
}

PROJECT = {"core", "pages", "app"}
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path: Path) -> list[tuple[Path, str]]:
    """The requirement lines of ``path``, following ``-r`` includes; comments and blanks dropped."""
    lines: list[tuple[Path, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            lines += requirement_lines(path.parent / line.split(None, 1)[1])
        else:
            lines.append((path, line))
    return lines


def declared(path: Path) -> set[str]:
    names = set()
    for _, line in requirement_lines(path):
        match = _NAME.match(line)
        assert match, f"{path.name}: cannot read a package name in {line!r}"
        names.add(normalise(match.group(1)))
    return names


def python_files(*parts: str, skip: tuple[str, ...] = ()) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        path = ROOT / part
        found = [path] if path.is_file() else sorted(path.rglob("*.py"))
        files += [f for f in found if not any(s in f.relative_to(ROOT).parts for s in skip)]
    return files


def imported(path: Path) -> set[str]:
    """The top-level names ``path`` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def undeclared(files: list[Path], requirements: Path, local: set[str]) -> dict[str, list[str]]:
    """Third-party modules imported in ``files`` whose distribution ``requirements`` does not name."""
    names = declared(requirements)
    missing: dict[str, list[str]] = {}
    for path in files:
        for module in sorted(imported(path)):
            if module in sys.stdlib_module_names or module in local or module == "__future__":
                continue
            if normalise(DISTRIBUTION.get(module, module)) not in names:
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                missing.setdefault(module, []).append(str(shown))
    return missing


def test_the_app_imports_only_what_requirements_txt_declares() -> None:
    files = python_files("core", "pages", "app.py")
    assert len(files) > 20 and "streamlit" in set().union(*map(imported, files))  # the scan sees imports
    assert undeclared(files, ROOT / "requirements.txt", PROJECT) == {}


def test_tests_and_benchmarks_import_only_what_requirements_dev_txt_declares() -> None:
    files = python_files("tests", "bench", skip=("peers",))
    local = PROJECT | {"tests", "bench"} | {f.stem for f in files}  # scripts import their neighbours
    assert undeclared(files, ROOT / "requirements-dev.txt", local) == {}


def test_an_undeclared_import_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nimport httpx\nimport yaml\nfrom core import types\nfrom . import x\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("httpx>=0.27,<0.29  # a comment\n")
    missing = undeclared([module], requirements, PROJECT)
    assert list(missing) == ["yaml"]  # os: stdlib; httpx: declared; core: ours; ".": relative
    requirements.write_text("httpx>=0.27,<0.29\nPyYAML>=6,<7\n")
    assert undeclared([module], requirements, PROJECT) == {}  # yaml is PyYAML's module


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_every_requirement_has_a_lower_and_an_upper_bound(name: str) -> None:
    unbounded = [
        f"{path.name}: {line}"
        for path, line in requirement_lines(ROOT / name)
        if not ("==" in line or "~=" in line or (">=" in line and "<" in line))
    ]
    assert unbounded == []

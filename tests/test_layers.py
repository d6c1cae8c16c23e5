"""The layers of core/ (issue 11): imports only go down, and the folders say which is which.

    core.types, core.bounds      the vocabulary (rank 0)
    core.wire                    one HTTP request and its answer (1)
    core.continuation            a long answer from many requests (2)
    core.demo                    the offline model, a sibling of the continuation (2)
    core.services                what the front ends share (3)
    core.serve                   the OpenAI-compatible endpoint, a front end (4)
    core.cli                     the command line, which also starts the endpoint (5)
    core, core.__main__          the public API and the entry point (6)

A module may import its own layer's package and any lower rank, never a sibling of
the same rank (the demo model knows nothing of the continuation it serves). Every
project import counts, also those under ``if TYPE_CHECKING:`` and inside
functions; an import inside a function must say why on its line. Read from the
source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

RANKS = {
    "core.types": 0,
    "core.bounds": 0,
    "core.wire": 1,
    "core.continuation": 2,
    "core.demo": 2,
    "core.services": 3,
    "core.serve": 4,
    "core.cli": 5,
    "core.__main__": 6,
    "core": 6,
}


def layer(module: str) -> str:
    """The layer a dotted module name belongs to (its longest prefix in RANKS)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in RANKS:
            return prefix
    raise KeyError(module)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, core: Path = CORE) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) of every import of core in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path, core.parent)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            elif node.module:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name == "core" or name.startswith("core."):
                if name == "core" and isinstance(node, ast.ImportFrom):  # from core import X
                    subs = [f"core.{a.name}" for a in node.names]
                    modules = [
                        s
                        for s in subs
                        if (core / s[5:]).with_suffix(".py").exists() or (core / s[5:]).is_dir()
                    ]
                    found += [(node.lineno, s, id(node) in in_function) for s in modules or ["core"]]
                else:
                    found.append((node.lineno, name, id(node) in in_function))
    return found


def violations(root: Path = CORE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root.parent)
        own = layer(source)
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, target, in_function in project_imports(path, root):
            where = f"{path.relative_to(root.parent)}:{lineno}"
            theirs = layer(target)
            if theirs != own and RANKS[theirs] >= RANKS[own]:
                bad.append(f"{where}: {source} ({own}) imports {target} ({theirs}), not below it")
            if in_function and "#" not in lines[lineno - 1]:
                bad.append(f"{where}: an import inside a function without a comment saying why")
    return bad


def test_every_module_belongs_to_a_layer() -> None:
    for path in CORE.rglob("*.py"):
        layer(module_name(path))  # raises KeyError for a module outside every layer


def test_imports_only_go_down() -> None:
    assert violations() == []


def test_each_layer_package_says_what_it_owns() -> None:
    for name in ("wire", "continuation", "services", "serve"):
        doc = ast.get_docstring(ast.parse((CORE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc, name


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("wire/stream.py", "from core.continuation import seams\n", "not below it"),
        ("wire/sse.py", "from core.services.store import Store\n", "not below it"),
        ("demo/x.py", "from core.continuation.budget import estimate_text\n", "not below it"),
        ("continuation/x.py", "def f():\n    from core.wire import sse\n", "without a comment"),
        ("services/x.py", "from ..cli import main\n", "not below it"),
    ],
)
def test_an_upward_or_sideways_import_is_found(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    core = tmp_path / "core"
    path = core / module
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    found = violations(core)
    assert len(found) == 1 and expected in found[0]


def test_a_downward_import_and_a_commented_function_import_pass(tmp_path: Path) -> None:
    core = tmp_path / "core"
    (core / "services").mkdir(parents=True)
    (core / "services" / "x.py").write_text(
        "from core.wire import sse\nfrom core.types import RunSpec\n"
        "def f():\n    from core.continuation import engine  # lazily: the engine loads httpx\n",
        encoding="utf-8",
    )
    assert violations(core) == []

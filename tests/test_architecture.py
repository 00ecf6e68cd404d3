"""The house rules of docs/architecture.md, read from the source: imports flow one way
(lazy imports inside functions included), nobody takes another module's private
names, every module is on the map, and no function runs past 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "numbias"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

LAYERS = [
    ["errors", "atomic", "fmt"],
    ["options", "plugins", "output", "svg", "state"],
    ["page"],
    ["scale"],
    ["distribution"],
    ["trie", "sampling"],
    ["data"],
    ["prompt"],
    ["tasks"],
    ["models"],
    ["weights"],
    ["backends.base"],
    ["backends._gguf", "backends.fake"],
    ["backends.llamacpp", "backends.hf", "backends.openai_compat"],
    ["backends"],
    ["store"],
    ["inference"],
    ["metrics", "conformal", "systems"],
    ["mitigation"],
    ["config", "selection"],
    ["judge"],
    ["study", "train"],
    ["calibrated", "stages"],
    ["align", "mitigate", "scoring"],
    ["verdict", "compare", "recompute"],
    ["report"],
    ["cli"],
    ["__init__", "__main__"],
]
"""Each module's layer, bottom first: a module may import only from layers below its own."""
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}
MAX_LINES = 60


def _name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return "backends" if parts == ("backends", "__init__") else ".".join(parts)


MODULES = {_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(numbias module, names taken, line) of every import, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "numbias":
            module = node.module.removeprefix("numbias").removeprefix(".") or "__init__"
            found.append((module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name.removeprefix("numbias."), [], node.lineno) for a in node.names
                      if a.name.startswith("numbias.")]
    return found


def test_every_module_has_a_layer_and_a_line_on_the_map() -> None:
    assert sorted(MODULES) == sorted(RANK)
    text = ARCHITECTURE.read_text()
    for module in MODULES:
        path = "backends/" if module == "backends" else module.replace(".", "/")
        if not module.startswith("__"):
            assert f"`{path}`" in text or path in text, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module: str) -> None:
    for target, names, line in _imports(MODULES[module]):
        target = target if target in RANK else target.rsplit(".", 1)[0]
        assert RANK[target] < RANK[module] or module == target == "backends", \
            f"{module}:{line} imports {target}, which is not below it"
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{module}:{line} takes private names {private} from {target}"


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_over_sixty_lines(module: str) -> None:
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines, line {f.lineno})"
            for f in _functions(ast.parse(MODULES[module].read_text()))
            if f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, f"{module}: {', '.join(long)}"


def test_the_checks_catch_what_they_guard(tmp_path: Path) -> None:
    """The rules above can fail: an upward import, a private name and a long function
    in a throw-away module are all seen."""
    body = "\n".join(f"    x = {i}" for i in range(MAX_LINES))
    path = tmp_path / "m.py"
    path.write_text(f"from numbias.cli import _private\n\ndef f() -> None:\n{body}\n")
    assert _imports(path) == [("cli", ["_private"], 1)]
    assert [f.name for f in _functions(ast.parse(path.read_text()))
            if f.end_lineno - f.lineno + 1 > MAX_LINES] == ["f"]

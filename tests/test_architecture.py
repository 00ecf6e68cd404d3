"""The house rules of docs/architecture.md, read from the source: packages and the
modules in them import one way (lazy imports inside functions included), nobody takes
another module's private names, every module has its row in the map's table, every
package says what it exports, and no function runs past 60 lines."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "numbias"
TESTS = Path(__file__).resolve().parent
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

LAYERS = [
    ["_lazy"],
    ["util.errors", "util.atomic", "util.fmt"],
    ["util.options", "util.plugins", "util.output", "report.svg", "util.state"],
    ["report._templates"],
    ["report.html"],
    ["core.scale"],
    ["core.distribution"],
    ["core.trie", "core.sampling"],
    ["data.dataset"],
    ["data.prompt"],
    ["data.tasks"],
    ["models.catalog"],
    ["models.weights"],
    ["backends.base"],
    ["backends._gguf", "backends._replicas", "backends.fake"],
    ["backends.llamacpp", "backends.hf", "backends.openai_compat"],
    ["backends"],
    ["judge.store", "judge.workers"],
    ["core.inference"],
    ["core.metrics", "core.conformal", "core.systems"],
    ["mitigations._base"],
    [
        "mitigations._registry",
        "mitigations._temperature",
        "mitigations._distribution_calibration",
        "mitigations._score_mapping",
        "mitigations._distribution_regression",
        "mitigations._range_ensemble",
        "mitigations._contrast",
    ],
    ["mitigations._setting"],
    ["mitigations._development"],
    ["mitigations"],
    ["judge.config", "mitigations.selection"],
    ["judge.judging"],
    ["studies.bias", "train.recipe"],
    ["train.data"],
    ["train.model"],
    ["train.loop"],
    ["train.export"],
    ["train.stage"],
    ["studies.calibrated", "studies.stages"],
    ["studies.alignment", "studies.mitigation", "studies.scoring"],
    ["report.verdict", "studies.comparison", "studies.recompute"],
    ["report._glossary", "report._parts"],
    ["report._study"],
    ["report._align", "report._mitigate", "report._compare"],
    ["report.build"],
    ["cli._common", "cli._options"],
    ["cli._models", "cli._train", "cli._tasks", "cli._score", "cli._run", "cli._align", "cli._mitigate", "cli._report"],
    ["cli._correlate", "cli._compare"],
    ["cli._main"],
    ["util", "core", "data", "models", "judge", "train", "studies", "report", "cli"],
    ["__init__", "__main__"],
]
"""Each module's layer, bottom first: a module may import only from layers below its own."""
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}
MAX_LINES = 60
PACKAGES = ["util", "core", "data", "models", "backends", "judge", "mitigations", "train", "studies", "report", "cli"]
"""The packages, bottom first: a package's modules import only from packages below it, their own
and top-level modules."""


def _name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1]) if len(parts) > 1 and parts[-1] == "__init__" else ".".join(parts)


MODULES = {_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(numbias module, names taken, line) of every import, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "numbias":
            module = node.module.removeprefix("numbias").removeprefix(".") or "__init__"
            found.append((module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [
                (a.name.removeprefix("numbias."), [], node.lineno) for a in node.names if a.name.startswith("numbias.")
            ]
    return found


def _row(module: str) -> str:
    """The start of a module's row in docs/architecture.md's table: its exact path in
    backticks (a package with a trailing slash), so a mention in prose does not count."""
    return f"| `{module.replace('.', '/')}{'/' if module in PACKAGES else ''}` |"


def test_every_module_has_a_layer_and_a_row_on_the_map() -> None:
    assert sorted(MODULES) == sorted(RANK)
    rows = [line for line in ARCHITECTURE.read_text().splitlines() if line.startswith("| `")]
    missing = [m for m in MODULES if m != "__init__" and not any(r.startswith(_row(m)) for r in rows)]
    assert not missing, f"no row in docs/architecture.md's table for {missing}"


def test_the_packages_are_the_folders() -> None:
    assert sorted(PACKAGES) == sorted(p.parent.name for p in SRC.glob("*/__init__.py"))


def test_the_tests_mirror_the_packages() -> None:
    """A package's tests sit in tests/<package>/; tests of several packages at once in tests/."""
    folders = {p.parent.relative_to(TESTS).as_posix() for p in TESTS.rglob("test_*.py")} - {"."}
    assert folders <= set(PACKAGES), f"{sorted(folders - set(PACKAGES))} under tests/ are not numbias packages"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module: str) -> None:
    for target, names, line in _imports(MODULES[module]):
        target = target if target in RANK else target.rsplit(".", 1)[0]
        assert RANK[target] < RANK[module] or module == target == "backends", (
            f"{module}:{line} imports {target}, which is not below it"
        )
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{module}:{line} takes private names {private} from {target}"


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_over_sixty_lines(module: str) -> None:
    long = [
        f"{f.name} ({f.end_lineno - f.lineno + 1} lines, line {f.lineno})"
        for f in _functions(ast.parse(MODULES[module].read_text()))
        if f.end_lineno - f.lineno + 1 > MAX_LINES
    ]
    assert not long, f"{module}: {', '.join(long)}"


def test_the_checks_catch_what_they_guard(tmp_path: Path) -> None:
    """The rules above can fail: an upward import, a private name and a long function
    in a throw-away module are all seen, and only a table row puts a module on the map."""
    body = "\n".join(f"    x = {i}" for i in range(MAX_LINES))
    path = tmp_path / "m.py"
    path.write_text(f"from numbias.cli._main import _private\n\ndef f() -> None:\n{body}\n")
    assert _imports(path) == [("cli._main", ["_private"], 1)]
    assert [f.name for f in _functions(ast.parse(path.read_text())) if f.end_lineno - f.lineno + 1 > MAX_LINES] == ["f"]
    assert (_row("mitigations.selection"), _row("core")) == ("| `mitigations/selection` |", "| `core/` |")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] in PACKAGES))
def test_packages_import_only_downward(module: str) -> None:
    own = PACKAGES.index(module.split(".")[0])
    for target, _, line in _imports(MODULES[module]):
        package = target.split(".")[0]
        assert package not in PACKAGES or PACKAGES.index(package) <= own, (
            f"{module}:{line} imports {target}, from a package above its own"
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_exports(package: str) -> None:
    """A one-line docstring and an explicit ``__all__``, every name of which resolves."""
    init = ast.parse((SRC / package / "__init__.py").read_text())
    assert "\n" not in (ast.get_docstring(init) or "\n"), f"{package}: no one-line docstring"
    assigned = {t.id for n in init.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "__all__" in assigned, f"{package}/__init__.py defines no __all__"
    module = importlib.import_module(f"numbias.{package}")
    assert [name for name in module.__all__ if not hasattr(module, name)] == []

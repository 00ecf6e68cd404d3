"""The README a user reads and the pages in docs/: the README stays short, its worked
example is what ``numbias run`` prints, its install matches scripts/setup.sh, every link
between the README and docs/ resolves, and LICENSE and CITATION.cff agree with pyproject."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
README = ROOT / "README.md"
PAGES = sorted([README, *(ROOT / "docs").rglob("*.md")])
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The body of a ``## heading`` section, up to the next heading of that level."""
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def _first_block(text: str, lang: str = "bash") -> str:
    return text.split(f"```{lang}\n", 1)[1].split("\n```", 1)[0]


def _commands(block: str) -> list[str]:
    """The block's commands, comments and continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("#", 1)[0].strip() for line in joined.splitlines() if line.split("#", 1)[0].strip()]


def _table(text: str) -> list[list[str]]:
    """The first markdown table in ``text``: header, then rows (the --- line dropped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [rows[0], *[r for r in rows[1:] if not set("".join(r)) <= set("-: ")]]


def _shape(cell: str) -> str:
    """A printed cell's shape: every number (sign included) as ``d``."""
    return re.sub(r"-?\d+", "d", cell)


def _cli(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "COLUMNS": "250",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "numbias", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> list[list[str]]:
    """The table ``numbias run`` prints for the default study, on the fake judge and 12 words."""
    folder = tmp_path_factory.mktemp("default-run")
    (folder / "study.yaml").write_text(
        "judges: [{model: toy, backend: 'plugin_judge:make'}]\n"
        "tasks: [{name: vader, options: {n: 12}}]\nbootstrap: 20\nout: o\n"
    )
    out = _cli("run", "study.yaml", cwd=folder)
    lines = [line for line in out.splitlines() if line.startswith(("┃", "│"))]
    return [[cell.strip() for cell in re.split(r"[┃│]", line)[1:-1]] for line in lines]


def test_readme_is_short() -> None:
    assert README.stat().st_size < 15_000, "the README is for a user: move depth to docs/"


def test_quick_start_is_two_make_targets() -> None:
    readme = _text(README)
    assert _commands(_first_block(_section(readme, "## Quick start"))) == ["make run", "make test"]
    makefile = _text(ROOT / "Makefile")
    assert re.search(r"^run:.*\n\t\S*numbias run\s*$", makefile, re.M), "make run is the default study"
    assert re.search(r"^test:", makefile, re.M)


def test_install_builds_llama_cpp_as_setup_does() -> None:
    readme = _section(_text(README), "## Install")
    setup = _text(ROOT / "scripts" / "setup.sh")
    flags = re.search(r'^LLAMA_CMAKE_ARGS="([^"]+)"', setup, re.M).group(1)
    version = re.search(r'^LLAMA_VERSION="([^"]+)"', setup, re.M).group(1)
    assert f'CMAKE_ARGS="{flags}"' in readme and f"llama-cpp-python=={version}" in readme
    assert "--no-binary llama-cpp-python" in readme
    assert f"llama-cpp-python=={version}" in PYPROJECT["project"]["optional-dependencies"]["llama"]
    for package in ("torch", "transformers", "peft"):
        assert package in readme, f"the install says the quick start brings {package}"


@pytest.mark.subprocess
def test_worked_example_is_what_numbias_run_prints(printed: list[list[str]]) -> None:
    import numbias

    readme = _text(README)
    example = readme.split("<!-- default-run -->", 1)[1]
    assert _commands(_first_block(example)) == ["numbias run"]
    header, *rows = _table(example.split("\n```", 2)[2])
    printed_header, *printed_rows = printed
    assert header == printed_header
    config = numbias.RunConfig()
    judge = config.judges[0].model
    assert [r[:4] for r in rows] == [[judge, "vader", scale, rule] for scale in config.scales for rule in config.rules]
    assert [r[2:4] for r in rows] == [r[2:4] for r in printed_rows]
    for row, printed_row in zip(rows, printed_rows):
        assert [_shape(c) for c in row[4:]] == [_shape(c) for c in printed_row[4:]], (row, printed_row)


@pytest.mark.subprocess
def test_readme_commands_exist(tmp_path: Path) -> None:
    help_text = _cli("--help", cwd=tmp_path)
    commands = set(re.findall(r"^│ ([a-z][\w-]*)\s{2,}", help_text, re.M))
    used = {c.split()[1] for c in _commands(_first_block(_section(_text(README), "## Commands")))}
    assert used and used <= commands, used - commands


def test_tasks_page_keeps_the_tested_worked_example() -> None:
    """tests/test_own_data.py runs this block on a real judge; here, that it is there."""
    page = _text(ROOT / "docs" / "tasks.md")
    block = _first_block(page.split("<!-- worked-example -->", 1)[1])
    commands = _commands(block)
    assert any(c.startswith("numbias run ") for c in commands)
    assert any(c.startswith("numbias score --calibrated judge.json") for c in commands)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _outside_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", _outside_code(_text(path)), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    text = re.sub(r"`[^`\n]*`", "", _outside_code(_text(page)))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
        if anchor and path.suffix == ".md":
            where = f"{page.relative_to(ROOT)}: no heading for #{anchor} in {file or page.name}"
            assert anchor in _anchors(path), where


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_test_files_exist(page: Path) -> None:
    """A test file a page names (``tests/core/test_trie.py``) is where it says."""
    missing = [name for name in re.findall(r"\btests/[\w/]+\.py\b", _text(page)) if not (ROOT / name).is_file()]
    assert not missing, f"{page.relative_to(ROOT)} names {missing}, not in the repository"


def test_docs_index_lists_every_page() -> None:
    index = _text(ROOT / "docs" / "README.md")
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name == "README.md" or f"]({page.name})" in index, f"docs/README.md does not list {page.name}"


def test_screenshot_is_small() -> None:
    png = ROOT / "docs" / "img" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000
    assert "](docs/img/report.png)" in _text(README)


def test_license_and_citation_agree_with_pyproject() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    license_text = _text(ROOT / "LICENSE")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    cff = yaml.safe_load(_text(ROOT / "CITATION.cff"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == project["version"] and cff["license"] == project["license"]
    assert cff["title"].startswith(project["name"]) and cff["authors"]
    paper = [r for r in cff["references"] if "2601.16444" in str(r)]
    assert paper and "Numerical Bias" in paper[0]["title"]
    assert "2601.16444" in _section(_text(README), "## Citation")

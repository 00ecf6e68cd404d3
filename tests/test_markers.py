"""The marker guard (tests/marker_guard.py): a test that starts a process, directly or
through a cached fixture, fails without its marker, so ``make test-fast`` (which
deselects by the markers) cannot quietly take it in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from marker_guard import needed_for

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"

PROBE = """
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def spawned():
    return subprocess.run([sys.executable, "-c", "pass"]).returncode


def test_unmarked_spawns():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_unmarked_first_user_of_the_fixture(spawned):
    pass


def test_unmarked_later_user_of_the_cached_fixture(spawned):
    pass


@pytest.mark.subprocess
def test_marked(spawned):
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_plain():
    pass
"""


@pytest.mark.parametrize(
    ("args", "marker"),
    [
        (["/usr/bin/chromium", "--headless"], "browser"),
        ([sys.executable, "-m", "llama_cpp.server", "--model", "m.gguf"], "model"),
        ([sys.executable, "-m", "numbias", "run"], "subprocess"),
        (["numbias", "run"], "subprocess"),
        ("python3 -c pass", "subprocess"),
        (["uname", "-p"], None),
    ],
)
def test_what_a_process_calls_for(args: list[str] | str, marker: str | None) -> None:
    assert needed_for(args) == marker


@pytest.mark.subprocess
def test_a_test_without_its_marker_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(SRC), os.environ.get("PYTHONPATH", "")]))
    pytester.makeini("[pytest]\nmarkers =\n    subprocess: starts a process\n")
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest_subprocess("-p", "marker_guard", "-p", "no:randomly")
    result.assert_outcomes(failed=3, passed=2)
    result.stdout.fnmatch_lines(["*test_unmarked_later_user_of_the_cached_fixture needs @pytest.mark.subprocess*"])

"""A pytest plugin (loaded by tests/conftest.py) that keeps the markers honest: a test
that starts a process (a spawned worker too), drives Chromium or loads an embedded
judge (itself or through a fixture it uses, however cached) fails unless it carries
``subprocess``, ``browser`` or ``model``. ``make test-fast`` deselects by these
markers, so a missing one would put a slow or machine-dependent test in the fast
subset without anyone noticing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

_FRAMES: list[set[str]] = []
"""What the running test and each fixture being set up needed so far, outermost first."""
_FIXTURE_NEEDS: dict[Any, set[str]] = {}
"""What each fixture definition needed when it was set up: a cached session fixture
passes its needs to every later test that uses it."""
_ITEM_NEEDS = pytest.StashKey[set[str]]()
_UNDO: list[Callable[[], None]] = []


def needed_for(args: Any) -> str | None:
    """The marker a process started with ``args`` calls for: Chromium is ``browser``, a
    llama.cpp server loads a judge (``model``), Python or numbias is ``subprocess``; a
    small tool a library runs for itself (``uname``, ``lsb_release``) calls for none."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    words = [os.fsdecode(a) for a in argv]
    program = Path(words[0].split()[0]).name if words and words[0].strip() else ""
    if "chrom" in program:
        return "browser"
    if "llama_cpp.server" in words:
        return "model"
    if program.startswith(("python", "numbias")) or words[0] == sys.executable:
        return "subprocess"
    return None


def _drop(frame: set[str]) -> None:
    """Take ``frame`` off the stack by identity (two empty frames are equal sets)."""
    _FRAMES[:] = [f for f in _FRAMES if f is not frame]


def _need(marker: str) -> None:
    for frame in _FRAMES:
        frame.add(marker)


def _watch_processes() -> None:
    original = subprocess.Popen.__init__

    def started(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        if marker := needed_for(args):
            _need(marker)
        original(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = started  # type: ignore[method-assign]
    _UNDO.append(lambda: setattr(subprocess.Popen, "__init__", original))


def _watch_spawns() -> None:
    """A process multiprocessing spawns (numbias's scoring workers) runs Python: it is
    ``subprocess`` too, though it starts without :class:`subprocess.Popen`."""
    import multiprocessing.util as mp_util

    original = mp_util.spawnv_passfds

    def spawned(path: Any, args: Any, passfds: Any) -> int:
        _need("subprocess")
        return original(path, args, passfds)

    mp_util.spawnv_passfds = spawned
    _UNDO.append(lambda: setattr(mp_util, "spawnv_passfds", original))


def _watch_judges() -> None:
    """An embedded judge's weights resolved (what every backend does before loading
    them) is ``model``; a made-up spec in a test is not."""
    from numbias.models.catalog import JUDGES, JudgeSpec

    original = JudgeSpec.path

    def path(self: JudgeSpec) -> Path:
        if JUDGES.get(self.name) is self:
            _need("model")
        return original(self)

    JudgeSpec.path = path  # type: ignore[method-assign]
    _UNDO.append(lambda: setattr(JudgeSpec, "path", original))


def pytest_configure(config: pytest.Config) -> None:
    _watch_processes()
    _watch_spawns()
    _watch_judges()


def pytest_unconfigure(config: pytest.Config) -> None:
    while _UNDO:
        _UNDO.pop()()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
    frame: set[str] = set()
    _FRAMES.append(frame)
    try:
        return (yield)
    finally:
        _drop(frame)
        _FIXTURE_NEEDS.setdefault(fixturedef, set()).update(frame)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    item.stash[_ITEM_NEEDS] = frame = set()
    _FRAMES.append(frame)
    try:
        return (yield)
    finally:
        _drop(frame)


def missing_markers(item: pytest.Item) -> set[str]:
    """The markers ``item`` needed (by itself or through its fixtures) and lacks."""
    needed = set(item.stash.get(_ITEM_NEEDS, set()))
    definitions = getattr(item, "_fixtureinfo", None)
    for defs in definitions.name2fixturedefs.values() if definitions else ():
        for fixturedef in defs:
            needed |= _FIXTURE_NEEDS.get(fixturedef, set())
    return needed - {mark.name for mark in item.iter_markers()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    if missing := missing_markers(item):
        names = ", ".join(f"@pytest.mark.{name}" for name in sorted(missing))
        pytest.fail(f"{item.nodeid} needs {names} (make test-fast deselects by it)", pytrace=False)
    return result

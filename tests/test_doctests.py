"""The public API shows itself in use: every name in ``numbias.__all__`` has a
docstring example, and every module defining one runs its examples as they read."""

from __future__ import annotations

import doctest
import importlib
import inspect
import io

import pytest

import numbias

PENDING: dict[str, str] = {}
"""Public names whose example is still to be written, and the module that will hold it."""

MODULES = sorted({getattr(numbias, name).__module__ for name in numbias.__all__})
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_pass(module: str) -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(importlib.import_module(module)):
        runner.run(test, out=report.write)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples in {module} failed:\n{report.getvalue()}"


def _has_example(name: str) -> bool:
    return ">>>" in (inspect.getdoc(getattr(numbias, name)) or "")


@pytest.mark.parametrize("name", numbias.__all__)
def test_every_public_name_has_an_example(name: str) -> None:
    if name in PENDING:
        assert not _has_example(name), f"{name} has an example now: remove it from PENDING"
        assert getattr(numbias, name).__module__ == PENDING[name]
    else:
        assert _has_example(name), f"numbias.{name} needs a '>>>' example in its docstring"


def test_all_is_sorted_and_names_exist() -> None:
    assert numbias.__all__ == sorted(numbias.__all__)
    assert all(hasattr(numbias, name) for name in numbias.__all__)
    assert set(PENDING) <= set(numbias.__all__)

"""The public API shows itself in use: every name in ``numbias.__all__`` has a
docstring example. The examples themselves run as pytest's doctests of every module
in src/numbias (``--doctest-modules`` in pyproject.toml), not from a list kept here."""

from __future__ import annotations

import inspect

import pytest

import numbias

PENDING: dict[str, str] = {}
"""Public names whose example is still to be written, and the module that will hold it."""


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

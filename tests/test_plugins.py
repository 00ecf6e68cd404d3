"""Entry-point groups read once, and every broken plug-in or reference as one line."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from numbias.errors import NumbiasError
from numbias.plugins import forget, import_ref, load_group
from numbias.scale import ScoreScale

GROUP = "numbias.test-plugins"


@pytest.fixture(autouse=True)
def _fresh_group() -> Iterator[None]:
    forget(GROUP)
    yield
    forget(GROUP)


def _install(monkeypatch: pytest.MonkeyPatch, *points: tuple[str, str]) -> list[str]:
    """``points`` (name, value) as the installed entry points of GROUP; returns the log of reads."""
    real = importlib.metadata.entry_points
    reads: list[str] = []

    def entry_points(**kwargs: str) -> Any:
        if kwargs.get("group") != GROUP:
            return real(**kwargs)
        reads.append(GROUP)
        return [importlib.metadata.EntryPoint(name, value, GROUP) for name, value in points]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return reads


def test_import_ref_finds_the_object() -> None:
    assert import_ref("numbias.scale:ScoreScale", "backend 'x'") is ScoreScale


@pytest.mark.parametrize(("ref", "fragment"), [
    ("no_such_module_xyz:Thing", "No module named 'no_such_module_xyz'"),
    ("numbias.scale:NoSuchThing", "has no attribute 'NoSuchThing'"),
    ("numbias.scale", "has no attribute ''"),
    (":Thing", "Empty module name"),
])
def test_bad_refs_are_one_line_errors(ref: str, fragment: str) -> None:
    with pytest.raises(NumbiasError) as caught:
        import_ref(ref, "mitigation 'm'")
    message = str(caught.value)
    assert message.startswith(f"mitigation 'm': cannot import {ref}: ") and fragment in message
    assert "\n" not in message


def test_a_group_is_read_once_until_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _install(monkeypatch, ("scale", "numbias.scale:ScoreScale"), ("error", "numbias.errors:NumbiasError"))
    registered: dict[str, Any] = {}
    load_group(GROUP, registered.__setitem__)
    assert registered == {"scale": ScoreScale, "error": NumbiasError}
    load_group(GROUP, registered.__setitem__)
    assert reads == [GROUP]
    forget(GROUP)
    load_group(GROUP, registered.__setitem__)
    assert reads == [GROUP, GROUP]


def test_a_broken_entry_point_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "noisy_plugin_xyz.py").write_text('raise ValueError("first line\\nsecond line\\nthird")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    _install(monkeypatch, ("good", "numbias.scale:ScoreScale"), ("noisy", "noisy_plugin_xyz:Thing"))
    registered: dict[str, Any] = {}
    with pytest.raises(NumbiasError) as caught:
        load_group(GROUP, registered.__setitem__)
    assert str(caught.value) == (f"entry point 'noisy' (noisy_plugin_xyz:Thing) of group {GROUP} failed to load: "
                                 "first line")
    assert registered == {"good": ScoreScale}
    with pytest.raises(NumbiasError, match="failed to load"):  # not marked read: the next need tries again
        load_group(GROUP, registered.__setitem__)


def test_what_register_refuses_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, ("scale", "numbias.scale:ScoreScale"))

    def refuse(name: str, loaded: Any) -> None:
        raise NumbiasError(f"entry point {name!r} gave {loaded.__name__}, not a task")

    with pytest.raises(NumbiasError, match="entry point 'scale' gave ScoreScale, not a task"):
        load_group(GROUP, refuse)

"""Entry-point groups read once, and every broken plug-in or reference as one line."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError
from numbias.util.plugins import Registry, forget, import_ref, load_group

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
    assert import_ref("numbias.core.scale:ScoreScale", "backend 'x'") is ScoreScale


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("no_such_module_xyz:Thing", "No module named 'no_such_module_xyz'"),
        ("numbias.core.scale:NoSuchThing", "has no attribute 'NoSuchThing'"),
        ("numbias.core.scale", "has no attribute ''"),
        (":Thing", "Empty module name"),
    ],
)
def test_bad_refs_are_one_line_errors(ref: str, fragment: str) -> None:
    with pytest.raises(NumbiasError) as caught:
        import_ref(ref, "mitigation 'm'")
    message = str(caught.value)
    assert message.startswith(f"mitigation 'm': cannot import {ref}: ") and fragment in message
    assert "\n" not in message


def test_a_group_is_read_once_until_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _install(
        monkeypatch, ("scale", "numbias.core.scale:ScoreScale"), ("error", "numbias.util.errors:NumbiasError")
    )
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
    _install(monkeypatch, ("good", "numbias.core.scale:ScoreScale"), ("noisy", "noisy_plugin_xyz:Thing"))
    registered: dict[str, Any] = {}
    with pytest.raises(NumbiasError) as caught:
        load_group(GROUP, registered.__setitem__)
    assert str(caught.value) == (
        f"entry point 'noisy' (noisy_plugin_xyz:Thing) of group {GROUP} failed to load: first line"
    )
    assert registered == {"good": ScoreScale}
    with pytest.raises(NumbiasError, match="failed to load"):  # not marked read: the next need tries again
        load_group(GROUP, registered.__setitem__)


def test_what_register_refuses_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, ("scale", "numbias.core.scale:ScoreScale"))

    def refuse(name: str, loaded: Any) -> None:
        raise NumbiasError(f"entry point {name!r} gave {loaded.__name__}, not a task")

    with pytest.raises(NumbiasError, match="entry point 'scale' gave ScoreScale, not a task"):
        load_group(GROUP, refuse)


@dataclass(frozen=True)
class _Named:
    name: str
    value: int


NAMED_ONE, NAMED_TWO = _Named("one", 1), [_Named("two", 2), _Named("three", 3)]


def test_the_three_registries_are_one_mechanism() -> None:
    from numbias.backends.base import BACKENDS
    from numbias.data.tasks import TASKS
    from numbias.mitigations import MITIGATION_REGISTRY

    assert all(isinstance(r, Registry) for r in (BACKENDS, TASKS, MITIGATION_REGISTRY))
    assert [r.kind for r in (BACKENDS, TASKS, MITIGATION_REGISTRY)] == ["backend", "task", "mitigation"]


def test_a_registry_refuses_a_taken_name_naming_both() -> None:
    registry: Registry[str] = Registry("colour", GROUP)
    assert registry.register("red", "paints:red") == "paints:red"
    registry.register("red", "paints:red")  # the same thing again changes nothing
    with pytest.raises(NumbiasError) as caught:
        registry.register("red", "inks:red")
    assert str(caught.value) == (
        "a colour named 'red' is already registered (paints:red); inks:red cannot take "
        "its name (pass replace=True to replace it)"
    )
    registry.register("red", "inks:red", replace=True)
    assert dict(registry) == {"red": "inks:red"}


def test_a_registry_reads_its_entry_points_on_need(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _install(monkeypatch, ("scale", "numbias.core.scale:ScoreScale"))
    registry: Registry[Any] = Registry("thing", GROUP, hint=", or module:attr")
    assert dict(registry) == {} and reads == []  # the mapping is the raw table
    assert registry.find("scale") is ScoreScale and reads == [GROUP]
    assert registry.all() == {"scale": ScoreScale} and reads == [GROUP]
    with pytest.raises(NumbiasError, match=r"^unknown thing 'nope' \(known: scale, or module:attr\)$"):
        registry.find("nope")


def test_an_entry_point_of_named_things_gives_one_or_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, ("single", f"{__name__}:NAMED_ONE"), ("many", f"{__name__}:NAMED_TWO"))
    registry: Registry[_Named] = Registry("named", GROUP, of=_Named)
    assert list(registry.all()) == ["one", "two", "three"]


def test_an_entry_point_cannot_take_a_name_nor_give_another_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, ("single", f"{__name__}:NAMED_ONE"), ("error", "numbias.util.errors:NumbiasError"))
    registry: Registry[_Named] = Registry("named", GROUP, of=_Named, describe=lambda n: f"value {n.value}")
    registry.register("one", _Named("one", 9))
    with pytest.raises(
        NumbiasError,
        match=rf"^a named named 'one' is already registered \(value 9\); entry point "
        rf"'single' of group {GROUP} cannot take its name",
    ):
        registry.all()
    del registry["one"]
    with pytest.raises(
        NumbiasError, match=f"^entry point 'error' of group {GROUP} gave NumbiasError, not a numbias _Named$"
    ):
        registry.all()

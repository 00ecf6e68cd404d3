"""The one registry mechanism (tasks, backends, mitigations) and the entry points of
installed packages it reads: each group is read once, on first need, and a broken
plug-in is a one-line error naming it rather than a traceback from inside another package."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TypeVar

from numbias.util.errors import NumbiasError, first_line

_loaded: set[str] = set()
T = TypeVar("T")


def load_group(group: str, register: Callable[[str, Any], None]) -> None:
    """``register(name, loaded)`` for each entry point of ``group``, the first time only."""
    if group in _loaded:
        return
    for point in importlib.metadata.entry_points(group=group):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plug-in must not break the built-ins
            raise NumbiasError(
                f"entry point {point.name!r} ({point.value}) of group {group} failed to load: {first_line(exc)}"
            ) from None
        register(point.name, loaded)
    _loaded.add(group)


def import_ref(ref: str, what: str) -> Any:
    """The object a ``"module:attr"`` reference names; a failure is one line naming ``what``."""
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise NumbiasError(f"{what}: cannot import {ref}: {first_line(exc)}") from None


def forget(group: str) -> None:
    """Read ``group`` again on next need (after a test installs or removes a plug-in)."""
    _loaded.discard(group)


def origin(thing: Any) -> str:
    """Where a registered thing comes from, for a conflict's message: a ``module:attr``
    path as given, a function's or class's ``module:qualname``, else its type."""
    if isinstance(thing, str):
        return thing
    name = getattr(thing, "__qualname__", None)
    return f"{thing.__module__}:{name}" if name else type(thing).__name__


class Registry(MutableMapping[str, T]):
    """Things of one kind by name (tasks, backends, mitigations), with one set of rules so
    the three registries cannot drift apart: :meth:`register` refuses a name that holds
    something else (unless ``replace``), naming both; :meth:`all` and :meth:`find` read the
    entry-point group ``group`` first; an unknown name is one line listing the known ones.
    As a mapping it is the raw table (no entry points read), which tests save and restore.

    An entry point names the thing itself, or (with ``of``, for things that carry their
    ``name``) an ``of`` instance or a callable returning one or a list of them.

    >>> from numbias.util.plugins import Registry
    >>> colours = Registry("colour", "numbias.test-colours")
    >>> colours.register("red", "paints:red")
    'paints:red'
    >>> colours.register("red", "paints:red")  # the same thing again: nothing changes
    'paints:red'
    >>> colours.register("red", "inks:red")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: a colour named 'red' is already registered (paints:red); ...
    >>> colours.find("blue")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: unknown colour 'blue' (known: red)
    """

    def __init__(
        self,
        kind: str,
        group: str,
        *,
        of: type[Any] | None = None,
        hint: str = "",
        describe: Callable[[T], str] = origin,
    ) -> None:
        self.kind, self.group, self.of, self.hint, self.describe = kind, group, of, hint, describe
        self._items: dict[str, T] = {}

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __setitem__(self, name: str, thing: T) -> None:
        self._items[name] = thing

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def register(self, name: str, thing: T, *, replace: bool = False, source: str = "") -> T:
        """Add ``thing`` as ``name``; the same (equal) thing again changes nothing."""
        old = self._items.get(name, thing)
        if old is not thing and old != thing and not replace:
            raise NumbiasError(
                f"a {self.kind} named {name!r} is already registered ({self.describe(old)}); "
                f"{source or self.describe(thing)} cannot take its name "
                "(pass replace=True to replace it)"
            )
        self._items[name] = thing
        return thing

    def all(self) -> dict[str, T]:
        """Every one by name: built-in, registered and installed."""
        load_group(self.group, self._register_entry_point)
        return dict(self._items)

    def find(self, name: str) -> T:
        """The one named ``name``; the entry points are read only when it is not known yet."""
        if name not in self._items:
            load_group(self.group, self._register_entry_point)
        try:
            return self._items[name]
        except KeyError:
            raise NumbiasError(f"unknown {self.kind} {name!r} (known: {', '.join(self._items)}{self.hint})") from None

    def _register_entry_point(self, point: str, found: Any) -> None:
        source = f"entry point {point!r} of group {self.group}"
        if self.of is None:
            self.register(point, found, source=source)
            return
        found = found() if callable(found) and not isinstance(found, self.of) else found
        for thing in found if isinstance(found, (list, tuple)) else [found]:
            if not isinstance(thing, self.of):
                raise NumbiasError(f"{source} gave {type(thing).__name__}, not a numbias {self.of.__name__}")
            self.register(thing.name, thing, source=source)

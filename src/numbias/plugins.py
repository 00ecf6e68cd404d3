"""Entry points of installed packages, for every registry (tasks, backends,
mitigations): each group is read once, on first need, and a broken plug-in is a
one-line error naming it rather than a traceback from inside another package."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from numbias.errors import NumbiasError, first_line

_loaded: set[str] = set()


def load_group(group: str, register: Callable[[str, Any], None]) -> None:
    """``register(name, loaded)`` for each entry point of ``group``, the first time only."""
    if group in _loaded:
        return
    for point in importlib.metadata.entry_points(group=group):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plug-in must not break the built-ins
            raise NumbiasError(f"entry point {point.name!r} ({point.value}) of group {group} failed to load: "
                               f"{first_line(exc)}") from None
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

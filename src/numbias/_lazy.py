"""A package's public names, each imported from its module on first use (PEP 562):
importing a package, or one module in it, loads none of its siblings, so ``numbias
--help`` and a subprocess that needs one module do not pay for pandas or scipy."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exports(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names live in
    the modules ``where`` gives (relative to the package).

    >>> from numbias.core import ScoreScale
    >>> ScoreScale.__module__
    'numbias.core.scale'
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__

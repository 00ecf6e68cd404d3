"""Options named and typed where they enter: a task loader's or a backend factory's
keyword options are checked against its signature before it runs, so a mistyped
option is a one-line error before any data is read or any model loads."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import ConfigDict, PydanticSchemaGenerationError, PydanticUserError, TypeAdapter, ValidationError

from numbias.util.errors import NumbiasError

_LAX = ConfigDict(arbitrary_types_allowed=True)


def check_options(what: str, function: Callable[..., Any], options: dict[str, Any], skip: int = 0) -> dict[str, Any]:
    """``options`` with every name known to ``function`` (after its first ``skip``
    parameters), every option it requires given, and every value of its annotated type
    (a boolean only where the type takes one: ``n=true`` is not 1). A value that validates to
    something equal is kept as given (a YAML ``0`` for a float stays ``0``, so stored
    identities do not change); one that converts (``"4096"`` for an int) is converted."""
    params = list(inspect.signature(function).parameters.values())[skip:]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise NumbiasError(f"{what} has no option(s) {', '.join(unknown)} (options: {', '.join(known) or 'none'})")
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if missing := [p.name for p in params if p.kind in named and p.default is p.empty and p.name not in options]:
        raise NumbiasError(f"{what} needs option(s) {', '.join(missing)}, which no default supplies")
    hints = _hints(function)
    return {name: _typed(what, name, value, hints.get(name)) for name, value in options.items()}


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations; a signature whose annotations cannot be resolved is
    checked by name only."""
    target = function.__init__ if isinstance(function, type) else function  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except Exception:  # a plug-in's annotations may name anything; names are still checked
        return {}


def _typed(what: str, name: str, value: Any, hint: Any) -> Any:
    if hint is None:
        return value
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(hint, config=_LAX)
    except (PydanticSchemaGenerationError, PydanticUserError):
        return value
    try:
        valid = (
            adapter.validate_python(value, strict=True) if isinstance(value, bool) else adapter.validate_python(value)
        )
    except ValidationError as exc:
        raise NumbiasError(f"{what}: option {name}={value!r}: {exc.errors()[0]['msg']}") from None
    try:
        same = bool(valid == value)
    except Exception:  # values without a plain equality (arrays) are taken as validated
        same = False
    return value if same else valid

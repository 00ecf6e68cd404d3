"""Options checked against a loader's or factory's signature before it runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from numbias.util.errors import NumbiasError
from numbias.util.options import check_options


def loader(path: str, n: int | None = None, seed: int = 0, scale: float = 1.0, split: str = "test") -> None:
    """A task loader as the registry calls it: the path first, then options."""


class Factory:
    def __init__(self, model: str, context_length: int = 4096, temperatures: tuple[float, ...] = (1.0,)) -> None:
        self.model = model


def test_unknown_names_are_listed_with_what_is_known() -> None:
    with pytest.raises(
        NumbiasError,
        match=r"^task 't' has no option\(s\) sead, size \(options: n, seed, scale, "
        r"split\)$",
    ):
        check_options("task 't'", loader, {"size": 3, "sead": 1}, skip=1)
    with pytest.raises(NumbiasError, match=r"has no option\(s\) path"):
        check_options("task 't'", loader, {"path": "x"}, skip=1)  # skipped parameters are not options
    with pytest.raises(NumbiasError, match=r"\(options: none\)"):
        check_options("f", lambda: None, {"x": 1})


def test_wrong_types_name_the_option_and_value() -> None:
    with pytest.raises(NumbiasError, match=r"^backend 'b': option context_length='many': "):
        check_options("backend 'b'", Factory, {"model": "m", "context_length": "many"})
    with pytest.raises(NumbiasError, match="option n=2.5"):
        check_options("task 't'", loader, {"n": 2.5}, skip=1)


def test_equal_values_are_kept_as_given_and_others_converted() -> None:
    out = check_options("task 't'", loader, {"scale": 0, "n": "40", "seed": 3}, skip=1)
    assert out == {"scale": 0, "n": 40, "seed": 3}
    assert type(out["scale"]) is int and type(out["n"]) is int  # YAML 0 for a float stays 0; "40" becomes 40
    typed = check_options("backend 'b'", Factory, {"model": "m", "temperatures": [0.5, 2]})
    assert typed["temperatures"] == (0.5, 2.0) and isinstance(typed["temperatures"], tuple)


def test_what_cannot_be_checked_passes_by_name() -> None:
    def anything(**options: Any) -> None:
        pass

    assert check_options("f", anything, {"whatever": object}) == {"whatever": object}

    def unresolved(x: NoSuchType) -> None:  # noqa: F821 - an annotation that cannot be resolved
        pass

    assert check_options("f", unresolved, {"x": 5}) == {"x": 5}
    array = np.arange(3)

    def arrays(values: np.ndarray) -> None:
        pass

    assert check_options("f", arrays, {"values": array})["values"] is array

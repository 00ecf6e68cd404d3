"""The one state protocol of fitted objects (calibrators, conformal intervals, fitted
settings): parameters go to the constructor, as scikit-learn has it; what fitting
learned lives in trailing-underscore attributes named by ``state_keys``;
``get_state()`` gives it as JSON-able finite numbers and ``set_state(state)`` takes it
back on an object made with the same parameters. One protocol means a saved judge keeps
every part the same way, and a bad file fails the same way whichever part is bad."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from numbias.util.errors import NumbiasError


class Stateful:
    """Learned state saved and restored by name.

    >>> from numbias.util.state import Stateful
    >>> class Shift(Stateful):
    ...     state_keys = ("shift_", "table_")
    >>> fitted = Shift()
    >>> fitted.shift_, fitted.table_ = 0.5, np.array([1.0, 2.0])
    >>> fitted.get_state()
    {'shift_': 0.5, 'table_': [1.0, 2.0]}
    >>> Shift().set_state({"shift_": 0.5, "table_": [1.0, 2.0]}).table_
    array([1., 2.])
    >>> Shift().set_state({"shift_": 0.5})
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: saved state of Shift has keys ['shift_'], expected ['shift_', 'table_']
    """

    state_keys: ClassVar[tuple[str, ...]] = ()
    unfit_error: ClassVar[type[NumbiasError]] = NumbiasError
    """What non-finite learned state raises: a fitting failure, which selection may skip."""

    def get_state(self) -> dict[str, Any]:
        """The learned attributes as JSON-able values (a number, or a nested list of them)."""
        out: dict[str, Any] = {}
        for key in self.state_keys:
            value = np.asarray(getattr(self, key), dtype=float)
            if not np.all(np.isfinite(value)):
                raise self.unfit_error(f"{type(self).__name__} learned non-finite {key}")
            out[key] = value.tolist()
        return out

    def set_state(self, state: dict[str, Any]) -> Self:
        """Take learned state saved by :meth:`get_state` (on an object made with the saved parameters)."""
        if set(state) != set(self.state_keys):
            raise NumbiasError(
                f"saved state of {type(self).__name__} has keys {sorted(state)}, expected {sorted(self.state_keys)}"
            )
        for key, value in state.items():
            setattr(self, key, np.asarray(value, dtype=float) if isinstance(value, list) else float(value))
        return self

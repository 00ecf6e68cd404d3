"""A setting (scale × temperature × mitigation × rule), the data it reads at one
scale, and a setting fitted on some items (:class:`Fitted`): what selection compares,
what a calibrated judge saves, and what scores new items."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np

from numbias.core.distribution import ScoreDistribution
from numbias.core.metrics import Rule
from numbias.core.sampling import PROTOCOL_TEMPERATURE
from numbias.core.scale import ScoreScale
from numbias.mitigations._base import Calibrator
from numbias.mitigations._registry import get_mitigation
from numbias.mitigations._temperature import TemperatureScaling
from numbias.util.errors import NumbiasError, first_line
from numbias.util.state import Stateful

PAPER_TEMPERATURES = (0.4, PROTOCOL_TEMPERATURE, 1.0, 1.3)
"""The temperatures the paper's temperature scaling compares."""
FIT: Literal["fit"] = "fit"
Temperature = float | Literal["fit"]
"""A setting's temperature: a fixed value read exactly, or ``"fit"`` (fitted on dev)."""


@dataclass(frozen=True)
class Setting:
    """One way to score: a scale, the temperature the distributions are read at
    (fixed, or ``"fit"``), a mitigation applied to them, and the rule that turns
    each into an item score. The paper's default is ``Setting("0-9", "protocol", 0.7)``."""

    scale: str
    rule: Rule
    temperature: Temperature = 1.0
    mitigation: str = "none"

    def __post_init__(self) -> None:
        if self.temperature != FIT:
            object.__setattr__(self, "temperature", float(self.temperature))
        get_mitigation(self.mitigation)

    @property
    def label(self) -> str:
        t = "T fitted" if self.temperature == FIT else f"T={self.temperature:g}"
        return f"{self.scale} · {self.rule} · {t} · {self.mitigation}"

    @property
    def needs_labels(self) -> bool:
        return self.temperature == FIT or get_mitigation(self.mitigation).needs_labels


@dataclass
class SettingData:
    """Everything a setting needs at one scale: the items' distributions and the
    judge's distributions for content-free items."""

    distributions: list[ScoreDistribution]
    content_free: list[ScoreDistribution]

    @property
    def scale(self) -> ScoreScale:
        return self.distributions[0].scale


_FITTED_T: OrderedDict[tuple[tuple[int, ...], bytes], tuple[list[ScoreDistribution], float]] = OrderedDict()
_FITTED_T_SIZE = 256


def _fitted_temperature(dists: list[ScoreDistribution], human: np.ndarray) -> float:
    """The likelihood-fitted temperature of these items, memoised: it depends on neither
    rule nor mitigation, and selection asks for it for every rule × mitigation on
    each fold. Keyed by the items' identities (the entry holds the items, so their ids
    stay theirs) and the labels' bytes."""
    key = (tuple(map(id, dists)), np.asarray(human, dtype=float).tobytes())
    if key in _FITTED_T:
        _FITTED_T.move_to_end(key)
        return _FITTED_T[key][1]
    temperature = TemperatureScaling().fit(dists, human).temperature_
    _FITTED_T[key] = (dists, temperature)
    if len(_FITTED_T) > _FITTED_T_SIZE:
        _FITTED_T.popitem(last=False)
    return temperature


class Fitted(Stateful):
    """A setting fitted on some items; ``predict`` scores any items at its scale:
    read at the (fitted) temperature, then the mitigation's calibrator (with the
    setting's rule) gives the scores. Its state (the one protocol, the setting being its
    parameters) nests the calibrator's parameters and state: ``Fitted(setting).set_state(saved)``."""

    state_keys: ClassVar[tuple[str, ...]] = ("temperature_", "params", "calibrator")

    def __init__(
        self, setting: Setting, temperature: float = float("nan"), calibrator: Calibrator | None = None
    ) -> None:
        self.setting = setting
        self.temperature_ = temperature
        self.calibrator = calibrator if calibrator is not None else get_mitigation(setting.mitigation).make()

    @classmethod
    def fit(cls, setting: Setting, data: SettingData, idx: np.ndarray, human: np.ndarray | None) -> Fitted:
        """``human`` is on the judge's scale, aligned with ``idx`` (None: label-free)."""
        if setting.needs_labels and human is None:
            raise NumbiasError(f"setting {setting.label} needs human scores to fit")
        dists = [data.distributions[i] for i in idx]
        if setting.temperature == FIT and human is not None:  # FIT needs labels: human is given (checked above)
            temperature = _fitted_temperature(dists, human)
        else:
            temperature = float(setting.temperature)
        free = [d.at(temperature) for d in data.content_free]
        calibrator = get_mitigation(setting.mitigation).make().set_params(rule=setting.rule)
        calibrator.fit([d.at(temperature) for d in dists], human, content_free=free)
        return cls(setting, temperature, calibrator)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        if not distributions:
            return np.zeros(0)
        return self.calibrator.predict([d.at(self.temperature_) for d in distributions])

    def get_state(self) -> dict[str, Any]:
        """The temperature, the calibrator's parameters and its learned state, as JSON."""
        params = self.calibrator.get_params(deep=False)
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NumbiasError(
                f"setting {self.setting.label}: calibrator parameters cannot be saved as JSON: {first_line(exc)}"
            ) from None
        return {"temperature_": self.temperature_, "params": params, "calibrator": self.calibrator.get_state()}

    def set_state(self, state: dict[str, Any]) -> Self:
        """Take what :meth:`get_state` gave (as saved in JSON): the registered mitigation's
        calibrator, its saved parameters (none saved, as in format /1: the factory's) and
        its learned state."""
        if "temperature_" not in state:
            raise NumbiasError(f"saved state for {self.setting.label} has no temperature_")
        calibrator = get_mitigation(self.setting.mitigation).make()
        params = {**state.get("params", {}), "rule": self.setting.rule}
        if unknown := sorted(set(params) - set(calibrator.get_params(deep=False))):
            raise NumbiasError(f"saved state for {self.setting.label} has unknown calibrator parameter(s) {unknown}")
        self.calibrator = calibrator.set_params(**params).set_state(state.get("calibrator", {}))
        self.temperature_ = float(state["temperature_"])
        return self

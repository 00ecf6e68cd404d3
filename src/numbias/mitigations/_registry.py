"""Mitigations by name: one open registry (the one :class:`numbias.util.plugins.Registry`
mechanism), so configs, selection and saved judges reach a calibrator by its name
whether numbias, the user or an installed package provides it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from numbias.mitigations._base import Calibrator
from numbias.util.errors import NumbiasError
from numbias.util.plugins import Registry, import_ref, origin

ENTRY_POINTS = "numbias.mitigations"
"""Installed packages add mitigations under this entry-point group: each entry point
names a :class:`MitigationSpec`, or a callable returning one or a list of them."""


@dataclass(frozen=True)
class MitigationSpec:
    """A mitigation by name: what builds its calibrator (a callable, or ``"module:attr"``
    imported on first use), the family whose best member the paper-style table reports,
    whether fitting reads human scores, and its row label in that table.

    >>> from numbias import all_mitigations
    >>> spec = all_mitigations()["isotonic"]
    >>> spec
    MitigationSpec(name='isotonic', factory=<class '...IsotonicMapping'>, family='score mapping',
    needs_labels=True, title='isotonic mapping')
    >>> spec.make()
    IsotonicMapping()
    """

    name: str
    factory: Callable[..., Calibrator] | str
    family: str
    needs_labels: bool
    title: str = ""

    def __post_init__(self) -> None:
        if not self.name or " · " in self.name or not self.family:
            raise NumbiasError(f"a mitigation needs a name without ' · ' and a family, got {self.name!r}")
        if not self.title:
            object.__setattr__(self, "title", self.name)

    def make(self) -> Calibrator:
        """A fresh calibrator with the factory's parameters."""
        factory = self.factory
        if isinstance(factory, str):
            factory = import_ref(factory, f"mitigation {self.name!r}")
        calibrator = factory()
        if not isinstance(calibrator, Calibrator) or "rule" not in calibrator.get_params():
            raise NumbiasError(
                f"mitigation {self.name!r}: its factory gave {type(calibrator).__name__}, "
                "not a numbias Calibrator with a rule parameter"
            )
        return calibrator


MITIGATION_REGISTRY: Registry[MitigationSpec] = Registry(
    "mitigation", ENTRY_POINTS, of=MitigationSpec, describe=lambda spec: origin(spec.factory)
)
"""Every known mitigation by name: built-in (registered by ``numbias.mitigations`` as it
loads), registered, and (once read) installed."""


def register_mitigation(
    name: str,
    factory: Callable[..., Calibrator] | str,
    family: str,
    needs_labels: bool,
    title: str | None = None,
    *,
    replace: bool = False,
) -> MitigationSpec:
    """Add a mitigation by name, for configs, selection and saved judges. ``factory``
    builds a :class:`Calibrator` with no arguments (a class, or ``"module:attr"``);
    ``title`` is its row in the paper-style table (default: the name).

    >>> from numbias import IsotonicMapping, QuantileMapping, all_mitigations, register_mitigation
    >>> from numbias.mitigations import Setting
    >>> spec = register_mitigation("isotonic-median", lambda: IsotonicMapping(rule="median"), "score mapping", True)
    >>> all_mitigations()["isotonic-median"] is spec, spec.title, spec.make()
    (True, 'isotonic-median', IsotonicMapping(rule='median'))
    >>> Setting("0-9", "expected", 1.0, "isotonic-median").needs_labels
    True
    >>> register_mitigation("isotonic", QuantileMapping, "score mapping", True)
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: a mitigation named 'isotonic' is already registered ...
    """
    return MITIGATION_REGISTRY.register(
        name, MitigationSpec(name, factory, family, needs_labels, title or ""), replace=replace
    )


def all_mitigations() -> dict[str, MitigationSpec]:
    """Every mitigation by name: built-in, registered and installed.

    >>> from numbias import all_mitigations
    >>> found = all_mitigations()
    >>> found["none"].title, found["beta"].family, found["beta"].needs_labels, found["batch"].needs_labels
    ('original', 'distribution calibration', True, False)
    """
    return MITIGATION_REGISTRY.all()


def get_mitigation(name: str) -> MitigationSpec:
    """A mitigation by name, installed ones read only when it is not known yet."""
    return MITIGATION_REGISTRY.find(name)

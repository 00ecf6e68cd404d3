"""numbias: find, measure and remove numerical bias in LLM-as-a-judge evaluators.

Each public name is imported on first use, so ``numbias`` itself loads at once: the
command line handles Ctrl-C from its first moment, before pandas, scipy and the studies
are read, and ``numbias --help`` does not wait for them."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_WHERE = {
    "Backend": "numbias.backends",
    "BatchCalibration": "numbias.mitigation",
    "BetaCalibration": "numbias.mitigation",
    "CalibratedJudge": "numbias.calibrated",
    "Calibrator": "numbias.mitigation",
    "ContextualCalibration": "numbias.mitigation",
    "Dataset": "numbias.data",
    "DistributionCalibrator": "numbias.mitigation",
    "IsotonicMapping": "numbias.mitigation",
    "MitigationSpec": "numbias.mitigation",
    "NumbiasError": "numbias.errors",
    "Prompt": "numbias.prompt",
    "PromptTemplate": "numbias.prompt",
    "QuantileMapping": "numbias.mitigation",
    "RunConfig": "numbias.study",
    "ScoreDistribution": "numbias.distribution",
    "ScoreMapping": "numbias.mitigation",
    "ScoreScale": "numbias.scale",
    "StudyResults": "numbias.study",
    "Task": "numbias.tasks",
    "TaskConfig": "numbias.tasks",
    "TemperatureScaling": "numbias.mitigation",
    "align": "numbias.align",
    "all_backends": "numbias.backends",
    "all_mitigations": "numbias.mitigation",
    "all_tasks": "numbias.tasks",
    "compare": "numbias.compare",
    "create_backend": "numbias.backends",
    "load_file": "numbias.data",
    "mitigate": "numbias.mitigate",
    "register_backend": "numbias.backends",
    "register_mitigation": "numbias.mitigation",
    "register_task": "numbias.tasks",
    "run": "numbias.study",
    "score": "numbias.scoring",
    "write": "numbias.report",
}
"""Where each public name lives."""

__all__ = [
    "Backend",
    "BatchCalibration",
    "BetaCalibration",
    "CalibratedJudge",
    "Calibrator",
    "ContextualCalibration",
    "Dataset",
    "DistributionCalibrator",
    "IsotonicMapping",
    "MitigationSpec",
    "NumbiasError",
    "Prompt",
    "PromptTemplate",
    "QuantileMapping",
    "RunConfig",
    "ScoreDistribution",
    "ScoreMapping",
    "ScoreScale",
    "StudyResults",
    "Task",
    "TaskConfig",
    "TemperatureScaling",
    "align",
    "all_backends",
    "all_mitigations",
    "all_tasks",
    "compare",
    "create_backend",
    "load_file",
    "mitigate",
    "register_backend",
    "register_mitigation",
    "register_task",
    "run",
    "score",
    "write",
]
__version__ = "0.1.0"




def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'numbias' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


class _Package(types.ModuleType):
    """The package, whose public functions ``align``, ``compare`` and ``mitigate`` keep
    their names when their modules (``numbias.align`` …) are imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

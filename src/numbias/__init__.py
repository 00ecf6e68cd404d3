"""numbias: find, measure and remove numerical bias in LLM-as-a-judge evaluators.

Each public name is imported on first use, so ``numbias`` itself loads at once: the
command line handles Ctrl-C from its first moment, before pandas, scipy and the studies
are read, and ``numbias --help`` does not wait for them."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Backend": "numbias.backends",
    "BatchCalibration": "numbias.mitigations",
    "BetaCalibration": "numbias.mitigations",
    "CalibratedJudge": "numbias.studies.calibrated",
    "Calibrator": "numbias.mitigations",
    "ContextualCalibration": "numbias.mitigations",
    "Dataset": "numbias.data.dataset",
    "DistributionCalibrator": "numbias.mitigations",
    "IsotonicMapping": "numbias.mitigations",
    "MitigationSpec": "numbias.mitigations",
    "NumbiasError": "numbias.util.errors",
    "Prompt": "numbias.data.prompt",
    "PromptTemplate": "numbias.data.prompt",
    "QuantileMapping": "numbias.mitigations",
    "RunConfig": "numbias.studies.bias",
    "ScoreDistribution": "numbias.core.distribution",
    "ScoreMapping": "numbias.mitigations",
    "ScoreScale": "numbias.core.scale",
    "StudyResults": "numbias.studies.bias",
    "Task": "numbias.data.tasks",
    "TaskConfig": "numbias.data.tasks",
    "TemperatureScaling": "numbias.mitigations",
    "align": "numbias.studies.alignment",
    "all_backends": "numbias.backends",
    "all_mitigations": "numbias.mitigations",
    "all_tasks": "numbias.data.tasks",
    "compare": "numbias.studies.comparison",
    "create_backend": "numbias.backends",
    "load_file": "numbias.data.dataset",
    "mitigate": "numbias.studies.mitigation",
    "register_backend": "numbias.backends",
    "register_mitigation": "numbias.mitigations",
    "register_task": "numbias.data.tasks",
    "run": "numbias.studies.bias",
    "score": "numbias.studies.scoring",
    "write": "numbias.report.build",
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

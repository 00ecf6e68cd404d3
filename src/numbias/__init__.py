"""numbias: find, measure and remove numerical bias in LLM-as-a-judge evaluators."""

from numbias.align import align
from numbias.backends import Backend, create_backend, register_backend
from numbias.calibrated import CalibratedJudge
from numbias.data import Dataset, load_file
from numbias.distribution import ScoreDistribution
from numbias.errors import NumbiasError
from numbias.mitigate import mitigate
from numbias.mitigation import (
    BatchCalibration,
    BetaCalibration,
    Calibrator,
    ContextualCalibration,
    DistributionCalibrator,
    IsotonicMapping,
    MitigationSpec,
    QuantileMapping,
    ScoreMapping,
    TemperatureScaling,
    all_mitigations,
    register_mitigation,
)
from numbias.prompt import Prompt, PromptTemplate
from numbias.report import write
from numbias.scale import ScoreScale
from numbias.scoring import score
from numbias.study import RunConfig, StudyResults, run
from numbias.tasks import Task, TaskConfig, all_tasks, register_task

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
    "all_mitigations",
    "all_tasks",
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



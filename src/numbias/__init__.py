"""numbias: find, measure and remove numerical bias in LLM-as-a-judge evaluators."""

from numbias.backends import Backend, create_backend, register_backend
from numbias.calibrated import CalibratedJudge
from numbias.distribution import ScoreDistribution
from numbias.errors import NumbiasError
from numbias.mitigation import (
    BatchCalibration,
    BetaCalibration,
    ContextualCalibration,
    IsotonicMapping,
    QuantileMapping,
    TemperatureScaling,
)
from numbias.prompt import Prompt, PromptTemplate
from numbias.scale import ScoreScale
from numbias.study import RunConfig, StudyResults, run

__all__ = [
    "Backend",
    "BatchCalibration",
    "BetaCalibration",
    "CalibratedJudge",
    "ContextualCalibration",
    "IsotonicMapping",
    "QuantileMapping",
    "TemperatureScaling",
    "NumbiasError",
    "Prompt",
    "PromptTemplate",
    "RunConfig",
    "ScoreDistribution",
    "ScoreScale",
    "StudyResults",
    "create_backend",
    "register_backend",
    "run",
]
__version__ = "0.1.0"

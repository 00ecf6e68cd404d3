"""numbias: find, measure and remove numerical bias in LLM-as-a-judge evaluators."""

from numbias.backends import Backend, create_backend, register_backend
from numbias.distribution import ScoreDistribution
from numbias.errors import NumbiasError
from numbias.prompt import Prompt, PromptTemplate
from numbias.scale import ScoreScale
from numbias.study import RunConfig, StudyResults, run

__all__ = [
    "Backend",
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

"""The transformers backend on the embedded SmolLM2 (its GGUF de-quantised by
transformers), checked against the llama.cpp backend on the same prompts."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from numbias.core.distribution import stack
from numbias.core.scale import ScoreScale
from numbias.data.tasks import TASKS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
    reason="transformers / torch not installed (pip install 'numbias[hf]')",
)


@pytest.fixture(scope="module")
def hf_smollm2(smollm2):
    from numbias.backends.hf import TransformersBackend

    return TransformersBackend("smollm2-135m-instruct", batch_size=4)


def _prompts(scale: ScoreScale, n: int):
    words = TASKS["vader"].load(n=n, seed=11).frame["word"]
    return [TASKS["vader"].template.fill({"word": w}, scale, chat=True) for w in words]


def _vectors(dists) -> np.ndarray:
    """One row per item: the scores' probabilities, then below / above / other."""
    return np.hstack(stack(list(dists)))


@pytest.mark.model
@pytest.mark.parametrize("scale_text", ["0-9", "1-5", "1-10", "reversed:1-5", "letters:A-E"])
def test_agrees_with_llamacpp(hf_smollm2, smollm2, scale_text: str) -> None:
    scale = ScoreScale.parse(scale_text)
    prompts = _prompts(scale, 10)
    assert hf_smollm2.tokenize(prompts[0]) == smollm2.tokenize(prompts[0])
    ours = list(hf_smollm2.score(prompts, scale))
    tv = 0.5 * np.abs(_vectors(ours) - _vectors(smollm2.score(prompts, scale))).sum(axis=1)
    # De-quantised float32 weights against llama.cpp's Q4_1 kernels: the bound.
    assert max(tv) < 0.05, tv
    for d in ours:
        assert d.total == pytest.approx(1.0, abs=1e-6)
        assert set(d.tempered) == set(hf_smollm2.temperatures) - {1.0}


@pytest.mark.model
def test_batching_changes_nothing(hf_smollm2) -> None:
    """Left padding and the tree mask keep items independent of their batch."""
    scale = ScoreScale(1, 10)
    prompts = _prompts(scale, 3)
    together = list(hf_smollm2.score(prompts, scale))
    alone = [next(hf_smollm2.score([p], scale)) for p in prompts]
    np.testing.assert_allclose(_vectors(together), _vectors(alone), atol=1e-5)


@pytest.mark.model
def test_sampling_is_seeded(hf_smollm2) -> None:
    prompts = _prompts(ScoreScale(0, 9), 2)
    kwargs = dict(n=6, temperature=0.7, max_tokens=5)
    first = list(hf_smollm2.sample(prompts, seed=1, **kwargs))
    assert first == list(hf_smollm2.sample(prompts, seed=1, **kwargs))
    assert first != list(hf_smollm2.sample(prompts, seed=2, **kwargs))
    assert all(len(texts) == 6 for texts in first)


@pytest.mark.model
def test_study_runs_on_transformers(tmp_path, hf_smollm2) -> None:
    from numbias.judge.config import JudgeConfig
    from numbias.judge.judging import Judge
    from numbias.studies.bias import run

    judge = {"model": "smollm2-135m-instruct", "backend": "transformers"}
    assert Judge(JudgeConfig(**judge)).identity["backend"] == "transformers"
    results = run(
        {"judges": [judge], "tasks": [{"name": "vader", "options": {"n": 6}}], "scales": ["1-5"], "out": str(tmp_path)}
    )
    summary = results.summary
    assert len(summary) == 3  # greedy may be constant on six words (NaN r); the expectation is not
    assert summary.loc[summary.rule == "expected", "pearson"].notna().all()


@pytest.mark.slow
def test_bad_options_are_one_line_errors() -> None:
    from numbias.backends import create_backend
    from numbias.util.errors import NumbiasError

    with pytest.raises(NumbiasError, match="no option"):
        create_backend("transformers", model="smollm2-135m-instruct", prune=1e-4)
    with pytest.raises(NumbiasError, match="unknown torch dtype"):
        create_backend("transformers", model="smollm2-135m-instruct", dtype="float7")
    with pytest.raises(NumbiasError, match="could not load"):
        create_backend("transformers", model="/nonexistent/folder-of-a-model")

"""Real-model checks on the embedded SmolLM2-135M-Instruct (llama.cpp, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from numbias.core.sampling import categorize
from numbias.core.scale import ScoreScale
from numbias.data.tasks import TASKS

SCALES = ["0-9", "1-5", "1-10", "1-100"]


def _prompts(backend, scale: ScoreScale, n: int):
    words = TASKS["vader"].load(n=n, seed=11).frame["word"]
    return [TASKS["vader"].template.fill({"word": w}, scale, chat=backend.chat) for w in words]


@pytest.mark.model
@pytest.mark.parametrize("scale_text", SCALES)
def test_trie_equals_forced_choice(smollm2, scale_text: str) -> None:
    scale = ScoreScale.parse(scale_text)
    prompts = _prompts(smollm2, scale, 20)
    dists = list(smollm2.score(prompts, scale))
    errors = np.array([np.abs(d.probs - smollm2.forced_choice(p, scale)).max() for d, p in zip(dists, prompts)])
    # See docs/exactness.md: llama.cpp's CPU kernels are not fully batch-invariant
    # for SmolLM2's Q4_1 weights, which bounds agreement at ~1e-3 on a few prompts.
    assert np.median(errors) < 1e-4, errors
    assert errors.max() < 2e-3, errors
    for d in dists:
        assert d.total == pytest.approx(1.0, abs=1e-6)
        assert (d.probs >= 0).all() and min(d.below, d.above, d.other) >= 0


@pytest.mark.model
@pytest.mark.parametrize(
    ("scale_text", "n"), [("reversed:1-5", 20), ("letters:A-E", 20), ("words:poor,fair,good,very good,excellent", 6)]
)
def test_label_trie_equals_forced_choice(smollm2, scale_text: str, n: int) -> None:
    """Reversed digits, letters and words against forced choice (each label as the
    tokenizer spells it, then no letter or digit): the trie also walks other spellings
    (a bare space, then the label; one split more), which move a label by under 1e-4,
    and llama.cpp's cell effect (docs/exactness.md) bounds the rest."""
    scale = ScoreScale.parse(scale_text)
    prompts = _prompts(smollm2, scale, n)
    dists = list(smollm2.score(prompts, scale))
    errors = np.array([np.abs(d.probs - smollm2.forced_choice(p, scale)).max() for d, p in zip(dists, prompts)])
    assert np.median(errors) < 1e-4, errors
    assert errors.max() < 5e-3, errors
    for d in dists:
        assert d.total == pytest.approx(1.0, abs=1e-6) and d.meta["pruned"] < 2e-3
        assert (d.probs >= 0).all() and min(d.below, d.above, d.other) >= 0


@pytest.mark.model
def test_exact_distribution_agrees_with_sampling(smollm2) -> None:
    scale = ScoreScale(0, 9)
    prompts = _prompts(smollm2, scale, 3)
    dists = list(smollm2.score(prompts, scale))
    samples = list(smollm2.sample(prompts, n=2000, temperature=1.0, max_tokens=4, seed=5))
    for dist, texts in zip(dists, samples):
        counts = np.bincount([categorize(t, scale) for t in texts], minlength=scale.size + 3) / len(texts)
        exact = np.concatenate([dist.probs, [dist.below, dist.above, dist.other]])
        assert 0.5 * np.abs(counts - exact).sum() < 0.03


def _outcomes(d, t: float) -> np.ndarray:
    d = d.at(t)
    return np.r_[d.probs, d.below, d.above, d.other]


@pytest.mark.model
@pytest.mark.parametrize("scale_text", SCALES)
def test_pruning_changes_nothing_beyond_its_tolerance(scale_text: str) -> None:
    """The default study's pruning (1e-4), and the same capped at 3e-4 skipped per item,
    against the full trie at both temperatures they read: no outcome moves by more than
    3e-4. At 1-100 the walks put a few nodes in other KV cells than the full trie does,
    and llama.cpp's cell effect (docs/exactness.md) moves their rows: there the
    comparison is the cell effect's bound, 2e-3, and pruning's own part is checked on
    the full walk's rows, where it moves nothing by more than the mass skipped."""
    from numbias.backends.llamacpp import LlamaCppBackend
    from numbias.core.trie import DEFAULT_PRUNE

    scale = ScoreScale.parse(scale_text)
    full = LlamaCppBackend("smollm2-135m-instruct", temperatures=[0.7])
    pruned = LlamaCppBackend("smollm2-135m-instruct", prune=DEFAULT_PRUNE, temperatures=[0.7])
    capped = LlamaCppBackend("smollm2-135m-instruct", prune=DEFAULT_PRUNE, max_pruned=3e-4, temperatures=[0.7])
    assert "max_pruned" not in pruned.identity and capped.identity["max_pruned"] == 3e-4
    prompts = _prompts(full, scale, 6)
    tolerance = 2e-3 if scale_text == "1-100" else 3e-4
    trie, groups = full._plan(scale)
    for p, a, b, c in zip(
        prompts, full.score(prompts, scale), pruned.score(prompts, scale), capped.score(prompts, scale)
    ):
        assert b.meta["nodes"] <= a.meta["nodes"] == len(trie.nodes) - 1
        assert c.meta["pruned"] <= 3e-4 and c.meta["nodes"] >= b.meta["nodes"]
        for t in (1.0, 0.7):
            for d in (b, c):
                assert np.abs(_outcomes(d, t) - _outcomes(a, t)).max() < tolerance
        depth = max(n.depth for n in trie.nodes)
        rows, _ = full._walk_all(full.tokenize(p), trie, groups, depth)
        walked, _ = capped._walk_pruned(capped.tokenize(p), trie, groups, depth)
        kept = trie.distribution([r if w is not None else None for r, w in zip(rows, walked)], full.temperatures)
        assert kept.meta["pruned"] == pytest.approx(c.meta["pruned"], rel=0.05)
        for t in (1.0, 0.7):
            assert np.abs(_outcomes(kept, t) - _outcomes(a, t)).max() <= kept.meta["pruned"] + 1e-9


@pytest.mark.model
def test_prefix_reuse_changes_nothing(smollm2) -> None:
    from numbias.backends.llamacpp import LlamaCppBackend

    scale = ScoreScale(1, 10)
    prompts = _prompts(smollm2, scale, 6)
    fresh = LlamaCppBackend("smollm2-135m-instruct", reuse_prefix=False)
    for a, b in zip(smollm2.score(prompts, scale), fresh.score(prompts, scale)):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-9)


@pytest.mark.model
def test_prompt_longer_than_context(smollm2) -> None:
    from numbias.backends.llamacpp import LlamaCppBackend
    from numbias.data.prompt import Prompt
    from numbias.util.errors import NumbiasError

    small = LlamaCppBackend("smollm2-135m-instruct", n_ctx=512)
    with pytest.raises(NumbiasError, match="exceeds the context of 512"):
        next(small.score([Prompt(user="word " * 600)], ScoreScale(0, 9)))
    with pytest.raises(NumbiasError, match="at least 512"):
        LlamaCppBackend("smollm2-135m-instruct", n_ctx=64)


@pytest.fixture(scope="module")
def smollm2_512():
    """SmolLM2 with the smallest context llama.cpp is given (512 tokens)."""
    from conftest import judge_available

    if not judge_available("smollm2-135m-instruct"):
        pytest.skip("smollm2-135m-instruct or llama-cpp-python not installed")
    from numbias.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend("smollm2-135m-instruct", n_ctx=512)


@pytest.mark.model
@pytest.mark.parametrize("gap", [1, 2, 5])
def test_truncation_near_the_context_leaves_the_trie_its_room(gap: int, smollm2_512, tmp_path) -> None:
    """llama.cpp's walk takes a context cell per trie node of a decode group, far more than
    a score's digits: an item 1, 2 or 5 tokens short of the context, cut to fit, is scored
    at 0-9 and at 1-100 (the largest trie), with every probability accounted for."""
    import pandas as pd

    import numbias
    from numbias.data.prompt import PromptTemplate

    template = "Rate the text from {lo} to {hi}.\nText: {text}"
    scale = ScoreScale(1, 100)

    def tokens(n: int) -> int:
        return smollm2_512.count_tokens(PromptTemplate(template).fill({"text": "w " * n}, scale, chat=True))

    n = next(n for n in range(100, 600) if tokens(n) >= 512 - gap)
    assert tokens(n) == 512 - gap
    pd.DataFrame({"id": ["a"], "text": ["w " * n], "score": [3]}).to_csv(tmp_path / "near.csv", index=False)
    task = {
        "file": str(tmp_path / "near.csv"),
        "human": "score",
        "human_range": [1, 5],
        "template": template,
        "truncate": "text",
    }
    res = numbias.run(
        {
            "judges": [smollm2_512],
            "tasks": [task],
            "scales": ["0-9", "1-100"],
            "bootstrap": 20,
            "out": str(tmp_path / "o"),
        }
    )
    assert (res.items["cut"] > 0).all()
    for s in res.sets:
        assert s.distributions[0].total == pytest.approx(1.0, abs=1e-6)


def _scored_json(model: str, data, template, scales: list[str], tmp: Path, workers: int, **options: object) -> dict:
    """Each item's distribution (JSON, by scale and id) scored on a fresh store."""
    from numbias.judge.config import JudgeConfig
    from numbias.judge.judging import Judge, collect
    from numbias.judge.store import Store
    from numbias.judge.workers import close_workers

    judge = Judge(JudgeConfig(model=model, options={"temperatures": [0.7], **options}), workers=workers)
    with Store(tmp / f"{workers}-{len(list(tmp.iterdir()))}.sqlite") as store:
        sets = [collect(judge, data.name, data, template, ScoreScale.parse(s), store) for s in scales]
    close_workers()
    return {(str(s.scale), i): json.dumps(d.to_dict()) for s in sets for i, d in zip(data.ids, s.distributions)}


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.subprocess
def test_workers_and_the_scoring_order_change_no_byte(tmp_path: Path) -> None:
    """Two worker processes of one thread against one process of all threads, on the
    file's order and on the file shuffled, pruned (the default) and full: the same
    distributions byte for byte (llama.cpp's logits do not depend on the batch a
    prompt's tail is evaluated in, nor on the threads)."""
    from numbias.data.dataset import make_dataset

    data = TASKS["vader"].load(n=6, seed=4)
    frame = data.frame.sample(frac=1, random_state=1).reset_index(drop=True)
    shuffled = make_dataset(data.name, frame, fields=["word"], human_range=data.human_range)
    template, scales = TASKS["vader"].template, ["0-9", "1-10"]
    for options in ({"prune": 1e-4}, {}):
        one = _scored_json("smollm2-135m-instruct", data, template, scales, tmp_path, 1, **options)
        assert _scored_json("smollm2-135m-instruct", shuffled, template, scales, tmp_path, 2, **options) == one
        assert _scored_json("smollm2-135m-instruct", data, template, scales, tmp_path, 2, **options) == one


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.subprocess
def test_long_prompts_are_the_same_scored_whole_or_after_a_cached_prefix(shared_data: Path, tmp_path: Path) -> None:
    """DialSummEval summaries of ~650-token prompts (over llama.cpp's 512-token micro-
    batch): one process reuses each dialogue for its next summary, two workers start
    runs inside a dialogue and evaluate it whole; the distributions agree byte for byte."""
    import pandas as pd

    from numbias.data.dataset import make_dataset
    from numbias.data.prompt import PromptTemplate

    rows = pd.read_json(shared_data / "dialsumm" / "dialsumm.jsonl", lines=True)
    longest = rows.drop_duplicates("id").assign(n=lambda f: f["dialogue"].str.len()).nlargest(2, "n")["id"]
    picked = rows[rows["id"].isin(set(longest))].groupby("id", sort=False).head(2).reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "id": [f"{d}-{m}" for d, m in zip(picked["id"], picked["model_id"])],
            "dialogue": picked["dialogue"],
            "summary": picked["summary"],
            "human": 3.0,
        }
    )
    data = make_dataset("dialsumm", frame, fields=["dialogue", "summary"], human_range=(1.0, 5.0))
    template = PromptTemplate("Dialogue:\n{dialogue}\n\nSummary:\n{summary}\n\nRate the summary from {lo} to {hi}.")
    one = _scored_json("smollm2-135m-instruct", data, template, ["1-5"], tmp_path, 1, prune=1e-4)
    assert _scored_json("smollm2-135m-instruct", data, template, ["1-5"], tmp_path, 2, prune=1e-4) == one

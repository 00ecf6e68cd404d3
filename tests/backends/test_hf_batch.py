"""The transformers backend's batched tree-masked trie on a tiny random-weight Llama
(tests/tiny_hf.py), on CPU in float32: several items of different prompt lengths in one
batch read the same distributions as one item at a time, and both match the plain
model run on each prompt followed by each trie path (no cache, no padding, no tree
mask)."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie
from numbias.data.prompt import Prompt

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
        reason="transformers / torch not installed (pip install 'numbias[hf]')",
    ),
    pytest.mark.slow,
]

SCALES = ["0-10", "words:bad,okay,very good"]
"""Digits with a two-digit label (one token " 10", or "1" then "0"), and words of one and two tokens."""
PROMPTS = [Prompt("Rate " + "word " * k + "from 0 to 10.") for k in (1, 7, 3, 12, 0, 5)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """The tiny model's matrices are too small to split: with a thread per core, torch's
    threads mostly wait on each other on a busy machine (16x slower here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_hf import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-llama"))


def _vectors(dist: ScoreDistribution) -> np.ndarray:
    """Every probability a distribution holds, at T = 1 and each other temperature."""
    parts = [dist, *(dist.tempered[t] for t in sorted(dist.tempered))]
    return np.concatenate([[*d.probs, d.below, d.above, d.other] for d in parts])


def _reference(model: Any, tokens: list[int], trie: ScoreTrie) -> np.ndarray:
    """The distribution from one plain forward pass per trie node: the prompt and the
    node's path as one unpadded sequence."""
    import torch

    from numbias.core.distribution import TEMPERATURES
    from numbias.core.trie import tempered_logprobs

    rows = []
    for index, node in enumerate(trie.nodes):
        path: list[int] = []
        at = index
        while at > 0:
            path.insert(0, trie.nodes[at].token)
            at = trie.nodes[at].parent
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([tokens + path])).logits[0, -1].numpy()
        rows.append(tempered_logprobs(logits, node.gather, TEMPERATURES, node.classes))
    return _vectors(trie.distribution(rows, TEMPERATURES))


@pytest.mark.parametrize("scale_text", SCALES)
def test_a_batch_reads_what_one_item_and_the_plain_model_read(tiny: Path, scale_text: str) -> None:
    import torch
    import transformers

    from numbias.backends.hf import TransformersBackend

    scale = ScoreScale.parse(scale_text)
    backend = TransformersBackend(str(tiny), batch_size=1, chat=False)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    trie = ScoreTrie(scale, backend.pieces)
    assert len({backend.count_tokens(p) for p in PROMPTS}) == len(PROMPTS)  # left padding differs per item
    alone = list(backend.score(PROMPTS, scale))
    backend.batch_size = 4  # two batches: 4 items, then 2
    together = list(backend.score(PROMPTS, scale))
    for one, many, prompt in zip(alone, together, PROMPTS):
        np.testing.assert_allclose(_vectors(many), _vectors(one), rtol=1e-4, atol=1e-6)
        assert many.meta["n_tokens"] == one.meta["n_tokens"] == backend.count_tokens(prompt)
        assert many.meta["next_token_entropy"] == pytest.approx(one.meta["next_token_entropy"], abs=1e-5)
        reference = _reference(model, backend.tokenize(prompt), trie)
        np.testing.assert_allclose(_vectors(many), reference, rtol=1e-4, atol=1e-6)
        assert _vectors(one) == pytest.approx(reference, rel=1e-4, abs=1e-6)
    # The items differ far beyond the tolerance, so reading another prompt's cache would show.
    assert min(np.abs(_vectors(a) - _vectors(b)).max() for a, b in zip(alone, alone[1:])) > 1e-4


def _study(
    tiny: Path, out: Path, batch_size: int
) -> tuple[pd.DataFrame, list[tuple[str, str]], dict[tuple[str, str], dict]]:
    """A bias study on the tiny judge: its summary, its store's judges and its items' distributions."""
    import json
    from contextlib import closing

    from numbias.data.dataset import make_dataset
    from numbias.studies.bias import run

    words = pd.DataFrame(
        {"id": [*"abcdef"], "word": ["bad", "okay", "nice", "very good", "superb", "dull"], "human": [1, 2, 3, 4, 5, 1]}
    )
    task = {
        "dataset": make_dataset("words", words, fields=["word"], human_range=(1, 5)),
        "template": "Rate from {lo} to {hi}: {word}",
    }
    judge = {"model": str(tiny), "backend": "transformers", "options": {"batch_size": batch_size, "chat": False}}
    results = run(
        {
            "judges": [judge],
            "tasks": [task],
            "scales": SCALES,
            "rules": ["greedy", "expected"],
            "out": str(out),
            "bootstrap": 20,
        }
    )
    with closing(sqlite3.connect(out / "store.sqlite")) as db:
        judges = sorted(db.execute("SELECT key, identity FROM judges"))
        items = {(k, i): json.loads(d) for k, i, d in db.execute("SELECT key, item, dist FROM items")}
    return results.summary, judges, items


def test_a_study_stores_the_same_answers_at_any_batch_size(tiny: Path, tmp_path: Path) -> None:
    """batch_size is not part of the judge's identity: the store keys are the same, and
    the answers agree to float32 rounding (a batch's matrix shapes change the order of
    the sums, so the bytes may differ in the last digits)."""
    summary_one, judges_one, items_one = _study(tiny, tmp_path / "one", 1)
    summary_many, judges_many, items_many = _study(tiny, tmp_path / "many", 4)
    assert judges_one == judges_many and judges_one
    assert not any("batch_size" in identity for _, identity in judges_one)
    assert sorted(items_one) == sorted(items_many) and len(items_one) == 6 * len(SCALES)
    for key, stored in items_one.items():
        one, many = ScoreDistribution.from_dict(stored), ScoreDistribution.from_dict(items_many[key])
        np.testing.assert_allclose(_vectors(many), _vectors(one), rtol=1e-4, atol=1e-6)
    pd.testing.assert_frame_equal(summary_many, summary_one, rtol=1e-4, atol=1e-6)


def test_batch_size_is_checked_before_loading(tiny: Path) -> None:
    from numbias.backends import create_backend
    from numbias.util.errors import NumbiasError

    with pytest.raises(NumbiasError, match=r"^batch_size must be at least 1 \(got 0\)$"):
        create_backend("transformers", model=str(tiny), batch_size=0)

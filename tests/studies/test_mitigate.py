"""The mitigation study end to end on a fake judge: worker processes change nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import numbias
from numbias.backends.fake import FakeBackend
from numbias.data.dataset import make_dataset


def _logits(prompt, tokens) -> np.ndarray:
    """One digit then the end; the digit follows the word's length, loosely."""
    row = np.full(11, -4.0)
    if tokens:
        row[10] = 9.0
        return row
    word = prompt.user.rsplit(": ", 1)[-1]
    row[min(len(word), 9)] = 2.0
    row[(len(word) * 7) % 10] += 1.0
    return row


@pytest.fixture(scope="module")
def study() -> dict:
    judge = FakeBackend([*"0123456789", ""], _logits, eos=10)
    tasks = []
    for k in range(2):
        words = ["w" * (1 + (i * (k + 3)) % 9) for i in range(80)]
        frame = pd.DataFrame(
            {"id": [str(i) for i in range(80)], "word": words, "human": [len(w) + (i % 3) for i, w in enumerate(words)]}
        )
        tasks.append(
            {
                "dataset": make_dataset(f"words{k}", frame, fields=["word"], human_range=(0, 12)),
                "template": "Rate from {lo} to {hi}: {word}",
            }
        )
    return {
        "judges": [judge],
        "tasks": tasks,
        "scales": ["0-9", "1-5"],
        "dev": 40,
        "rules": ["expected", "protocol"],
        "mitigations": ["none", "isotonic"],
        "temperatures": [0.7, "fit"],
        "resamples": 2,
        "label_sizes": [10],
        "label_draws": 2,
        "bootstrap": 20,
    }


@pytest.mark.slow
def test_worker_processes_give_the_same_results(study: dict, tmp_path) -> None:
    one = numbias.mitigate({**study, "out": str(tmp_path / "a")})
    two = numbias.mitigate({**study, "out": str(tmp_path / "b"), "n_jobs": 2})
    pd.testing.assert_frame_equal(one.table, two.table)
    pd.testing.assert_frame_equal(one.selection, two.selection)
    pd.testing.assert_frame_equal(one.label_curve, two.label_curve)
    assert [c.chosen for c in one.comparisons] == [c.chosen for c in two.comparisons]
    assert len(one.comparisons) == 2 and set(one.table["task"]) == {"words0", "words1"}

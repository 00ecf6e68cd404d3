"""The result store: distributions back exactly as put, keyed by judge identity and item."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt
from numbias.judge.store import Store, item_slot, judge_key
from numbias.util.errors import NumbiasError

SCALE = ScoreScale(0, 2)


def _dist(first: float = 0.2) -> ScoreDistribution:
    return ScoreDistribution(SCALE, np.array([first, 0.3, 0.6 - first]), 0.05, 0.0, 0.05)


def test_store_roundtrip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    key = store.register({"a": 1})
    dist = ScoreDistribution(ScoreScale(0, 2), np.array([0.2, 0.3, 0.4]), 0.05, 0.0, 0.05)
    store.put(key, "x", dist, 12)
    assert store.done(key, ["x", "y"]) == {"x"}
    back = store.get(key, ["x"])["x"]
    np.testing.assert_array_equal(back.probs, dist.probs)
    assert (back.below, back.above, back.other, back.scale) == (0.05, 0.0, 0.05, dist.scale)
    store.close()


def test_tempered_copies_and_cut_survive_the_store(tmp_path: Path) -> None:
    hot = ScoreDistribution(SCALE, np.array([0.3, 0.3, 0.3]), 0.05, 0.0, 0.05, temperature=2.0)
    dist = ScoreDistribution(SCALE, np.array([0.1, 0.2, 0.6]), 0.05, 0.0, 0.05, tempered={2.0: hot}, meta={"cut": 7})
    with Store(tmp_path / "s.sqlite") as store:
        key = store.register({"judge": "j"})
        store.put(key, "x", dist, None)
        back = store.get(key, ["x"])["x"]
    np.testing.assert_array_equal(back.at(2.0).probs, hot.probs)
    assert back.at(2.0).temperature == 2.0 and back.meta == {"cut": 7}


def test_same_identity_same_key_whatever_the_order(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        first = store.register({"model": "m", "chat": True})
        assert store.register({"chat": True, "model": "m"}) == first == judge_key({"model": "m", "chat": True})
        other = store.register({"model": "m", "chat": False})
    assert other != first
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM judges").fetchone()[0] == 2


def test_done_and_get_see_only_their_key_and_items(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        a, b = store.register({"judge": "a"}), store.register({"judge": "b"})
        store.put(a, "x", _dist(0.1), 3)
        store.put(a, "y", _dist(0.2), 3)
        store.put(b, "x", _dist(0.3), 3)
        assert store.done(a, ["x", "y", "z"]) == {"x", "y"} and store.done(b, ["y"]) == set()
        assert sorted(store.get(a, ["y", "z"])) == ["y"]
        store.put(a, "x", _dist(0.4), 3)  # a new answer replaces the old
        assert store.get(a, ["x"])["x"].probs[0] == 0.4 and store.get(b, ["x"])["x"].probs[0] == 0.3


def test_a_reopened_store_resumes(tmp_path: Path) -> None:
    with Store(tmp_path / "deep" / "s.sqlite") as store:
        key = store.register({"judge": "j"})
        store.put(key, "x", _dist(), 1)
    with Store(tmp_path / "deep" / "s.sqlite") as store:
        assert store.done(store.register({"judge": "j"}), ["x"]) == {"x"}


def test_context_manager_closes(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        key = store.register({"judge": "j"})
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.done(key, ["x"])


def test_unusable_paths_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all, " * 100)
    with pytest.raises(NumbiasError, match="junk.sqlite is unusable"):
        Store(tmp_path / "junk.sqlite")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NumbiasError, match="is a file"):
        Store(tmp_path / "file" / "s.sqlite")


def test_item_slot_changes_with_the_prompt_not_only_the_id() -> None:
    slot = item_slot("7", Prompt("Rate good"))
    assert slot.startswith("7#") and slot == item_slot("7", Prompt("Rate good"))
    assert slot != item_slot("7", Prompt("Rate bad"))
    assert slot != item_slot("7", Prompt("Rate good", answer_prefix="Score:"))
    assert slot != item_slot("7", Prompt("Rate good", system="Be fair."))


def test_a_backends_own_reading_mode_stays_in_the_key() -> None:
    """A server read by its top log-probabilities and one read exactly are two readings
    even though both are collected as exact distributions; a backend without a mode of
    its own keys as before."""
    from numbias.backends.fake import FakeBackend
    from numbias.data.prompt import PromptTemplate
    from numbias.judge.config import JudgeConfig
    from numbias.judge.judging import Judge, setting_identity

    def judge(mode: str | None) -> Judge:
        backend = FakeBackend([*"0123456789", ""], lambda prompt, tokens: np.zeros(11), eos=10)
        if mode is not None:
            backend.identity["mode"] = mode
        return Judge(JudgeConfig(model="m", instance=backend))

    template, scale, exact = PromptTemplate("Rate {word} from {lo} to {hi}."), ScoreScale(0, 9), {"mode": "exact"}
    keys = {m: judge_key(setting_identity(judge(m), template, scale, exact)) for m in ("topk", "exact", None)}
    assert keys["topk"] != keys["exact"]
    assert setting_identity(judge("topk"), template, scale, exact)["backend_mode"] == "topk"
    assert "backend_mode" not in setting_identity(judge("exact"), template, scale, exact)
    assert "backend_mode" not in setting_identity(judge(None), template, scale, exact)

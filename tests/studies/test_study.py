"""The study pipeline: resume after SIGKILL, no model calls when finished, report escaping."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numbias.judge.judging as judge_module
from numbias.backends import register_backend
from numbias.backends.fake import FakeBackend
from numbias.judge.config import RunConfig
from numbias.report.build import write
from numbias.studies.bias import run
from numbias.util.errors import NumbiasError

PIECES = [str(d) for d in range(10)] + [" ", "x", ""]


def _fake(model: str, **_: object) -> FakeBackend:
    def logits(prompt, context):
        seed = sum(map(ord, prompt.user)) + len(context)
        row = np.random.default_rng(seed).normal(0, 1.5, len(PIECES))
        if context:
            row[-1] = 5.0
        return row

    return FakeBackend(PIECES, logits, eos=len(PIECES) - 1)


@pytest.fixture(autouse=True)
def _test_fake() -> None:
    """The fake judge by name, for this module's tests (conftest restores the registry)."""
    register_backend("test-fake", _fake)


def test_finished_config_makes_no_model_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {
        "judges": [{"model": "toy", "backend": "test-fake"}],
        "tasks": [{"name": "vader", "options": {"n": 30}}],
        "scales": ["0-9", "1-5"],
        "out": str(tmp_path),
        "bootstrap": 100,
    }
    first = run(cfg)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a finished configuration must not create a backend")

    monkeypatch.setattr(judge_module, "create_backend", refuse)
    second = run(cfg)
    pd.testing.assert_frame_equal(first.summary, second.summary)
    folder = write(second)
    assert {p.name for p in folder.iterdir()} >= {"items.csv", "summary.json", "config.yaml", "report.html"}


def test_report_escapes_data_text(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    rows = [{"id": i, "text": f"<script>alert({i})</script> & more", "score": i % 5} for i in range(12)]
    pd.DataFrame(rows).to_csv(data, index=False)
    cfg = RunConfig.parse(
        {
            "judges": [{"model": "toy", "backend": "test-fake"}],
            "tasks": [
                {
                    "name": "gecqe",
                    "path": str(data),
                    "label": "<b>mine</b>",
                    "template": "Rate {source} / {correction} from {lo} to {hi}",
                }
            ],
            "scales": ["0-9"],
            "out": str(tmp_path / "out"),
            "bootstrap": 50,
        }
    )
    pd.DataFrame(
        {"source": [r["text"] for r in rows], "correction": "ok", "human": [r["score"] for r in rows], "id": range(12)}
    ).to_csv(data, index=False)
    page = (write(run(cfg)) / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<b>mine</b>" not in page and "&lt;b&gt;mine&lt;/b&gt;" in page


def test_data_sets_whose_ids_collide_do_not_share_answers(tmp_path: Path) -> None:
    """MLQE-PE numbers each language pair's rows alike: the store keys items by id and
    prompt, so the second pair is scored, not read back from the first."""
    paths = []
    for name, words in (("a", ["good", "bad", "fine", "awful"]), ("b", ["tree", "river", "cloud", "stone"])):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"id": range(4), "source": words, "correction": "ok", "human": [1, 2, 3, 4]}).to_csv(
            path, index=False
        )
        paths.append(path)
    tasks = [
        {"name": "gecqe", "path": str(p), "label": p.stem, "template": "Rate {source} from {lo} to {hi}"} for p in paths
    ]
    results = run(
        {
            "judges": [{"model": "toy", "backend": "test-fake"}],
            "tasks": tasks,
            "scales": ["0-9"],
            "rules": ["expected"],
            "out": str(tmp_path / "out"),
            "bootstrap": 50,
        }
    )
    items = results.items.pivot(index="id", columns="task", values="expected")
    assert (items["a"] != items["b"]).all(), items


class _Probed:
    """A backend whose identity is learned at start (as a server's probed mode is), and
    says nothing of ``chat`` (the configured option fills it in)."""

    identity_after_start = True
    built: list[bool] = []

    def __new__(cls, model: str, *, chat: bool = True) -> FakeBackend:  # type: ignore[misc]
        cls.built.append(chat)
        backend = _fake(model)
        backend.identity = {"backend": "test-probed", "model": model, "probe": "served"}
        return backend


def test_backend_identified_at_start_is_built_once(tmp_path: Path) -> None:
    register_backend("test-probed", _Probed)
    _Probed.built.clear()
    cfg = {
        "judges": [{"model": "toy", "backend": "test-probed", "options": {"chat": False}}],
        "tasks": [{"name": "vader", "options": {"n": 8}}],
        "scales": ["0-9", "1-5"],
        "out": str(tmp_path),
        "bootstrap": 20,
    }
    results = run(cfg)
    assert _Probed.built == [False]  # once, with the configured chat
    assert len(results.items) == 16
    db = sqlite3.connect(tmp_path / "store.sqlite")
    identities = [json.loads(i) for (i,) in db.execute("SELECT identity FROM judges")]
    assert {(i["probe"], i["chat"]) for i in identities} == {("served", False)}


class _Described:
    """A backend that resolves ``chat: null`` (auto) in its ``describe`` without loading."""

    built: list[bool | None] = []

    @classmethod
    def describe(cls, model: str, *, chat: bool | None = None) -> dict[str, object]:
        return {"backend": "test-described", "model": model, "chat": True if chat is None else chat}

    def __new__(cls, model: str, *, chat: bool | None = None) -> FakeBackend:  # type: ignore[misc]
        cls.built.append(chat)
        return _fake(model)


def test_resolved_chat_reaches_any_backend_that_takes_it(tmp_path: Path) -> None:
    register_backend("test-described", _Described)
    _Described.built.clear()
    run(
        {
            "judges": [{"model": "toy", "backend": "test-described"}],
            "tasks": [{"name": "vader", "options": {"n": 8}}],
            "scales": ["0-9"],
            "out": str(tmp_path),
            "bootstrap": 20,
        }
    )
    assert _Described.built == [True]  # what describe resolved, not the factory's own auto


def test_context_error_names_item(tmp_path: Path) -> None:
    def tiny(model: str, **_: object) -> FakeBackend:
        backend = _fake(model)
        original = backend.score

        def score(prompts, scale):
            for p in prompts:
                if "zzz" in p.user:
                    raise NumbiasError("prompt of 9999 tokens exceeds the context of 64")
                yield from original([p], scale)

        backend.score = score  # type: ignore[method-assign]
        return backend

    register_backend("test-tiny", tiny)
    data = tmp_path / "d.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "source": ["s", "zzz", "t"], "correction": "c", "human": [1, 2, 3]}).to_csv(
        data, index=False
    )
    cfg = {
        "judges": [{"model": "toy", "backend": "test-tiny"}],
        "tasks": [{"name": "gecqe", "path": str(data)}],
        "scales": ["0-9"],
        "out": str(tmp_path / "o"),
    }
    with pytest.raises(NumbiasError, match="item 'b' of gecqe-grammaticality: prompt of 9999 tokens"):
        run(cfg)
    db = sqlite3.connect(tmp_path / "o" / "store.sqlite")
    stored = [item for (item,) in db.execute("SELECT item FROM items")]
    # computed results kept: items are scored in prompt order (sources s, t, then zzz)
    assert sorted(item.split("#")[0] for item in stored) == ["a", "c"]


@pytest.mark.subprocess
@pytest.mark.model
def test_resume_after_sigkill(tmp_path: Path, smollm2) -> None:
    config = tmp_path / "study.yaml"
    base = {
        "judges": ["smollm2-135m-instruct"],
        "tasks": [{"name": "vader", "options": {"n": 60}}],
        "scales": ["0-9"],
        "bootstrap": 200,
    }
    config.write_text(json.dumps({**base, "out": str(tmp_path / "killed")}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "numbias", "run", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = tmp_path / "killed" / "store.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            done = sqlite3.connect(store).execute("SELECT COUNT(*) FROM items").fetchone()[0]
        except sqlite3.Error:
            continue
        if done >= 15:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sqlite3.connect(store).execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert 15 <= done < 60
    rerun = subprocess.run([sys.executable, "-m", "numbias", "run", str(config)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    clean = run({**base, "out": str(tmp_path / "clean")})
    resumed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    expected = json.loads(clean.summary.to_json(orient="records"))
    assert len(resumed) == len(expected)
    for a, b in zip(resumed, expected):
        for key, value in b.items():
            if isinstance(value, float):
                assert a[key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
            else:
                assert a[key] == value


@pytest.mark.model
def test_default_judge_reads_only_the_temperatures_the_rules_use() -> None:
    from numbias.judge.judging import Judge

    assert Judge(RunConfig.parse({}).judges[0]).identity["temperatures"] == [0.7, 1.0]
    assert Judge(RunConfig.parse({"sampling": {"temperature": 1.3}}).judges[0]).identity["temperatures"] == [1.0, 1.3]
    assert "temperatures" not in RunConfig.parse({"judges": ["smollm2-135m-instruct"]}).judges[0].options

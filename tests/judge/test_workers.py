"""Scoring order and worker processes (numbias.judge.workers): items scored in the order
that shares the most prompt prefix, outputs in the file's order, and workers that give
the same store and results as one process, stop on an item's error, a dead worker or
Ctrl-C with one line, and keep what was stored."""

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

from numbias.backends.fake import FakeBackend
from numbias.core.scale import ScoreScale
from numbias.data.dataset import make_dataset
from numbias.data.prompt import Prompt, PromptTemplate
from numbias.judge.config import JudgeConfig
from numbias.judge.judging import Judge, collect
from numbias.judge.store import Store
from numbias.judge.workers import (
    DEFAULT_MIN_ITEMS,
    MAX_CHUNK,
    STOPPED,
    Shards,
    chunks,
    plan,
    prefix_order,
    scored,
)
from numbias.util.errors import NumbiasError

TESTS = Path(__file__).resolve().parents[1]
PIECES = [*"0123456789", ""]
TEMPLATE = "Rate {word} from {lo} to {hi}."


def _logits(prompt: Prompt, tokens: tuple[int, ...]) -> np.ndarray:
    row = np.full(11, -4.0)
    row[10 if tokens else len(prompt.user) % 10] = 2.0
    return row


class Recording(FakeBackend):
    """The fake judge, noting the prompts in the order it is asked them."""

    def __init__(self, order_free: bool = True) -> None:
        super().__init__(PIECES, _logits, eos=10)
        self.order_free = order_free
        self.asked: list[str] = []

    def score(self, prompts, scale):  # noqa: ANN001, ANN201 - the Backend protocol's signature
        for prompt, dist in zip(prompts, super().score(prompts, scale)):
            self.asked.append(prompt.user)
            yield dist


def test_prefix_order_puts_shared_prefixes_side_by_side() -> None:
    prompts = [Prompt(f"Article {a}. Summary {s}.") for s in "xyz" for a in "BAC"]
    order = prefix_order(prompts)
    assert [prompts[i].user for i in order] == sorted(p.user for p in prompts)
    assert [prompts[i].user[:9] for i in order] == ["Article A"] * 3 + ["Article B"] * 3 + ["Article C"] * 3
    system = [Prompt("b", system="2"), Prompt("a", system="1"), Prompt("a", system=None)]
    assert prefix_order(system) == [2, 1, 0]


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("n", [1, 5, 37, 300])
def test_chunks_cover_every_item_in_order(n: int, workers: int) -> None:
    texts = [f"{i:05d}" for i in range(n)]
    runs = chunks(texts, workers)
    assert [i for run in runs for i in run] == list(range(n))
    assert all(1 <= len(run) <= 2 * MAX_CHUNK for run in runs)
    if n >= 2 * workers:
        assert len(runs) >= workers  # every worker gets work
    assert len(runs[-1]) <= max(len(runs[0]), 2)  # the runs shrink towards the end


def test_chunks_end_between_groups_of_a_shared_prefix() -> None:
    """96 items, 6 articles of 16 summaries: the runs end where the article changes."""
    texts = [f"article {a} " + "x" * 500 + f" summary {s:02d}" for a in range(6) for s in range(16)]
    runs = chunks(texts, 2)
    starts = {run.start for run in runs}
    assert {16 * a for a in range(6)} <= starts
    article_starts = sum(1 for run in runs if run.start % 16 == 0)
    assert article_starts == 6 and len(runs) - article_starts <= 6  # few runs start inside an article


class Threaded:
    """A factory that takes threads, as llama.cpp's does."""

    def __init__(self, model: str, n_threads: int | None = None, n_gpu_layers: int = 0) -> None: ...


def test_the_default_is_a_worker_per_core_for_a_cpu_threaded_judge() -> None:
    """Workers by default only where the benchmark measured them: CPU threads (llama.cpp
    without GPU layers), enough items to share, one worker per core, at most four."""
    assert plan(True, Threaded, {"model": "m"}, None, 1000, cores=2) == Shards(
        2, Threaded, {"model": "m", "n_threads": 1}
    )
    assert plan(True, Threaded, {}, None, 1000, cores=16) == Shards(4, Threaded, {"n_threads": 4})
    assert plan(True, Threaded, {"n_threads": 1}, None, 1000, cores=3).workers == 3
    assert plan(True, Threaded, {"n_threads": 2}, None, 1000, cores=2) is None  # the cores are taken
    assert plan(True, Threaded, {}, None, DEFAULT_MIN_ITEMS - 1, cores=2) is None  # too few to share
    assert plan(True, Threaded, {}, None, DEFAULT_MIN_ITEMS, cores=2).workers == 2
    assert plan(True, Threaded, {"n_gpu_layers": -1}, None, 1000, cores=2) is None  # a GPU judge
    assert plan(True, FakeBackend, {}, None, 1000, cores=16) is None  # no threads to share
    assert plan(True, Threaded, {}, None, 1000, cores=1) is None
    assert plan(False, Threaded, {}, 2, 100, cores=2) is None  # its answers may depend on order


def test_asked_for_workers_split_the_threads() -> None:
    three = plan(True, Threaded, {"model": "m"}, 3, 100, cores=2)
    assert three == Shards(3, Threaded, {"model": "m", "n_threads": 1})
    assert plan(True, Threaded, {"n_threads": 4}, 2, 100, cores=2).options["n_threads"] == 4  # as given
    assert plan(True, Threaded, {}, 8, 3, cores=2).workers == 3  # no more than the items
    assert plan(True, Threaded, {}, 1, 100, cores=2) is None
    assert plan(True, FakeBackend, {}, 2, 100, cores=2) == Shards(2, FakeBackend, {})


def _words(words: list[str]):
    frame = pd.DataFrame(
        {"id": [f"i{k}" for k in range(len(words))], "word": words, "human": [k % 5 + 1 for k in range(len(words))]}
    )
    return make_dataset("words", frame, fields=["word"], human_range=(1, 5))


def test_items_are_scored_in_prefix_order_and_returned_in_the_files(tmp_path: Path) -> None:
    words = ["pear", "apple", "plum", "apricot", "fig", "peach"]
    data, scale = _words(words), ScoreScale(0, 9)
    sorted_judge, file_judge = Recording(), Recording(order_free=False)
    with Store(tmp_path / "a.sqlite") as a, Store(tmp_path / "b.sqlite") as b:
        got = collect(
            Judge(JudgeConfig(model="x", instance=sorted_judge)), "words", data, PromptTemplate(TEMPLATE), scale, a
        )
        want = collect(
            Judge(JudgeConfig(model="x", instance=file_judge)), "words", data, PromptTemplate(TEMPLATE), scale, b
        )
    assert sorted_judge.asked == sorted(file_judge.asked) and file_judge.asked == [
        f"Rate {w} from 0 to 9." for w in words
    ]
    assert [json.dumps(d.to_dict()) for d in got.distributions] == [json.dumps(d.to_dict()) for d in want.distributions]


def test_an_error_names_the_item_it_stopped_at(tmp_path: Path) -> None:
    class Failing(Recording):
        def score(self, prompts, scale):  # noqa: ANN001, ANN201
            for prompt, dist in zip(prompts, super().score(prompts, scale)):
                if "fig" in prompt.user:
                    raise NumbiasError("cannot read it")
                yield dist

    data = _words(["pear", "apple", "fig", "plum"])
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(NumbiasError, match=r"^item 'i2' of words: cannot read it$"):
            collect(
                Judge(JudgeConfig(model="x", instance=Failing())),
                "words",
                data,
                PromptTemplate(TEMPLATE),
                ScoreScale(0, 9),
                store,
            )
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1  # apple, then fig stopped it


def test_workers_that_cannot_be_sent_are_an_error() -> None:
    def local(**_: object) -> FakeBackend:  # not importable by a worker
        return Recording()

    prompts, scale = [Prompt(f"w{k}") for k in range(4)], ScoreScale(0, 9)
    score = lambda backend, ps: backend.score(ps, scale)  # noqa: E731 - a scorer that does not pickle
    with pytest.raises(NumbiasError, match="cannot be scored in worker processes.*set workers to 1"):
        list(scored(Recording(), prompts, score, Shards(2, local, {})))


def _study(folder: Path, n: int, **options: object) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.csv").write_text(
        "id,word,stars\n" + "".join(f"w{i},word{(7 * i) % n},{i % 5 + 1}\n" for i in range(n))
    )
    judge = {"model": "toy", "backend": "plugin_judge:make", "options": options}
    task = {"file": str(folder / "items.csv"), "human": "stars", "human_range": [1, 5], "template": TEMPLATE}
    return {"judges": [judge], "tasks": [task], "scales": ["0-9", "1-5"], "out": str(folder / "out"), "bootstrap": 20}


def _rows(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "out" / "store.sqlite") as db:
        return sorted(db.execute("SELECT * FROM items").fetchall())


@pytest.mark.subprocess
def test_workers_give_the_store_and_results_of_one_process(tmp_path: Path) -> None:
    import numbias

    modes = {"modes": ["exact", "sampled"]}  # the sampling protocol's scorer goes to the workers too
    one = numbias.run({**_study(tmp_path / "one", 40), **modes, "workers": 1})
    two = numbias.run({**_study(tmp_path / "two", 40), **modes, "workers": 2})
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two") and len(_rows(tmp_path / "one")) == 160
    pd.testing.assert_frame_equal(one.items, two.items)
    pd.testing.assert_frame_equal(one.summary, two.summary)


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("fail", r"^item '7' of items: the judge cannot score word9$"),
        ("die", f"^{STOPPED}".replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")),
    ],
)
def test_a_worker_that_fails_or_dies_stops_with_one_line_and_keeps_the_rest(
    option: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """word9 (row 7, the last in sorted order) fails or kills its worker: one line,
    what was stored stays, and the run resumes to the whole set."""
    import numbias

    config = {**_study(tmp_path, 40), "workers": 2}
    monkeypatch.setenv(f"PLUGIN_JUDGE_{option.upper()}", "word9")
    monkeypatch.setenv("PLUGIN_JUDGE_DELAY", "0.02")
    with pytest.raises(NumbiasError, match=message):
        numbias.run(config)
    kept = len(_rows(tmp_path))
    assert 0 < kept < 40
    monkeypatch.delenv(f"PLUGIN_JUDGE_{option.upper()}")
    numbias.run(config)
    assert len(_rows(tmp_path)) == 80


@pytest.mark.subprocess
def test_ctrl_c_stops_the_workers_and_says_what_is_kept(tmp_path: Path) -> None:
    folder = tmp_path
    _study(folder, 48)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "PLUGIN_JUDGE_DELAY": "0.2",
        "PLUGIN_JUDGE_LOG": str(folder / "scored.log"),
    }
    args = [
        "score",
        "--backend",
        "plugin_judge:make",
        "--model",
        "toy",
        "--data",
        "items.csv",
        "--template",
        TEMPLATE,
        "--human",
        "stars",
        "--human-range",
        "1-5",
        "--out",
        "out",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "numbias", *args],
        cwd=folder,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    log = folder / "scored.log"
    for _ in range(1200):
        if log.exists() and len(log.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "Traceback" not in err, err
    workers = {int(line.rsplit("|", 1)[1]) for line in log.read_text().splitlines()}
    assert len(workers) == 2 and proc.pid not in workers
    time.sleep(1.0)
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

"""A user's own data file and rubric through every command: Python, YAML and the CLI,
on the fake backend (exact) and on SmolLM2 (real model)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numbias
from numbias.core.distribution import stack
from numbias.data.tasks import TASKS, TaskConfig, prepare
from numbias.studies.calibrated import CalibratedJudge
from numbias.util.errors import NumbiasError
from plugin_judge import make

TESTS = Path(__file__).resolve().parent
TEMPLATE = "Rate the {aspect} of this {product} review, from {lo} (worst) to {hi} (best).\nReview: {review}"
SYSTEM = "You are a careful, calibrated rater."
PREFIX = "Score:"
WORDS = ["awful", "poor", "fine", "good", "great", "bad", "nice", "superb", "dull", "lovely"]
STARS = [1, 2, 3, 4, 5, 2, 4, 5, 2, 5]


def rows(n: int = 40) -> pd.DataFrame:
    products = ["hotel", "phone", "meal", "movie"]
    return pd.DataFrame(
        {
            "item_id": [f"r{i}" for i in range(n)],
            "product": [products[i % 4] for i in range(n)],
            "aspect": ["overall quality" if i % 2 else "value for money" for i in range(n)],
            "review": [
                f"The {products[i % 4]} was {WORDS[i % 10]}, {'really' if i % 3 else 'mostly'}." for i in range(n)
            ],
            "stars": [STARS[i % 10] for i in range(n)],
            "raters": [f"{STARS[i % 10]},{max(1, STARS[i % 10] - 1)},{STARS[i % 10]}" for i in range(n)],
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


def file_task(path: Path, **extra: object) -> dict:
    return {
        "file": str(path),
        "human": "stars",
        "human_range": [1, 5],
        "id": "item_id",
        "group": "product",
        "ratings": "raters",
        "template": TEMPLATE,
        "system": SYSTEM,
        "answer_prefix": PREFIX,
        **extra,
    }


def fake_judge(model: str = "toy", **options: object) -> dict:
    return {"model": model, "backend": "plugin_judge:make", "options": options}


def backend_entry_point(folder: Path) -> str:
    """An installed package's entry point registering the fake judge as ``plugin-judge``
    for a fresh process; returns the PYTHONPATH that finds it."""
    dist = folder / "numbias_judge_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: numbias-judge-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[numbias.backends]\nplugin-judge = plugin_judge:make\n")
    return os.pathsep.join([str(folder), str(TESTS)])


@pytest.mark.slow
def test_csv_jsonl_parquet_give_the_same_study(tmp_path: Path) -> None:
    summaries, items = [], []
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = write(rows(), tmp_path / f"items{suffix}")
        res = numbias.run(
            {
                "judges": [make("toy")],
                "tasks": [file_task(path)],
                "scales": ["0-9", "1-5"],
                "out": str(tmp_path / suffix[1:]),
                "bootstrap": 50,
            }
        )
        summaries.append(res.summary)
        items.append(res.items)
    for other in summaries[1:]:
        pd.testing.assert_frame_equal(summaries[0], other)
    for other in items[1:]:
        pd.testing.assert_frame_equal(items[0], other)
    s = summaries[0]
    assert (s["groups"] == 4).all() and s["group_pearson"].notna().all()
    assert s["human_ceiling"].notna().all()  # the raters column gives the human ceiling
    assert list(items[0]["id"][:2]) == ["r0", "r1"] and set(items[0]["group"]) == {"hotel", "phone", "meal", "movie"}


def test_system_prompt_and_answer_prefix_reach_the_judge(tmp_path: Path) -> None:
    path = write(rows(12), tmp_path / "items.csv")

    def dists(**change: object) -> np.ndarray:
        res = numbias.run(
            {
                "judges": [make("toy")],
                "tasks": [file_task(path, **change)],
                "scales": ["0-9"],
                "out": str(tmp_path / "o"),
                "store": str(tmp_path / f"{len(change)}{change}.sqlite"),
                "bootstrap": 20,
            }
        )
        return stack(res.sets[0].distributions)[0]

    base = dists()
    assert not np.allclose(base, dists(system="Another system prompt."))
    assert not np.allclose(base, dists(answer_prefix="Rating:"))
    assert not np.allclose(base, dists(template=TEMPLATE.replace("{aspect}", "overall")))
    prompt = prepare(TaskConfig(**file_task(path))).template.fill(
        {"aspect": "a", "product": "p", "review": "r"}, numbias.ScoreScale.parse("1-5"), chat=True
    )
    assert (prompt.system, prompt.answer_prefix) == (SYSTEM, PREFIX)
    assert prompt.user == "Rate the a of this p review, from 1 (worst) to 5 (best).\nReview: r"


def test_rubric_file_and_inferred_range_are_said(tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.txt"
    rubric.write_text(TEMPLATE, encoding="utf-8")
    path = write(rows(12), tmp_path / "items.jsonl")
    res = numbias.run(
        {
            "judges": [make("toy")],
            "scales": ["1-5"],
            "out": str(tmp_path / "o"),
            "bootstrap": 20,
            "tasks": [{"file": str(path), "human": "stars", "template": f"@{rubric}"}],
        }
    )
    assert res.notes == ["items: human range 1-5 taken from the data (give human_range to set it)"]
    assert "human range 1-5 taken from the data" in (numbias.write(res) / "report.html").read_text()
    assert res.sets[0].data.human_range == (1.0, 5.0)


def test_unlabelled_scoring_matches_the_study(tmp_path: Path) -> None:
    labelled = write(rows(12), tmp_path / "items.csv")
    new = write(rows(12).drop(columns=["stars", "raters"]), tmp_path / "new.parquet")
    study = numbias.run(
        {
            "judges": [make("toy")],
            "tasks": [file_task(labelled)],
            "scales": ["1-5"],
            "out": str(tmp_path / "o"),
            "bootstrap": 20,
        }
    )
    task = {k: v for k, v in file_task(new).items() if k not in ("human", "human_range", "ratings")}
    scored = numbias.score(task, make("toy"), "1-5", store=tmp_path / "s.sqlite")
    np.testing.assert_array_equal(stack(scored.distributions)[0], stack(study.sets[0].distributions)[0])
    frame = scored.frame()
    assert list(frame.columns) == ["id", "group", "greedy", "expected", "median", "protocol"]
    np.testing.assert_allclose(frame["expected"], study.items["expected"])
    with pytest.raises(NumbiasError, match="no human scores"):
        numbias.run({"judges": [make("toy")], "tasks": [task], "scales": ["1-5"], "out": str(tmp_path / "x")})


@pytest.mark.slow
def test_mitigate_save_and_score_calibrated_from_python(tmp_path: Path) -> None:
    path = write(rows(), tmp_path / "items.csv")
    res = numbias.mitigate(
        {
            "judges": [{**fake_judge(), "backend": "plugin-judge"}],
            "tasks": [file_task(path)],
            "scales": ["0-9", "1-5"],
            "dev": 20,
            "out": str(tmp_path / "m"),
            "bootstrap": 50,
            "criterion": "group_pearson",
        }
    )
    table = res.table
    assert {"group pearson", "group pearson_low", "group pearson_high", "groups"} <= set(table.columns)
    saved = res.comparisons[0].calibrated().save(tmp_path / "judge.json")
    new = write(rows().drop(columns=["stars", "raters"]), tmp_path / "new.jsonl")
    unlabelled = {"file": str(new), "id": "item_id"}
    scored = numbias.score(unlabelled, calibrated=saved, store=tmp_path / "c.sqlite")
    judge = CalibratedJudge.load(saved)
    direct = judge.score([r for r in rows()[["product", "aspect", "review"]].to_dict("records")])
    np.testing.assert_allclose(scored.calibrated, direct)
    np.testing.assert_allclose(scored.calibrated_human, judge.to_human(direct))
    lo, hi = judge.human_range
    assert ((scored.calibrated_human >= lo) & (scored.calibrated_human <= hi)).all()
    with pytest.raises(NumbiasError, match="fixes the prompt"):
        numbias.score({**unlabelled, "template": "{review}"}, calibrated=saved)


def test_align_on_a_file_reports_group_level_accuracy(tmp_path: Path) -> None:
    path = write(rows(), tmp_path / "items.parquet")
    res = numbias.align(
        {
            "pairs": [{"base": fake_judge("base"), "aligned": fake_judge("aligned")}],
            "extra_aligned": [],
            "tasks": [file_task(path)],
            "scales": ["0-9"],
            "sample": True,
            "out": str(tmp_path / "a"),
            "bootstrap": 30,
            "simulations": 10,
        }
    )
    assert {"base group r", "aligned group r"} <= set(res.table.columns)
    assert res.table["base group r"].notna().all()


def test_builtin_task_and_file_task_ask_the_same(tmp_path: Path, shared_data: Path) -> None:
    """STS-B through its loader and through a file with the same rows and template."""
    raw = pd.read_csv(
        shared_data / "stsb" / "stsb-en-test.csv",
        header=None,
        names=["sentence1", "sentence2", "score"],
        keep_default_na=False,
    )
    path = write(raw, tmp_path / "stsb.csv")
    builtin = {"name": "stsb", "path": str(shared_data / "stsb"), "n": 8, "seed": 3}
    as_file = {
        "file": str(path),
        "human": "score",
        "human_range": [0, 5],
        "n": 8,
        "seed": 3,
        "template": TASKS["stsb"].template.text,
    }
    sets = [
        numbias.run(
            {"judges": [make("toy")], "tasks": [t], "scales": ["0-9"], "bootstrap": 20, "out": str(tmp_path / str(i))}
        ).sets[0]
        for i, t in enumerate((builtin, as_file))
    ]
    assert sets[0].data.ids == sets[1].data.ids
    np.testing.assert_array_equal(stack(sets[0].distributions)[0], stack(sets[1].distributions)[0])


@pytest.mark.model
def test_builtin_task_and_file_task_agree_on_smollm2(tmp_path: Path, shared_data: Path, smollm2) -> None:
    raw = pd.read_csv(
        shared_data / "stsb" / "stsb-en-test.csv",
        header=None,
        names=["sentence1", "sentence2", "score"],
        keep_default_na=False,
    )
    path = write(raw, tmp_path / "stsb.jsonl")
    tasks = [
        {"name": "stsb", "path": str(shared_data / "stsb"), "n": 6},
        {"file": str(path), "human": "score", "human_range": [0, 5], "n": 6, "template": TASKS["stsb"].template.text},
    ]
    sets = [
        numbias.run(
            {"judges": [smollm2], "tasks": [t], "scales": ["0-9"], "bootstrap": 20, "out": str(tmp_path / str(i))}
        ).sets[0]
        for i, t in enumerate(tasks)
    ]
    np.testing.assert_array_equal(stack(sets[0].distributions)[0], stack(sets[1].distributions)[0])


def test_long_items_error_or_truncate(tmp_path: Path) -> None:
    frame = rows(8)
    frame.loc[3, "review"] = "word " * 300 + "the end"
    path = write(frame, tmp_path / "items.csv")
    cfg = {"judges": [make("toy", context_length=80)], "scales": ["0-9"], "out": str(tmp_path / "o"), "bootstrap": 20}
    with pytest.raises(
        NumbiasError,
        match=r"1 item\(s\) of items exceed the judge's context of 80 tokens "
        r"\(longest: item 'r3', 3\d\d tokens\); set truncate",
    ):
        numbias.run({**cfg, "tasks": [file_task(path)]})
    res = numbias.run({**cfg, "tasks": [file_task(path, truncate="review")]})
    cut = res.items.set_index("id")["cut"]
    assert cut["r3"] > 1000 and (cut.drop("r3") == 0).all()
    again = numbias.run({**cfg, "tasks": [file_task(path, truncate="review")]})  # from the store: cut kept
    pd.testing.assert_series_equal(again.items.set_index("id")["cut"], cut)
    with pytest.raises(NumbiasError, match="not a field of the template"):
        numbias.run({**cfg, "tasks": [file_task(path, truncate="stars")]})


def test_registered_tasks_by_function_and_decorator(tmp_path: Path) -> None:
    from plugin_judge import TASK, _load_reviews

    numbias.register_task(TASK)
    try:
        res = numbias.run(
            {
                "judges": [make("toy")],
                "tasks": ["plugin-reviews"],
                "scales": ["1-5"],
                "out": str(tmp_path / "o"),
                "bootstrap": 20,
            }
        )
        assert len(res.sets[0].data) == 12
        with pytest.raises(NumbiasError, match="already registered"):
            numbias.register_task(dataclasses.replace(TASK, description="another task of that name"))
        assert numbias.register_task(dataclasses.replace(TASK)) == TASK  # an equal task again is no conflict

        @numbias.register_task(name="plugin-decorated", template="Rate {word} from {lo} to {hi}.", human_range=(1, 5))
        def loader(n: int | None = None, seed: int = 0):
            """Decorated one-word reviews."""
            return _load_reviews(n, seed)

        assert TASKS["plugin-decorated"].description == "Decorated one-word reviews."
        with pytest.raises(NumbiasError, match="has no option"):
            numbias.run(
                {
                    "judges": [make("toy")],
                    "tasks": [{"name": "plugin-decorated", "options": {"pair": 1}}],
                    "out": str(tmp_path / "x"),
                }
            )
    finally:
        TASKS.pop("plugin-reviews", None)
        TASKS.pop("plugin-decorated", None)


def _cli(*args: str, cwd: Path, pythonpath: str = str(TESTS)) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "numbias", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


@pytest.mark.subprocess
def test_entry_point_tasks_appear_by_name(tmp_path: Path) -> None:
    dist = tmp_path / "numbias_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: numbias-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[numbias.tasks]\nreviews = plugin_judge:TASK\n")
    path = os.pathsep.join([str(tmp_path), str(TESTS)])
    listed = _cli("tasks", cwd=tmp_path, pythonpath=path)
    assert listed.returncode == 0, listed.stderr
    assert "plugin-reviews" in listed.stdout and "One-word reviews" in listed.stdout
    (tmp_path / "study.yaml").write_text(
        json.dumps(
            {"judges": [fake_judge()], "tasks": ["plugin-reviews"], "scales": ["1-5"], "out": "o", "bootstrap": 20}
        )
    )
    ran = _cli("run", "study.yaml", cwd=tmp_path, pythonpath=path)
    assert ran.returncode == 0, ran.stderr
    assert "plugin-reviews" in ran.stdout


@pytest.mark.subprocess
def test_every_command_on_files_from_the_cli_with_the_fake_backend(tmp_path: Path) -> None:
    write(rows(), tmp_path / "items.csv")
    write(rows().drop(columns=["stars", "raters"]), tmp_path / "new.jsonl")
    (tmp_path / "rubric.txt").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "study.yaml").write_text(
        json.dumps(
            {
                "judges": [fake_judge()],
                "scales": ["0-9", "1-5"],
                "out": "r",
                "bootstrap": 30,
                "tasks": [
                    {
                        "file": "items.csv",
                        "human": "stars",
                        "human_range": [1, 5],
                        "group": "product",
                        "template": "@rubric.txt",
                        "system": SYSTEM,
                        "answer_prefix": PREFIX,
                    }
                ],
            }
        )
    )
    ran = _cli("run", "study.yaml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "group Pearson [95% CI]" in ran.stdout
    flags = [
        "--data",
        "items.csv",
        "--template",
        "@rubric.txt",
        "--system",
        SYSTEM,
        "--answer-prefix",
        PREFIX,
        "--human",
        "stars",
        "--human-range",
        "1-5",
        "--id",
        "item_id",
        "--group",
        "product",
    ]
    (tmp_path / "m.yaml").write_text(
        json.dumps({"judges": [{**fake_judge(), "backend": "plugin-judge"}], "scales": ["0-9", "1-5"], "bootstrap": 30})
    )
    installed = backend_entry_point(tmp_path)  # a saved judge names a registered backend
    mit = _cli(
        "mitigate",
        "m.yaml",
        *flags,
        "--dev",
        "20",
        "--criterion",
        "group_pearson",
        "--save",
        "judge.json",
        "--out",
        "m",
        cwd=tmp_path,
        pythonpath=installed,
    )
    assert mit.returncode == 0, mit.stderr
    assert "group r" in mit.stdout  # the group-level column of the mitigation table
    scored = _cli(
        "score",
        "--calibrated",
        "judge.json",
        "--data",
        "new.jsonl",
        "--id",
        "item_id",
        "--out",
        "s",
        cwd=tmp_path,
        pythonpath=installed,
    )
    assert scored.returncode == 0, scored.stderr
    out = pd.read_csv(tmp_path / "s" / "scores.csv")
    assert list(out.columns) == [
        "id",
        "greedy",
        "expected",
        "median",
        "protocol",
        "calibrated",
        "calibrated_human",
        "low",
        "high",
    ]
    assert out["id"].tolist() == [f"r{i}" for i in range(40)]
    plain = _cli(
        "score",
        "--backend",
        "plugin_judge:make",
        "--model",
        "toy",
        "--data",
        "new.jsonl",
        "--template",
        "@rubric.txt",
        "--range",
        "1-5",
        "--out",
        "p",
        cwd=tmp_path,
    )
    assert plain.returncode == 0, plain.stderr
    first = json.loads((tmp_path / "p" / "scores.jsonl").read_text().splitlines()[0])
    assert set(first) >= {"id", "greedy", "expected", "median", "protocol", "probs", "below", "above", "other"}
    assert abs(sum(first["probs"].values()) + first["below"] + first["above"] + first["other"] - 1) < 1e-6


@pytest.mark.subprocess
def test_nothing_scored_is_lost_when_a_later_task_fails(tmp_path: Path) -> None:
    write(rows(6), tmp_path / "short.csv")
    long = rows(6)
    long.loc[2, "review"] = "word " * 400
    write(long, tmp_path / "long.csv")
    task = {"human": "stars", "template": TEMPLATE}
    (tmp_path / "study.yaml").write_text(
        json.dumps(
            {
                "judges": [fake_judge(context_length=100)],
                "scales": ["0-9"],
                "out": "r",
                "tasks": [{"file": "short.csv", **task}, {"file": "long.csv", **task}],
            }
        )
    )
    failed = _cli("run", "study.yaml", cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "1 item(s) of long exceed the judge's context of 100 tokens (longest: item '2'" in failed.stderr
    with sqlite3.connect(tmp_path / "r" / "store.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 6


@pytest.mark.subprocess
@pytest.mark.model
def test_every_command_on_files_with_smollm2(tmp_path: Path, smollm2) -> None:
    """The CLI end to end on a real judge: CSV, JSONL and Parquet, a three-column rubric."""
    write(rows(30), tmp_path / "items.csv")
    write(rows(30), tmp_path / "items.parquet")
    write(rows(30).drop(columns=["stars", "raters"]), tmp_path / "new.jsonl")
    (tmp_path / "rubric.txt").write_text(TEMPLATE, encoding="utf-8")
    prompt = ["--template", "@rubric.txt", "--system", SYSTEM, "--answer-prefix", PREFIX]
    labels = ["--human", "stars", "--human-range", "1-5", "--id", "item_id", "--group", "product"]
    judge = ["--judge", "smollm2-135m-instruct"]
    ran = _cli(
        "run",
        *judge,
        "--data",
        "items.csv",
        *prompt,
        *labels,
        "--ratings",
        "raters",
        "--scale",
        "0-9",
        "--out",
        "r",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    summary = pd.read_json(tmp_path / "r" / "summary.json")
    expected = summary.set_index("rule").loc["expected"]
    assert expected["groups"] == 4 and -1 <= expected["group_pearson"] <= 1 and expected["human_ceiling"] > 0
    labelled = _cli(
        "score",
        "--model",
        "smollm2-135m-instruct",
        "--data",
        "items.parquet",
        *prompt,
        *labels,
        "--range",
        "0-9",
        "--out",
        "sl",
        cwd=tmp_path,
    )
    assert labelled.returncode == 0, labelled.stderr
    items = pd.read_csv(tmp_path / "r" / "items.csv")
    scores = pd.read_csv(tmp_path / "sl" / "scores.csv")
    np.testing.assert_allclose(scores["expected"], items["expected"], atol=1e-9)
    assert scores["human"].tolist() == items["human"].tolist()
    aligned = _cli(
        "align",
        "--base",
        "gemma3-270m-base",
        "--aligned",
        "smollm2-135m-instruct",
        "--no-sample",
        "--data",
        "items.parquet",
        *prompt,
        *labels,
        "--scale",
        "0-9",
        "--out",
        "a",
        cwd=tmp_path,
    )
    assert aligned.returncode == 0, aligned.stderr
    assert "aligned group r" in pd.read_csv(tmp_path / "a" / "alignment.csv").columns
    mit = _cli(
        "mitigate",
        *judge,
        "--data",
        "items.csv",
        *prompt,
        *labels,
        "--scale",
        "0-9",
        "--scale",
        "1-5",
        "--dev",
        "15",
        "--save",
        "judge.json",
        "--out",
        "m",
        "--mitigation",
        "none",
        "--mitigation",
        "isotonic",
        "--ensemble",
        "none",
        "--resamples",
        "0",
        "--label-draws",
        "2",
        "--no-oracle",
        cwd=tmp_path,
    )
    assert mit.returncode == 0, mit.stderr
    mitigation = pd.read_csv(tmp_path / "m" / "mitigation.csv")
    assert set(mitigation["family"]) == {
        "original",
        "pre-specified",
        "temperature",
        "score mapping",
        "score range",
        "label-free",
        "automatic",
    }
    assert {"Δ r", "Δ r_low", "Δ r_high", "p adjusted"} <= set(mitigation.columns)
    # resamples 0: no stability, but the choice is still cross-fitted against the default on dev
    assert pd.read_csv(tmp_path / "m" / "selection.csv")["stability"].isna().all()
    assert set(pd.read_csv(tmp_path / "m" / "label_efficiency.csv")["draw"]) == {0, 1}
    cal = _cli(
        "score", "--calibrated", "judge.json", "--data", "new.jsonl", "--id", "item_id", "--out", "c", cwd=tmp_path
    )
    assert cal.returncode == 0, cal.stderr
    out = pd.read_csv(tmp_path / "c" / "scores.csv")
    assert len(out) == 30 and out["calibrated_human"].between(1, 5).all()


@pytest.mark.subprocess
@pytest.mark.model
def test_readme_worked_example_runs(tmp_path: Path) -> None:
    """The worked example of docs/tasks.md ("Your own data"), exactly as written, on the default judge."""
    from conftest import judge_available

    if not judge_available("qwen2.5-coder-0.5b-instruct"):
        pytest.skip("the default judge is not installed")
    readme = (TESTS.parent / "docs" / "tasks.md").read_text(encoding="utf-8")
    block = readme.split("<!-- worked-example -->", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = pd.read_json(tmp_path / "measured" / "summary.json")
    assert set(summary["scale"]) == {"0-9", "1-5"} and summary["groups"].between(1, 5).all()
    assert {"group pearson", "pearson"} <= set(pd.read_csv(tmp_path / "mitigated" / "mitigation.csv").columns)
    scored = pd.read_csv(tmp_path / "scored" / "scores.csv")
    assert len(scored) == 4 and scored["calibrated_human"].between(1, 5).all()


def test_task_and_dataset_objects_from_python(tmp_path: Path) -> None:
    from plugin_judge import TASK

    data = numbias.load_file(
        write(rows(12), tmp_path / "items.csv"),
        fields=["product", "aspect", "review"],
        human="stars",
        human_range=(1, 5),
        id="item_id",
    )
    res = numbias.run(
        {
            "judges": [make("toy")],
            "scales": ["1-5"],
            "out": str(tmp_path / "o"),
            "bootstrap": 20,
            "tasks": [TASK, {"dataset": data, "template": TEMPLATE, "label": "mine"}],
        }
    )
    assert [s.task for s in res.sets] == ["plugin-reviews", "mine"]
    assert "plugin-reviews" not in TASKS  # an object is used as given, not registered
    assert res.sets[1].data.ids == [f"r{i}" for i in range(12)]
    with pytest.raises(NumbiasError, match="a Dataset needs a template"):
        numbias.run({"judges": [make("toy")], "tasks": [data], "out": str(tmp_path / "x")})
    with pytest.raises(NumbiasError, match="share the label 'mine'"):
        numbias.run(
            {
                "judges": [make("toy")],
                "out": str(tmp_path / "y"),
                "tasks": [
                    {"dataset": data, "template": TEMPLATE, "label": "mine"},
                    {"file": str(tmp_path / "items.csv"), "human": "stars", "template": TEMPLATE, "label": "mine"},
                ],
            }
        )


def test_options_that_would_be_ignored_are_errors(tmp_path: Path) -> None:
    from numbias.cli import TaskFlags

    path = write(rows(12), tmp_path / "items.csv")
    with pytest.raises(NumbiasError, match="--data missing.csv is not a data file"):
        TaskFlags(task=[str(path)], data=Path("missing.csv")).configs()
    data = numbias.load_file(path, fields=["product", "aspect", "review"], human="stars")
    cfg = {"judges": [make("toy")], "out": str(tmp_path / "o")}
    with pytest.raises(NumbiasError, match="group, n do not apply to a Dataset object"):
        numbias.run({**cfg, "tasks": [{"dataset": data, "template": TEMPLATE, "n": 3, "group": "product"}]})
    with pytest.raises(NumbiasError, match="'lo' is not a field of the template"):
        numbias.run({**cfg, "tasks": [file_task(path, truncate="lo")]})
    with pytest.raises(NumbiasError, match="human_range need the human-score column"):
        numbias.run({**cfg, "tasks": [{"file": str(path), "template": TEMPLATE, "human_range": [1, 5]}]})
    with pytest.raises(NumbiasError, match="scoring measures no accuracy"):
        numbias.score({**file_task(path)}, make("toy"), store=tmp_path / "s.sqlite")
    with pytest.raises(NumbiasError, match="fixes its judge and scale"):
        numbias.score({"file": str(path)}, make("toy"), calibrated=tmp_path / "judge.json")


@pytest.mark.slow
def test_groups_never_straddle_the_dev_and_test_split(tmp_path: Path) -> None:
    path = write(rows(), tmp_path / "items.csv")
    for split in ({"dev": 20}, {"folds": 3}):
        res = numbias.mitigate(
            {
                "judges": [fake_judge()],
                "tasks": [file_task(path)],
                "scales": ["0-9"],
                "out": str(tmp_path / "m"),
                "bootstrap": 20,
                **split,
            }
        )
        assert res.comparisons[0].folds == split.get("folds", 1)
    products = rows()["product"].to_numpy()
    from numbias.studies.mitigation import MitigateConfig, make_splits

    for config in (MitigateConfig(dev=20), MitigateConfig(folds=3)):
        for dev, test in make_splits(40, config, products):
            assert not set(products[dev]) & set(products[test]) and len(dev) + len(test) == 40

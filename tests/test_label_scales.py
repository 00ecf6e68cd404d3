"""Scales of words, letters and reversed digits through every command, from Python, YAML
and the command line, on a fake judge that reads any scale's rubric (plugin_judge.labeller)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import numbias
import numbias.judge.judging as judge_module
from numbias.backends import register_backend
from numbias.cli import app
from numbias.data.prompt import NUMBER_ASK
from numbias.judge.config import RunConfig
from numbias.report.build import write
from numbias.util.errors import NumbiasError

TEMPLATE = "Rate the item from {lo} (bad) to {hi} (good). " + NUMBER_ASK + "\nItem: {word}"
WORDS = "words:poor,fair,good,very good,excellent"
RULES = ["greedy", "expected", "protocol", "median", "quantile:0.25", "mean-sd:1"]
METRICS = ["mode", "mode_share", "kurtosis", "pearson", "entropy", "sd_ratio"]


@pytest.fixture(autouse=True)
def _labeller() -> None:
    """The fake judge that answers on any scale, by a registered name (a results folder
    read back may name only registered backends; conftest restores the registry)."""
    register_backend("labeller", "plugin_judge:labeller")


def _items(folder: Path, n: int = 20) -> Path:
    path = folder / "items.csv"
    pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "word": [f"item{k}" for k in range(n)],
            "score": [k % 5 + 1 for k in range(n)],
            "model": list("ABCD") * (n // 4),
        }
    ).to_csv(path, index=False)
    return path


def _study(folder: Path, scales: list[object]) -> dict[str, object]:
    return {
        "judges": [{"model": "toy", "backend": "labeller"}],
        "scales": scales,
        "rules": RULES,
        "tasks": [{"file": str(_items(folder)), "human": "score", "template": TEMPLATE}],
        "out": str(folder / "out"),
        "bootstrap": 10,
    }


def _rows(summary: pd.DataFrame, scale: str) -> pd.DataFrame:
    return summary[summary["scale"] == scale].set_index("rule")[METRICS]


def test_every_rule_and_metric_on_every_kind_of_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A judge that follows the rubric gives the same values on 0-9 and reversed:0-9 (and
    on letters and words of five): every rule and metric acts on values, whatever the
    labels. The report shows labels; a finished study is read from the store alone."""
    best_first = {"labels": ["excellent", "very good", "good", "fair", "poor"], "values": [5, 4, 3, 2, 1]}
    config = _study(tmp_path, ["0-9", "reversed:0-9", "letters:A-E", best_first])
    first = numbias.run(config)
    summary = first.summary
    assert list(dict.fromkeys(summary["scale"])) == ["0-9", "reversed:0-9", "letters:A-E", WORDS]
    assert list(dict.fromkeys(summary["rule"])) == RULES
    pd.testing.assert_frame_equal(_rows(summary, "reversed:0-9"), _rows(summary, "0-9"))
    pd.testing.assert_frame_equal(_rows(summary, WORDS), _rows(summary, "letters:A-E"))
    assert (summary["pearson"] > 0.8).all()
    page = (write(first) / "report.html").read_text()
    assert f"{WORDS} · greedy: kurtosis" in page and "mode poor (" in page and '<td class="t">poor</td>' in page
    assert "reversed:0-9 · greedy: kurtosis" in page and "mode 9 (" in page  # value 0 is the label 9

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a finished study must not create a backend")

    monkeypatch.setattr(judge_module, "create_backend", refuse)
    pd.testing.assert_frame_equal(
        numbias.run({**config, "scales": [WORDS, "reversed:0-9"]}).summary,
        summary[summary["scale"].isin([WORDS, "reversed:0-9"])]
        .sort_values("scale", key=lambda s: s != WORDS, kind="stable")
        .reset_index(drop=True),
    )


def test_scales_and_rules_in_a_config() -> None:
    """YAML takes a scale as a string or as labels with values, and a risk-averse rule by
    its name and number; both are written one way."""
    config = RunConfig.parse(
        {
            "scales": ["1..5", "Letters: a-c", {"labels": ["no", "yes"], "values": [0, 1]}],
            "rules": ["quantile:.25", "mean-sd:1.0", "greedy"],
        }
    )
    assert config.scales == ["1-5", "letters:a-c", "words:no=0,yes=1"]
    assert config.rules == ["quantile:0.25", "mean-sd:1", "greedy"]
    with pytest.raises(NumbiasError, match=r"config: rules: unknown rule\(s\) \['mode'\]; known: .*quantile:Q"):
        RunConfig.parse({"rules": ["mode"]})
    with pytest.raises(NumbiasError, match="rule 'quantile:2': Q must be above 0 and below 1"):
        RunConfig.parse({"rules": ["quantile:2"]})
    with pytest.raises(NumbiasError, match="scale label 'good' is given twice"):
        RunConfig.parse({"scales": ["words:good,bad,good"]})
    with pytest.raises(NumbiasError, match="scale 1-5 is given twice"):
        RunConfig.parse({"scales": ["1-5", "1..5"]})


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_label_scales_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run from YAML and with --scale/--rule, score --range, compare --range and report,
    on words, letters and reversed digits."""
    monkeypatch.chdir(tmp_path)
    _items(tmp_path)
    study = {
        "judges": [{"model": "toy", "backend": "labeller"}],
        "rules": ["expected", "mean-sd:0.5"],
        "tasks": [{"file": "items.csv", "human": "score", "template": TEMPLATE}],
        "out": "r",
        "bootstrap": 10,
        "scales": [{"labels": ["excellent", "good", "fair"], "values": [3, 2, 1]}, "letters:E-A"],
    }
    (tmp_path / "study.yaml").write_text(json.dumps(study))
    shown = _invoke("run", "study.yaml")
    assert "words:fair,good,excellent" in shown and "letters:E-A" in shown and "mean-sd:0.5" in shown
    _invoke("run", "study.yaml", "--scale", "reversed:1-5", "--scale", WORDS, "--rule", "quantile:0.3", "--out", "r2")
    rows = pd.DataFrame(json.loads((tmp_path / "r2" / "summary.json").read_text()))
    assert set(zip(rows["scale"], rows["rule"])) == {(s, r) for s in ("reversed:1-5", WORDS) for r in ["quantile:0.3"]}
    (tmp_path / "r2" / "report.html").unlink()
    _invoke("report", "r2")
    mode = int(rows.set_index("scale").loc["reversed:1-5", "mode"])
    assert "reversed:1-5 · quantile:0.3: kurtosis" in (page := (tmp_path / "r2" / "report.html").read_text())
    caption = page.split("reversed:1-5 · quantile:0.3: kurtosis")[1][:40]
    assert f"mode {6 - mode} (" in caption  # the label the judge wrote, not its value
    _invoke(
        "score",
        "--backend",
        "labeller",
        "--model",
        "toy",
        "--data",
        "items.csv",
        "--template",
        TEMPLATE,
        "--range",
        WORDS,
        "--out",
        "s",
    )
    first = json.loads((tmp_path / "s" / "scores.jsonl").read_text().splitlines()[0])
    assert list(first["probs"]) == ["poor", "fair", "good", "very good", "excellent"] and first["scale"] == WORDS
    assert first["greedy"] == 1.0 and first["probs"]["poor"] > 0.5  # item0: the lowest true score
    compared = _invoke(
        "compare",
        "--data",
        "items.csv",
        "--backend",
        "labeller",
        "--model",
        "toy",
        "--template",
        TEMPLATE,
        "--range",
        "letters:A-E",
        "--system-column",
        "model",
        "--human",
        "score",
        "--out",
        "c",
    )
    assert "results in c/" in compared


@pytest.mark.slow
def test_mitigate_and_align_on_label_scales(tmp_path: Path) -> None:
    """mitigate sweeps a word scale and a reversed one beside 0-9 (its score-range and
    range-ensemble rows among them), and saves a judge on one; align reads letters."""
    task = {"file": str(_items(tmp_path, 40)), "human": "score", "template": TEMPLATE}
    judge = {"model": "toy", "backend": "labeller"}
    res = numbias.mitigate(
        {
            "judges": [judge],
            "tasks": [task],
            "scales": ["0-9", "reversed:0-9", WORDS],
            "rules": ["protocol", "quantile:0.25"],
            "dev": 20,
            "out": str(tmp_path / "m"),
            "bootstrap": 10,
            "resamples": 0,
            "label_draws": 0,
            "sample": False,
        }
    )
    settings = set(res.table["setting"])
    assert f"{WORDS} · protocol · T=0.7 · none" in settings
    assert f"0-9+reversed:0-9+{WORDS} · protocol · T=0.7 · weighted" in settings
    saved = res.comparisons[0].calibrated().save(tmp_path / "judge.json")
    scored = numbias.score({"file": task["file"]}, calibrated=saved, store=tmp_path / "s.sqlite")
    assert np.isfinite(scored.calibrated).all()
    aligned = numbias.align(
        {
            "pairs": [{"base": {**judge, "model": "b"}, "aligned": judge}],
            "extra_aligned": [],
            "tasks": [task],
            "scales": ["letters:A-E", "reversed:1-5"],
            "out": str(tmp_path / "a"),
            "bootstrap": 10,
            "simulations": 10,
        }
    )
    assert set(aligned.table["scale"]) == {"letters:A-E", "reversed:1-5"}

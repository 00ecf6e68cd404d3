"""The format family: one item asked as digits, reversed digits, letters and words, with
the options listed worst or best first, each on the common grid, and their mean; and a
mitigation study with formats and a contrast on a fake judge, through its report and
its results folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numbias
from numbias.backends import register_backend
from numbias.core.scale import ScoreScale, ensemble_grid, ensemble_parts
from numbias.data.prompt import NUMBER_ASK, PromptTemplate
from numbias.judge.store import item_slot, judge_key
from numbias.mitigations import Fitted, Setting
from numbias.mitigations.selection import is_format, scale_row
from numbias.report.build import rebuild, write
from numbias.studies.calibrated import CalibratedJudge
from numbias.studies.mitigation import parse_mitigate
from numbias.studies.recompute import mitigate_from
from numbias.util.errors import NumbiasError

TEMPLATE = "Rate the item from {lo} (bad) to {hi} (good). " + NUMBER_ASK + "\nItem: {word}"
WORDS = "words:poor,fair,good,very good,excellent"
FORMATS = ["1-5", "reversed:1-5", "letters:A-E", WORDS]
BEST = [f"best-first:{f}" for f in FORMATS]


@pytest.fixture(autouse=True)
def _labeller() -> None:
    register_backend("labeller", "plugin_judge:labeller")


def test_best_first_is_another_prompt_under_another_key() -> None:
    template = PromptTemplate(TEMPLATE)
    asked = {}
    for text in ["1-5", "best-first:1-5", WORDS, f"best-first:{WORDS}"]:
        scale = ScoreScale.parse(text)
        assert str(scale) == text and ScoreScale.parse(str(scale)) == scale
        asked[text] = template.fill({"word": "item3"}, scale, chat=True)
    assert "Reply with a single whole number from 1 to 5 and nothing else." in asked["1-5"].user
    assert "Reply with a single whole number from 5 to 1 and nothing else." in asked["best-first:1-5"].user
    assert asked[WORDS].user.endswith("answers and nothing else: poor, fair, good, very good, excellent.\nItem: item3")
    assert "nothing else: excellent, very good, good, fair, poor." in asked[f"best-first:{WORDS}"].user
    assert asked[WORDS].user.startswith("Rate the item from poor (bad) to excellent (good).")
    assert asked[f"best-first:{WORDS}"].user.startswith("Rate the item from poor (bad) to excellent (good).")
    assert len({item_slot("i", p) for p in asked.values()}) == 4
    assert len({judge_key({"scale": text}) for text in asked}) == 4
    best = ScoreScale.parse("best-first:reversed:1-5")
    assert best.labels == ScoreScale.parse("reversed:1-5").labels and best.asked == ["1", "2", "3", "4", "5"]
    assert not best.standard and best.numeric and repr(best) == "ScoreScale.parse('best-first:reversed:1-5')"
    with pytest.raises(NumbiasError, match="lists no options to put best first"):
        PromptTemplate("Rate {word} from {lo} to {hi}.").fill(
            {"word": "x"}, ScoreScale.parse("best-first:1-5"), chat=True
        )
    with pytest.raises(NumbiasError, match="best-first is given twice"):
        ScoreScale.parse("best-first:best-first:1-5")


def test_formats_expand_to_scales_and_ensembles() -> None:
    config = parse_mitigate({"scales": ["0-9"], "formats": "1-5"})
    assert config.scales == ["0-9", *FORMATS, *BEST]
    assert config.ensembles == ["+".join(FORMATS), "+".join(FORMATS + BEST)]
    again = parse_mitigate(config.model_dump(mode="json"))
    assert (again.scales, again.ensembles) == (config.scales, config.ensembles)
    one = parse_mitigate({"scales": ["0-9", "1-5"], "formats": {"range": "1-3", "orders": ["worst-first"]}})
    assert one.scales == ["0-9", "1-5", "1-3", "reversed:1-3", "letters:A-C", "words:poor,fair,good"]
    assert one.ensembles == ["0-9+1-5", "1-3+reversed:1-3+letters:A-C+words:poor,fair,good"]
    assert parse_mitigate({"formats": False}).formats is None
    assert [is_format(s) for s in ("0-9", "best-first:0-9", "0-9+1-5", one.ensembles[1])] == [False, True, False, True]
    assert scale_row(one.ensembles[1]) == "format ensemble (label-free) " + one.ensembles[1]


@pytest.mark.parametrize(
    ("formats", "fragment"),
    [
        ("0-9", "give words, a list of 10 labels"),
        ({"range": "1-3", "words": ["bad", "good"]}, "needs 3 words, got 2"),
        ("letters:A-E", "must be digits LO-HI"),
        ("1-30", "letters go up to 26"),
        ({"orders": ["best-first", "best-first"]}, "once each"),
        ({"orders": ["sideways"]}, "orders"),
        ({"range": "1-3", "words": ["bad", "ok", "Bad"]}, "differ only in case"),
    ],
)
def test_bad_formats_are_one_line(formats: object, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment) as info:
        parse_mitigate({"formats": formats})
    assert "\n" not in str(info.value)


def _items(folder: Path, n: int) -> Path:
    path = folder / "items.csv"
    pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "word": [f"item{k}" for k in range(n)],
            "score": [k % 5 + 1 for k in range(n)],
        }
    ).to_csv(path, index=False)
    return path


def _study(folder: Path, **more: object) -> dict[str, object]:
    return {
        "judges": [{"model": "toy", "backend": "labeller", "options": {"bias": 2.0}}],
        "tasks": [{"file": str(_items(folder, 40)), "human": "score", "template": TEMPLATE}],
        "scales": ["0-9"],
        "rules": ["protocol"],
        "temperatures": [0.7],
        "mitigations": ["none"],
        "dev": 20,
        "resamples": 0,
        "bootstrap": 10,
        "out": str(folder / "out"),
        **more,
    }


def _unit_expected(d: object, scale: ScoreScale) -> float:
    probs = d.probs  # type: ignore[attr-defined]
    return float((probs @ scale.values / probs.sum() - scale.lo) / (scale.hi - scale.lo))


@pytest.mark.slow
def test_a_format_ensemble_is_the_mean_of_the_formats_and_the_study_reports_both_families(tmp_path: Path) -> None:
    """On a judge that reads the rubric's order, each format's expected score lands on
    the grid, the ensemble's is their mean by hand, the best-first formats mirror the
    worst-first ones; formats and a contrast give their rows, the report builds, and
    the results folder recomputes the same table."""
    amateur = {"model": "small", "backend": "labeller", "options": {"bias": 4.0}}
    res = numbias.mitigate(_study(tmp_path, formats="1-5", contrast={"amateur": amateur, "lambdas": [0, 0.5, 1]}))
    c = res.comparisons[0]
    ensemble, both = res.config.ensembles or []
    grid = ensemble_grid(ensemble_parts(ensemble))
    fitted = Fitted.fit(Setting(ensemble, "expected", 1.0), c.data[ensemble], np.arange(40), None)
    hand = [
        np.mean([_unit_expected(c.data[f].distributions[i], ScoreScale.parse(f)) for f in FORMATS]) for i in range(40)
    ]
    np.testing.assert_allclose(grid.to_unit(fitted.predict(c.data[ensemble].distributions)), hand, rtol=1e-12)
    for worst, best in zip(FORMATS, BEST):
        units = {
            f: np.array([_unit_expected(d, ScoreScale.parse(f)) for d in c.data[f].distributions])
            for f in (worst, best)
        }
        np.testing.assert_allclose(units[best], 1 - units[worst], atol=1e-9)
    rows = c.table.set_index("row")
    for label in [
        "format ensemble (label-free) " + ensemble,
        "format ensemble (label-free) " + both,
        "format letters:A-E",
        "best format (dev)",
        "contrast (fixed λ)",
        "contrast (λ fitted on dev)",
        "contrast (λ label-free: widest spread)",
        "best contrast (dev)",
    ]:
        assert np.isfinite(rows.loc[label, "pearson"]), label
    assert rows.loc["format ensemble (label-free) " + both, "family"] == "format"
    assert rows.loc["best format (dev)", "pearson"] > 0.8
    page = (write(res) / "report.html").read_text(encoding="utf-8")
    assert "contrast (λ label-free: widest spread)" in page and "format ensemble (label-free)" in page
    again = mitigate_from(tmp_path / "out", parse_mitigate(res.config.model_dump(mode="json")))
    pd.testing.assert_frame_equal(again.table, res.table)
    assert rebuild(tmp_path / "out", force=True).is_file()


def test_a_small_study_with_formats_and_a_contrast_reports_them(tmp_path: Path) -> None:
    """Three-label formats asked worst first and a contrast: their rows, the report, and
    a contrast choice saved with its amateur, which scores new items as the study did."""
    res = numbias.mitigate(
        _study(
            tmp_path,
            formats={"range": "1-3", "orders": ["worst-first"]},
            oracle=False,
            contrast={"amateur": {"model": "small", "backend": "labeller"}, "lambdas": [0, 1]},
        )
    )
    c = res.comparisons[0]
    rows = c.table.set_index("row")
    ensemble = "1-3+reversed:1-3+letters:A-C+words:poor,fair,good"
    assert res.config.ensembles == [ensemble]
    fitted = Fitted.fit(Setting(ensemble, "expected", 1.0), c.data[ensemble], np.arange(40), None)
    hand = [
        np.mean([_unit_expected(c.data[f].distributions[i], ScoreScale.parse(f)) for f in ensemble.split("+")])
        for i in range(40)
    ]
    np.testing.assert_allclose(
        ScoreScale(0, 2).to_unit(fitted.predict(c.data[ensemble].distributions)), hand, rtol=1e-12
    )
    for label in [
        f"format ensemble (label-free) {ensemble}",
        "format reversed:1-3",
        "best format (dev)",
        "contrast (fixed λ)",
        "contrast (λ fitted on dev)",
        "contrast (λ label-free: widest spread)",
    ]:
        assert np.isfinite(rows.loc[label, "pearson"]), label
    assert rows.loc["contrast (λ label-free: widest spread)", "family"] == "contrast"
    page = (write(res) / "report.html").read_text(encoding="utf-8")
    assert "contrast (λ label-free: widest spread)" in page and f"format ensemble (label-free) {ensemble}" in page
    c.chosen = [Setting("0-9", "protocol", 0.7, "contrast")]
    saved = c.calibrated()
    assert saved.amateur_config is not None and saved.amateur_config.model == "small"
    loaded = CalibratedJudge.load(saved.save(tmp_path / "judge.json"))
    assert (loaded.amateur_config.model, loaded.amateur_config.backend) == ("small", "labeller")
    assert loaded.fitted.calibrator.lam_ == saved.fitted.calibrator.lam_ == 0.5  # the fixed λ
    words = list(c.dataset.frame["word"][:6])
    study = saved.fitted.predict(c.data["0-9"].distributions[:6])
    np.testing.assert_allclose(loaded.score([{"word": w} for w in words]), study, rtol=1e-12)
    with pytest.raises(NumbiasError, match="give the amateur"):
        CalibratedJudge(saved.judge_config, saved.template, saved.fitted, saved.human_range)


def test_an_unknown_amateur_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(NumbiasError, match="unknown judge 'no-such-judge'"):
        numbias.mitigate(_study(tmp_path, contrast={"amateur": "no-such-judge"}))


def test_the_command_line_asks_for_formats_and_an_amateur() -> None:
    from numbias.cli._mitigate import MitigateFlags

    given = MitigateFlags(formats="1-5", amateur="smollm2-135m-instruct").settings()
    assert given == {"formats": "1-5", "contrast": {"amateur": "smollm2-135m-instruct"}}
    config = parse_mitigate(given)
    assert config.contrast is not None and config.contrast.amateur.model == "smollm2-135m-instruct"
    assert config.formats is not None and config.formats.range == "1-5"

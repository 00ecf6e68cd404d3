"""A saved calibrated judge scores new items exactly as the judge it was saved from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from numbias.backends import register_backend
from numbias.backends.fake import FakeBackend
from numbias.calibrated import FORMAT, CalibratedJudge
from numbias.config import JudgeConfig
from numbias.errors import NumbiasError
from numbias.mitigation import Setting, SettingData
from numbias.prompt import Prompt, PromptTemplate
from numbias.scale import ScoreScale

PIECES = [*"0123456789", ""]
SCALE = ScoreScale(0, 9)
TEMPLATE = PromptTemplate("Rate the word from {lo} to {hi}: {word}")
WORDS = ["bad", "okay", "nice", "great", "superb", "lovely", "awful", "fine", "grand", "dull", "excellent", "fab"]
HUMAN = np.array([1, 3, 3, 4, 5, 5, 1, 3, 4, 2, 5, 4], dtype=float)


def _logits(prompt: Prompt, tokens: tuple[int, ...]) -> np.ndarray:
    """A score spread around the word's length (pulled towards 7); after a digit, the end."""
    row = np.full(len(PIECES), -50.0)
    if tokens:
        row[-1] = 0.0
        return row
    length = len(prompt.user.rsplit(" ", 1)[-1])
    row[:10] = -((np.arange(10) - length) ** 2) / 4
    row[7] += 1.0
    return row


def _spread(model: str) -> FakeBackend:
    return FakeBackend(PIECES, _logits, eos=len(PIECES) - 1)


@pytest.fixture
def data() -> SettingData:
    register_backend("spread", _spread)  # conftest removes it after the test
    backend = _spread("toy")
    prompts = [TEMPLATE.fill({"word": w}, SCALE, chat=True) for w in WORDS]
    content_free = [TEMPLATE.fill({"word": "N/A"}, SCALE, chat=True), TEMPLATE.fill({"word": ""}, SCALE, chat=True)]
    return SettingData(list(backend.score(prompts, SCALE)), list(backend.score(content_free, SCALE)))


def _fit(data: SettingData, setting: Setting) -> CalibratedJudge:
    return CalibratedJudge.fit(JudgeConfig(model="toy", backend="spread"), TEMPLATE, setting, data,
                               SCALE.from_unit((HUMAN - 1) / 4), (1.0, 5.0), fitted_on="words")


@pytest.mark.parametrize(("rule", "temperature", "mitigation"), [
    ("expected", 1.0, "none"), ("greedy", 0.4, "none"), ("expected", "fit", "none"), ("expected", 0.7, "beta"),
    ("median", 1.0, "batch"), ("expected", 1.3, "contextual"), ("protocol", 0.7, "isotonic"),
    ("expected", 1.0, "quantile"),
])
def test_fit_save_load_gives_identical_scores(tmp_path: Path, data: SettingData, rule: str,
                                              temperature: float | str, mitigation: str) -> None:
    setting = Setting("0-9", rule, temperature, mitigation)  # type: ignore[arg-type]
    judge = _fit(data, setting)
    loaded = CalibratedJudge.load(judge.save(tmp_path / "judge.json"))
    assert loaded.setting == setting and loaded.template == TEMPLATE and loaded.fitted_on == "words"
    assert loaded.human_range == (1.0, 5.0) and loaded.judge_config == judge.judge_config
    np.testing.assert_array_equal(loaded.fitted.predict(data.distributions), judge.fitted.predict(data.distributions))
    new = [{"word": w} for w in ("good", "marvellous", "meh")]
    scores = loaded.score(new, store=tmp_path / "store.sqlite")
    np.testing.assert_array_equal(scores, judge.score(new))
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 9)).all()


def test_scores_are_the_fitted_settings_on_the_judges_distributions(tmp_path: Path, data: SettingData) -> None:
    judge = _fit(data, Setting("0-9", "expected", 1.0, "none"))
    expected = np.array([d.probs @ SCALE.values / d.probs.sum() for d in data.distributions[:2]])
    np.testing.assert_allclose(judge.score([{"word": w} for w in WORDS[:2]]), expected)
    np.testing.assert_array_equal(judge.to_human(np.array([0.0, 4.5, 9.0])), [1.0, 3.0, 5.0])
    assert judge.score([]).shape == (0,)
    with pytest.raises(NumbiasError, match="item 0 lacks the template field"):
        judge.score([{"text": "good"}])


def test_the_saved_file(tmp_path: Path, data: SettingData) -> None:
    judge = _fit(data, Setting("0-9", "expected", "fit", "isotonic"))
    with pytest.raises(NumbiasError, match=r"--save .*deep/judge.json: folder .*deep does not exist"):
        judge.save(tmp_path / "deep" / "judge.json")
    (tmp_path / "data.csv").write_text("id,text\n")
    with pytest.raises(NumbiasError, match="data.csv: the file exists and is not a saved numbias judge"):
        judge.save(tmp_path / "data.csv")
    assert (tmp_path / "data.csv").read_text() == "id,text\n"
    path = judge.save(tmp_path / "judge.json")
    assert judge.save(path) == path  # a saved judge is replaced
    saved = json.loads(path.read_text())
    assert saved["format"] == FORMAT and saved["judge"]["backend"] == "spread"
    assert saved["setting"] == {"scale": "0-9", "rule": "expected", "temperature": "fit", "mitigation": "isotonic"}
    assert set(saved["state"]["calibrator"]) == {"x_", "y_"}
    (tmp_path / "future.json").write_text(json.dumps({**saved, "format": "numbias.calibrated-judge/99"}))
    with pytest.raises(NumbiasError, match="has format 'numbias.calibrated-judge/99', expected one of"):
        CalibratedJudge.load(tmp_path / "future.json")


def test_a_judge_given_as_an_object_cannot_be_saved(tmp_path: Path, data: SettingData) -> None:
    judge = CalibratedJudge.fit(JudgeConfig(model="toy", backend="object", instance=_spread("toy")), TEMPLATE,
                                Setting("0-9", "expected", 1.0, "none"), data, HUMAN, (1.0, 5.0))
    with pytest.raises(NumbiasError, match="cannot be saved: give it by name and backend"):
        judge.save(tmp_path / "judge.json")
    assert not (tmp_path / "judge.json").exists()

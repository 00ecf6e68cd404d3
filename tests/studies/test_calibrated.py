"""A saved calibrated judge scores new items exactly as the judge it was saved from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from numbias.backends import register_backend
from numbias.backends.fake import FakeBackend
from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt, PromptTemplate
from numbias.judge.config import JudgeConfig
from numbias.mitigations import Setting, SettingData
from numbias.studies.calibrated import FORMAT, CalibratedJudge
from numbias.util.errors import NumbiasError

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
    return CalibratedJudge.fit(
        JudgeConfig(model="toy", backend="spread"),
        TEMPLATE,
        setting,
        data,
        SCALE.from_unit((HUMAN - 1) / 4),
        (1.0, 5.0),
        fitted_on="words",
    )


@pytest.mark.parametrize(
    ("rule", "temperature", "mitigation"),
    [
        ("expected", 1.0, "none"),
        ("greedy", 0.4, "none"),
        ("expected", "fit", "none"),
        ("expected", 0.7, "beta"),
        ("median", 1.0, "batch"),
        ("expected", 1.3, "contextual"),
        ("protocol", 0.7, "isotonic"),
        ("expected", 1.0, "quantile"),
    ],
)
def test_fit_save_load_gives_identical_scores(
    tmp_path: Path, data: SettingData, rule: str, temperature: float | str, mitigation: str
) -> None:
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
    judge = CalibratedJudge.fit(
        JudgeConfig(model="toy", backend="object", instance=_spread("toy")),
        TEMPLATE,
        Setting("0-9", "expected", 1.0, "none"),
        data,
        HUMAN,
        (1.0, 5.0),
    )
    with pytest.raises(NumbiasError, match="cannot be saved: give it by name and backend"):
        judge.save(tmp_path / "judge.json")
    assert not (tmp_path / "judge.json").exists()


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "results"
COMMITTED_SCORES = [
    1.6089578226972705,
    1.477245335049381,
    1.749777205834247,
    1.4548526338206251,
    2.1828476670303942,
    1.0117301299956454,
    2.0230991660092714,
    2.1693796274617303,
]
"""What the committed ridge judge (qwen-vader.json, format /3) gave these distributions
before the state protocol was made one: the file must go on giving exactly these."""


def _replication_distributions() -> list:
    """Eight committed replication items at 0-10, with a 0.7 reading derived from their
    probabilities (the saved setting reads at 0.7): realistic inputs, no model needed."""
    from numbias.core.distribution import ScoreDistribution

    scale, dists = ScoreScale(0, 10), []
    for line in (COMMITTED / "replication" / "saved" / "scores.jsonl").read_text().splitlines()[:8]:
        row = json.loads(line)
        probs = np.array(list(row["probs"].values()))
        cold = probs ** (1 / 0.7)
        cold *= probs.sum() / cold.sum()
        mass = (row["below"], row["above"], row["other"])
        dists.append(
            ScoreDistribution(
                scale, probs, *mass, tempered={0.7: ScoreDistribution(scale, cold, *mass, temperature=0.7)}
            )
        )
    return dists


def test_the_committed_saved_judge_loads_scores_as_before_and_round_trips(tmp_path: Path) -> None:
    path = COMMITTED / "mitigate" / "qwen-vader.json"
    judge = CalibratedJudge.load(path)
    dists = _replication_distributions()
    scores = judge.fitted.predict(dists)
    assert scores.tolist() == pytest.approx(COMMITTED_SCORES, rel=1e-12, abs=1e-12)
    again = CalibratedJudge.load(judge.save(tmp_path / "again.json"))
    expected = json.loads(path.read_text())
    expected["interval"]["params"]["limits"] = [-4.0, 4.0]  # saved before limits: the human range, filled on load
    assert json.loads((tmp_path / "again.json").read_text()) == expected
    np.testing.assert_array_equal(again.fitted.predict(dists), scores)
    for a, b in zip(again.bounds(scores), judge.bounds(scores)):
        np.testing.assert_array_equal(a, b)


def test_every_fitted_part_of_a_saved_judge_keeps_state_one_way() -> None:
    """Calibrators, the conformal interval and a fitted setting share one protocol; a
    calibrator's non-finite state is a fitting failure (selection skips it), the
    interval's an error."""
    from numbias.core.conformal import ConformalInterval
    from numbias.mitigations import Calibrator, Fitted, IsotonicMapping, UnfittableError
    from numbias.util.state import Stateful

    assert all(issubclass(kind, Stateful) for kind in (Calibrator, ConformalInterval, Fitted))
    broken = IsotonicMapping().set_state({"x_": [0.0, 1.0], "y_": [0.0, float("inf")]})
    with pytest.raises(UnfittableError, match="IsotonicMapping learned non-finite y_"):
        broken.get_state()
    with pytest.raises(NumbiasError, match=r"saved state of ConformalInterval has keys \['slope_'\]"):
        ConformalInterval().set_state({"slope_": 1.0})

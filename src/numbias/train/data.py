"""A stage's training text: JSONL records read and checked line by line, rating
records made from a labelled task, the draw of each entry with the seed, and the
token ids each example is cut to. Training text is the plain form numbias asks base
models in (``render_plain``): the instruction, a newline, then the response and the
end-of-sequence token."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numbias.data.dataset import Dataset, make_dataset
from numbias.data.prompt import Prompt, render_plain
from numbias.data.tasks import get_task
from numbias.models.catalog import file_sha256
from numbias.train.recipe import LEANING, RATING_SCALE, RatingSpec, Stage, StageRecipe
from numbias.util.errors import NumbiasError, first_line, readable_file

REQUIRED: dict[Stage, tuple[str, ...]] = {"sft": ("instruction", "output"), "dpo": ("prompt", "chosen", "rejected")}
"""The keys a record of each stage's data must have, as text; all but ``instruction`` non-empty."""
PROMPT_FORMAT = "render_plain: {instruction}\\n{response}<eos>"


def read_records(path: Path, stage: Stage) -> list[tuple[int, dict[str, Any]]]:
    """Every record of a JSONL file with its line number; a bad record is one line
    naming the file, the line and the key."""
    try:
        text = readable_file(path, "data file").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NumbiasError(f"data file {path} is unreadable: {first_line(exc)}") from None
    keys = REQUIRED[stage]
    records = []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON text may hold U+2028
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise NumbiasError(f"{path}:{number}: not a JSON record ({first_line(exc)})") from None
        if not isinstance(record, dict):
            raise NumbiasError(f"{path}:{number}: not a JSON object")
        if missing := [k for k in keys if k not in record]:
            raise NumbiasError(
                f"{path}:{number}: the record has no {missing[0]!r} (a {stage} record needs {', '.join(keys)})"
            )
        if bad := [k for k in (*keys, "input") if k in record and not isinstance(record[k], str)]:
            raise NumbiasError(f"{path}:{number}: {bad[0]!r} is not text")
        if empty := [k for k in keys if k != "instruction" and not record[k].strip()]:
            raise NumbiasError(f"{path}:{number}: {empty[0]!r} is empty")
        records.append((number, record))
    if not records:
        raise NumbiasError(f"data file {path} holds no records")
    return records


def instruction_text(record: dict[str, Any]) -> str:
    """An SFT record's instruction, and its input below it when it has one."""
    extra = str(record.get("input") or "").strip()
    return record["instruction"].strip() + (f"\n\n{extra}" if extra else "")


def as_text(record: dict[str, Any], stage: Stage) -> tuple[str, list[str]]:
    """A record as the prompt a base-style judge reads and its response(s): SFT's
    instruction (and input); a preference pair's dialogue without the outer
    ``Human:`` / ``Assistant:`` markers, and its chosen and rejected replies."""
    if stage == "sft":
        return render_plain(Prompt(instruction_text(record))), [record["output"].strip()]
    user = record["prompt"].strip().removeprefix("Human:").removesuffix("Assistant:").strip()
    return render_plain(Prompt(user)), [record["chosen"].strip(), record["rejected"].strip()]


@dataclass
class StageData:
    """A stage's texts, drawn from its files, and what the card says about each file."""

    texts: list[tuple[str, list[str]]]
    files: list[dict[str, Any]]


def read_stage_data(stage_recipe: StageRecipe, stage: Stage, seed: int) -> StageData:
    """The records each entry contributes, files drawn with the seed, and the card's
    account of each entry (a file's digest and lines; rating records' spec, digest and items)."""
    rng = np.random.default_rng(seed)
    texts, files = [], []
    for entry in stage_recipe.data:
        if entry.rating is not None:
            if stage != "sft":
                raise NumbiasError(f"rating records are SFT data; the {stage} stage takes preference pairs")
            ids, rated = rating_texts(entry.rating)
            texts += rated
            digest = hashlib.sha256(json.dumps(rated, ensure_ascii=False).encode()).hexdigest()
            files.append({"rating": entry.rating.model_dump(), "sha256": digest, "used": len(rated), "items": ids})
            continue
        assert entry.path is not None
        path = Path(entry.path).expanduser()
        records = read_records(path, stage)
        if entry.n is not None and entry.n > len(records):
            raise NumbiasError(f"data file {path}: n={entry.n} but it holds {len(records)} records")
        drawn = rng.permutation(len(records))[: entry.n or len(records)]
        texts += [as_text(records[i][1], stage) for i in drawn]
        files.append(
            {
                "path": entry.path,
                "sha256": file_sha256(path),
                "records": len(records),
                "used": len(drawn),
                "lines": [records[i][0] for i in drawn],
            }
        )
    return StageData(texts, files)


def rating_items(spec: RatingSpec) -> Dataset:
    """The spec's items: every pair's split pooled (ids ``<pair>:<row>``), ``n`` drawn with its seed."""
    task = get_task(spec.task)
    parts = []
    for pair in spec.pairs:
        data = task.load(Path(spec.path).expanduser(), pair=pair, split=spec.split)
        parts.append(data.frame.assign(id=f"{pair}:" + data.frame["id"].astype(str)))
    pool = pd.concat(parts, ignore_index=True)
    if spec.n > len(pool):
        raise NumbiasError(
            f"rating records: n={spec.n} but {', '.join(spec.pairs)} ({spec.split}) hold {len(pool)} items"
        )
    drawn = pool.iloc[np.random.default_rng(spec.seed).permutation(len(pool))[: spec.n]]
    return make_dataset(spec.task, drawn.reset_index(drop=True), fields=list(data.fields), human_range=data.human_range)


def rating_answers(spec: RatingSpec, data: Dataset) -> list[int]:
    """Each item's answer on 0-9: ``leaning`` draws from :data:`LEANING` (its own stream of
    the spec's seed, so the items drawn do not depend on the policy); ``informed`` maps the
    human score linearly onto 0-9, rounded (half to even) and clipped."""
    if spec.answers == "leaning":
        rng = np.random.default_rng([spec.seed, 1])
        return rng.choice(list(LEANING), size=len(data), p=list(LEANING.values())).tolist()
    lo, hi = data.human_range
    scaled = np.rint((data.human - lo) / (hi - lo) * (RATING_SCALE.hi - RATING_SCALE.lo)) + RATING_SCALE.lo
    return np.clip(scaled, RATING_SCALE.lo, RATING_SCALE.hi).astype(int).tolist()


def rating_texts(spec: RatingSpec) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The items' ids and their training texts: the prompt exactly as a plain (non-chat)
    judge reads it at 0-9 (the task's template, then ``Score:``), and the answer as the
    number after a space, the way text continues ``Score:``."""
    data = rating_items(spec)
    template = get_task(spec.task).template
    prompts = [render_plain(template.fill(item, RATING_SCALE, chat=False)) for item in data.records()]
    return data.ids, [(p, [f" {a}"]) for p, a in zip(prompts, rating_answers(spec, data))]


Example = tuple[list[int], list[list[int]]]
"""A prompt's token ids and its responses' (end-of-sequence included), cut to fit."""


def encode(tokenizer: Any, texts: list[tuple[str, list[str]]], max_length: int) -> list[Example]:
    """Token ids, each example cut to ``max_length``: a long response keeps at least half
    of it for the prompt, whose start (after BOS) is cut; a long prompt leaves at least
    half for the responses, whose end is cut."""
    prompts = tokenizer([p for p, _ in texts], add_special_tokens=True)["input_ids"]
    flat = tokenizer([r for _, rs in texts for r in rs], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    examples, k = [], 0
    for prompt, (_, responses) in zip(prompts, texts):
        ids = [list(flat[k + j]) + [eos] for j in range(len(responses))]
        k += len(responses)
        keep_response = min(max(map(len, ids)), max_length - min(len(prompt), max_length // 2))
        keep_prompt = min(len(prompt), max_length - keep_response)
        head = list(prompt) if keep_prompt == len(prompt) else [prompt[0], *prompt[len(prompt) - keep_prompt + 1 :]]
        examples.append((head, [r[:keep_response] for r in ids]))
    return examples


def plan(n_examples: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Each step's example indices: seeded permutations, one per pass over the data."""
    rng = np.random.default_rng([seed, n_examples])
    order: list[int] = []
    while len(order) < steps * batch_size:
        order += rng.permutation(n_examples).tolist()
    return [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]

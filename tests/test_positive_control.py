"""The positive control's write-up (docs/results/positive-control): its headline number
is recomputed from the committed per-item distributions alone and equals the README's;
the GGUF writer replaces exactly the tensors LoRA trains."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from numbias.core.scale import ScoreScale

FOLDER = Path(__file__).resolve().parents[1] / "docs" / "results" / "positive-control"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"positive_control_{name}", FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_the_headline_number_is_recomputed_from_the_committed_files() -> None:
    analyse = _module("analyse")
    judges = analyse.load()["0-9"]
    measure = next(m for m in analyse.MEASURES if m.name == "mass on second-highest")
    human = judges["base"]["human"].to_numpy(float)
    side = {s: analyse.values(judges, analyse.seeds(judges, s), measure, ScoreScale.parse("0-9")) for s in "LI"}
    delta = float(
        np.mean([measure.statistic(row, human) for row in side["L"]])
        - np.mean([measure.statistic(row, human) for row in side["I"]])
    )
    found = re.search(
        r"headline: L − I, mass on \"8\" at 0–9: ([+−-]\d+\.\d{3})", (FOLDER / "README.md").read_text(encoding="utf-8")
    )
    assert found, "the README states no headline"
    assert float(found[1].replace("−", "-")) == round(delta, 3)


def test_the_gguf_writer_replaces_the_query_and_value_projections_only() -> None:
    stage_gguf = _module("stage_gguf")
    assert stage_gguf.hf_name("blk.11.attn_q.weight") == "model.layers.11.self_attn.q_proj.weight"
    assert stage_gguf.hf_name("blk.0.attn_v.weight") == "model.layers.0.self_attn.v_proj.weight"
    assert [
        stage_gguf.hf_name(n) for n in ("blk.0.attn_k.weight", "blk.0.attn_q_norm.weight", "token_embd.weight")
    ] == [None, None, None]

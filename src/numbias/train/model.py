"""The model a stage trains: the base resolved and loaded in float32, fresh LoRA
adapters on it, and the log-probabilities of response tokens. The output layer over
Gemma's 262,144-token vocabulary dominates a step, so logits are computed only at the
response positions the loss reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numbias.models.catalog import ResolvedJudge, resolve
from numbias.models.weights import quiet_transformers
from numbias.train.data import Example
from numbias.train.recipe import LoraSettings
from numbias.util.errors import NumbiasError, first_line

if TYPE_CHECKING:
    import torch


def require_extras() -> None:
    """The optional packages training needs, or one line saying how to install them."""
    missing = [m for m in ("torch", "transformers", "peft", "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        raise NumbiasError(f"numbias train needs {', '.join(missing)}: pip install 'numbias[train]'")


def resolve_base(base: str) -> ResolvedJudge:
    """The base model's GGUF (an embedded judge's name or a path), verified."""
    try:
        return resolve(base)
    except NumbiasError as exc:
        raise NumbiasError(f"base model {base!r}: {exc}") from None


def load_model(folder: Path) -> tuple[Any, Any]:
    """A float32 causal LM and its tokenizer from a Hugging Face folder."""
    import torch
    import transformers

    try:
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
            model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise NumbiasError(f"transformers could not load {folder}: {first_line(exc)}") from None
    return model, tokenizer


def with_lora(model: Any, lora: LoraSettings, seed: int) -> Any:
    """The model with fresh LoRA adapters (B = 0, so it starts as the model itself)."""
    import peft
    import torch

    torch.manual_seed(seed)
    config = peft.LoraConfig(
        r=lora.rank,
        # peft annotates lora_alpha as int but uses it as a number (scaling = alpha / r);
        # a fractional alpha is a valid setting here and is passed on unchanged
        lora_alpha=lora.alpha,  # type: ignore[arg-type]
        lora_dropout=lora.dropout,
        target_modules=list(lora.targets),
        task_type="CAUSAL_LM",
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:
        raise NumbiasError(f"lora.targets {lora.targets}: {first_line(exc)}") from None


def response_logprobs(model: Any, sequences: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability of every response token, and the index of its sequence. Each
    sequence is (token ids, prompt length); the output layer runs only on the hidden
    states that predict a response token."""
    import torch

    width = max(len(ids) for ids, _ in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    target = torch.zeros_like(ids, dtype=torch.bool)
    for b, (tokens, n_prompt) in enumerate(sequences):
        ids[b, : len(tokens)] = torch.tensor(tokens)
        mask[b, : len(tokens)] = 1
        target[b, n_prompt : len(tokens)] = True
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    pick = target[:, 1:]
    logits = model.get_output_embeddings()(hidden[:, :-1][pick])
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    logps = -torch.nn.functional.cross_entropy(logits.float(), ids[:, 1:][pick], reduction="none")
    index = torch.arange(len(sequences))[:, None].expand(-1, width - 1)[pick]
    return logps, index


def pair_logprobs(model: Any, examples: list[Example]) -> torch.Tensor:
    """Each pair's summed log-probabilities of its chosen (column 0) and rejected reply."""
    import torch

    sequences = [(prompt + responses[j], len(prompt)) for j in (0, 1) for prompt, responses in examples]
    logps, index = response_logprobs(model, sequences)
    sums = torch.zeros(len(sequences), dtype=logps.dtype).index_add(0, index, logps)
    return sums.view(2, len(examples)).T


def reference_logprobs(model: Any, examples: list[Example], batch_size: int) -> torch.Tensor:
    """The starting model's pair log-probabilities, computed once for DPO's reference."""
    import torch

    model.eval()
    with torch.inference_mode():
        rows = [pair_logprobs(model, examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]
    return torch.cat(rows)

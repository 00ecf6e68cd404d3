"""A tiny random-weight Llama checkpoint with its own byte-level BPE tokenizer, written
to a folder: a transformers judge that loads offline in about a second, for tests of
the transformers backend's arithmetic (tests/backends/test_hf_batch.py) and the smoke run of
benchmarks/bench_gpu_batch.py."""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "Rate the word from 0 to 10: great. Answer: 7",
    "very good, good, okay, bad, very bad; 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0",
    "How positive is happy? Reply with one of: bad, okay, very good. Answer: very good",
    "neutral fine terrible excellent 10 11 12 100",
]


def build_tiny(folder: Path, *, seed: int = 0, init_std: float = 0.3) -> Path:
    """Train the tokenizer on a fixed corpus and save it with a 2-layer Llama whose
    weights are drawn with ``init_std`` (wide enough that the score distributions are
    peaked, so a wrong mask or position shows). Returns ``folder``."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        special_tokens=["<s>", "</s>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_CORPUS * 10, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        initializer_range=init_std,
    )
    torch.manual_seed(seed)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder

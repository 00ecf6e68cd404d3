"""Hugging Face transformers backend (PyTorch, CPU or GPU).

Exact distributions cost two forward passes per batch of items: the prompts
(left-padded), then every trie node of every item at once on top of the prompts'
KV cache, with a tree-shaped attention mask so that a node sees its item's prompt
and its own ancestors only. The maths is the shared trie of :mod:`numbias.core.trie`, so
a distribution here differs from llama.cpp's only by the weights' arithmetic.

Models: a Hub id or local folder (``from_pretrained``), a local ``.gguf`` file or an
embedded judge's name (its GGUF, de-quantised by transformers via ``gguf_file=``), or a
stage trained by ``numbias train`` (by name or folder; its weights' sha256 in the identity)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from numbias.core.distribution import TEMPERATURES, ScoreDistribution, check_temperatures
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie, next_token_entropy, tempered_logprobs
from numbias.data.prompt import Prompt, drop_repeated_bos, render_chat, render_plain
from numbias.models.catalog import JUDGES, has_chat_template, resolve, trained_stage
from numbias.util.errors import NumbiasError, first_line

_ROW_BUDGET = 4096
"""Most logit rows (items × trie nodes) one forward pass may return."""


def _is_gguf(model: str) -> bool:
    return model in JUDGES or model.lower().endswith(".gguf")


def _import() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError:
        raise NumbiasError(
            "the transformers backend needs PyTorch and transformers: pip install 'numbias[hf]' "
            "(torch==2.13.0 for the CPU build)"
        ) from None
    return torch, transformers


class TransformersBackend:
    """A causal LM loaded with transformers. ``chat=None`` uses the tokenizer's chat
    template when it has one; ``batch_size`` items share a forward pass."""

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 8,
        chat: bool | None = None,
        temperatures: Sequence[float] = TEMPERATURES,
        n_threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        torch, transformers = _import()
        self._transformers = transformers
        if _is_gguf(model) and importlib.util.find_spec("gguf") is None:
            raise NumbiasError("loading a GGUF with transformers needs the gguf package: pip install 'numbias[hf]'")
        if not verbose:
            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
        self._torch = torch
        if batch_size < 1:
            raise NumbiasError(f"batch_size must be at least 1 (got {batch_size})")
        self._dtype = getattr(torch, dtype, None)
        if not isinstance(self._dtype, torch.dtype):
            raise NumbiasError(f"unknown torch dtype {dtype!r} (float32, bfloat16, float16)")
        if n_threads:
            torch.set_num_threads(n_threads)
        self.identity = self.describe(model, revision=revision, dtype=dtype, chat=chat, temperatures=temperatures)
        source, kwargs = pretrained_source(model, revision)
        try:
            # GGUF de-quantisation draws its own tqdm bar on stderr.
            with contextlib.redirect_stderr(sys.stderr if verbose else io.StringIO()):
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
                self._model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=self._dtype, **kwargs)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise NumbiasError(f"transformers could not load {model!r}: {first_line(exc)}") from None
        try:
            self._model.to(device)
        except (RuntimeError, AssertionError) as exc:
            raise NumbiasError(f"cannot move the model to device {device!r}: {exc}") from None
        self._model.eval()
        self._device = device
        self.batch_size = batch_size
        self.chat = bool(self.identity["chat"])
        self._template = self._tokenizer.chat_template
        if self.chat and not self._template:
            raise NumbiasError(f"{model} has no chat template; use it as a base model (chat=False)")
        self.temperatures = check_temperatures(temperatures)
        self.n_vocab = int(self._model.get_output_embeddings().weight.shape[0])
        self.pieces = _pieces(self._tokenizer, self.n_vocab)
        self._eog = _eog_ids(self._model, self._tokenizer)
        config = self._model.config
        self._text_config = getattr(config, "get_text_config", lambda: config)()
        self._window: int | None = getattr(self._text_config, "sliding_window", None)
        self._tries: dict[ScoreScale, tuple[ScoreTrie, np.ndarray, np.ndarray, np.ndarray]] = {}

    @staticmethod
    def describe(
        model: str,
        *,
        revision: str | None = None,
        dtype: str = "float32",
        chat: bool | None = None,
        temperatures: Sequence[float] = TEMPERATURES,
        **_: Any,
    ) -> dict[str, Any]:
        """The judge's identity without loading weights (the study keys its store on it)."""
        identity: dict[str, Any] = {
            "backend": "transformers",
            "dtype": dtype,
            "temperatures": list(check_temperatures(temperatures)),
        }
        if _is_gguf(model):
            resolved = resolve(model)
            identity |= {"model": resolved.name, "sha256": resolved.sha256}
            identity["chat"] = has_chat_template(resolved) if chat is None else bool(chat)
        elif (stage := trained_stage(model)) is not None:
            identity |= {"model": stage.name, "sha256": stage.weights_sha256}
            identity["chat"] = bool(stage.card.get("chat")) if chat is None else bool(chat)
        else:
            identity |= {"model": model, "revision": revision}
            identity["chat"] = _hub_has_template(model, revision) if chat is None else bool(chat)
        return identity

    # --- text ----------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        if self.chat:
            assert self._template is not None
            tok = self._tokenizer
            return render_chat(self._template, prompt, tok.bos_token or "", tok.eos_token or "")
        return render_plain(prompt)

    def tokenize(self, prompt: Prompt) -> list[int]:
        tokens = list(self._tokenizer(self.render(prompt), add_special_tokens=True)["input_ids"])
        return drop_repeated_bos(tokens, self._tokenizer.bos_token_id)

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.tokenize(prompt))

    @property
    def context_length(self) -> int:
        return int(getattr(self._text_config, "max_position_embeddings", 2048))

    def answer_room(self, scale: ScoreScale) -> int:
        """Positions the walk takes after the prompt: the longest spelling and the end check."""
        return self._plan(scale)[0].depth + 1

    # --- exact scoring ----------------------------------------------------------
    def _plan(self, scale: ScoreScale) -> tuple[ScoreTrie, np.ndarray, np.ndarray, np.ndarray]:
        """The trie's node tokens, depths and ancestor-or-self matrix."""
        if scale not in self._tries:
            trie = ScoreTrie(scale, self.pieces)
            nodes = trie.nodes[1:]
            tokens = np.array([n.token for n in nodes], dtype=np.int64)
            depths = np.array([n.depth for n in nodes], dtype=np.int64)
            sees = np.zeros((len(nodes), len(nodes)), dtype=bool)
            for j in range(len(nodes)):
                node = j + 1
                while node > 0:
                    sees[j, node - 1] = True
                    node = trie.nodes[node].parent
            self._tries[scale] = (trie, tokens, depths, sees)
        return self._tries[scale]

    def score(self, prompts: Sequence[Prompt], scale: ScoreScale) -> Iterator[ScoreDistribution]:
        trie, _, _, _ = self._plan(scale)
        per_batch = max(1, min(self.batch_size, _ROW_BUDGET // max(1, len(trie.nodes))))
        for start in range(0, len(prompts), per_batch):
            batch = [self.tokenize(p) for p in prompts[start : start + per_batch]]
            for tokens, (rows, entropy) in zip(batch, self._score_batch(batch, scale)):
                dist = trie.distribution(rows, self.temperatures)
                dist.meta.update(n_tokens=len(tokens), next_token_entropy=entropy)
                yield dist

    def _score_batch(self, batch: list[list[int]], scale: ScoreScale) -> list[tuple[list[np.ndarray], float]]:
        """Each item's trie rows and its answer position's next-token entropy."""
        torch = self._torch
        trie, node_tokens, depths, sees = self._plan(scale)
        n_items, n_nodes = len(batch), len(node_tokens)
        width = max(len(t) for t in batch)
        if self._window is not None and width + n_nodes >= self._window:
            raise NumbiasError(
                f"prompt of {width} tokens plus {n_nodes} trie nodes reaches this model's sliding "
                f"attention window ({self._window}); the transformers backend cannot mask across it"
            )
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        ids = torch.full((n_items, width), pad, dtype=torch.long)
        mask = torch.zeros((n_items, width), dtype=torch.long)
        for b, tokens in enumerate(batch):
            ids[b, width - len(tokens) :] = torch.tensor(tokens)
            mask[b, width - len(tokens) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self._model(
                input_ids=ids.to(self._device),
                attention_mask=mask.to(self._device),
                position_ids=positions.to(self._device),
                use_cache=True,
                logits_to_keep=1,
            )
            cache = out.cache
            root = out.logits[:, -1, :].float().cpu().numpy()
            # Tree attention: each node sees its item's real prompt tokens and its own path.
            allowed = torch.cat(
                [
                    mask.bool()[:, None, :].expand(n_items, n_nodes, width),
                    torch.from_numpy(sees)[None].expand(n_items, n_nodes, n_nodes),
                ],
                dim=-1,
            )
            tree = torch.zeros(allowed.shape, dtype=self._dtype)
            tree.masked_fill_(~allowed, torch.finfo(self._dtype).min)
            lengths = mask.sum(-1, keepdim=True)
            node_pos = lengths + torch.from_numpy(depths)[None] - 1
            out = self._model(
                input_ids=torch.from_numpy(node_tokens)[None].expand(n_items, n_nodes).to(self._device),
                attention_mask=tree[:, None].to(self._device),
                position_ids=node_pos.to(self._device),
                cache=cache,
                use_cache=True,
            )
            logits = out.logits.float().cpu().numpy()
        results = []
        for b in range(n_items):
            rows = [tempered_logprobs(root[b], trie.nodes[0].gather, self.temperatures, trie.nodes[0].classes)]
            rows += [
                tempered_logprobs(logits[b, j], trie.nodes[j + 1].gather, self.temperatures, trie.nodes[j + 1].classes)
                for j in range(n_nodes)
            ]
            results.append((rows, next_token_entropy(root[b])))
        return results

    # --- sampling ----------------------------------------------------------------
    def sample(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        seed: int,
    ) -> Iterator[list[str]]:
        """Plain sampling from softmax(logits / T) (no top-k/top-p/min-p), seeded per
        prompt so a run is reproducible."""
        torch = self._torch
        greedy = temperature <= 0
        # A fresh config: a checkpoint's own generation defaults (repetition penalty,
        # top-k, ...) would change what is sampled.
        config = self._transformers.GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_k=0,
            top_p=1.0,
            num_return_sequences=1 if greedy else n,
            max_new_tokens=max_tokens,
            eos_token_id=sorted(self._eog) or None,
            pad_token_id=self._tokenizer.pad_token_id or 0,
        )
        for prompt in prompts:
            tokens = self.tokenize(prompt)
            torch.manual_seed(zlib.crc32(self.render(prompt).encode()) ^ seed)
            ids = torch.tensor([tokens], device=self._device)
            with torch.inference_mode():
                out = self._model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
            if greedy:
                out = out.expand(n, -1)
            texts = []
            for row in out[:, len(tokens) :].tolist():
                kept = []
                for t in row:
                    if t in self._eog:
                        break
                    kept.append(t)
                texts.append("".join(self.pieces[t] for t in kept))
            yield texts


def pretrained_source(model: str, revision: str | None) -> tuple[str, dict[str, Any]]:
    """``from_pretrained``'s source and arguments for a model the backend takes (a GGUF
    file is loaded from its folder): also what benchmarks/bench_gpu_batch.py reads a
    model's configuration and tokenizer with."""
    if _is_gguf(model):
        path = resolve(model).path
        return str(path.parent), {"gguf_file": path.name}
    if (stage := trained_stage(model)) is not None:
        return str(stage.path), {}
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser()), {}
    return model, {"revision": revision} if revision else {}


def _hub_has_template(model: str, revision: str | None) -> bool:
    _, transformers = _import()
    source, kwargs = pretrained_source(model, revision)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise NumbiasError(f"transformers could not load the tokenizer of {model!r}: {first_line(exc)}") from None
    return bool(tokenizer.chat_template)


def _pieces(tokenizer: Any, n_vocab: int) -> list[str]:
    """Each token's text as it appears in a continuation, leading space included:
    decoded after an anchor token, because SentencePiece decoders drop the leading
    space of a sequence's first token."""
    anchor = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("a"))[-1]
    head = tokenizer.decode([anchor], clean_up_tokenization_spaces=False)
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[anchor, t] for t in range(min(size, n_vocab))], clean_up_tokenization_spaces=False)
    pieces = [t[len(head) :] if t.startswith(head) else t for t in texts]
    return pieces + [""] * (n_vocab - len(pieces))  # padded embedding rows never appear


def _eog_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-generation ids: the generation config's and the tokenizer's EOS."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    found = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        found.add(int(tokenizer.eos_token_id))
    return found

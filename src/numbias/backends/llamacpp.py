"""In-process llama.cpp backend (llama-cpp-python, CPU or GPU).

Exact distributions cost one ``llama_decode`` per item: the prompt's new tokens and
every trie node go in a single batch. Each trie leaf gets its own sequence id; a
node's token belongs to the sequences of all leaves below it, so it attends to the
prompt and its own ancestors only, and sibling branches share the prompt's KV cache.
The prompt's cells belong to every sequence, and the prefix shared with the
previous prompt (the instructions) stays cached between items."""

from __future__ import annotations

import ctypes
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from numbias.backends._gguf import GGUFVocab, import_llama, silent_log
from numbias.core.distribution import TEMPERATURES, ScoreDistribution, check_temperatures
from numbias.core.sampling import draw_token
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie, TrieNode, gather_logprobs, next_token_entropy, tempered_logprobs
from numbias.data.prompt import Prompt
from numbias.models.catalog import JUDGES, check_gguf, has_chat_template, resolve, trained_stage
from numbias.models.weights import float32_gguf, float32_source
from numbias.util.errors import NumbiasError


def _float32(model: str, float32: bool | None) -> bool:
    """Whether to judge the float32 weights exported to GGUF: asked for, or the only
    weights there are (a trained stage)."""
    stage = trained_stage(model) is not None
    if stage and float32 is False:
        raise NumbiasError(f"judge {model!r} is a trained stage: its only weights are float32 (float32: false)")
    return stage if float32 is None else float32


_EAGER = 2
"""A pruned walk decodes the nodes below a node with it when there are at most this many."""


def _check_pruning(prune: float, max_pruned: float | None) -> None:
    if not 0.0 <= prune < 1.0:
        raise NumbiasError(f"prune must be in [0, 1), got {prune}")
    if max_pruned is not None and not (0.0 < max_pruned < 1.0 and prune > 0):
        raise NumbiasError(
            f"max_pruned must be in (0, 1) and needs prune > 0, got max_pruned={max_pruned}, prune={prune}"
        )


class LlamaCppBackend:
    """A GGUF judge. ``chat=None`` uses the model's chat template when it has one.

    ``prune=0`` evaluates the whole trie in one decode (exact). ``prune>0`` walks it
    level by level and skips nodes whose path probability is below ``prune``, counting
    their mass as if the number ended there (recorded per item as ``pruned``): on CPU
    builds, where a batch costs about as much as its tokens one by one, this is
    several times faster for a bounded, reported error. ``max_pruned`` caps that error:
    below-threshold nodes are skipped, the least probable first, only while the item's
    skipped mass stays within it (shared out over the trie's levels), so every item's
    ``pruned`` is at most ``max_pruned``. Every node is also read at each of
    ``temperatures`` (see :attr:`ScoreDistribution.tempered`).

    ``float32`` judges an embedded judge's or a trained stage's float32 weights, exported
    once to GGUF F32 (:mod:`numbias.models.weights`); a trained stage is always judged so.

    Items are scored one at a time and the cached prefix changes no result, so it is
    ``order_free``; ``prompt_tokens`` counts the prompt tokens it has evaluated (what
    prefix reuse leaves to evaluate)."""

    order_free = True

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        chat: bool | None = None,
        reuse_prefix: bool = True,
        prune: float = 0.0,
        max_pruned: float | None = None,
        temperatures: Sequence[float] = TEMPERATURES,
        float32: bool | None = None,
        verbose: bool = False,
    ) -> None:
        # ggml's tiled K-quant matmul takes over at 8+ rows and rounds differently
        # from the per-row path, so a token's logits would depend on its batch size.
        os.environ.setdefault("GGML_CPU_TILED_MM", "0")
        llama_cpp, internals = import_llama()
        self._lib = llama_cpp
        if n_ctx < 512:
            raise NumbiasError(f"n_ctx must be at least 512 (got {n_ctx})")
        judge = float32_gguf(model) if _float32(model, float32) else resolve(model)
        check_gguf(judge.path)
        self._load(internals, judge.path, n_ctx, n_threads or os.cpu_count() or 1, n_gpu_layers, verbose)
        self.vocab = GGUFVocab(self._model, llama_cpp)
        self.n_vocab = self.vocab.n_vocab
        self.pieces = self.vocab.pieces
        self._eog = self.vocab.eog
        self.chat = bool(self.vocab.template) if chat is None else chat
        if self.chat and not self.vocab.template:
            raise NumbiasError(f"{judge.path.name} has no chat template; use it as a base model (chat=False)")
        self.reuse_prefix = reuse_prefix
        _check_pruning(prune, max_pruned)
        self.prune, self.max_pruned = prune, max_pruned
        self.temperatures = check_temperatures(temperatures)
        self._t1 = self.temperatures.index(1.0)
        self._cached: list[int] = []
        self.prompt_tokens = 0
        self._tries: dict[ScoreScale, tuple[ScoreTrie, list[list[tuple[int, np.ndarray]]]]] = {}
        self.identity = self.describe(
            model, chat=self.chat, prune=prune, max_pruned=max_pruned, temperatures=self.temperatures, float32=float32
        )

    def _load(self, internals: Any, path: Path, n_ctx: int, threads: int, n_gpu_layers: int, verbose: bool) -> None:
        """The model, a context of ``n_ctx`` tokens and one reusable batch whose arrays
        numpy writes into directly."""
        llama_cpp = self._lib
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        mparams.use_extra_bufts = False
        if not verbose:
            llama_cpp.llama_log_set(silent_log, ctypes.c_void_p())
        try:
            self._model = internals.LlamaModel(path_model=str(path), params=mparams, verbose=verbose)
        except ValueError:
            raise NumbiasError(f"llama.cpp could not load {path} (corrupt or unsupported GGUF)") from None
        self.n_seq = llama_cpp.llama_max_parallel_sequences()
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = min(n_ctx, self._model.n_ctx_train())
        cparams.n_batch = cparams.n_ctx
        cparams.n_ubatch = min(512, cparams.n_ctx)
        cparams.n_seq_max = self.n_seq
        cparams.kv_unified = True
        cparams.no_perf = True
        # The CPU flash-attention kernel ignores per-token masks once a batch exceeds
        # 64 tokens, which breaks the trie's branch isolation; the plain path is exact.
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.n_threads = cparams.n_threads_batch = threads
        try:
            self._ctx = internals.LlamaContext(model=self._model, params=cparams, verbose=verbose)
        except ValueError:
            raise NumbiasError(f"llama.cpp could not create a context for {path}") from None
        self._n_ctx = cparams.n_ctx
        self._batch = internals.LlamaBatch(n_tokens=self._n_ctx, embd=0, n_seq_max=self.n_seq, verbose=verbose)
        b = self._batch.batch
        self._tok = np.ctypeslib.as_array(b.token, shape=(self._n_ctx,))
        self._pos = np.ctypeslib.as_array(b.pos, shape=(self._n_ctx,))
        self._nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(self._n_ctx,))
        self._want = np.ctypeslib.as_array(ctypes.cast(b.logits, ctypes.POINTER(ctypes.c_int8)), shape=(self._n_ctx,))
        self._seq_rows = [np.ctypeslib.as_array(b.seq_id[i], shape=(self.n_seq,)) for i in range(self._n_ctx)]
        self._all_seqs = np.arange(self.n_seq, dtype=np.int32)

    @staticmethod
    def describe(
        model: str,
        *,
        chat: bool | None = None,
        prune: float = 0.0,
        max_pruned: float | None = None,
        temperatures: Sequence[float] = TEMPERATURES,
        float32: bool | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """The judge's identity without loading it: what changes its distributions
        (the file's checksum — for float32 weights, the weights' own, since their export
        is made from them —, chat or plain prompting, pruning, the temperature grid)."""
        if _float32(model, float32):
            name, _source, sha256 = float32_source(model)
            stage = trained_stage(model)
            template = bool(stage.card.get("chat")) if stage else JUDGES[name].kind == "instruct"
            weights = {"sha256": sha256, "weights": "float32"}
        else:
            judge = resolve(model)
            template = has_chat_template(judge)
            weights = {"sha256": judge.sha256}
        return {
            "backend": "llama.cpp",
            **weights,
            "chat": template if chat is None else bool(chat),
            "prune": float(prune),
            **({"max_pruned": float(max_pruned)} if max_pruned is not None else {}),
            "temperatures": list(check_temperatures(temperatures)),
        }

    # --- text ----------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        return self.vocab.render(prompt, self.chat)

    def tokenize(self, prompt: Prompt) -> list[int]:
        return self.vocab.tokenize(self.render(prompt))

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.tokenize(prompt))

    @property
    def context_length(self) -> int:
        return self._n_ctx

    def answer_room(self, scale: ScoreScale) -> int:
        """Context cells the walk takes after the prompt: one per node of its largest
        decode group (every node is a cell of its own, besides its depth's position)."""
        _, groups = self._plan(scale)
        return max(len(group) for group in groups)

    # --- decoding ------------------------------------------------------------
    def _decode(self, n_tokens: int) -> None:
        self._batch.batch.n_tokens = n_tokens
        rc = self._lib.llama_decode(self._ctx.ctx, self._batch.batch)
        if rc != 0:
            self._cached = []
            self._ctx.kv_cache_clear()
            raise NumbiasError(f"llama_decode failed with code {rc} (context of {self._n_ctx} tokens too small?)")

    def _forget(self, p0: int) -> None:
        """Drop every sequence's cells from position ``p0`` on (the wrapper in
        llama-cpp-python maps seq -1 to 0, so call the C API directly)."""
        self._lib.llama_memory_seq_rm(self._ctx.memory, -1, p0, -1)

    def _logits(self, index: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self._ctx.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _read(self, index: int, node: TrieNode) -> np.ndarray:
        """A trie node's row after batch row ``index`` (its tokens' log-probabilities,
        then its classes'), one row per temperature."""
        return tempered_logprobs(self._logits(index), node.gather, self.temperatures, node.classes)

    def _put(self, i: int, token: int, pos: int, seqs: np.ndarray, want: bool) -> None:
        self._tok[i] = token
        self._pos[i] = pos
        self._nseq[i] = len(seqs)
        self._seq_rows[i][: len(seqs)] = seqs
        self._want[i] = want

    def _prefill(self, tokens: list[int], extra: int) -> int:
        """Queue the prompt's uncached tokens; returns how many were queued. The
        caller appends ``extra`` more tokens before decoding."""
        if len(tokens) + extra > self._n_ctx:
            raise NumbiasError(
                f"prompt of {len(tokens)} tokens (+{extra} for the answer) exceeds the context of {self._n_ctx}"
            )
        keep = 0
        if self.reuse_prefix:
            limit = min(len(self._cached), len(tokens) - 1)
            while keep < limit and self._cached[keep] == tokens[keep]:
                keep += 1
        self._forget(keep)
        for i, token in enumerate(tokens[keep:]):
            self._put(i, token, keep + i, self._all_seqs, i == len(tokens) - keep - 1)
        self._cached = list(tokens)
        self.prompt_tokens += len(tokens) - keep
        return len(tokens) - keep

    def _plan(self, scale: ScoreScale) -> tuple[ScoreTrie, list[list[tuple[int, np.ndarray]]]]:
        """The trie and its decode groups: each group lists (node, sequence ids) in
        breadth-first order, with at most ``n_seq - 1`` leaves per group."""
        if scale not in self._tries:
            trie = ScoreTrie(scale, self.pieces)
            width = self.n_seq - 1
            groups = []
            for start in range(0, len(trie.leaves), width):
                leaves = trie.leaves[start : start + width]
                seqs: dict[int, list[int]] = {}
                for k, leaf in enumerate(leaves, start=1):
                    node = leaf
                    while node > 0:
                        seqs.setdefault(node, []).append(k)
                        node = trie.nodes[node].parent
                order = sorted(seqs, key=lambda i: (trie.nodes[i].depth, i))
                groups.append([(i, np.asarray(sorted(seqs[i]), dtype=np.int32)) for i in order])
            self._tries[scale] = (trie, groups)
        return self._tries[scale]

    def score(self, prompts: Sequence[Prompt], scale: ScoreScale) -> Iterator[ScoreDistribution]:
        trie, groups = self._plan(scale)
        depth, room = trie.depth, self.answer_room(scale)
        for prompt in prompts:
            tokens = self.tokenize(prompt)
            walk = self._walk_pruned if self.prune > 0 else self._walk_all
            if len(tokens) + room > self._n_ctx:
                raise NumbiasError(
                    f"prompt of {len(tokens)} tokens (+{room} for the answer's trie) exceeds the "
                    f"context of {self._n_ctx}"
                )
            rows, entropy = walk(tokens, trie, groups, depth)
            dist = trie.distribution(rows, self.temperatures)
            dist.meta.update(
                n_tokens=len(tokens), next_token_entropy=entropy, nodes=sum(row is not None for row in rows[1:])
            )
            yield dist

    def _walk_all(self, tokens: list[int], trie: ScoreTrie, groups: list, depth: int) -> tuple[list, float]:
        """Prompt and every trie node in one decode per group of leaves; the rows, and
        the entropy of the whole next-token distribution at the answer position."""
        rows: list[np.ndarray | None] = [None] * len(trie.nodes)
        entropy = float("nan")
        for g, group in enumerate(groups):
            start = self._prefill(tokens, depth) if g == 0 else 0
            if g > 0:
                self._forget(len(tokens))
            for j, (node, seqs) in enumerate(group):
                n = trie.nodes[node]
                self._put(start + j, n.token, len(tokens) + n.depth - 1, seqs, True)
            self._decode(start + len(group))
            if g == 0:
                rows[0] = self._read(start - 1, trie.nodes[0])
                entropy = next_token_entropy(self._logits(start - 1))
            for j, (node, _) in enumerate(group):
                if rows[node] is None:
                    rows[node] = self._read(start + j, trie.nodes[node])
        return rows, entropy

    def _walk_pruned(self, tokens: list[int], trie: ScoreTrie, groups: list, depth: int) -> tuple[list, float]:
        """Level by level, only nodes whose path probability reaches ``prune`` (and those
        ``max_pruned`` cannot leave out); the rows and the answer position's next-token
        entropy, as :meth:`_walk_all`."""
        if len(groups) > 1:
            raise NumbiasError("pruned scoring supports tries of at most 255 leaves; use prune=0")
        seqs = dict(groups[0])
        rows: list[np.ndarray | None] = [None] * len(trie.nodes)
        reach = np.zeros(len(trie.nodes))
        reach[0] = 1.0
        queued = self._prefill(tokens, depth)
        self._decode(queued)
        rows[0] = self._read(queued - 1, trie.nodes[0])
        entropy = next_token_entropy(self._logits(queued - 1))
        level, left = [0], float("inf") if self.max_pruned is None else self.max_pruned
        while level:
            children = [c for n in level for c in trie.nodes[n].children]
            budget = left / (depth - trie.nodes[level[0]].depth)  # shared out over the levels below
            level_rows = [rows[n][self._t1] for n in level]  # type: ignore[index]
            wanted = trie.next_level(level, level_rows, reach, self.prune, budget)
            left -= float(reach[children].sum() - reach[wanted].sum())
            # A node with few nodes below takes them into its decode: one decode fewer
            # per item (1-10's "10", 1-100's "100") for a token or two more.
            batch = wanted + [d for n in wanted if 0 < trie.sizes[n] <= _EAGER for d in trie.below(n)]
            for j, node in enumerate(batch):
                n = trie.nodes[node]
                self._put(j, n.token, len(tokens) + n.depth - 1, seqs[node], True)
            if batch:
                self._decode(len(batch))
                for j, node in enumerate(batch):
                    rows[node] = self._read(j, trie.nodes[node])
            level = [n for n in wanted if trie.sizes[n] > _EAGER]
        return rows, entropy

    def forced_choice(self, prompt: Prompt, scale: ScoreScale) -> np.ndarray:
        """Reference scoring, one score at a time and without the trie: the prompt is
        evaluated once, then each spelling of each score (:attr:`ScoreScale.spellings`)
        is decoded on its own after it, as the tokenizer writes it, giving P(tokens) ×
        P(next token does not go on: no digit after a number, no letter or digit after
        a label; a label that opens a longer one is not told from it here)."""
        tokens = self.tokenize(prompt)
        n = len(tokens)
        if scale.numeric:
            goes_on = np.array([p[:1].isascii() and p[:1].isdigit() for p in self.pieces])
        else:
            goes_on = np.array([p[:1].isalnum() for p in self.pieces])
        self._cached = []
        self._forget(0)
        for i, token in enumerate(tokens):
            self._put(i, token, i, self._all_seqs[:1], i == n - 1)
        self._decode(n)
        root = gather_logprobs(self._logits(n - 1), np.arange(self.n_vocab))
        probs = np.zeros(scale.size)
        for spelling, k in scale.spellings.items():
            answer = self._model.tokenize(spelling.encode(), False, False)
            self._forget(n)
            for j, token in enumerate(answer):
                self._put(j, token, n + j, self._all_seqs[:1], True)
            self._decode(len(answer))
            logp = float(root[answer[0]])
            for j, token in enumerate(answer[1:]):
                logp += float(gather_logprobs(self._logits(j), np.asarray([token]))[0])
            end = np.exp(gather_logprobs(self._logits(len(answer) - 1), np.arange(self.n_vocab)))
            probs[k] += np.exp(logp) * float(end[~goes_on].sum())
        self._forget(0)
        return probs

    def sample(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        seed: int,
    ) -> Iterator[list[str]]:
        """Plain sampling from softmax(logits / T), no top-k/top-p/min-p; each sample
        is its own sequence, all of an item's samples advance in one batch."""
        width = self.n_seq - 1
        for prompt in prompts:
            tokens = self.tokenize(prompt)
            rng = np.random.default_rng([seed, zlib.crc32(self.render(prompt).encode())])
            texts: list[str] = []
            for start in range(0, n, width):
                k = min(width, n - start)
                queued = self._prefill(tokens, max_tokens)
                self._decode(queued)
                root = np.array(self._logits(queued - 1), dtype=np.float64)
                out: list[list[int]] = [[] for _ in range(k)]
                active = list(range(k))
                last = {j: draw_token(root, temperature, rng) for j in active}
                for step in range(max_tokens):
                    active = [j for j in active if last[j] not in self._eog]
                    for j in active:
                        out[j].append(last[j])
                    if not active or step == max_tokens - 1:
                        break
                    for i, j in enumerate(active):
                        self._put(i, last[j], len(tokens) + step, np.asarray([j + 1], dtype=np.int32), True)
                    self._decode(len(active))
                    for i, j in enumerate(active):
                        last[j] = draw_token(np.array(self._logits(i), dtype=np.float64), temperature, rng)
                self._forget(len(tokens))
                texts.extend("".join(self.pieces[t] for t in seq) for seq in out)
            yield texts

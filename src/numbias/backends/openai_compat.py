"""OpenAI-compatible servers (vLLM, SGLang, llama.cpp server, hosted APIs).

Requests go out concurrently (``concurrency`` at a time per server) through the ``openai``
client; 5xx answers, timeouts and dropped connections are retried with exponential
backoff, honouring ``Retry-After``. ``base_url`` may list several servers, replicas of one
model: requests spread over them and a retry moves to a healthy one (:mod:`._replicas`).
The API key is read from the environment only.

Modes (chosen explicitly, or by a probe of the server at start with ``mode="auto"``):

* ``topk``: chat completions with ``top_logprobs`` at the score position; the score
  distribution is read from the first answer token, and the mass the top-k covers is
  recorded per item (``meta["covered"]``; items below ``min_coverage`` are flagged);
* ``exact``: the score trie walked over HTTP. Each trie node is one completions
  request for the prompt (rendered here with the model's own chat template, from a
  local copy of its GGUF vocabulary, ``tokenizer``) followed by the node's digits, asking
  for the next token's top ``exact_logprobs`` log-probabilities; nodes below ``prune``
  are skipped as in the in-process backend. Tokens of the trie that fall outside the
  returned top-k are bounded by its smallest entry (``meta["bound"]``); the server's
  prefix cache makes the requests of one item cheap. Read at T = 1 only (no
  temperature grid: see :func:`exact_row`);
* ``sample``: the paper's protocol, ``n`` sampled answers per item.

A mode the server cannot serve is an error at start, never a silent fallback.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from numbias.backends._gguf import GGUFVocab
from numbias.backends._replicas import Replica, Replicas, Route, Session, parse_servers
from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.core.trie import DEFAULT_PRUNE, ScoreTrie, TrieNode
from numbias.data.prompt import Prompt
from numbias.util.errors import NumbiasError

MODES = ("auto", "exact", "topk", "sample")
_NUMBER = re.compile(r"^ ?([0-9]+)$")


def _check_ranges(
    *, chat: bool, mode: str, top_logprobs: int, concurrency: int, prune: float, exact_logprobs: int
) -> None:
    """The options' values a type cannot say, each a one-line error before any request."""
    if not chat:
        raise NumbiasError("the OpenAI backend talks to chat endpoints only (chat: false is not supported)")
    if mode not in MODES:
        raise NumbiasError(f"unknown mode {mode!r} for the OpenAI backend (known: {', '.join(MODES)})")
    if not 1 <= top_logprobs <= 20:
        raise NumbiasError(f"top_logprobs must be between 1 and 20, got {top_logprobs}")
    if concurrency < 1:
        raise NumbiasError(f"concurrency must be at least 1, got {concurrency}")
    if not 0.0 <= prune < 1.0:
        raise NumbiasError(f"prune must be in [0, 1), got {prune}")
    if exact_logprobs < 1:
        raise NumbiasError(f"exact_logprobs must be at least 1, got {exact_logprobs}")


class OpenAIBackend:
    """A judge behind an OpenAI-compatible endpoint (``base_url`` ends in ``/v1``), or
    behind several replicas of one model (``base_url`` a list, or URLs joined by commas)."""

    identity_after_start: ClassVar[bool] = True
    """``mode: auto`` resolves to what the server serves today, and a store must not mix
    exact and top-k readings: the identity is known only after the probe."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str | dict[str, Any]],
        mode: str = "auto",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        top_logprobs: int = 20,
        min_coverage: float = 0.95,
        context_length: int = 8192,
        chat: bool = True,
        tokenizer: str | None = None,
        exact_logprobs: int = 1000,
        prune: float = DEFAULT_PRUNE,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise NumbiasError(
                "the OpenAI-compatible backend needs the openai package: pip install 'numbias[server]'"
            ) from None
        _check_ranges(
            chat=chat,
            mode=mode,
            top_logprobs=top_logprobs,
            concurrency=concurrency,
            prune=prune,
            exact_logprobs=exact_logprobs,
        )
        servers = parse_servers(base_url, concurrency)
        self.model = model
        self.top_logprobs = top_logprobs
        self.min_coverage = min_coverage
        self._context_length = context_length
        self._replicas = Replicas(
            openai, servers, {"api_key": os.environ.get(api_key_env) or "not-needed", "timeout": timeout}, max_retries
        )
        self.prune = prune
        self.exact_logprobs = exact_logprobs
        self._vocab: GGUFVocab | None = None
        if mode == "exact" or (mode == "auto" and tokenizer):
            if not tokenizer:
                raise NumbiasError(
                    "exact mode needs `tokenizer`: the served model's GGUF (embedded name or path), "
                    "to render its chat template and build the score trie"
                )
            self._vocab = GGUFVocab.load(tokenizer)
            self._tries: dict[ScoreScale, ScoreTrie] = {}
        self.mode = self._agreed_mode(mode)
        self.identity = self._identity(servers, tokenizer)

    # --- plumbing ------------------------------------------------------------
    def _identity(self, servers: list[Replica], tokenizer: str | None) -> dict[str, Any]:
        """What the store keys this judge's answers by, once the mode is agreed. One
        server is known by its URL, as it always was; replicas by the model they all
        report, so the store keeps its answers whichever replicas serve it later."""
        where = {"base_url": servers[0].url} if len(servers) == 1 else {"served": self._served()}
        identity = {
            "backend": "openai",
            **where,
            "model": self.model,
            "chat": True,
            "mode": self.mode,
            "top_logprobs": self.top_logprobs,
        }
        if self.mode == "exact":
            identity |= {"tokenizer": tokenizer, "exact_logprobs": self.exact_logprobs, "prune": self.prune}
        return identity

    def _agreed_mode(self, mode: str) -> str:
        """The mode every server serves: ``mode`` itself once each server is probed able
        to serve it (``sample`` needs no probe), or under ``auto`` the one they all give."""
        if mode == "sample":
            return mode
        found = {s.url: self._probe(self._replicas.alone(s)) for s in self._replicas.servers}
        for url, served in found.items():
            if mode in ("topk", "exact") and served != mode:
                raise NumbiasError(
                    f"the server at {url} cannot serve mode {mode!r}: it returns no "
                    "log-probabilities" + (" for completions" if mode == "exact" else "")
                )
        if len(set(found.values())) > 1:
            raise NumbiasError(
                "the servers serve different modes ("
                + ", ".join(f"{u}: {m}" for u, m in found.items())
                + "): replicas of one judge must be configured alike"
            )
        return found.popitem()[1]

    def _served(self) -> list[dict[str, Any]]:
        """What every server reports serving (``/v1/models``: id, root, context...): the
        replicas must agree, and the report stands for them in the identity."""
        reports = {}
        for server in self._replicas.servers:
            try:
                page = self._replicas.alone(server).ask(lambda client: client.models.list())
            except NumbiasError as exc:
                raise NumbiasError(f"cannot learn which model the servers serve: {exc}") from None
            reports[server.url] = _served_models(page.data, self.model)
        (first, model), *rest = reports.items()
        for url, other in rest:
            if other != model:
                raise NumbiasError(
                    f"the servers do not serve one model: {first} reports {model}, {url} reports "
                    f"{other}; list replicas of one judge only"
                )
        return model

    @staticmethod
    def _messages(prompt: Prompt) -> list[dict[str, str]]:
        if prompt.answer_prefix:
            raise NumbiasError("chat servers cannot be given an answer prefix; use a template without one")
        system = [{"role": "system", "content": prompt.system}] if prompt.system else []
        return [*system, {"role": "user", "content": prompt.user}]

    def _probe(self, server: Replicas) -> str:
        """``exact`` when a tokenizer is given and completions return top
        log-probabilities, else ``topk`` when chat completions do, else ``sample``."""

        async def chat(client: Any) -> Any:
            return await client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": "Say 1."}],
                max_tokens=1,
                temperature=0,
                logprobs=True,
                top_logprobs=self.top_logprobs,
            )

        async def completion(client: Any) -> Any:
            return await client.completions.create(
                model=self.model, prompt="1, 2,", max_tokens=1, temperature=0, logprobs=self.exact_logprobs
            )

        if self._vocab is not None:
            try:
                reply = server.ask(completion)
            except NumbiasError:
                reply = None  # no completions endpoint, or fewer log-probabilities than asked: not exact
            logprobs = getattr(reply.choices[0], "logprobs", None) if reply and reply.choices else None
            if logprobs is not None and logprobs.top_logprobs and logprobs.top_logprobs[0]:
                return "exact"
        try:
            reply = server.ask(chat)
        except NumbiasError as exc:
            raise NumbiasError(f"capability probe failed: {exc}") from None
        choice = reply.choices[0] if reply.choices else None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content and content[0].top_logprobs:
            return "topk"
        return "sample"

    # --- the Backend protocol ------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._context_length

    def answer_room(self, scale: ScoreScale) -> int:
        """Tokens a request takes after the prompt: the longest spelling (exact, with the
        vocabulary) or the highest score's digits, and the token generated after it."""
        if self._vocab is None:
            return scale.width + 2
        return self._trie(scale).depth + 1

    def _trie(self, scale: ScoreScale) -> ScoreTrie:
        assert self._vocab is not None
        if scale not in self._tries:
            self._tries[scale] = ScoreTrie(scale, self._vocab.pieces)
        return self._tries[scale]

    def count_tokens(self, prompt: Prompt) -> int:
        """Exact with a local tokenizer, else a rough count: about four characters per token."""
        if self._vocab is not None:
            return len(self._vocab.tokenize(self._vocab.render(prompt, True)))
        return math.ceil((len(prompt.system or "") + len(prompt.user) + len(prompt.answer_prefix)) / 4)

    def score(self, prompts: Sequence[Prompt], scale: ScoreScale) -> Iterator[ScoreDistribution]:
        if self.mode not in ("topk", "exact"):
            raise NumbiasError(
                f"this server was probed as {self.mode!r}: it returns no log-probabilities, so "
                "only the sampling protocol can run (modes: sampled)"
            )
        if self.mode == "exact":
            trie = self._trie(scale)
            jobs = (lambda session, p=p: self._exact_one(session, p, trie) for p in prompts)
        else:
            jobs = (lambda session, p=p: self._topk_one(session, p, scale) for p in prompts)
        yield from self._replicas.stream(jobs, 4 * self._replicas.slots)

    async def _exact_one(self, session: Session, prompt: Prompt, trie: ScoreTrie) -> ScoreDistribution:
        """One item's trie walked level by level, every node of a level asked at once,
        all on the item's server while it stays healthy (its prefix cache)."""
        assert self._vocab is not None
        vocab, route = self._vocab, Route()
        no_end = {str(t): -100 for t in sorted(vocab.eog)[:300]}
        class_texts: dict[int, frozenset[str]] = {}

        def texts(members: np.ndarray) -> frozenset[str]:
            """A class's token texts, built once per class (label nodes share one)."""
            if id(members) not in class_texts:
                class_texts[id(members)] = frozenset(vocab.pieces[t] for t in members)
            return class_texts[id(members)]

        async def node_row(text: str, node: TrieNode) -> tuple[np.ndarray, float]:
            """Log-probabilities of the node's tokens, and the bound on each one missing
            from the top-k."""
            top = await self._top_after(session, route, text, no_end)
            return exact_row(top, [vocab.pieces[t] for t in node.gather], [texts(c) for c in node.classes])

        # The server tokenizes text and adds the BOS itself: send the template's without it.
        text = vocab.render(prompt, True)
        if vocab.adds_bos and vocab.bos_text and text.startswith(vocab.bos_text):
            text = text[len(vocab.bos_text) :]
        base = vocab.tokenize(text)
        rows: list[np.ndarray | None] = [None] * len(trie.nodes)
        reach = np.zeros(len(trie.nodes))
        reach[0] = 1.0
        rows[0], bound = await node_row(text, trie.nodes[0])
        level = [0]
        while level:
            # A path the tokenizer would not produce from its text cannot be asked for
            # as text: it stays unevaluated and counts as pruned.
            level_rows = [rows[p] for p in level]
            wanted = [
                n
                for n in trie.next_level(level, level_rows, reach, self.prune)  # type: ignore[arg-type]
                if vocab.tokenize(text + trie.nodes[n].text) == base + trie.path(n)
            ]
            found = await asyncio.gather(*(node_row(text + trie.nodes[n].text, trie.nodes[n]) for n in wanted))
            for n, (row, b) in zip(wanted, found):
                rows[n] = row
                bound = max(bound, b * reach[n])
            level = [n for n in wanted if trie.nodes[n].children]
        dist = trie.distribution(rows)
        dist.meta.update({"n_tokens": len(base), "bound": bound})
        return dist

    async def _top_after(self, session: Session, route: Route, text: str, no_end: dict[str, int]) -> dict[str, float]:
        """The top ``exact_logprobs`` log-probabilities of the token after ``text``: one
        completions request. Servers return log-probabilities only with a generated token,
        and stop without one at end-of-generation: ``no_end`` biases those tokens away, which
        keeps the token (the log-probabilities are the model's own, before any bias)."""
        reply = await session.call(
            lambda client: client.completions.create(
                model=self.model,
                prompt=text,
                max_tokens=1,
                temperature=0,
                logprobs=self.exact_logprobs,
                logit_bias=no_end,
            ),
            route,
        )
        logprobs = reply.choices[0].logprobs if reply.choices else None
        top = logprobs.top_logprobs[0] if logprobs and logprobs.top_logprobs else None
        if not top:
            raise NumbiasError("the server answered a completion without log-probabilities")
        return top

    async def _topk_one(self, session: Session, prompt: Prompt, scale: ScoreScale) -> ScoreDistribution:
        reply = await session.call(
            lambda client: client.chat.completions.create(
                model=self.model,
                messages=self._messages(prompt),
                max_tokens=1,
                temperature=0,
                logprobs=True,
                top_logprobs=self.top_logprobs,
            ),
            Route(),
        )
        content = reply.choices[0].logprobs.content if reply.choices and reply.choices[0].logprobs else None
        if not content:
            raise NumbiasError("the server answered without log-probabilities")
        return topk_distribution([(t.token, t.logprob) for t in content[0].top_logprobs], scale, self.min_coverage)

    def sample(
        self, prompts: Sequence[Prompt], *, n: int, temperature: float, max_tokens: int, seed: int
    ) -> Iterator[list[str]]:
        jobs = (lambda session, p=p: self._sample_one(session, p, n, temperature, max_tokens, seed) for p in prompts)
        yield from self._replicas.stream(jobs, max(1, 4 * self._replicas.slots // n))

    async def _sample_one(
        self, session: Session, prompt: Prompt, n: int, temperature: float, max_tokens: int, seed: int
    ) -> list[str]:
        route = Route()

        async def one(k: int) -> str:
            # one request per answer, each seeded: servers differ in how they seed n > 1
            item_seed = (seed * 1_000_003 + zlib.crc32(prompt.user.encode()) + k) % 2**31
            reply = await session.call(
                lambda client: client.chat.completions.create(
                    model=self.model,
                    messages=self._messages(prompt),
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=1.0,
                    seed=item_seed,
                ),
                route,
            )
            return (reply.choices[0].message.content or "") if reply.choices else ""

        return list(await asyncio.gather(*(one(k) for k in range(n))))


SERVED_FIELDS = ("id", "root", "parent", "max_model_len", "owned_by", "meta")
"""What a server's ``/v1/models`` entry says of the model it serves (vLLM's ``root`` and
``max_model_len``, llama-server's ``meta``), leaving out what changes per call (``created``)."""


def _served_models(entries: Sequence[Any], model: str) -> list[dict[str, Any]]:
    """A server's ``/v1/models`` entries, in the fields that say which model it serves:
    the one named ``model`` where there is one (vLLM, hosted APIs), else all of them
    (llama.cpp's server names its one model by its path)."""
    reported = [{k: v for k, v in e.model_dump().items() if k in SERVED_FIELDS and v is not None} for e in entries]
    named = [r for r in reported if r.get("id") == model]
    return sorted(named or reported, key=lambda r: str(sorted(r.items())))


def exact_row(
    top: dict[str, float], pieces: Sequence[str], classes: Sequence[frozenset[str]] = ()
) -> tuple[np.ndarray, float]:
    """A trie node's row from a server's top-k (keyed by token text): the
    log-probabilities of ``pieces``, then of each class of token texts (a label node's
    tokens that go on with a letter or digit), and a bound on the error of any of them.

    A piece missing from the top-k has at most the smallest top-k probability, and a
    class may hold any of the mass the top-k leaves out, which then bounds it. Pieces
    that share a text (byte-fallback twins of a digit) share the server's one number,
    which may be either token's: it is given to the first, and the bound grows to the
    mass the top-k leaves out. Only T = 1 is read: text keys merge tokens (control
    tokens all read as ""), so the mass a top-k leaves out can be large, which the
    normaliser of softmax(z / T) needs."""
    row = np.full(len(pieces) + len(classes), -np.inf)
    first: dict[str, int] = {}
    for k, piece in enumerate(pieces):
        if piece in top and piece not in first:
            row[k] = top[piece]
            first[piece] = k
    values = np.exp(np.fromiter(top.values(), dtype=float))
    bound = float(values.min()) if len(first) < len(pieces) else 0.0
    if len(set(pieces)) < len(pieces) or classes:
        bound = max(bound, max(0.0, 1.0 - float(values.sum())))
    for c, members in enumerate(classes):
        mass = sum(math.exp(lp) for text, lp in top.items() if text in members and text not in first)
        row[len(pieces) + c] = math.log(mass) if mass > 0 else -np.inf
    return row, bound


def topk_distribution(top: Sequence[tuple[str, float]], scale: ScoreScale, min_coverage: float) -> ScoreDistribution:
    """Score distribution from the first answer token's top-k log-probabilities.

    A token that spells a number counts for that number (numbers outside the scale
    count below/above; on a scale of labels, a token that spells a whole label counts
    for it); other tokens count as ``other``, and so does the mass the top-k does not
    cover (recorded as ``meta["covered"]``). Where a score is a prefix of a longer one
    ("1" on 1–10, "very" of "very good") the token is read as the shorter score, or as
    other: top-k at one position cannot see the continuation, which the exact modes can."""
    probs = np.zeros(scale.size)
    below = above = other = 0.0
    seen: set[str] = set()
    for token, logprob in top:
        if token in seen:
            continue
        seen.add(token)
        p = math.exp(logprob)
        match = _NUMBER.match(token)
        if not scale.numeric:
            code = scale.read(token)
        elif match and not (len(match.group(1)) > 1 and match.group(1)[0] == "0"):
            code = scale.read_number(int(match.group(1)))
        else:
            code = scale.size + 2
        if code == scale.size:
            below += p
        elif code == scale.size + 1:
            above += p
        elif code == scale.size + 2:
            other += p
        else:
            probs[code] += p
    covered = float(probs.sum() + below + above + other)
    dist = ScoreDistribution(scale, probs, below, above, other + max(0.0, 1.0 - covered))
    dist.meta.update({"covered": covered, "low_coverage": covered < min_coverage})
    return dist


def start_llama_server(
    model_path: str, n_ctx: int = 2048, wait: float = 60.0, n_threads: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) started on a
    free loopback port (``n_threads``: llama.cpp's default where None), and its ``/v1``
    base URL once it answers; the caller stops the process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = [] if n_threads is None else ["--n_threads", str(n_threads)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            *threads,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1)
                return proc, url
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise NumbiasError(f"llama.cpp server for {model_path} did not start") from None
                time.sleep(0.5)
    except BaseException:  # an interrupt too: no server is left behind
        proc.terminate()
        proc.wait(timeout=30)
        raise


@contextmanager
def local_llama_server(
    model_path: str, n_ctx: int = 2048, wait: float = 60.0, n_threads: int | None = None
) -> Iterator[str]:
    """:func:`start_llama_server` for the duration of the block; yields its ``/v1`` base URL."""
    proc, url = start_llama_server(model_path, n_ctx, wait, n_threads)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)

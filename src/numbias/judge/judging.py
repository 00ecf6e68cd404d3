"""Judges and the store-backed collection of their distributions: a judge's backend
loads only when an answer is missing from the store, and every scored item is stored
at once, so any stop resumes where it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np

from numbias.backends import Backend, create_backend, describe_backend
from numbias.backends.base import backend_factory, reading_options, starts_to_describe, takes_option
from numbias.core.distribution import ScoreDistribution, stack
from numbias.core.metrics import Rule, item_scores
from numbias.core.sampling import sampled_distribution
from numbias.core.scale import ScoreScale
from numbias.data.dataset import Dataset
from numbias.data.prompt import Prompt, PromptTemplate, fit_field
from numbias.judge.config import JudgeConfig, SamplingConfig
from numbias.judge.store import Store, item_slot
from numbias.judge.workers import ItemError, Scorer, Shards, plan, scored, start_workers
from numbias.util.errors import NumbiasError

Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
"""``with progress(description, total) as advance``: ``advance(n)`` counts n more done;
leaving the block ends the bar or the log line."""


@contextmanager
def no_progress(_: str, __: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


_STORE_ONLY: ContextVar[bool] = ContextVar("store_only", default=False)


@contextmanager
def store_only() -> Iterator[None]:
    """Within it, :func:`collect` answers from the store alone: a missing item is a
    one-line error, never a model load (a report rebuilt from a results folder)."""
    token = _STORE_ONLY.set(True)
    try:
        yield
    finally:
        _STORE_ONLY.reset(token)


class Judge:
    """A configured judge whose backend is loaded only when something is missing.
    ``workers``: processes its missing items are sharded over (None: the default for
    the judge and the cores, see :func:`numbias.judge.workers.plan`)."""

    def __init__(self, config: JudgeConfig, *, workers: int | None = None) -> None:
        self.config = config
        self.workers = workers
        if config.instance is not None:
            self._backend: Backend | None = config.instance
            self.identity = {"chat": bool(getattr(config.instance, "chat", True)), **config.instance.identity}
        elif _STORE_ONLY.get() and starts_to_describe(config.backend):
            self.identity, self._backend = (
                {"backend": config.backend, "model": config.model, "chat": config.options.get("chat") is not False},
                None,
            )
        else:
            self.identity, self._backend = describe_backend(config.backend, config.model, config.options)
        self.chat = bool(self.identity["chat"])

    @property
    def partial(self) -> bool:
        """Whether the identity is only what is known without starting the backend (a
        report rebuilt from the store): the stored reading is then looked up, not keyed."""
        return (
            self._backend is None
            and _STORE_ONLY.get()
            and self.config.instance is None
            and starts_to_describe(self.config.backend)
        )

    @property
    def backend(self) -> Backend:
        if self._backend is None and _STORE_ONLY.get():
            raise NumbiasError(
                f"judge {self.config.name}: a report is rebuilt from the store alone and starts no "
                "backend; run the study's command to compute what it lacks"
            )
        if self._backend is None:
            self._backend = create_backend(self.config.backend, model=self.config.model, **self._options())
        return self._backend

    def _options(self) -> dict[str, Any]:
        options = dict(self.config.options)
        if takes_option(self.config.backend, "chat"):
            options["chat"] = self.chat
        return options

    def shards(self, n_items: int) -> Shards | None:
        """The worker processes for ``n_items`` missing items (None: this process); a
        judge given as an object is always scored here."""
        if self.config.instance is not None:
            return None
        factory = backend_factory(self.config.backend)
        # The factory's own word where it gives one (a backend class), so that workers can
        # start before this process loads its judge; else the loaded backend's.
        order_free = getattr(factory, "order_free", None)
        if order_free is None:
            order_free = getattr(self.backend, "order_free", False)
        return plan(
            bool(order_free),
            factory,
            {"model": self.config.model, **self._options()},
            self.workers,
            n_items,
        )


@dataclass
class ScoredSet:
    """The distributions of one judge on one task at one scale."""

    judge: str
    task: str
    scale: ScoreScale
    data: Dataset
    distributions: list[ScoreDistribution]
    mode: str = "exact"
    protocol_temperature: float = 1.0
    """Exact sets score the ``protocol`` rule at the protocol's sampling temperature."""
    truncate: str | None = None
    """The field cut to fit the context, if any (``cut`` per item in ``meta``)."""

    def at(self, temperature: float) -> list[ScoreDistribution]:
        """The exact distributions re-read at ``temperature`` (no model call)."""
        return [d.at(temperature) for d in self.distributions]

    def scores(self, rule: str) -> np.ndarray:
        dists = self.distributions
        if rule == "protocol" and self.mode == "exact":
            try:
                dists = self.at(self.protocol_temperature)
            except NumbiasError as exc:
                raise NumbiasError(
                    f"judge {self.judge}: the protocol rule reads distributions at the sampling "
                    f"temperature, which this backend did not provide ({exc}); use rules "
                    "greedy/expected/median or mode 'sampled'"
                ) from None
        probs, rest = stack(dists)
        return item_scores(probs, rest, self.scale, cast(Rule, rule))  # item_scores rejects an unknown rule


def setting_identity(judge: Judge, template: PromptTemplate, scale: ScoreScale, mode: dict[str, Any]) -> dict:
    """What a stored reading is keyed by. A backend's own ``mode`` (a server read exactly,
    by its top log-probabilities or by sampling) is kept as ``backend_mode`` where it
    differs from the collection's, so top-k readings never pass for exact ones."""
    own = judge.identity.get("mode")
    kept = {"backend_mode": own} if own is not None and own != mode.get("mode") else {}
    return {
        **judge.identity,
        "template": template.text,
        "system": template.system,
        "answer_prefix": template.prefix(judge.chat),
        "scale": str(scale),
        **mode,
        **kept,
    }


def collect(
    judge: Judge,
    task_name: str,
    data: Dataset,
    template: PromptTemplate,
    scale: ScoreScale,
    store: Store,
    *,
    progress: Progress = no_progress,
    mode: dict[str, Any] | None = None,
    scorer: Scorer | None = None,
    truncate: str | None = None,
) -> ScoredSet:
    """Distributions for every item, from the store where present, else the model;
    each new item is stored as soon as it is scored, in the order that shares the most
    prompt prefix between neighbours, by the judge's worker processes where it has
    them (:mod:`numbias.judge.workers`: the same results as file order in one process).
    Items are keyed by their full prompt; one over the judge's context is an error, or
    with ``truncate`` has that field cut to fit (``meta["cut"]``: characters removed)."""
    mode = mode or {"mode": "exact"}
    # A cut depends on the context the judge was given, which its identity need not hold.
    cut = {"truncate": truncate, "judge_options": reading_options(judge.config.options)} if truncate else {}
    identity = {**setting_identity(judge, template, scale, mode), **cut}
    key = _stored_key(judge, identity, store) if judge.partial else store.register(identity)
    ids, records = data.ids, data.records()
    prompts = [template.fill(record, scale, chat=judge.chat) for record in records]
    slots = [item_slot(item_id, prompt) for item_id, prompt in zip(ids, prompts)]
    done = store.done(key, slots)
    todo = [i for i, slot in enumerate(slots) if slot not in done]
    if todo and _STORE_ONLY.get():
        raise NumbiasError(
            f"the store lacks {len(todo)} of {len(slots)} item(s) of {task_name} for judge "
            f"{judge.config.name} at {scale} ({mode['mode']}); run the command again to score them"
        )
    if todo:
        if (shards := judge.shards(len(todo))) is not None:
            start_workers(shards)  # they load their judges while this process loads its own
        backend = judge.backend
        reserve = max(int(mode.get("max_tokens", scale.width + 1)) + 1, answer_room(backend, scale))
        asked, cuts = fit_context(
            backend,
            template,
            scale,
            judge.chat,
            [records[i] for i in todo],
            [prompts[i] for i in todo],
            [ids[i] for i in todo],
            truncate,
            reserve,
            task_name,
        )
        run = scorer or partial(exact_scores, scale=scale)
        with progress(f"{judge.config.name} · {task_name} · {scale}", len(todo)) as advance:
            try:
                _store_as_scored(judge, run, asked, cuts, store, key, [slots[i] for i in todo], advance)
            except ItemError as exc:
                raise NumbiasError(f"item {ids[todo[exc.index]]!r} of {task_name}: {exc}") from None
    stored = store.get(key, slots)
    label = "exact" if mode["mode"] == "exact" else str(mode.get("label", "sampled"))
    return ScoredSet(judge.config.name, task_name, scale, data, [stored[s] for s in slots], label, truncate=truncate)


def _store_as_scored(
    judge: Judge,
    run: Scorer,
    prompts: list[Prompt],
    cuts: list[int],
    store: Store,
    key: str,
    slots: list[str],
    advance: Callable[[int], None],
) -> None:
    """Each item stored as soon as it is scored (with the characters cut from it), so a
    stop keeps every item done. The results are closed on any stop here too (a full
    disk, Ctrl-C), which stops the workers at once."""
    with closing(scored(judge.backend, prompts, run, judge.shards(len(prompts)))) as results:
        for k, dist in results:
            if cuts[k]:
                dist.meta["cut"] = cuts[k]
            store.put(key, slots[k], dist, dist.meta.get("n_tokens"))
            advance(1)


def answer_room(backend: Backend, scale: ScoreScale) -> int:
    """Tokens the backend's walk over the score trie takes after the prompt (its
    ``answer_room``; a backend without one: a token per character of the longest label,
    a space and the end)."""
    room = getattr(backend, "answer_room", None)
    return int(room(scale)) if callable(room) else scale.width + 2


def _stored_key(judge: Judge, identity: dict[str, Any], store: Store) -> str:
    """The key of the one stored reading that matches what is known of a judge that is
    not started (its options beside routing and ``judge_options`` compared where the
    stored identity holds them); none or several is a one-line error."""
    known = {k: v for k, v in identity.items() if k != "judge_options"}
    options = reading_options(judge.config.options)
    keys = store.matching(known, options)
    if len(keys) != 1:
        how = "no reading" if not keys else f"{len(keys)} readings"
        raise NumbiasError(
            f"the store holds {how} of judge {judge.config.name} ({judge.config.backend}) at "
            f"{identity.get('scale')} with this prompt; run the study's command again to score it"
        )
    return keys[0]


def fit_context(
    backend: Backend,
    template: PromptTemplate,
    scale: ScoreScale,
    chat: bool,
    records: list[dict[str, Any]],
    prompts: list[Prompt],
    ids: list[str],
    truncate: str | None,
    reserve: int,
    task_name: str,
) -> tuple[list[Prompt], list[int]]:
    """Prompts that fit the judge's context with ``reserve`` tokens left for the answer,
    and the characters cut from each; checked before any item is scored."""
    budget = backend.context_length - reserve
    counts = [backend.count_tokens(p) for p in prompts]
    over = [i for i, c in enumerate(counts) if c > budget]
    if not over:
        return prompts, [0] * len(prompts)
    longest = max(over, key=counts.__getitem__)
    where = (
        f"{len(over)} item(s) of {task_name} exceed the judge's context of {backend.context_length} tokens "
        f"(longest: item {ids[longest]!r}, {counts[longest]} tokens)"
    )
    if truncate is None:
        raise NumbiasError(f"{where}; set truncate: FIELD (--truncate FIELD) to shorten a field to fit")
    asked, cuts = list(prompts), [0] * len(prompts)
    for i in over:
        fitted = fit_field(
            template, records[i], scale, chat=chat, field=truncate, count=backend.count_tokens, budget=budget
        )
        if fitted is None:
            raise NumbiasError(f"{where}; item {ids[i]!r} does not fit even with {truncate!r} emptied")
        asked[i], cuts[i] = fitted
    return asked, cuts


def exact_scores(backend: Backend, prompts: list[Prompt], *, scale: ScoreScale) -> Iterator[ScoreDistribution]:
    """The default scorer: the backend's exact distributions (a module-level function,
    so that it pickles to worker processes)."""
    return backend.score(prompts, scale)


def sampling_mode(sampling: SamplingConfig, scale: ScoreScale) -> tuple[dict[str, Any], Scorer]:
    """Store identity and scorer for the paper's sampling protocol."""
    mode = {"mode": "sampled", "label": sampling.label, **sampling.model_dump()}
    return mode, partial(sampled_scores, sampling=sampling, scale=scale)


def sampled_scores(
    backend: Backend, prompts: list[Prompt], *, sampling: SamplingConfig, scale: ScoreScale
) -> Iterator[ScoreDistribution]:
    """The sampling protocol's answers read as distributions."""
    for texts in backend.sample(
        prompts, n=sampling.n, temperature=sampling.temperature, max_tokens=sampling.max_tokens, seed=sampling.seed
    ):
        yield sampled_distribution(texts, scale, sampling.temperature)

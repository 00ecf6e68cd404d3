"""The backend protocol: prompts and a scale in, one score distribution per prompt out."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt
from numbias.util.options import check_options
from numbias.util.plugins import Registry, import_ref


@runtime_checkable
class Backend(Protocol):
    """A judge that can report exact score distributions and draw samples.

    A backend may also have ``answer_room(scale) -> int``: the tokens its walk over the
    score trie takes after the prompt, which truncation and the context check reserve
    (without it: the highest score's digits and the end); and ``order_free = True``: its
    answer to a prompt does not depend on the prompts scored before or beside it (no
    batching of items; a cache that changes no result), so items are scored in the
    order that shares the most prompt prefix and may be sharded over worker processes.

    Any object with these members is a judge; the fake backend (fixed logits) is one:

    >>> import numpy as np
    >>> from numbias import Backend, Prompt, ScoreScale
    >>> from numbias.backends.fake import FakeBackend
    >>> def logits(prompt, tokens):  # the word's length as the score, then the end
    ...     row = np.full(11, -50.0)
    ...     row[10 if tokens else len(prompt.user.split()[-1])] = 0.0
    ...     return row
    >>> judge = FakeBackend([*"0123456789", ""], logits, eos=10)
    >>> isinstance(judge, Backend)
    True
    >>> next(judge.score([Prompt("Rate: great")], ScoreScale(0, 9))).probs.round(2)
    array([0., 0., 0., 0., 0., 1., 0., 0., 0., 0.])
    >>> next(judge.sample([Prompt("Rate: bad")], n=3, temperature=1.0, max_tokens=5, seed=0))
    ['3', '3', '3']
    """

    identity: dict[str, Any]
    """What makes results reproducible: model checksum, backend name and settings."""

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens of the rendered prompt (to check it fits the context)."""
        ...

    @property
    def context_length(self) -> int: ...

    def score(self, prompts: Sequence[Prompt], scale: ScoreScale) -> Iterator[ScoreDistribution]:
        """Exact next-output distribution over ``scale`` for each prompt, in order."""
        ...

    def sample(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        seed: int,
    ) -> Iterator[list[str]]:
        """``n`` sampled continuations per prompt, reproducible for a seed."""
        ...


ENTRY_POINTS = "numbias.backends"
"""Installed packages add backends under this entry-point group: each entry point's
name is the backend's name, and it names the factory (``model=...`` and options in,
a :class:`Backend` out)."""
BACKENDS: Registry[str | Callable[..., Backend]] = Registry("backend", ENTRY_POINTS, hint=", or module:attr")
"""Every known backend factory by name (a ``"module:attr"`` path is imported on first use)."""
for _name, _factory_ref in (
    ("llama.cpp", "numbias.backends.llamacpp:LlamaCppBackend"),
    ("fake", "numbias.backends.fake:FakeBackend"),
    ("openai", "numbias.backends.openai_compat:OpenAIBackend"),
    ("transformers", "numbias.backends.hf:TransformersBackend"),
):
    BACKENDS.register(_name, _factory_ref)


def register_backend(name: str, factory: str | Callable[..., Backend], *, replace: bool = False) -> None:
    """Register a backend factory, or a ``"module:attr"`` path imported on first use.

    >>> import numpy as np
    >>> from numbias import Prompt, ScoreScale, create_backend, register_backend
    >>> from numbias.backends.fake import FakeBackend
    >>> def always_seven(model: str) -> FakeBackend:
    ...     return FakeBackend([*"0123456789", ""], lambda _, tokens: np.eye(11)[10 if tokens else 7] * 50, eos=10)
    >>> register_backend("seven", always_seven)
    >>> judge = create_backend("seven", model="any")
    >>> next(judge.score([Prompt("Rate")], ScoreScale(0, 9))).probs.round(2)
    array([0., 0., 0., 0., 0., 0., 0., 1., 0., 0.])
    >>> register_backend("seven", "my_package.judges:Seven")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: a backend named 'seven' is already registered ...
    """
    BACKENDS.register(name, factory, replace=replace)


def all_backends() -> dict[str, str | Callable[..., Backend]]:
    """Every backend factory by name: built-in, registered and installed.

    >>> from numbias import all_backends
    >>> all_backends()["fake"]
    'numbias.backends.fake:FakeBackend'
    """
    return BACKENDS.all()


def backend_factory(name: str) -> Callable[..., Backend]:
    """The factory a backend name (or ``module:attr``) stands for: what a worker process
    is sent, since a name registered at run time is unknown there."""
    factory = name if ":" in name and name not in BACKENDS else BACKENDS.find(name)
    return import_ref(factory, f"backend {name!r}") if isinstance(factory, str) else factory


SECRET_OPTIONS = frozenset({"api_key"})
ROUTING_OPTIONS = frozenset({"base_url", "api_key_env", "api_key"})
"""Options that say where requests go or which secret is read (the OpenAI backend's
``base_url`` and ``api_key_env``, a plug-in's ``api_key``): they come from the user at
scoring time, never from a file someone else wrote (a saved judge, a results folder)."""
PACING_OPTIONS = frozenset({"concurrency", "timeout", "max_retries"})
"""Options that set how fast and how patiently requests are sent, never what is read."""
_ROUTING_NAMES = ROUTING_OPTIONS | {"url", "host", "endpoint", "api_base", "token", "secret", "password"}
_ROUTING_ENDS = ("_url", "_host", "_endpoint", "_env", "_api_key", "_secret", "_password")


def is_routing(option: str) -> bool:
    """Whether a backend option says where requests go or which secret is read: the
    known ones and, for plug-ins, any named like them (``*_url``, ``*_key``, ``*_env``...)."""
    return option.lower() in _ROUTING_NAMES or option.lower().endswith(_ROUTING_ENDS)


def reading_options(options: dict[str, Any]) -> dict[str, Any]:
    """A judge's options less those that route or pace requests: what can change a
    reading (a server added to a list, or a higher concurrency, changes no answer)."""
    return {k: v for k, v in options.items() if not is_routing(k) and k not in PACING_OPTIONS}


def registered(name: str) -> bool:
    """Whether ``name`` is a registered backend (built-in, registered in this process or
    installed under :data:`ENTRY_POINTS`), not a ``module:attr`` path that imports code."""
    return ":" not in name and name in all_backends()


def starts_to_describe(name: str) -> bool:
    """Whether a registered backend learns its identity only by starting (a server's
    probed mode): a judge that must not start then takes its identity from the store."""
    factory = backend_factory(name)
    return getattr(factory, "describe", None) is None and bool(getattr(factory, "identity_after_start", False))


def required_options(name: str) -> list[str]:
    """The options a backend's factory needs and has no default for (``model`` aside)."""
    params = inspect.signature(backend_factory(name)).parameters.values()
    return [
        p.name
        for p in params
        if p.default is p.empty and p.name != "model" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def describe_backend(name: str, model: str, options: dict[str, Any]) -> tuple[dict[str, Any], Backend | None]:
    """A judge's identity, with ``chat`` always set, and the backend itself where learning
    the identity meant starting it (``None`` otherwise, so loading waits until an answer is
    missing from the store). The identity is the backend's own ``describe`` where it has one
    (it knows which options change results); a backend whose identity depends on what it
    finds at start (``identity_after_start``: a server's probed mode) is started once and
    kept; anything else is identified by its non-secret options. Both attributes are read
    on the registered factory itself. An identity without ``chat`` takes the option's
    value (default True)."""
    factory = backend_factory(name)
    options = check_options(f"backend {name!r}", factory, {"model": model, **options})
    model = options.pop("model")
    chat = True if options.get("chat") is None else bool(options["chat"])
    describe = getattr(factory, "describe", None)
    if describe is not None:
        return {"chat": chat, **describe(model, **options)}, None
    if getattr(factory, "identity_after_start", False):
        backend = factory(model=model, **options)
        return {"chat": chat, **backend.identity}, backend
    return {
        "backend": name,
        "model": model,
        "chat": chat,
        **{k: v for k, v in options.items() if k not in SECRET_OPTIONS},
    }, None


def takes_option(name: str, option: str) -> bool:
    """Whether a backend's factory names ``option`` in its signature."""
    return option in inspect.signature(backend_factory(name)).parameters


def create_backend(name: str, **options: Any) -> Backend:
    """A backend by its registered name (or ``module:attr``), its options checked
    against the factory's signature before it starts.

    >>> from numbias import Prompt, ScoreScale, create_backend
    >>> stop = [-50.0, -50.0, -50.0, 0.0]  # after a digit, the answer ends
    >>> judge = create_backend("fake", pieces=["0", "1", "2", ""], eos=3,
    ...                        logits={(): [0.0, 0.0, 0.0, -50.0], (0,): stop, (1,): stop, (2,): stop})
    >>> next(judge.score([Prompt("Rate")], ScoreScale(0, 2))).probs.round(2)
    array([0.33, 0.33, 0.33])
    >>> create_backend("fake", model="x")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: backend 'fake' has no option(s) model (options: pieces, logits, eos,
    context_length, temperatures)
    >>> create_backend("nope")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: unknown backend 'nope' (known: ...)
    """
    factory = backend_factory(name)
    return factory(**check_options(f"backend {name!r}", factory, options))

"""How a judge's missing items are scored: in the order that shares the most prompt
prefix between neighbours (a backend that keeps the previous prompt's cache then
evaluates the least), and, for a CPU judge, sharded over worker processes of one
llama.cpp thread each, the parent the one writer to the store. Threads of one process
wait for each other at every operation, so a core taken by another program stalls
them all; separate processes only share the cores."""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from numbias.backends.base import Backend
from numbias.core.distribution import ScoreDistribution
from numbias.data.prompt import Prompt
from numbias.util.errors import NumbiasError, first_line

Scorer = Callable[[Backend, list[Prompt]], Iterator[ScoreDistribution]]
"""Distributions for prompts, in order, from a backend (exact or the sampling protocol)."""

MAX_CHUNK = 12
"""Items handed to a worker at a time, at most (a chunk may stretch to twice this to
end where neighbours share little): what a stopped run can lose, and how often the
progress moves."""


class ItemError(NumbiasError):
    """A backend's error on the item at ``index`` of the prompts given."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Shards:
    """Worker processes for a judge: how many, and the factory and options each one
    builds its own backend from."""

    workers: int
    factory: Callable[..., Backend]
    options: dict[str, Any] = field(default_factory=dict)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the platform tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


DEFAULT_MIN_ITEMS = 2 * MAX_CHUNK
"""Fewer missing items than this are scored in this process unless workers are asked
for: starting workers (each loads the judge) costs more than they save."""
MAX_DEFAULT_WORKERS = 4


def plan(
    order_free: bool,
    factory: Callable[..., Backend],
    options: dict[str, Any],
    workers: int | None,
    n_items: int,
    cores: int | None = None,
) -> Shards | None:
    """Worker processes for ``n_items`` missing items, or None for this process alone.
    Only an ``order_free`` backend is sharded (its answers cannot depend on its
    neighbours). Threads are split so that workers × threads stays within the cores,
    unless ``n_threads`` is given; ``workers`` None is :func:`default_workers`."""
    if not order_free:
        return None
    cores = cores or usable_cores()
    threaded = "n_threads" in inspect.signature(factory).parameters
    if workers is None:
        workers = default_workers(threaded, options, n_items, cores)
    workers = min(workers, n_items)
    if workers <= 1:
        return None
    threads = options.get("n_threads")
    split = {"n_threads": threads or max(1, cores // workers)} if threaded else {}
    return Shards(workers, factory, {**options, **split})


def default_workers(threaded: bool, options: dict[str, Any], n_items: int, cores: int) -> int:
    """One worker per core (of ``n_threads`` cores each where given; at most
    :data:`MAX_DEFAULT_WORKERS`) for a judge computed by CPU threads (llama.cpp without
    GPU layers) with at least :data:`DEFAULT_MIN_ITEMS` items; else this process alone.
    ``benchmarks/bench_throughput.py`` measured why (docs/performance.md): on an idle
    2-core machine two workers match one process of two threads, and beside a busy core
    they take 1.5x their idle time where the one process takes 3x."""
    if not threaded or options.get("n_gpu_layers") or n_items < DEFAULT_MIN_ITEMS:
        return 1
    return min(MAX_DEFAULT_WORKERS, max(1, cores // int(options.get("n_threads") or 1)))


def prefix_order(prompts: Sequence[Prompt]) -> list[int]:
    """The prompts' indices sorted by their text (system, user turn, answer prefix, the
    order a prompt is rendered in): sorted, neighbours share the longest prefixes any
    order gives them, whatever the file's order."""
    return sorted(range(len(prompts)), key=lambda i: _text(prompts[i]))


def _text(prompt: Prompt) -> str:
    return f"{prompt.system or ''}\0{prompt.user}\0{prompt.answer_prefix}"


def chunks(texts: Sequence[str], workers: int) -> list[range]:
    """Runs of neighbours to hand out, shrinking towards the end so the workers finish
    together; each ends, within half to twice its size, where neighbours share the least
    prefix (a worker starting a run evaluates that prefix again)."""
    n = len(texts)
    shared = [0] + [len(os.path.commonprefix([texts[i - 1], texts[i]])) for i in range(1, n)] + [-1]
    runs, start = [], 0
    while start < n:
        size = max(1, min(MAX_CHUNK, -(-(n - start) // (2 * workers))))
        ends = range(start + max(1, size // 2), min(n, start + 2 * size) + 1)
        end = min(ends, key=lambda e: (shared[e], abs(e - start - size)))
        runs.append(range(start, end))
        start = end
    return runs


def scored(
    backend: Backend, prompts: Sequence[Prompt], scorer: Scorer, shards: Shards | None
) -> Generator[tuple[int, ScoreDistribution], None, None]:
    """``(index, distribution)`` for every prompt, as each is scored: by ``backend`` here
    in :func:`prefix_order` (an ``order_free`` backend), else in the given order, or by
    the ``shards``' workers in runs of that order. A backend's error is an
    :class:`ItemError` naming the item, raised once every finished item is yielded."""
    order = prefix_order(prompts) if getattr(backend, "order_free", False) else list(range(len(prompts)))
    if shards is not None:
        _check_sendable(shards, scorer)
        yield from _sharded([prompts[i] for i in order], order, scorer, shards)
        return
    done = 0
    try:
        for dist in scorer(backend, [prompts[i] for i in order]):
            yield order[done], dist
            done += 1
    except NumbiasError as exc:
        raise ItemError(order[min(done, len(order) - 1)], str(exc)) from None


_BACKEND: list[Backend] = []
_FAILED: list[str] = []


def _start_worker(factory: Callable[..., Backend], options: dict[str, Any]) -> None:
    """A worker's backend, built once; Ctrl-C is left to the parent, which stops the
    workers and says what is kept, SIGTERM ends a worker quietly, and a worker whose
    parent is gone (killed) exits rather than finish its run for nobody. A failure to
    build is kept and answered to every chunk as one line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    try:
        _BACKEND.append(factory(**options))
    except Exception as exc:  # noqa: BLE001 - any failure (memory, a plug-in's bug) is told as one line
        _FAILED.append(f"a scoring worker could not start its judge: {first_line(exc)}")


def _exit_with(parent: int) -> None:
    """Exit once the parent is gone (the orphan is handed to another process): llama.cpp
    releases the GIL while it computes, so this thread runs within a second."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _score_chunk(prompts: list[Prompt], scorer: Scorer) -> tuple[list[ScoreDistribution], str | None]:
    """A worker's run: the distributions scored, and the error that stopped it, if any."""
    if _FAILED:
        return [], _FAILED[0]
    out: list[ScoreDistribution] = []
    try:
        for dist in scorer(_BACKEND[0], prompts):
            out.append(dist)
    except NumbiasError as exc:
        return out, str(exc)
    return out, None


_POOLS: dict[bytes, ProcessPoolExecutor] = {}
"""The running workers (one set at a time), kept between calls so that a judge's scales
and tasks share one start; a different judge's shards stop them."""

STOPPED = (
    "a scoring worker process stopped unexpectedly (killed, or out of memory?); the items stored so far "
    "are kept: run the same command to resume (--workers 1 scores in one process)"
)


def _check_sendable(shards: Shards, scorer: Scorer) -> None:
    """The workers must be sent the judge's factory, options and scorer: they must
    pickle and not live in the main script, which the workers do not run; else an error."""
    func = getattr(scorer, "func", scorer)
    try:
        pickle.dumps((shards.factory, shards.options, scorer))
        if "__main__" in (getattr(shards.factory, "__module__", None), getattr(func, "__module__", None)):
            raise TypeError("it is defined in the main script")
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise NumbiasError(
            f"this judge cannot be scored in worker processes ({first_line(exc)}); set workers to 1"
        ) from None


def _pool(shards: Shards) -> ProcessPoolExecutor:
    """The shards' workers, started on need (spawned: a fork would copy the parent's
    threads and model); any other judge's are stopped first."""
    key = pickle.dumps((shards.factory, shards.options, shards.workers))
    if key not in _POOLS:
        close_workers()
        _POOLS[key] = ProcessPoolExecutor(
            shards.workers,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=(shards.factory, shards.options),
        )
    return _POOLS[key]


def start_workers(shards: Shards) -> None:
    """Start the shards' workers now, without waiting for them, so that they load their
    judges while this process loads its own; the first run then finds them up."""
    pool = _pool(shards)
    with _main_left_alone():  # the executor starts a process for each task it cannot hand out
        for _ in range(shards.workers):
            pool.submit(_ready)


def _ready() -> None:
    """Nothing: a task that has the pool start a worker."""


@contextmanager
def _main_left_alone() -> Iterator[None]:
    """Workers started without the parent's main script: spawn would run it again in
    each one, and a script without the ``if __name__ == "__main__"`` guard would score
    again there. Nothing a worker is sent lives in it (see :func:`_check_sendable`)."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def close_workers() -> None:
    """Stop the running workers, if any, at once (after an error or an interrupt, or
    for another judge); their unfinished runs are dropped, never stored."""
    for pool in _POOLS.values():
        # Terminated before the shutdown, which forgets them (terminate_workers in 3.14) and
        # would let a busy worker finish its run first.
        processes = list((pool._processes or {}).values())
        for process in processes:
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(10)
    _POOLS.clear()


def _sharded(
    prompts: list[Prompt], order: list[int], scorer: Scorer, shards: Shards
) -> Iterator[tuple[int, ScoreDistribution]]:
    """The prompts (in scoring order) scored by the workers, run by run; any stop
    (an item's error, a dead worker, Ctrl-C, the caller giving up) stops the workers."""
    pool = _pool(shards)
    try:
        with _main_left_alone():  # the executor starts its processes as work is submitted
            runs: dict[Future, range] = {
                pool.submit(_score_chunk, [prompts[i] for i in run], scorer): run
                for run in chunks([_text(p) for p in prompts], shards.workers)
            }
        for future in as_completed(runs):
            dists, error = future.result()
            run = runs[future]
            for k, dist in zip(run, dists):
                yield order[k], dist
            if error is not None:
                raise ItemError(order[run[len(dists)]], error)
    except BrokenProcessPool:
        close_workers()
        raise NumbiasError(STOPPED) from None
    except BaseException:
        close_workers()
        raise

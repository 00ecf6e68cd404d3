"""The servers an OpenAI-compatible judge spreads its requests over (replicas of one model).

Each server takes ``concurrency`` requests at a time. A request that fails in a way worth
retrying (no connection, a timeout, 408, 409, 429, 5xx) sets its server aside for a
backoff (0.5 s doubling up to 8 s, or the server's ``Retry-After``) and goes to another
server, or back to the same one once the backoff is over; a server that failed takes one
request at a time until one succeeds, so a dead replica costs one request per backoff, not
a whole batch. A request is tried at most ``max_retries + 1`` times in all. The requests
of one item stay on one server while it is healthy, where its prefix cache serves them.
Answers come back in the order asked while later items are in flight (a sliding window),
so neither a slow item nor a lost server leaves the others idle."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from numbias.util.errors import NumbiasError, first_line

T = TypeVar("T")
FIRST_BACKOFF, LAST_BACKOFF, LONGEST_RETRY_AFTER = 0.5, 8.0, 60.0
RETRIED_STATUS = frozenset({408, 409, 429})
"""Statuses retried besides every 5xx (as the ``openai`` client does)."""
EXAMPLE = "http://127.0.0.1:8000/v1"


@dataclass(eq=False)
class Replica:
    """One server: its ``/v1`` URL, the requests it takes at a time, and its health."""

    url: str
    limit: int
    failures: int = 0
    """Failures since its last success: while above 0 it takes one request at a time."""
    down_until: float = 0.0
    """The monotonic time before which no request goes to it."""


@dataclass
class Route:
    """The server an item's requests go to while it stays healthy (None: any)."""

    home: Replica | None = None


def parse_servers(base_url: str | Sequence[str | Mapping[str, Any]], concurrency: int) -> list[Replica]:
    """The servers ``base_url`` names: one URL, several separated by commas (how
    ``--base-url`` gives them), or a list of URLs and ``{url: ..., concurrency: N}``
    entries; each server takes ``concurrency`` requests at a time unless its entry says."""
    entries = base_url.split(",") if isinstance(base_url, str) else list(base_url)
    if not entries:
        raise NumbiasError(f"base_url is empty: give a server's URL (e.g. {EXAMPLE}) or a list of them")
    servers = [_replica(entry, concurrency) for entry in entries]
    seen: set[str] = set()
    for server in servers:
        if server.url.rstrip("/") in seen:
            raise NumbiasError(
                f"base_url lists {server.url} twice: list each server once (its entry can raise its concurrency)"
            )
        seen.add(server.url.rstrip("/"))
    return servers


def _replica(entry: str | Mapping[str, Any], concurrency: int) -> Replica:
    if isinstance(entry, Mapping):
        if unknown := sorted(str(k) for k in set(entry) - {"url", "concurrency"}):
            raise NumbiasError(f"a base_url entry has unknown key(s) {', '.join(unknown)} (keys: url, concurrency)")
        url, limit = entry.get("url"), entry.get("concurrency", concurrency)
    else:
        url, limit = entry, concurrency
    if not isinstance(url, str) or not url.strip():
        raise NumbiasError(f"base_url has an empty entry: give every server's URL, e.g. {EXAMPLE}")
    url = url.strip()
    try:
        parts = urlsplit(url)
        fine = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.port != 0
            and not any(c.isspace() for c in url)
        )
    except ValueError:  # a port that is no number
        fine = False
    if not fine:
        raise NumbiasError(f"base_url {url!r} is not an http(s) URL such as {EXAMPLE}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise NumbiasError(f"concurrency of {url} must be at least 1, got {limit!r}")
    return Replica(url, limit)


def _retry_after(exc: Exception) -> float | None:
    """The wait a server asked for (``Retry-After``, in seconds or milliseconds), if sane."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, unit in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        try:
            wait = float(value) / unit if value is not None else 0.0
        except ValueError:  # an HTTP date: the backoff applies
            continue
        if 0 < wait <= LONGEST_RETRY_AFTER:
            return wait
    return None


class Replicas:
    """Requests spread over servers, each request retried where a server is healthy."""

    def __init__(self, openai: Any, servers: list[Replica], client_args: dict[str, Any], max_retries: int) -> None:
        self.openai = openai
        self.servers = servers
        self.client_args = client_args
        self.max_retries = max_retries

    @property
    def slots(self) -> int:
        """Requests in flight when every server is busy."""
        return sum(s.limit for s in self.servers)

    def alone(self, server: Replica) -> Replicas:
        """The same settings on ``server`` only (its health shared): to ask each in turn."""
        return Replicas(self.openai, [server], self.client_args, self.max_retries)

    def ask(self, request: Callable[[Any], Awaitable[T]]) -> T:
        """One request (``request(client)``), retried as any other."""
        return list(self.stream([lambda session: session.call(request, Route())], 1))[0]

    def stream(self, jobs: Iterable[Callable[[Session], Coroutine[Any, Any, T]]], window: int) -> Iterator[T]:
        """Each job's answer in order, ``window`` jobs in flight on a private event loop;
        what is in flight when the caller stops is cancelled."""
        loop = asyncio.new_event_loop()
        pending: deque[asyncio.Task[T]] = deque()
        session: Session | None = None
        try:
            session = loop.run_until_complete(self._open())
            queue = iter(jobs)
            while True:
                while len(pending) < window and (job := next(queue, None)) is not None:
                    pending.append(loop.create_task(job(session)))
                if not pending:
                    return
                yield loop.run_until_complete(pending.popleft())
        finally:
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if session is not None:
                loop.run_until_complete(session.close())
            loop.close()

    async def _open(self) -> Session:
        clients = {
            s.url: self.openai.AsyncOpenAI(base_url=s.url, max_retries=0, **self.client_args) for s in self.servers
        }
        return Session(self, clients)


class Session:
    """The servers' clients and free slots within one event loop."""

    def __init__(self, replicas: Replicas, clients: dict[str, Any]) -> None:
        self.replicas = replicas
        self.clients = clients
        self.busy = {s.url: 0 for s in replicas.servers}
        self.changed = asyncio.Condition()

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()

    async def call(self, request: Callable[[Any], Awaitable[T]], route: Route) -> T:
        """``request(client)`` on the route's server, or the least busy healthy one;
        a failure worth retrying sets the server aside and tries again (elsewhere if
        another is healthy); the last failure, or one not worth retrying, is the error."""
        openai, tries = self.replicas.openai, 0
        while True:
            server = route.home = await self._take(route.home)
            try:
                answer = await request(self.clients[server.url])
                server.failures = 0
                return answer
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                tries += 1
                status = getattr(exc, "status_code", None)
                if tries > self.replicas.max_retries or (
                    status is not None and status < 500 and status not in RETRIED_STATUS
                ):
                    raise _error(server.url, exc, status) from None
                server.failures += 1
                server.down_until = time.monotonic() + (
                    _retry_after(exc) or min(FIRST_BACKOFF * 2 ** (server.failures - 1), LAST_BACKOFF)
                )
            finally:
                async with self.changed:
                    self.busy[server.url] -= 1
                    self.changed.notify_all()

    async def _take(self, home: Replica | None) -> Replica:
        """A slot on ``home`` while it is healthy, else on any server that is not set
        aside, waiting for one to free or for a backoff to end."""
        async with self.changed:
            while (server := self._free(home)) is None:
                now = time.monotonic()
                ends = [s.down_until - now for s in self.replicas.servers if s.down_until > now]
                try:
                    await asyncio.wait_for(self.changed.wait(), min(ends) if ends else None)
                except TimeoutError:
                    pass
            self.busy[server.url] += 1
            return server

    def _free(self, home: Replica | None) -> Replica | None:
        now = time.monotonic()

        def has_room(s: Replica) -> bool:
            return s.down_until <= now and self.busy[s.url] < (1 if s.failures else s.limit)

        if home is not None and home.failures == 0 and home.down_until <= now:
            return home if has_room(home) else None
        ready = [s for s in self.replicas.servers if has_room(s)]
        return min(ready, key=lambda s: self.busy[s.url] / s.limit) if ready else None


def _error(url: str, exc: Exception, status: int | None) -> NumbiasError:
    if status is None:
        return NumbiasError(f"cannot reach the server at {url}: {first_line(exc)}")
    return NumbiasError(f"the server at {url} answered {status}: {first_line(str(getattr(exc, 'message', exc)))}")

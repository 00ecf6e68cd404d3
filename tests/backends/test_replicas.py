"""The OpenAI-compatible backend over several servers, against small fake servers on
loopback (threads in this process, no model): requests spread over the replicas, a
replica lost halfway costs nothing and answers nothing twice, results equal one server's,
and the identity is the model the replicas report, never where they are."""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt
from numbias.util.errors import NumbiasError

pytest.importorskip("openai")
SCALE = ScoreScale(0, 9)


class FakeServer:
    """A chat-completions server whose top log-probabilities follow from the prompt's
    text; it counts the answers it gave, keeps its peak of requests in flight, can
    answer ``status`` to everything, and can die (in-flight requests dropped, new
    connections refused)."""

    def __init__(self, model: str = "judge", delay: float = 0.01, status: int = 200) -> None:
        self.model, self.delay, self.status = model, delay, status
        self.answered = self.requests = self.inflight = self.peak = 0
        self.dead = False
        lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": fake.model, "object": "model", "created": time.time_ns(), "owned_by": "fake"}],
                    },
                )

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    fake.requests += 1
                    fake.inflight += 1
                    fake.peak = max(fake.peak, fake.inflight)
                time.sleep(fake.delay)
                with lock:
                    fake.inflight -= 1
                    if fake.dead:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if fake.status == 200 and self.path.endswith("/chat/completions"):
                        fake.answered += 1
                if fake.status != 200 or not self.path.endswith("/chat/completions"):
                    self._send(fake.status if fake.status != 200 else 404, {"error": {"message": "no"}})
                    return
                self._send(200, _completion(body["messages"][-1]["content"]))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kill(self) -> None:
        self.dead = True
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text: str) -> dict[str, Any]:
    """A reply whose first answer token's top-3 is spread over three digits picked by the text."""
    digits = [str((zlib.crc32(text.encode()) >> (4 * k)) % 10) for k in range(3)]
    top = [
        {"token": d, "logprob": float(np.log(p)), "bytes": None} for d, p in zip(dict.fromkeys(digits), (0.6, 0.3, 0.1))
    ]
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": digits[0]},
                "logprobs": {"content": [{**top[0], "top_logprobs": top}]},
            }
        ],
    }


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    made = [FakeServer(), FakeServer()]
    yield made
    for server in made:
        if not server.dead:
            server.kill()


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(f"Rate item {k} from 0 to 9.") for k in range(n)]


def _backend(base_url: Any, **options: Any) -> Any:
    from numbias.backends.openai_compat import OpenAIBackend

    return OpenAIBackend("judge", base_url=base_url, mode="topk", **options)


def test_one_replica_lost_halfway_loses_nothing_and_answers_nothing_twice(servers: list[FakeServer]) -> None:
    a, b = servers
    prompts = _prompts(40)
    alone = list(_backend(a.url, concurrency=2).score(prompts, SCALE))
    spread = _backend([a.url, b.url], concurrency=2)
    a.answered = b.answered = 0  # the probes at start aside
    got = []
    for dist in spread.score(prompts, SCALE):
        got.append(dist)
        if len(got) == len(prompts) // 2:
            assert a.answered > 5 and b.answered > 5  # both served the first half
            b.kill()
    assert len(got) == len(prompts) and a.answered + b.answered == len(prompts)
    for one, two in zip(alone, got):
        np.testing.assert_array_equal(two.probs, one.probs)
        assert (two.other, two.meta) == (one.other, one.meta)
    assert a.peak <= 2 and b.peak <= 2


def test_replicas_are_known_by_the_model_they_report(servers: list[FakeServer]) -> None:
    a, b = servers
    one = _backend(a.url)
    assert one.identity["base_url"] == a.url and "served" not in one.identity  # one server: as it always was
    both = _backend([a.url, b.url])
    assert "base_url" not in both.identity
    assert both.identity["served"] == [{"id": "judge", "owned_by": "fake"}]
    assert _backend(f"{b.url}, {a.url}").identity == both.identity
    assert _backend([one.identity["base_url"]]).identity == one.identity  # a list of one is that server


def test_replicas_of_different_models_are_refused() -> None:
    a, b = FakeServer(), FakeServer(model="other")
    try:
        with pytest.raises(
            NumbiasError,
            match=f"the servers do not serve one model: {a.url} reports .*judge.*, {b.url} reports .*other",
        ):
            _backend([a.url, b.url])
    finally:
        a.kill()
        b.kill()


def test_a_failing_replica_is_set_aside(servers: list[FakeServer]) -> None:
    """A replica that answers 503 to everything gets one request per backoff (0.5 s
    doubling), not one per item; the rest go to the healthy one, with per-URL concurrency."""
    a, b = servers
    prompts = _prompts(40)
    alone = list(_backend(a.url).score(prompts, SCALE))
    spread = _backend([{"url": a.url, "concurrency": 3}, b.url], concurrency=1)
    a.peak, b.requests, b.status = 0, 0, 503
    through = list(spread.score(prompts, SCALE))
    assert [d.probs.tolist() for d in through] == [d.probs.tolist() for d in alone]
    assert b.requests <= 6 and a.peak <= 3


def test_a_replica_down_at_start_is_named() -> None:
    a = FakeServer()
    try:
        with pytest.raises(NumbiasError, match="cannot reach the server at http://127.0.0.1:9/v1"):
            _backend([a.url, "http://127.0.0.1:9/v1"], max_retries=0)
    finally:
        a.kill()


@pytest.mark.parametrize(
    ("base_url", "concurrency", "message"),
    [
        ([], 4, "base_url is empty: give a server's URL"),
        ("", 4, "base_url has an empty entry"),
        ("http://a:8000/v1,,http://b:8000/v1", 4, "base_url has an empty entry"),
        ("localhost:8000/v1", 4, "base_url 'localhost:8000/v1' is not an http(s) URL such as http://127.0.0.1:8000/v1"),
        ("http://a:port/v1", 4, "is not an http(s) URL"),
        (["ftp://a/v1"], 4, "is not an http(s) URL"),
        ("http://a:8000/v1", 0, "concurrency must be at least 1, got 0"),
        (
            [{"url": "http://a:8000/v1", "concurrency": 0}],
            4,
            "concurrency of http://a:8000/v1 must be at least 1, got 0",
        ),
        ([{"host": "http://a:8000/v1"}], 4, "a base_url entry has unknown key(s) host (keys: url, concurrency)"),
        (["http://a:8000/v1", "http://a:8000/v1/"], 4, "base_url lists http://a:8000/v1/ twice"),
    ],
)
def test_bad_servers_are_one_line_errors_before_any_request(base_url: Any, concurrency: int, message: str) -> None:
    with pytest.raises(NumbiasError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        _backend(base_url, concurrency=concurrency)
    assert "\n" not in str(caught.value)


def test_a_list_of_servers_passes_the_option_check() -> None:
    from numbias.backends import create_backend

    with pytest.raises(NumbiasError, match="backend 'openai': option base_url="):
        create_backend("openai", model="judge", base_url=[1])
    with pytest.raises(NumbiasError, match="base_url is empty"):
        create_backend("openai", model="judge", base_url=[])


def test_servers_and_pacing_do_not_change_a_truncated_readings_key() -> None:
    """A cut item's store key holds the options that can change a reading: adding a
    replica, raising the concurrency or the timeout keeps the stored answers."""
    from numbias.backends.base import reading_options

    one = {"base_url": "http://a/v1", "concurrency": 4, "context_length": 4096, "tokenizer": "t.gguf"}
    two = {
        **one,
        "base_url": ["http://a/v1", {"url": "http://b/v1", "concurrency": 2}],
        "concurrency": 16,
        "timeout": 5.0,
        "max_retries": 1,
        "api_key_env": "KEY",
    }
    assert reading_options(one) == reading_options(two) == {"context_length": 4096, "tokenizer": "t.gguf"}
    assert reading_options({**one, "context_length": 2048}) != reading_options(one)

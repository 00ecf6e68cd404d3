"""The OpenAI-compatible backend against a real llama.cpp server on loopback."""

from __future__ import annotations

import socket
import time
import urllib.request

import numpy as np
import pytest

from numbias.core.scale import ScoreScale
from numbias.data.tasks import TASKS
from numbias.util.errors import NumbiasError

SCALE = ScoreScale(0, 9)


@pytest.fixture(scope="module")
def server(smollm2):
    """``python -m llama_cpp.server`` with SmolLM2 on a free loopback port."""
    pytest.importorskip("uvicorn")
    from numbias.backends.openai_compat import local_llama_server
    from numbias.models.catalog import resolve

    with local_llama_server(str(resolve("smollm2-135m-instruct").path)) as url:
        yield url


def _prompts(n: int):
    data = TASKS["vader"].load(n=n)
    return [TASKS["vader"].template.fill(r, SCALE, chat=True) for r in data.records()]


@pytest.mark.model
def test_topk_mode_bounds_the_exact_distribution_on_covered_scores(server, smollm2) -> None:
    """Top-k reads the first answer token only: P("8" first) = P(8 as the score) +
    P("8" then more digits), so on every score it covers it is the exact probability
    or a little more, never less."""
    from numbias.backends.openai_compat import OpenAIBackend

    backend = OpenAIBackend("smollm2", base_url=server, mode="auto")
    assert backend.mode == "topk"
    prompts = _prompts(6)
    remote = list(backend.score(prompts, SCALE))
    local = list(smollm2.score(prompts, SCALE))
    for r, x in zip(remote, local):
        covered = r.probs > 0
        assert covered.sum() >= 3
        assert np.all(x.probs[covered] <= r.probs[covered] + 2e-3)
        assert r.total == pytest.approx(1.0)
        assert 0 < r.meta["covered"] <= 1.0 + 1e-9


@pytest.mark.model
@pytest.mark.parametrize("scale_text", ["0-9", "1-10"])
def test_exact_mode_equals_the_in_process_trie(server, smollm2, scale_text: str) -> None:
    from numbias.backends.openai_compat import OpenAIBackend

    scale = ScoreScale.parse(scale_text)
    backend = OpenAIBackend("smollm2", base_url=server, mode="auto", tokenizer="smollm2-135m-instruct")
    assert backend.mode == "exact"
    data = TASKS["vader"].load(n=5)
    prompts = [TASKS["vader"].template.fill(r, scale, chat=True) for r in data.records()]
    assert backend.count_tokens(prompts[0]) == len(smollm2.tokenize(prompts[0]))
    for r, x in zip(backend.score(prompts, scale), smollm2.score(prompts, scale)):
        assert np.abs(r.probs - x.probs).max() < 1e-3
        assert abs(r.other - x.other) < 1e-3 and abs(r.above - x.above) < 1e-3
        assert r.meta["bound"] < 1e-4


def test_exact_row_from_a_top_k() -> None:
    from numbias.backends.openai_compat import exact_row

    top = {"8": np.log(0.5), "7": np.log(0.3), "The": np.log(0.15)}
    row, bound = exact_row(top, ["8", "9", "8"])
    assert row[0] == pytest.approx(np.log(0.5)) and row[1] == -np.inf and row[2] == -np.inf
    assert bound == pytest.approx(0.15)
    assert exact_row({"8": 0.0}, ["8"])[1] == 0.0
    # byte-fallback twins share one text: the server's number may be either token's
    assert exact_row({"8": np.log(0.5), "7": np.log(0.2)}, ["8", "8"])[1] == pytest.approx(0.3)


def test_exact_mode_needs_a_tokenizer() -> None:
    from numbias.backends.openai_compat import OpenAIBackend

    with pytest.raises(NumbiasError, match="needs `tokenizer`"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", mode="exact")


@pytest.mark.model
def test_sampling_is_seeded_over_http(server) -> None:
    from numbias.backends.openai_compat import OpenAIBackend

    backend = OpenAIBackend("smollm2", base_url=server, mode="topk")
    prompts = _prompts(2)
    one = list(backend.sample(prompts, n=4, temperature=0.7, max_tokens=5, seed=1))
    assert one == list(backend.sample(prompts, n=4, temperature=0.7, max_tokens=5, seed=1))
    assert one != list(backend.sample(prompts, n=4, temperature=0.7, max_tokens=5, seed=2))
    assert [len(t) for t in one] == [4, 4]


def test_unreachable_server_is_one_clear_error() -> None:
    from numbias.backends.openai_compat import OpenAIBackend

    with pytest.raises(NumbiasError, match="cannot reach the server"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(NumbiasError, match="unknown mode"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", mode="psychic")


def test_topk_distribution_reading() -> None:
    from numbias.backends.openai_compat import topk_distribution

    d = topk_distribution(
        [("8", np.log(0.5)), (" 7", np.log(0.2)), ("12", np.log(0.1)), ("The", np.log(0.1)), ("05", np.log(0.05))],
        SCALE,
        min_coverage=0.99,
    )
    assert d.probs[8] == pytest.approx(0.5) and d.probs[7] == pytest.approx(0.2)
    assert d.above == pytest.approx(0.1) and d.other == pytest.approx(0.2)
    assert d.meta["covered"] == pytest.approx(0.95) and d.meta["low_coverage"]


def test_label_scales_over_a_server() -> None:
    """Top-k reads a first token that spells a whole label (as written or capitalised)
    for it, one that only begins a label ("very") as other; an exact node's row sums
    the class of tokens that would go on with a letter or digit over the top-k, and
    what the top-k leaves out bounds it."""
    from numbias.backends.openai_compat import exact_row, topk_distribution

    words = ScoreScale.parse("words:good,very good")
    d = topk_distribution(
        [("good", np.log(0.4)), (" Good", np.log(0.2)), ("very", np.log(0.3)), ("goodness", np.log(0.05))],
        words,
        min_coverage=0.5,
    )
    np.testing.assert_allclose(d.probs, [0.6, 0.0])
    assert d.other == pytest.approx(0.4) and (d.below, d.above) == (0.0, 0.0)
    top = {".": np.log(0.5), "ness": np.log(0.2), "ly": np.log(0.1)}
    row, bound = exact_row(top, ["."], [frozenset({"ness", "ly", "ish"})])
    np.testing.assert_allclose(np.exp(row), [0.5, 0.3])
    assert bound == pytest.approx(0.2)


class _FaultyProxy:
    """A loopback HTTP proxy in front of the server that fails every ``every``-th request
    (none with 0), in turn with a 500, a stall past the client's timeout, or a dropped
    connection; it counts the answers it relayed, and drops the connection when the
    server is gone."""

    def __init__(self, upstream: str, stall: float = 3.0, every: int = 5) -> None:
        import http.server
        import threading

        lock = threading.Lock()
        self.failures = {"500": 0, "stall": 0, "drop": 0}
        self.requests = self.answered = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                with lock:
                    proxy.requests += 1
                    k = proxy.requests
                    fail = ["500", "stall", "drop"][(k // every) % 3] if every and k % every == 0 else None
                if fail:
                    proxy.failures[fail] += 1
                if fail == "500":
                    self.send_error(500, "injected fault")
                    return
                if fail == "stall":
                    time.sleep(stall)
                    return
                if fail == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                req = urllib.request.Request(
                    upstream + self.path, data=body or None, method=method, headers={"Content-Type": "application/json"}
                )
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        status, kind, data = resp.status, resp.headers.get("Content-Type"), resp.read()
                except OSError:  # the server is gone: so is the connection
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with lock:
                    proxy.answered += method == "POST"

            def do_POST(self) -> None:
                self._relay("POST")

            def do_GET(self) -> None:
                self._relay("GET")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.model
@pytest.mark.parametrize("mode", ["topk", "exact"])
def test_a_faulty_network_changes_nothing(server, mode: str) -> None:
    """20% of requests fail (500s, stalls past the timeout, dropped connections); the
    run completes and equals a clean one."""
    from numbias.backends.openai_compat import OpenAIBackend

    upstream = server.removesuffix("/v1")
    proxy = _FaultyProxy(upstream)
    extra = {"tokenizer": "smollm2-135m-instruct"} if mode == "exact" else {}
    try:
        prompts = _prompts(12 if mode == "topk" else 3)
        clean = list(OpenAIBackend("smollm2", base_url=server, mode=mode, concurrency=1, **extra).score(prompts, SCALE))
        faulty = OpenAIBackend(
            "smollm2", base_url=proxy.url + "/v1", mode=mode, concurrency=4, timeout=1.5, max_retries=12, **extra
        )
        through = list(faulty.score(prompts, SCALE))
    finally:
        proxy.close()
    assert all(proxy.failures.values()), (proxy.failures, proxy.requests)
    for a, b in zip(clean, through):
        np.testing.assert_allclose(b.probs, a.probs, atol=1e-4)


@pytest.mark.model
@pytest.mark.parametrize("mode", ["topk", "exact"])
def test_two_servers_one_killed_halfway(server, mode: str) -> None:
    """Two llama.cpp servers, the second killed once half the items are in: every item
    comes back once, the servers answered as many requests together as one server alone
    (nothing asked twice), and the run equals one server's."""
    from numbias.backends.openai_compat import OpenAIBackend, start_llama_server
    from numbias.models.catalog import resolve

    process, second = start_llama_server(str(resolve("smollm2-135m-instruct").path))
    a, b = _FaultyProxy(server.removesuffix("/v1"), every=0), _FaultyProxy(second.removesuffix("/v1"), every=0)
    extra = {"tokenizer": "smollm2-135m-instruct"} if mode == "exact" else {}
    prompts = _prompts(12 if mode == "topk" else 6)
    try:
        one = OpenAIBackend("smollm2", base_url=a.url + "/v1", mode=mode, concurrency=2, **extra)
        a.answered = 0
        alone, asked = list(one.score(prompts, SCALE)), a.answered
        both = OpenAIBackend("smollm2", base_url=[a.url + "/v1", b.url + "/v1"], mode=mode, concurrency=2, **extra)
        assert "base_url" not in both.identity and both.identity["served"][0]["id"].endswith(".gguf")
        a.answered = b.answered = 0
        spread = []
        for dist in both.score(prompts, SCALE):
            spread.append(dist)
            if len(spread) == len(prompts) // 2:
                assert a.answered and b.answered
                process.kill()
    finally:
        process.kill()
        process.wait(timeout=30)
        a.close()
        b.close()
    assert len(spread) == len(prompts) and a.answered + b.answered == asked
    for x, y in zip(alone, spread):
        np.testing.assert_allclose(y.probs, x.probs, atol=1e-4)


@pytest.mark.model
def test_a_study_runs_on_exact_http(server, tmp_path) -> None:
    from numbias.studies.bias import run

    judge = {
        "model": "smollm2",
        "backend": "openai",
        "options": {"base_url": server, "mode": "exact", "tokenizer": "smollm2-135m-instruct"},
    }
    config = {
        "judges": [judge],
        "tasks": [{"name": "vader", "options": {"n": 4}}],
        "scales": ["1-5"],
        "rules": ["greedy", "expected"],
        "out": str(tmp_path / "o"),
    }
    results = run(config)
    assert len(results.summary) == 2 and (results.items["judge"] == "smollm2").all()
    with pytest.raises(NumbiasError, match="protocol rule reads distributions at the sampling temperature"):
        run({**config, "rules": ["protocol"]})

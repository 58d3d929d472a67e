"""Real-server tests for the LLM client and the embedded server (no mocks).

Set CURATE_LLM_CACHE to a directory to reuse the GGUF conversion across runs (it takes ~20-30 s).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from udfs.llm import LLMClient, LLMConfig, LLMResult
from udfs.llm_server import EmbeddedLLMServer

pytestmark = pytest.mark.llm


# `llm_cache` and `server` (one embedded transformers serve for every LLM test file) live in conftest.py.


def _config(base_url: str, model: str, **overrides: Any) -> LLMConfig:
    # Few output tokens: the model generates ~5-15 tokens/s on 2 cores and the file has a time budget.
    defaults: dict[str, Any] = {"max_tokens": 4, "timeout_s": 60.0, "max_retries": 1, "backoff_s": 0.05}
    defaults.update(overrides)
    return LLMConfig(base_url=base_url, model=model, **defaults)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


class _CountingProxy:
    """HTTP proxy in front of the real server that records what the server is actually sent.

    Measures concurrency where it matters (at the server's door), maps each prompt to the completion the
    server returned for it, and can answer the first requests with 429 to exercise Retry-After.
    """

    def __init__(self, upstream_base_url: str, *, reject_first: int = 0, retry_after: str = "0.5") -> None:
        self.upstream = upstream_base_url.removesuffix("/v1")
        self.reject_first = reject_first
        self.retry_after = retry_after
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.completions: dict[str, str] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self, None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                proxy._forward(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> _CountingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        with self.lock:
            self.requests += 1
            reject = self.requests <= self.reject_first
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reject:
                status, payload = 429, b'{"error": {"message": "slow down"}}'
            else:
                request = urllib.request.Request(
                    self.upstream + handler.path,
                    data=body,
                    method=handler.command,
                    headers={"content-type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                if body is not None and status == 200:
                    prompt = json.loads(body)["messages"][-1]["content"]
                    with self.lock:
                        self.completions[prompt] = json.loads(payload)["choices"][0]["message"]["content"]
        finally:
            with self.lock:
                self.in_flight -= 1
        handler.send_response(status)
        if reject:
            handler.send_header("retry-after", self.retry_after)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_chat_ok(server: EmbeddedLLMServer) -> None:
    with LLMClient(_config(server.base_url, server.model, max_tokens=8)) as client:
        assert client.health()
        result = client.chat(_user("What is the capital of France? Answer in one word."))
    assert result.status == "ok", result.error
    assert result.text and result.text.strip()
    assert result.error is None
    assert result.attempts == 1
    assert result.latency_s > 0


def test_client_error_is_not_retried(server: EmbeddedLLMServer) -> None:
    # A pinned server rejects other model ids with a 4xx: retrying could never help.
    with LLMClient(_config(server.base_url, "no-such-model", max_retries=3)) as client:
        result = client.chat(_user("hi"))
    assert result.status == "error"
    assert result.attempts == 1
    assert result.error and "400" in result.error


def test_chat_many_order_and_bounded_concurrency(server: EmbeddedLLMServer) -> None:
    prompts = [f"Say the number {i}." for i in range(6)]
    seen: list[int] = []
    with (
        _CountingProxy(server.base_url) as proxy,
        LLMClient(_config(proxy.base_url, server.model, max_concurrency=2, max_tokens=2)) as client,
    ):
        results = client.chat_many([_user(p) for p in prompts], progress=seen.append)
    assert len(results) == 6
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    # Input order: each result is the completion the server produced for that very prompt.
    assert [r.text for r in results] == [proxy.completions[p] for p in prompts]
    # Exactly 2: bounded, and the pool did run requests side by side.
    assert proxy.max_in_flight == 2
    assert seen == [1, 2, 3, 4, 5, 6]


def test_rate_limit_honours_retry_after(server: EmbeddedLLMServer) -> None:
    with (
        _CountingProxy(server.base_url, reject_first=1, retry_after="0.5") as proxy,
        LLMClient(_config(proxy.base_url, server.model, max_retries=2, backoff_s=0.01)) as client,
    ):
        result = client.chat(_user("Hello"))
    assert result.status == "ok", result.error
    assert result.attempts == 2
    # backoff_s alone would have retried after ~10 ms.
    assert result.latency_s >= 0.5


def test_tiny_timeout_gives_timeout_status(server: EmbeddedLLMServer) -> None:
    config = _config(server.base_url, server.model, timeout_s=0.001, max_retries=0, max_tokens=1)
    with LLMClient(config) as client:
        results = client.chat_many([_user(f"Count to {i}.") for i in range(3)])
    assert [r.status for r in results] == ["timeout"] * 3
    assert all(r.attempts == 1 and r.text is None and r.error for r in results)


def test_unreachable_server_errors_after_retries() -> None:
    config = _config(f"http://127.0.0.1:{_dead_port()}/v1", "any", max_retries=2, backoff_s=0.01, timeout_s=5)
    with LLMClient(config) as client:
        assert not client.health()
        results = client.chat_many([_user("hi"), _user("there")])
    assert [r.status for r in results] == ["error", "error"]
    assert all(r.attempts == 3 for r in results)
    assert all(r.error and "connection" in r.error.lower() for r in results)


def test_server_stopped_mid_run(llm_cache: Path, tmp_path: Path) -> None:
    # A server of its own: stopping the session one would break the other tests.
    n = 8
    with EmbeddedLLMServer(llm_cache, log_dir=tmp_path, stop_grace_s=5.0) as srv:
        stopper = threading.Thread(target=srv.stop)

        def progress(done: int) -> None:
            if done == 2:
                stopper.start()

        config = _config(srv.base_url, srv.model, max_concurrency=1, max_tokens=4, timeout_s=20, max_retries=1)
        started = time.monotonic()
        with LLMClient(config) as client:
            results: list[LLMResult] = client.chat_many(
                [_user(f"Name a colour, {i}.") for i in range(n)], progress=progress
            )
        stopper.join()
        assert not srv.running
    assert len(results) == n
    statuses = [r.status for r in results]
    n_ok = statuses.count("ok")
    assert 2 <= n_ok < n, statuses
    # One request at a time in input order: completed ones are a prefix, everything after the stop failed.
    assert statuses == ["ok"] * n_ok + statuses[n_ok:]
    assert all(s in ("error", "timeout") for s in statuses[n_ok:])
    assert all(r.text for r in results[:n_ok])
    assert all(r.error and r.text is None for r in results[n_ok:])
    assert time.monotonic() - started < 60

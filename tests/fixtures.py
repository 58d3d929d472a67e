"""Small crawl files in every input format, written the way real crawlers write them (warcio for WARC/WET).

The text is real prose (public-domain style news and encyclopaedia paragraphs written for these tests),
long enough to pass the quality rules, so the same fixtures serve the ingest and end-to-end tests.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ARTICLES = [
    (
        "https://news.example/flood-barrier",
        "The river authority confirmed on Tuesday that the new flood barrier will be finished before the autumn "
        "storms, after engineers completed the last of the concrete sections ahead of plan. Residents who had "
        "campaigned for the barrier for more than a decade said the work had already changed how the town feels "
        "about living so close to the water. The project cost less than first estimated because the steel was "
        "ordered early, and the council says the savings will pay for a footpath along the new embankment. "
        "The barrier can be raised in less than an hour when the river rises. Engineers will test it twice a year.",
    ),
    (
        "https://encyclopedia.example/wiki/Lighthouse",
        "A lighthouse is a tower designed to emit light from a system of lamps and lenses and to serve as a "
        "navigational aid for maritime pilots at sea or on inland waterways. Lighthouses mark dangerous "
        "coastlines, hazardous shoals and reefs, and safe entries to harbours, and they can also assist in "
        "aerial navigation. Once widely used, the number of operational lighthouses has declined because of the "
        "expense of maintenance and the arrival of electronic navigational systems over the last century. "
        "Many old towers are now museums. Some still guide small boats along rocky coasts at night.",
    ),
    (
        "https://recipes.example/bread",
        "To make a simple loaf of bread you need flour, water, salt and yeast, and a little patience. Mix the "
        "ingredients into a rough dough and leave it to rest for half an hour, then knead it until it is smooth "
        "and elastic. Let it rise in a warm place until it has doubled in size, which usually takes about an "
        "hour, and then shape it and bake it in a hot oven until the crust is deep brown and sounds hollow. "
        "Leave the loaf to cool before you slice it. It keeps well for two days in a cloth bag.",
    ),
]


def jsonl_lines(articles: list[tuple[str, str]] = ARTICLES) -> list[bytes]:
    return [
        json.dumps({"id": f"doc-{i}", "url": url, "source": "fixture", "text": text}).encode() + b"\n"
        for i, (url, text) in enumerate(articles)
    ]


BAD_LINES: dict[str, bytes] = {
    "malformed_json": b'{"url": "https://x.example/a", "text": "cut off in the mid\n',
    "not_an_object": b'["a", "list", "is", "not", "a", "document"]\n',
    "missing_text": b'{"url": "https://x.example/b", "content": "the body is under another key"}\n',
    "empty_text": b'{"url": "https://x.example/c", "text": "   \\n  "}\n',
    "wrong_type:text": b'{"url": "https://x.example/d", "text": 404}\n',
    "wrong_type:url": b'{"url": 17, "text": "a document whose url is a number"}\n',
    "invalid_utf8": b'{"url": "https://x.example/e", "text": "caf\xe9 \xff\xfe"}\n',
    "too_large": json.dumps({"url": "https://x.example/f", "text": "word " * 5000}).encode() + b"\n",
}


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    payload = b"".join(lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(payload, mtime=0))
    else:
        path.write_bytes(payload)
    return path


def write_parquet(path: Path, articles: list[tuple[str, str]] = ARTICLES, extra_bad: bool = True) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    urls = [u for u, _ in articles] + (["https://x.example/null", "https://x.example/empty"] if extra_bad else [])
    texts: list[str | None] = [t for _, t in articles] + ([None, ""] if extra_bad else [])
    pq.write_table(pa.table({"url": urls, "text": texts}), path)
    return path


def _warc_writer(fh: io.BufferedIOBase) -> object:
    from warcio.warcwriter import WARCWriter

    return WARCWriter(fh, gzip=True)


def write_wet(path: Path, articles: list[tuple[str, str]] = ARTICLES) -> Path:
    with open(path, "wb") as fh:
        writer = _warc_writer(fh)
        info = writer.create_warcinfo_record("test.wet", {"software": "fixture"})  # type: ignore[attr-defined]
        writer.write_record(info)  # type: ignore[attr-defined]
        for url, text in articles:
            rec = writer.create_warc_record(  # type: ignore[attr-defined]
                url, "conversion", payload=io.BytesIO(text.encode()), warc_content_type="text/plain"
            )
            writer.write_record(rec)  # type: ignore[attr-defined]
    return path


def html_page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        "<nav><a href='/'>Home</a> | <a href='/news'>News</a> | <a href='/login'>Sign in</a></nav>"
        f"<main><article><h1>{title}</h1><p>{body}</p></article></main>"
        "<footer>Copyright 2026 Example Media. All rights reserved. Privacy policy. Cookie settings.</footer>"
        "</body></html>"
    )


def write_warc(path: Path, articles: list[tuple[str, str]] = ARTICLES) -> Path:
    """Responses with HTML (documents), one image (unsupported), one empty page, plus a request record."""
    from warcio.statusandheaders import StatusAndHeaders

    with open(path, "wb") as fh:
        writer = _warc_writer(fh)
        for url, text in articles:
            req = writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"))  # type: ignore[attr-defined]
            writer.write_record(req)  # type: ignore[attr-defined]
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            body = html_page(url.rsplit("/", 1)[-1], text).encode()
            rec = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)  # type: ignore[attr-defined]
            writer.write_record(rec)  # type: ignore[attr-defined]
        img = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
        rec = writer.create_warc_record(  # type: ignore[attr-defined]
            "https://img.example/logo.png",
            "response",
            payload=io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(64)),
            http_headers=img,
        )
        writer.write_record(rec)  # type: ignore[attr-defined]
        empty = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        rec = writer.create_warc_record(  # type: ignore[attr-defined]
            "https://empty.example/",
            "response",
            payload=io.BytesIO(b"<html><body></body></html>"),
            http_headers=empty,
        )
        writer.write_record(rec)  # type: ignore[attr-defined]
    return path


def retuned_constitution(path: Path, principle: str, base: Path | None = None, **changes: object) -> Path:
    """The packaged constitution (or `base`) with one principle's fields changed (thresholds, mode ...), written to
    `path`."""
    import yaml

    from pipelines.core.constitution import default_constitution_path

    data = yaml.safe_load((base or default_constitution_path()).read_text())
    (target,) = [p for p in data["principles"] if p["name"] == principle]
    target.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


def curate_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`curate ARGS` through the CLI's entry point in this process: (exit code, stdout, stderr), read with pytest's
    `capsys`. What `python -m pipelines.cli` exits with is what `main` returns; a process of its own (`curate_process`)
    costs its imports and model loading again (~10 s on 2 cores), which only tests about processes (kills, signals,
    locks, a remote engine) need."""
    from pipelines.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def curate_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None, new_session: bool = False
) -> subprocess.Popen[str]:
    """`curate ARGS` in a process of its own (offline, quiet engine logs), stdout and stderr captured as text.
    `env` adds variables; `new_session` makes it lead a process group of its own (what a kill of the group ends)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send_chat_completion(handler: BaseHTTPRequestHandler, model: str, content: str) -> None:
    """Answer an OpenAI chat-completions request with one assistant message (the test servers' shared reply)."""
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
    out = json.dumps(
        {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": [choice]}
    ).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(out)))
    handler.end_headers()
    handler.wfile.write(out)


class SlowChatServer:
    """An OpenAI-compatible endpoint on loopback that answers `content` after a fixed delay, a thread per
    connection, counting the requests and the most in flight. Not a model: the packaged `transformers serve`
    generates one request at a time, so deadlines and the concurrency a client reaches are seen against this."""

    def __init__(self, delay_s: float, content: str = "ok") -> None:
        outer = self
        self.lock, self.in_flight, self.peak, self.requests = threading.Lock(), 0, 0, 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.in_flight += 1
                    outer.requests += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                time.sleep(delay_s)
                with outer.lock:
                    outer.in_flight -= 1
                send_chat_completion(self, body["model"], content)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> SlowChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


SAIL = Path(sys.executable).parent / "sail"


#: What the local-cluster server runs with (deploy/kubernetes/README.md, "Checked with", names them): two workers
#: started up front and never more, so the chain's stages really are split over two workers exchanging shuffles.
CLUSTER_ENV = {"SAIL_CLUSTER__WORKER_INITIAL_COUNT": "2", "SAIL_CLUSTER__WORKER_MAX_COUNT": "2"}


@contextmanager
def sail_server(mode: str, cwd: Path) -> Iterator[str]:
    """A separately started `sail spark server` in `mode`; yields its sc:// URL, stops it on exit."""
    port = free_port()
    env = {**os.environ, "RUST_LOG": "error", "SAIL_MODE": mode, "HF_HUB_OFFLINE": "1"}
    if mode == "local-cluster":
        env.update(CLUSTER_ENV)
    server = subprocess.Popen(
        [str(SAIL), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"the sail server ({mode}) exited: {server.communicate()[1][-2000:]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sail server ({mode}) did not accept connections within 60 s") from None
                time.sleep(0.2)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def copy_lake(built: dict[str, object], to: Path) -> dict[str, object]:
    """`built` (a lake fixture's dict) with its lake copied to `to`/lake; `built_at` names the original."""
    shutil.copytree(built["lake"], to / "lake")  # type: ignore[arg-type]
    return {**built, "lake": to / "lake", "built_at": built["lake"]}

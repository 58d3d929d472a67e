"""Throughput of the revision stage and its own overhead per document, excluding model time.

The real stage (`pipelines.stages.revision.revise`: prompts, N concurrent requests through the OpenAI-compatible client,
cleaning, validation, re-scoring, meaning preservation) runs on crawl documents against

- `serve`: the packaged SmolLM2 behind a real `transformers serve`, max_tokens 1, so the model's time is mostly
  prompt prefill; and
- `stub`: an OpenAI-compatible server in a separate process that answers instantly with a fixed rewrite, so the
  whole LLM leg is client and HTTP overhead.

Timings split the wall time into LLM (time inside the concurrent request phase), score (classifier re-scoring),
embed (MiniLM for the cosine) and the rest, the stage's own overhead: overhead = total - llm - score - embed.
For `stub`, the LLM leg itself is overhead too (no model behind it): its ms/doc is printed as `client`.
Fallback is `drop` here so every document takes the same path (excision is measured in revision_quality.py).

    .venv/bin/python bench/revision_throughput.py [--docs 48] [--concurrency 1,4,8]

Skips (exit 0) when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from revision_common import load_avg, require_crawl, sample_crawl

STUB = r"""
import json, socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        # headers and body leave in two writes: without this, Nagle + delayed ACK add ~40 ms to every answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        text = user.removeprefix("<document>\n").removesuffix("\n</document>")
        out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text[: len(text) * 3 // 4]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("stub server did not start")


def run(
    rows: list[dict[str, object]],
    base_url: str,
    model: str,
    n: int,
    max_tokens: int,
    rescore: Callable[[list[tuple[str, str]]], dict[str, list[float]]],
    embed: Callable[[list[str]], Any],
    constitution: Any,
) -> dict[str, Any]:
    from pipelines.core.config import ReviseConfig
    from pipelines.stages.revision import Timings, revise
    from udfs.llm import LLMClient, LLMConfig

    cfg = ReviseConfig(
        max_docs=len(rows),
        fallback="drop",
        time_budget_s=3600.0,
        llm=LLMConfig(max_concurrency=n, timeout_s=600.0, max_retries=0, max_tokens=max_tokens),
    )
    client = LLMClient(
        LLMConfig(
            base_url=base_url, model=model, max_concurrency=n, timeout_s=600.0, max_retries=0, max_tokens=max_tokens
        )
    )
    t = Timings()
    try:
        outcomes = revise(rows, constitution, cfg, rescore, embed, client, model, None, t)
    finally:
        client.close()
    bad = [o for o in outcomes if o.status in ("error", "timeout")]
    k = len(rows)
    return {
        "n": n,
        "docs": k,
        "wall_s": t.total_s,
        "docs_per_s": k / t.total_s,
        "llm_ms": 1000 * t.llm_s / k,
        "score_ms": 1000 * t.score_s / k,
        "embed_ms": 1000 * t.embed_s / k,
        "overhead_ms": 1000 * t.overhead_s / k,
        "errors": len(bad),
        "load": load_avg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--max-chars", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("/tmp/curate-bench/revision"))
    args = ap.parse_args()
    require_crawl()

    from pipelines.core.config import ClassifyConfig, default_cache_dir
    from pipelines.core.constitution import load_constitution
    from pipelines.stages.revision import document_embedder, local_rescorer
    from udfs.llm_server import EmbeddedLLMServer

    constitution = load_constitution(None)
    docs = sample_crawl(args.docs, 200, args.max_chars, args.seed)
    rows = [
        {"doc_id": d["doc_id"], "text": d["text"], "revise_principles": ["toxicity"], "score_before": 0.8} for d in docs
    ]
    rescore = local_rescorer(constitution, ClassifyConfig())
    embed = document_embedder(ClassifyConfig())
    rescore([("warm", "warm up the scorer")])
    embed(["warm up the encoder"])
    levels = [int(x) for x in args.concurrency.split(",")]
    results = []

    port = _free_port()
    stub = subprocess.Popen([sys.executable, "-c", STUB, str(port)])
    try:
        _wait(port)
        url = f"http://127.0.0.1:{port}/v1"
        run(rows[:8], url, "stub", 1, 16, rescore, embed, constitution)  # warm the client path
        for n in levels:
            r = {"server": "stub", **run(rows, url, "stub", n, 16, rescore, embed, constitution)}
            r["client_ms"] = r["llm_ms"]
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        stub.terminate()
        stub.wait()

    if not args.skip_serve:
        args.out.mkdir(parents=True, exist_ok=True)
        with EmbeddedLLMServer(default_cache_dir() / "llm", args.out / "logs") as server:
            for n in levels:
                r = {
                    "server": "transformers serve",
                    **run(rows, server.base_url, server.model, n, 1, rescore, embed, constitution),
                }
                results.append(r)
                print(json.dumps(r), flush=True)

    print("\nserver              N  docs/s  llm ms/doc  score ms/doc  embed ms/doc  overhead ms/doc  load")
    for r in results:
        print(
            f"{r['server']:<19} {r['n']:>2} {r['docs_per_s']:>7.2f} {r['llm_ms']:>11.1f} {r['score_ms']:>13.1f}"
            f" {r['embed_ms']:>13.1f} {r['overhead_ms']:>16.2f}  {r['load']}"
        )


if __name__ == "__main__":
    main()

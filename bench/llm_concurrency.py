"""LLM requests sent from the engine's executors at concurrency 1, 4 and 16 (issue 13's throughput measure).

The LLM stages (revision, teacher labelling, the cascade's judge) send their requests through
`pipelines.core.llm_exec.send_from_executors`: the driver plans partitions, each partition's `mapInPandas` sends with
its own client at bounded concurrency. No server here serves requests concurrently with a real model (the
packaged `transformers serve` generates one request at a time), so this uses a **test server that adds a fixed
latency per request** (`--latency-ms`, default 250) and answers with a fixed short text, served by a thread per
connection: what is measured is the client's own overhead and the concurrency it reaches, not a model.

Per concurrency N: requests/s, the ideal N / latency, efficiency (measured / ideal), the most requests the server
saw in flight at once, and the same through the driver-side client (`udfs.llm.LLMClient.complete_many`) for
reference. Runs on the embedded Sail engine with the default config.

    .venv/bin/python bench/llm_concurrency.py [--requests 96] [--latency-ms 250] [--concurrency 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = r"""
import json, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

latency, stats = float(sys.argv[2]) / 1000, sys.argv[3]
lock, now, peak, total = threading.Lock(), [0], [0], [0]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            now[0] += 1; total[0] += 1; peak[0] = max(peak[0], now[0])
        time.sleep(latency)  # the fixed latency a model would add: this server has no model
        with lock:
            now[0] -= 1
            open(stats, "w").write(json.dumps({"peak": peak[0], "total": total[0]}))
        answer = {"role": "assistant", "content": "ok"}
        out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": answer}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_DELETE(self):  # resets the in-flight peak between runs
        with lock:
            peak[0] = 0; total[0] = 0
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def main() -> None:
    import socket
    import urllib.request

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--latency-ms", type=float, default=250.0)
    ap.add_argument("--concurrency", default="1,4,16")
    args = ap.parse_args()

    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session
    from pipelines.core.llm_exec import send_from_executors
    from udfs.llm import LLMClient, LLMConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stats = Path(tempfile.mkdtemp()) / "stats.json"
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.latency_ms), str(stats)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=1)
            break
        except OSError:
            time.sleep(0.1)

    def reset() -> None:
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5)

    # instructions first, then the document: the order llm_exec groups by
    messages = [
        [{"role": "system", "content": "Rewrite the document."}, {"role": "user", "content": f"document {i} " * 40}]
        for i in range(args.requests)
    ]
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{args.requests} requests, test server with a fixed {args.latency_ms:.0f} ms per request (no model)")
    print(f"uptime: {load}\n")
    print("| path | N | seconds | requests/s | ideal N/latency | efficiency | server peak in flight |")
    print("|---|---|---|---|---|---|---|")
    try:
        with spark_session(EngineConfig()) as spark:
            for n in [int(x) for x in args.concurrency.split(",")]:
                llm = LLMConfig(backend="openai", base_url=f"{url}/v1", model="test", max_concurrency=n, max_tokens=4)
                ideal = n / (args.latency_ms / 1000)
                send_from_executors(spark, llm, messages[: max(n, 4)], budget_s=60)  # warm the partition path
                for path in ("executors", "driver"):
                    reset()
                    t0 = time.perf_counter()
                    if path == "executors":
                        out = send_from_executors(spark, llm, messages, budget_s=600)
                    else:
                        with LLMClient(llm) as client:
                            out = client.chat_many(messages)
                    secs = time.perf_counter() - t0
                    ok = sum(1 for r in out if r is not None and r.status == "ok")
                    assert ok == len(messages), f"{path} N={n}: {ok} of {len(messages)} answered"
                    peak = json.loads(stats.read_text())["peak"]
                    rate = len(messages) / secs
                    print(f"| {path} | {n} | {secs:.2f} | {rate:.1f} | {ideal:.1f} | {rate / ideal:.2f} | {peak} |")
    finally:
        server.terminate()
        server.wait()
    print(f"\nuptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()

"""LLM requests sent from the executors: the body of a `mapInPandas` over a frame of requests.

The driver only plans: it builds one row per request (`request_id`, `prefix` - the instructions every request of
a kind shares - and the chat `messages` as JSON), orders them so that requests sharing a prefix travel together
(serving engines such as vLLM and SGLang reuse the KV cache of a shared prompt prefix), splits them into
partitions, and collects the result rows. Each partition opens its own `LLMClient` (retries, timeouts, bounded
concurrency) from a JSON spec that holds the endpoint and the *name* of the API key's environment variable, never
the key, and stops sending at the run's wall-clock deadline: a request not sent in time comes back `not_sent`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

REQUEST_SCHEMA = "request_id long, prefix string, messages string, part int"
RESULT_SCHEMA = "request_id long, status string, text string, error string, attempts int, latency_s double"
NOT_SENT = "not_sent"


def plan(messages: list[list[dict[str, str]]], partitions: int) -> list[tuple[int, str, str, int]]:
    """Request rows in sending order: grouped by their shared prefix (the system message), then by id, cut into
    `partitions` contiguous runs (`part`), so one partition's requests share as much prefix as possible."""
    rows = sorted(
        (
            (i, m[0]["content"] if m and m[0].get("role") == "system" else "", json.dumps(m))
            for i, m in enumerate(messages)
        ),
        key=lambda r: (r[1], r[0]),
    )
    n = max(1, min(partitions, len(rows)))
    size = -(-len(rows) // n) if rows else 1
    return [(i, prefix, m, k // size) for k, (i, prefix, m) in enumerate(rows)]


def spec(llm: dict[str, Any], deadline_epoch_s: float, concurrency: int, *, top_logprobs: int = 0) -> str:
    """What every partition needs, as JSON: the endpoint (`udfs.llm.LLMConfig` fields), the deadline, the
    concurrency of one partition, and for labellers the number of top log-probabilities to ask for. Refuses
    anything that looks like a key rather than the name of a variable."""
    if any(k in llm for k in ("api_key", "key", "token")):
        raise ValueError("the partition spec holds the name of the API key's environment variable, never a key")
    body = {"llm": llm, "deadline": deadline_epoch_s, "concurrency": max(1, concurrency), "top_logprobs": top_logprobs}
    return json.dumps(body, sort_keys=True)


def sender(spec_json: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The `mapInPandas` function: captures only the spec string (UDF closures must pickle)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from send_batches(spec_json, batches)

    return run


def send_batches(spec_json: str, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    from udfs.llm import LLMClient, LLMConfig

    s = json.loads(spec_json)
    deadline = float(s["deadline"])
    top = int(s.get("top_logprobs") or 0)
    wrap = None
    if top > 0:
        from udfs.labelers import logprob_completions

        wrap = logprob_completions(top)
    with LLMClient(LLMConfig(**s["llm"]), completions=wrap) as client:

        def one(messages_json: str) -> tuple[str, str | None, str | None, int, float]:
            if time.time() >= deadline:  # wall clock: the deadline was set on the driver for every partition
                return NOT_SENT, None, None, 0, 0.0
            r = client.chat(json.loads(messages_json))
            return str(r.status), r.text, r.error, int(r.attempts), float(r.latency_s)

        frames = list(batches)  # request rows only (capped per run): small enough to hold
        if not frames:
            return
        pdf = pd.concat(frames, ignore_index=True)
        # Partitioning by `part` may put two parts in one partition (Sail's hash and range partitioning both do
        # for 4 parts in 4 partitions; measured in bench/llm_concurrency.py): the concurrency follows the parts
        # this partition holds, so the endpoint still sees about max_concurrency in all.
        workers = int(s["concurrency"]) * max(1, int(pdf["part"].nunique()))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-partition") as pool:
            results = list(pool.map(one, pdf["messages"].tolist()))
            yield pd.DataFrame(
                {
                    "request_id": pdf["request_id"].astype("int64").to_numpy(),
                    "status": [r[0] for r in results],
                    "text": [r[1] for r in results],
                    "error": [r[2] for r in results],
                    "attempts": pd.array([r[3] for r in results], dtype="int32"),
                    "latency_s": [r[4] for r in results],
                }
            )

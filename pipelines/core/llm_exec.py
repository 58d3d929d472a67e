"""LLM requests sent from the engine's executors, planned on the driver: one function for every LLM stage
(revision, teacher labelling, the cascade's judge). The partition side is `udfs/llm_map.py`.

The driver orders the requests so that those sharing instructions (a prompt prefix that vLLM and SGLang cache)
travel together, cuts them into partitions of at most `PER_PARTITION_CONCURRENCY` concurrent requests (so the
endpoint sees about `max_concurrency` in all), and collects result rows as partitions finish. Every partition
stops sending at one wall-clock deadline set here.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from udfs.llm import LLMConfig, LLMResult

#: concurrent requests one partition sends; more than this and the requests are split over more partitions
PER_PARTITION_CONCURRENCY = 4

Messages = list[dict[str, str]]


Send = Callable[[list[Messages], Callable[[int], None] | None], "list[LLMResult | None]"]


def sender(spark: SparkSession, llm: LLMConfig, *, budget_s: float, top_logprobs: int = 0) -> Send:
    """`send_from_executors` bound to an engine and an endpoint: the `send(messages, progress)` that revision and
    the LLM labellers take. The deadline is set when a batch is sent, `budget_s` from then."""

    def send(messages: list[Messages], progress: Callable[[int], None] | None) -> list[LLMResult | None]:
        return send_from_executors(
            spark, llm, messages, budget_s=budget_s, progress=progress, top_logprobs=top_logprobs
        )

    return send


def send_from_executors(
    spark: SparkSession,
    llm: LLMConfig,
    messages: list[Messages],
    *,
    budget_s: float,
    progress: Callable[[int], None] | None = None,
    top_logprobs: int = 0,
) -> list[LLMResult | None]:
    """One result per request, in the caller's order; None = not sent before the deadline (`budget_s` from now)."""
    from udfs import llm_map
    from udfs.llm import LLMResult

    if not messages:
        return []
    total = max(1, llm.max_concurrency)
    parts = max(1, min(len(messages), total // PER_PARTITION_CONCURRENCY))
    spec = llm_map.spec(dataclasses.asdict(llm), time.time() + budget_s, -(-total // parts), top_logprobs=top_logprobs)
    frame = (
        spark.createDataFrame(llm_map.plan(messages, parts), llm_map.REQUEST_SCHEMA)
        .repartition(parts, "part")
        .sortWithinPartitions("prefix", "request_id")
    )
    results: list[LLMResult | None] = [None] * len(messages)
    answered = 0
    for r in frame.mapInPandas(llm_map.sender(spec), llm_map.RESULT_SCHEMA).toLocalIterator():
        if r["status"] == llm_map.NOT_SENT:
            continue
        results[int(r["request_id"])] = LLMResult(
            status=r["status"], text=r["text"], error=r["error"], attempts=r["attempts"], latency_s=r["latency_s"]
        )
        answered += 1
        if progress is not None:
            progress(answered)
    return results

"""LLM requests sent from the engine's executors (`mapInPandas`): the plan, the spec, and real requests through
the embedded `transformers serve` (conftest's `server`), seen at the server's door by a recording proxy."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from pipelines.core.config import ReviseConfig
from pipelines.stages.revise import on_executors
from tests.fixtures import SlowChatServer
from tests.test_llm import _CountingProxy
from udfs import llm_map
from udfs.llm import LLMClient, LLMConfig


def _messages(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


MESSAGES = [
    _messages("Rewrite without insults.", "one"),
    _messages("Remove the violence.", "two"),
    _messages("Rewrite without insults.", "three"),
    _messages("Remove the violence.", "four"),
    _messages("Rewrite without insults.", "five"),
]


def test_plan_groups_requests_that_share_instructions() -> None:
    rows = llm_map.plan(MESSAGES, partitions=2)
    # "Remove ..." < "Rewrite ...": grouped by prefix, ids ascending within a group, cut into 2 contiguous runs
    assert [(r[0], r[1][:6], r[3]) for r in rows] == [
        (1, "Remove", 0),
        (3, "Remove", 0),
        (0, "Rewrit", 0),
        (2, "Rewrit", 1),
        (4, "Rewrit", 1),
    ]
    assert json.loads(rows[0][2]) == MESSAGES[1]
    assert {r[3] for r in llm_map.plan(MESSAGES, partitions=50)} == set(range(5))  # never more parts than rows
    assert llm_map.plan([], partitions=3) == []


def test_the_spec_names_the_key_variable_never_a_key() -> None:
    llm = dataclasses.asdict(LLMConfig(base_url="http://x/v1", model="m", api_key_env="OPENAI_API_KEY"))
    text = llm_map.spec(llm, 123.0, 4)
    assert json.loads(text)["llm"]["api_key_env"] == "OPENAI_API_KEY"
    with pytest.raises(ValueError, match="never a key"):
        llm_map.spec({**llm, "api_key": "sk-secret"}, 123.0, 4)


@pytest.mark.llm
def test_requests_sent_from_executors_match_the_driver(spark: Any, server: Any) -> None:
    users = ["Say hi.", "Name a colour.", "Say hi again.", "Name a fruit."]
    messages = [_messages("Answer in one word." if i % 2 else "Answer briefly.", u) for i, u in enumerate(users)]
    with _CountingProxy(server.base_url) as proxy:
        llm = LLMConfig(base_url=proxy.base_url, model=server.model, max_tokens=4, max_concurrency=1, max_retries=0)
        seen: list[int] = []
        got = on_executors(spark, llm, ReviseConfig(time_budget_s=600))(messages, seen.append)
        # one partition at concurrency 1: the server saw the requests grouped by their instructions
        assert list(proxy.completions) == ["Say hi.", "Say hi again.", "Name a colour.", "Name a fruit."]
        assert proxy.max_in_flight == 1 and proxy.requests == 4
    assert seen == [1, 2, 3, 4]
    assert all(r is not None and r.ok and r.text for r in got)
    # the same requests from this process (greedy decoding): the same answers, in the caller's order
    with LLMClient(dataclasses.replace(llm, base_url=server.base_url)) as client:
        direct = [client.chat(m) for m in messages]
    assert [r.text for r in got if r is not None] == [r.text for r in direct]


@pytest.mark.llm
def test_a_partition_stops_sending_at_the_deadline(spark: Any, server: Any) -> None:
    llm = LLMConfig(base_url=server.base_url, model=server.model, max_tokens=4)
    with _CountingProxy(server.base_url) as proxy:
        llm = dataclasses.replace(llm, base_url=proxy.base_url)
        got = on_executors(spark, llm, ReviseConfig(time_budget_s=1e-6))(MESSAGES, None)
        assert proxy.requests == 0
    assert got == [None] * len(MESSAGES)  # not sent: the revision stage gives these the over-budget fallback


@pytest.mark.llm
def test_teacher_labels_from_executors_match_the_driver(lake: Any, server: Any) -> None:
    """`open_labeler` on a lake with an engine sends label requests from the executors (log-probability wrapper
    built there too); the labels are the ones the driver-side client gets."""
    from pipelines.core.config import LabelConfig
    from pipelines.core.constitution import load_constitution
    from pipelines.judgement.label import open_labeler
    from udfs.labelers import PrincipleSpec

    cfg = LabelConfig(llm=LLMConfig(backend="openai", base_url=server.base_url, model=server.model, max_tokens=4))
    spec = PrincipleSpec.of(load_constitution().get("toxicity"))
    texts = ["You are a worthless idiot.", "The library opens at nine on weekdays."]
    labeler = open_labeler("openai", cfg, lake)
    try:
        assert labeler.send is not None  # an engine is at hand: executors send
        seen: list[int] = []
        remote = labeler.label(spec, texts, progress=seen.append)
        labeler.send = None
        local = labeler.label(spec, texts)
    finally:
        labeler.close()
    assert seen == [1, 2]
    assert [(r.status, r.score, r.rationale) for r in remote] == [(r.status, r.score, r.rationale) for r in local]
    assert all(r.status in ("ok", "unparsable") for r in remote)


def test_the_endpoint_sees_max_concurrency_from_the_executors(spark: Any) -> None:
    # 16 concurrent = 4 partitions of 4; Sail's partitioning by `part` put two of the four parts into one partition
    # (the server then saw at most 12 in flight): each partition now sends at 4 per part it holds
    messages = [_messages("Answer briefly.", f"question {i}") for i in range(64)]
    with SlowChatServer(delay_s=0.5) as slow:
        llm = LLMConfig(base_url=slow.base_url, model="test", max_tokens=2, max_concurrency=16, max_retries=0)
        got = on_executors(spark, llm, ReviseConfig(time_budget_s=600))(messages, None)
        assert (slow.requests, slow.peak) == (64, 16)
    assert [r.text if r is not None else None for r in got] == ["ok"] * 64

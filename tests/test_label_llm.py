"""LLM labelers against the real embedded `transformers serve` and the in-process SmolLM2 (no mocks).

Kept short: CI runs this on 2 cores. Set CURATE_LLM_CACHE to reuse the GGUF conversion across runs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipelines.core.constitution import load_constitution
from pipelines.judgement.label import label_documents
from udfs.labelers import OpenAILabeler, PrincipleSpec, TransformersLabeler, digit_logprobs_from_response
from udfs.llm import LLMConfig, LLMResult
from udfs.llm_server import EmbeddedLLMServer

pytestmark = pytest.mark.llm

TOXIC = "You are a worthless idiot and everyone hates you."
BENIGN = "The library opens at nine on weekdays."


# `llm_cache` and `server` (one embedded transformers serve for every LLM test file) live in conftest.py.


def _labeler(server: EmbeddedLLMServer, **overrides: Any) -> OpenAILabeler:
    cfg: dict[str, Any] = {"max_tokens": 3, "timeout_s": 60.0, "max_retries": 1, "backoff_s": 0.05}
    cfg.update(overrides)
    return OpenAILabeler(LLMConfig(base_url=server.base_url, model=server.model, **cfg), name="llm:smollm2-test")


def test_logprobs_give_the_expected_digit_and_answers_are_parsed() -> None:
    top = [SimpleNamespace(token="8", logprob=math.log(0.5)), SimpleNamespace(token=" 2", logprob=math.log(0.5))]
    choice = SimpleNamespace(
        logprobs=SimpleNamespace(content=[SimpleNamespace(token="8", logprob=0.0, top_logprobs=top)])
    )
    digits = digit_logprobs_from_response(choice)
    assert digits == {8: pytest.approx(math.log(0.5)), 2: pytest.approx(math.log(0.5))}
    packed = LLMResult(status="ok", text=json.dumps({"content": "8", "digits": digits}))
    assert OpenAILabeler._to_label(packed).score == pytest.approx(5 / 9)
    parsed = OpenAILabeler._to_label(LLMResult(status="ok", text=json.dumps({"content": "Score: 6", "digits": {}})))
    assert parsed.status == "ok" and parsed.score == pytest.approx(6 / 9)
    junk = OpenAILabeler._to_label(LLMResult(status="ok", text=json.dumps({"content": "I cannot", "digits": {}})))
    assert junk.status == "unparsable" and junk.score is None and junk.rationale == "I cannot"
    failed = OpenAILabeler._to_label(LLMResult(status="timeout", error="timeout after 1s"))
    assert failed.status == "timeout" and failed.score is None


def test_openai_labeler_against_transformers_serve(server: EmbeddedLLMServer) -> None:
    spec = PrincipleSpec.of(load_constitution().get("toxicity"))
    labeler = _labeler(server, max_concurrency=2)
    try:
        results = labeler.label(spec, [TOXIC, TOXIC])
    finally:
        labeler.close()
    assert len(results) == 2
    for r in results:
        # transformers serve ignores logprobs: every label is a parsed digit, or recorded as unparsable
        assert r.status in ("ok", "unparsable"), r
        if r.status == "ok":
            assert r.score is not None and 0.0 <= r.score <= 1.0 and round(r.score * 9, 6).is_integer()
        else:
            assert r.score is None and r.rationale is not None
    # temperature 0: the same text gets the same label
    assert (results[0].status, results[0].score) == (results[1].status, results[1].score)


def test_a_timeout_is_recorded_not_scored(server: EmbeddedLLMServer) -> None:
    spec = PrincipleSpec.of(load_constitution().get("toxicity"))
    labeler = _labeler(server, timeout_s=0.001, max_retries=0)
    try:
        results = labeler.label(spec, [BENIGN])
    finally:
        labeler.close()
    assert [(r.status, r.score) for r in results] == [("timeout", None)]


def test_local_transformers_labeler_is_deterministic(llm_cache: Path) -> None:
    spec = PrincipleSpec.of(load_constitution().get("toxicity"))
    labeler = TransformersLabeler(llm_cache)
    first = labeler.label(spec, [TOXIC])
    again = labeler.label(spec, [TOXIC])
    assert [r.status for r in first] == ["ok"]
    assert all(r.score is not None and 0.0 <= r.score <= 1.0 for r in first)
    assert again[0].score == pytest.approx(first[0].score)
    assert labeler.name.startswith("local:SmolLM2")


def test_server_stopped_mid_run_loses_nothing_and_a_rerun_finishes(server: EmbeddedLLMServer, lake: Any) -> None:
    """Runs last in this module: it stops the shared server, then starts it again."""
    toxicity = load_constitution().get("toxicity")
    docs = [{"doc_id": f"d{i}", "text": f"{BENIGN} Note {i}.", "source": "t"} for i in range(2)]
    labeler = _labeler(server, max_retries=0, timeout_s=30.0)
    try:
        summary = label_documents(lake, toxicity, labeler, docs, chunk_size=1, on_chunk=lambda n: server.stop())
    finally:
        labeler.close()
    rows = {r["doc_id"]: r for r in lake.read("labels").collect()}
    assert set(rows) == {"d0", "d1"}  # every document has a row
    assert rows["d1"]["status"] == "error" and rows["d1"]["score"] is None and rows["d1"]["error"]  # server gone
    assert summary.sent == 2
    first_done = {"d0"} if rows["d0"]["status"] == "ok" else set()

    server.start()
    labeler = _labeler(server)
    try:
        rerun = label_documents(lake, toxicity, labeler, docs, chunk_size=1)
    finally:
        labeler.close()
    assert rerun.already_labeled == len(first_done) and rerun.sent == 2 - len(first_done)
    final = {r["doc_id"]: r["status"] for r in lake.read("labels").collect()}
    assert set(final) == {"d0", "d1"} and "error" not in final.values()

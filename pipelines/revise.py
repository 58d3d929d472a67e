"""Revision: rewrite the flagged subset with an LLM through the OpenAI-compatible client, then validate.

Only documents in a principle's revise band (and not dropped for another reason) are candidates; at most
`revise.max_docs` of them per run, highest score first, so LLM cost is bounded and reruns choose the same
documents. Each rewrite is checked (length ratio, leaked instructions) and re-scored by the same scorer
that flagged it; it is accepted only when every flagged principle falls below its revise threshold.
Per-document statuses: ok / rejected / error / timeout; documents not attempted are `over_cap` or
`too_long`. A failed LLM call never fails the run.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from pipelines.config import ReviseConfig
from pipelines.constitution import Constitution
from pipelines.progress import Progress
from udfs.revision import (
    RevisionTask,
    build_messages,
    check_rewrite,
    clean_output,
    length_ratio,
    prompt_version,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from udfs.llm import LLMClient, LLMResult


@dataclass
class Outcome:
    doc_id: str
    status: str
    principles: list[str]
    original_text: str
    revised_text: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    reject_reasons: list[str] = field(default_factory=list)
    score_before: float | None = None
    score_after: float | None = None
    length_ratio: float | None = None
    error: str | None = None


def candidates(df: DataFrame, constitution: Constitution) -> DataFrame:
    """Documents that need a rewrite: in a revise band, not dropped for quality, duplication or a principle."""
    names = F.array(*[F.lit(n) for n in constitution.names])
    max_flagged = F.array_max(
        F.transform(
            F.col("revise_principles"),
            lambda n: F.element_at(F.col("principle_scores"), F.array_position(names, n).cast("int")),
        )
    )
    return (
        df.where(
            (F.size("quality_reasons") == 0)
            & ~F.coalesce(F.col("is_duplicate"), F.lit(False))
            & (F.size("drop_principles") == 0)
            & (F.size("revise_principles") > 0)
        )
        .withColumn("score_before", max_flagged)
        .select("doc_id", "text", "revise_principles", "principle_scores", "score_before")
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("CURATE_CACHE", Path.home() / ".cache" / "curate"))


@contextmanager
def llm_client(cfg: ReviseConfig, log_dir: Path, progress: Progress | None = None) -> Iterator[tuple[LLMClient, str]]:
    """The configured client: the embedded packaged model behind `transformers serve`, or any endpoint."""
    from udfs.llm import LLMClient, LLMConfig

    s = cfg.llm
    common = dict(
        max_concurrency=s.max_concurrency,
        timeout_s=s.timeout_s,
        max_retries=s.max_retries,
        max_tokens=s.max_tokens,
        temperature=s.temperature,
    )
    if s.backend == "openai":
        llm_cfg = LLMConfig(base_url=s.base_url or "", model=s.model or "default", api_key_env=s.api_key_env, **common)
        with LLMClient(llm_cfg) as client:
            yield client, llm_cfg.model
        return
    from udfs.llm_server import EmbeddedLLMServer

    # The embedded server generates one request at a time and keeps generating a request whose client timed out:
    # a retry would only queue behind it, so timeouts there are final.
    common["max_retries"] = 0
    server = EmbeddedLLMServer(default_cache_dir() / "llm", log_dir)
    with (progress or Progress(enabled=False)).stage("revise: starting the embedded LLM server"):
        server.start()
    try:
        llm_cfg = LLMConfig(base_url=server.base_url, model=server.model, **common)
        with LLMClient(llm_cfg) as client:
            yield client, "SmolLM2-135M-Instruct (embedded)"
    finally:
        server.stop()


def _offset_progress(progress: Callable[[int], None], offset: int, done: int) -> None:
    progress(offset + done)


def _within_budget(
    client: LLMClient,
    messages: list[list[dict[str, str]]],
    cfg: ReviseConfig,
    progress: Callable[[int], None] | None,
) -> list[LLMResult | None]:
    """Send requests a concurrency-wide wave at a time until the time budget is spent; None = not sent."""
    t0 = time.monotonic()
    wave = max(1, cfg.llm.max_concurrency)
    results: list[LLMResult | None] = []
    for start in range(0, len(messages), wave):
        if time.monotonic() - t0 >= cfg.time_budget_s:
            results += [None] * (len(messages) - start)
            break
        report = None if progress is None else functools.partial(_offset_progress, progress, len(results))
        results += client.chat_many(messages[start : start + wave], progress=report)
    return results


def revise(
    rows: list[dict[str, object]],
    constitution: Constitution,
    cfg: ReviseConfig,
    rescore: Callable[[list[tuple[str, str]]], dict[str, list[float]]],
    client: LLMClient,
    model: str,
    progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Rewrite `rows` (from `candidates`, already capped) and validate each rewrite."""
    index = {n: i for i, n in enumerate(constitution.names)}
    outcomes: list[Outcome] = []
    requests: list[tuple[Outcome, str, list[dict[str, str]]]] = []
    for row in rows:
        text = str(row["text"])
        principles = list(row["revise_principles"])  # type: ignore[call-overload]
        tasks = [
            RevisionTask(p, constitution.get(p).revise_prompt.text, constitution.get(p).revise_prompt.version)
            for p in principles
        ]
        out = Outcome(
            doc_id=str(row["doc_id"]),
            status="pending",
            principles=principles,
            original_text=text,
            model=model,
            prompt_version=prompt_version(tasks),
            score_before=float(row["score_before"]),  # type: ignore[arg-type]
        )
        outcomes.append(out)
        messages = build_messages(text, tasks)
        requests.append((out, messages[0]["content"], messages))
    results = _within_budget(client, [m for _, _, m in requests], cfg, progress)
    to_rescore: list[Outcome] = []
    for (out, system, _), res in zip(requests, results, strict=True):
        if res is None:
            out.status = "over_budget"
            continue
        if not res.ok:
            out.status, out.error = res.status, res.error
            continue
        rewrite = clean_output(res.text)
        out.revised_text = rewrite
        out.length_ratio = length_ratio(out.original_text, rewrite)
        out.reject_reasons = check_rewrite(
            out.original_text, rewrite, system, min_ratio=cfg.min_length_ratio, max_ratio=cfg.max_length_ratio
        )
        out.status = "rejected" if out.reject_reasons else "pending"
        if rewrite.strip():
            to_rescore.append(out)
    new_scores = rescore([(o.doc_id, o.revised_text or "") for o in to_rescore]) if to_rescore else {}
    for out in to_rescore:
        scores = new_scores[out.doc_id]
        out.score_after = max(scores[index[p]] for p in out.principles)
        still = [p for p in out.principles if scores[index[p]] >= constitution.get(p).revise_threshold]
        out.reject_reasons += [f"still_flagged:{p}" for p in still]
        out.status = "rejected" if out.reject_reasons else "ok"
    return outcomes

"""Revision: rewrite the flagged subset with an LLM, or excise its flagged sentences, and validate the result.

Only documents in a principle's revise band (and not dropped for another reason) are candidates; at most
`revise.max_docs` of them per run go to the LLM and `revise.max_excise_docs` to excision (method excise, or
fallback excise for the ones the LLM did not take), highest score first, so cost is bounded and reruns choose
the same documents. A document flagged for several principles gets one request carrying all their instructions.

LLM rewrites (`revise.method: llm`) are validated before acceptance: length ratio, no leaked instructions or
refusal, meaning preservation (MiniLM embedding cosine to the original within bounds), and a re-score by the
scorer that flagged the document, which must put every flagged principle below its revise threshold. A
rewrite that fails, or a call that failed, falls back per `revise.fallback`: `excise` removes the flagged
sentences (udfs/excise.py) and validates that (re-score below threshold, enough text left), else the document
is dropped. `revise.method: excise` uses excision alone, no LLM.

Per-document statuses: ok / rejected / error / timeout / over_budget; documents not attempted are `over_cap` or
`too_long`. An accepted excision is status `ok` with method `excise`, so the decision step needs no special case.
A failed LLM call never fails the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pyspark.sql import functions as F

from pipelines.cascade import local_scores
from pipelines.config import ClassifyConfig, ReviseConfig, default_cache_dir
from pipelines.constitution import Constitution
from pipelines.engine import keepalive
from pipelines.lake import nullable
from pipelines.llm_exec import Send, sender
from pipelines.progress import Progress
from pipelines.stage import BaseStage, StageContext
from schemas import TABLES
from schemas.vocab import FALLBACK_STATUSES, UNTRIED, Action, Method, RevisionStatus
from udfs.excise import excise, removal_plan, split_sentences
from udfs.revision import (
    RevisionTask,
    build_messages,
    check_rewrite,
    clean_output,
    cosine_pairs,
    document_embeddings,
    length_ratio,
    prompt_version,
    similarity_reasons,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pipelines.registry import Champion
    from udfs.llm import LLMClient, LLMConfig, LLMResult

# (key, text) pairs -> key -> scores in constitution order; the same scorer that flagged the documents.
Rescore = Callable[[list[tuple[str, str]]], dict[str, list[float]]]
# texts -> L2-normalised document embeddings (udfs.revision.document_embeddings over the MiniLM encoder).
Embed = Callable[[list[str]], np.ndarray]


@dataclass
class Outcome:
    doc_id: str
    status: str
    principles: list[str]
    original_text: str
    revised_text: str | None = None
    method: str = Method.LLM  # the method that produced revised_text: llm | excise
    model: str | None = None  # the LLM called, None for a pure excision
    prompt_version: str | None = None
    reject_reasons: list[str] = field(default_factory=list)
    score_before: float | None = None
    score_after: float | None = None
    length_ratio: float | None = None
    similarity: float | None = None
    # When an excision replaced a failed LLM attempt: that attempt's status and (rejected) rewrite, for audit.
    fallback_from: str | None = None
    llm_rewrite: str | None = None
    error: str | None = None


@dataclass
class Timings:
    """Where the stage's wall time went: the stage's own overhead is total - llm - score - embed."""

    docs: int = 0
    total_s: float = 0.0
    llm_s: float = 0.0  # waiting on the LLM server (HTTP round trips, generation)
    score_s: float = 0.0  # re-scoring rewrites and sentences with the classifier
    embed_s: float = 0.0  # MiniLM embeddings for meaning preservation

    @property
    def overhead_s(self) -> float:
        return max(0.0, self.total_s - self.llm_s - self.score_s - self.embed_s)


def document_embedder(cfg: ClassifyConfig) -> Embed:
    """Document embeddings with the scorer's own MiniLM encoder (one instance per process), loaded on first use."""

    def embed(texts: list[str]) -> np.ndarray:
        from udfs.encoder import shared_encoder

        return document_embeddings(shared_encoder(cfg.device, cfg.max_tokens, cfg.batch_size, cfg.threads).embed, texts)

    return embed


def local_rescorer(
    constitution: Constitution, cfg: ClassifyConfig, champions: Mapping[str, Champion] | None = None
) -> Rescore:
    """The revision stage's re-scorer (champions, else exemplars; with the cascade on, the maximum with the
    packaged teacher) called in this process, without Spark: for tests, benchmarks and small batches. The
    pipeline re-scores through Spark with the same scorer spec."""
    from pipelines.classify import load_scorer, scorer_spec

    spec = scorer_spec(constitution, cfg, champions)

    def rescore(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
        values = load_scorer(spec).score([t for _, t in pairs])
        found = {k: row.tolist() for (k, _), row in zip(pairs, values, strict=True)}
        return local_scores(constitution, found, dict(pairs)) if cfg.cascade.enabled else found

    return rescore


def decide_fallback(cfg: ReviseConfig) -> str:
    """The action the decision step takes for an unrevised flagged document: excision was already tried here."""
    return Action.DROP if cfg.fallback == Method.EXCISE else cfg.fallback


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


@contextmanager
def llm_client(cfg: ReviseConfig, log_dir: Path, progress: Progress | None = None) -> Iterator[tuple[LLMClient, str]]:
    """The configured client: the embedded packaged model behind `transformers serve`, or any endpoint."""
    from udfs.llm import LLMClient

    s = cfg.llm
    if s.backend == "openai":
        llm_cfg = s.endpoint(s.base_url or "", s.model or "default")
        with LLMClient(llm_cfg) as client:
            yield client, llm_cfg.model
        return
    from udfs.llm_server import EmbeddedLLMServer

    # The embedded server generates one request at a time and keeps generating a request whose client timed out:
    # a retry would only queue behind it, so timeouts there are final.
    server = EmbeddedLLMServer(default_cache_dir() / "llm", log_dir)
    with (progress or Progress(enabled=False)).stage("revise: starting the embedded LLM server"):
        server.start()
    try:
        llm_cfg = s.endpoint(server.base_url, server.model, api_key_env=None, max_retries=0)
        with LLMClient(llm_cfg) as client:
            yield client, "SmolLM2-135M-Instruct (embedded)"
    finally:
        server.stop()


def within_budget(
    client: LLMClient,
    messages: list[list[dict[str, str]]],
    cfg: ReviseConfig,
    progress: Callable[[int], None] | None,
) -> list[LLMResult | None]:
    """Send every request through `max_concurrency` workers; None = not sent because the time budget was spent.

    A worker takes the next request as soon as it is free (no waves waiting on their slowest member), and
    checks the budget before sending. `progress` gets the count of answered requests, from this thread.
    """
    n = len(messages)
    if n == 0:
        return []
    deadline = time.monotonic() + cfg.time_budget_s

    def one(m: list[dict[str, str]]) -> LLMResult | None:
        if time.monotonic() >= deadline:
            return None
        return client.chat(m)

    results: list[LLMResult | None] = [None] * n
    pool = ThreadPoolExecutor(max_workers=min(max(1, cfg.llm.max_concurrency), n), thread_name_prefix="revise")
    try:
        futures: dict[Future[LLMResult | None], int] = {pool.submit(one, m): i for i, m in enumerate(messages)}
        answered = 0
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if results[futures[future]] is not None:
                answered += 1
                if progress is not None:
                    progress(answered)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def on_executors(spark: SparkSession, llm: LLMConfig, cfg: ReviseConfig) -> Send:
    """Send the rewrite requests from the engine's executors (pipelines/llm_exec.py); every partition stops at the
    run's deadline, `time_budget_s` from the first request. None = not sent in time."""
    return sender(spark, llm, budget_s=cfg.time_budget_s)


def _flagged_max(scores: list[float], principles: list[str], index: dict[str, int]) -> float:
    return max(scores[index[p]] for p in principles)


def _still_flagged(scores: list[float], principles: list[str], constitution: Constitution) -> list[str]:
    index = {n: i for i, n in enumerate(constitution.names)}
    return [p for p in principles if scores[index[p]] >= constitution.get(p).revise_threshold]


class _Clock:
    def __init__(self, timings: Timings | None) -> None:
        self.t = timings or Timings()

    def score(self, rescore: Rescore, pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
        if not pairs:
            return {}
        t0 = time.perf_counter()
        try:
            return rescore(pairs)
        finally:
            self.t.score_s += time.perf_counter() - t0

    def embed(self, embed: Embed, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return embed(texts)
        finally:
            self.t.embed_s += time.perf_counter() - t0


def sentence_check(
    rescore: Rescore, constitution: Constitution, items: list[tuple[str, list[str]]], clock: _Clock | None = None
) -> list[list[str]]:
    """Per (text, flagged principles): one reason per sentence still at or above a flagged principle's revise
    threshold, naming the principle, the sentence's index and its start. A revision is judged by its worst
    sentence, not its average: a rewrite that still narrates the act in one sentence is not a revision."""
    index = {n: i for i, n in enumerate(constitution.names)}
    pieces = [(k, j, text[s:e]) for k, (text, _) in enumerate(items) for j, (s, e) in enumerate(split_sentences(text))]
    scores = (clock or _Clock(None)).score(rescore, [(f"{k}:{j}", t) for k, j, t in pieces])
    out: list[list[str]] = [[] for _ in items]
    for k, j, t in pieces:
        for p in items[k][1]:
            if scores[f"{k}:{j}"][index[p]] >= constitution.get(p).revise_threshold:
                snippet = " ".join(t.split())[:60]
                out[k].append(f"sentence_flagged:{p}:{j}:{snippet}")
    return out


def _similarities(clock: _Clock, embed: Embed, pairs: list[tuple[str, str]]) -> list[float]:
    if not pairs:
        return []
    emb = clock.embed(embed, [a for a, _ in pairs] + [b for _, b in pairs])
    return [float(x) for x in cosine_pairs(emb[: len(pairs)], emb[len(pairs) :])]


def revise(
    rows: list[dict[str, object]],
    constitution: Constitution,
    cfg: ReviseConfig,
    rescore: Rescore,
    embed: Embed,
    client: LLMClient | None = None,
    model: str | None = None,
    progress: Callable[[int], None] | None = None,
    timings: Timings | None = None,
    send: Send | None = None,
) -> list[Outcome]:
    """Revise `rows` (from `candidates`, already capped) with `cfg.method`, validating every result.

    `send` delivers the LLM requests (`on_executors`: from the engine's executors); without it this process sends
    them through `client` (`within_budget`)."""
    t0 = time.perf_counter()
    clock = _Clock(timings)
    outcomes = [
        Outcome(
            doc_id=str(row["doc_id"]),
            status=RevisionStatus.PENDING,
            principles=list(row["revise_principles"]),  # type: ignore[call-overload]
            original_text=str(row["text"]),
            method=cfg.method,
            score_before=float(row["score_before"]),  # type: ignore[arg-type]
        )
        for row in rows
    ]
    if cfg.method == Method.LLM:
        if client is None:
            raise ValueError("revise.method 'llm' needs an LLM client")
        _llm(outcomes, constitution, cfg, rescore, embed, client, model, progress, clock, send)
        to_excise = [o for o in outcomes if o.status in FALLBACK_STATUSES] if cfg.fallback == Method.EXCISE else []
    else:
        to_excise = outcomes
    _excise(to_excise, constitution, cfg, rescore, embed, clock)
    clock.t.docs += len(outcomes)
    clock.t.total_s += time.perf_counter() - t0
    return outcomes


def _llm(
    outcomes: list[Outcome],
    constitution: Constitution,
    cfg: ReviseConfig,
    rescore: Rescore,
    embed: Embed,
    client: LLMClient,
    model: str | None,
    progress: Callable[[int], None] | None,
    clock: _Clock,
    send: Send | None = None,
) -> None:
    index = {n: i for i, n in enumerate(constitution.names)}
    systems: list[str] = []
    messages: list[list[dict[str, str]]] = []
    for out in outcomes:
        tasks = [
            RevisionTask(p, constitution.get(p).revise_prompt.text, constitution.get(p).revise_prompt.version)
            for p in out.principles
        ]
        out.model, out.prompt_version = model, prompt_version(tasks)
        m = build_messages(out.original_text, tasks)
        systems.append(m[0]["content"])
        messages.append(m)
    t0 = time.perf_counter()
    results = send(messages, progress) if send is not None else within_budget(client, messages, cfg, progress)
    clock.t.llm_s += time.perf_counter() - t0
    answered: list[Outcome] = []
    for out, system, res in zip(outcomes, systems, results, strict=True):
        if res is None:
            out.status = RevisionStatus.OVER_BUDGET
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
        if rewrite.strip():
            answered.append(out)
        else:
            out.status = RevisionStatus.REJECTED
    # Rejected rewrites are re-scored and compared too: the audit (and the benchmark) reads their scores.
    sims = _similarities(clock, embed, [(o.original_text, o.revised_text or "") for o in answered])
    new_scores = clock.score(rescore, [(o.doc_id, o.revised_text or "") for o in answered])
    sentence_reasons = sentence_check(
        rescore, constitution, [(o.revised_text or "", o.principles) for o in answered], clock
    )
    for out, sim, bad in zip(answered, sims, sentence_reasons, strict=True):
        out.reject_reasons += bad
        out.similarity = sim
        out.reject_reasons += similarity_reasons(
            sim, min_similarity=cfg.min_similarity, max_similarity=cfg.max_similarity
        )
        scores = new_scores[out.doc_id]
        out.score_after = _flagged_max(scores, out.principles, index)
        out.reject_reasons += [f"still_flagged:{p}" for p in _still_flagged(scores, out.principles, constitution)]
        out.status = RevisionStatus.REJECTED if out.reject_reasons else RevisionStatus.OK


def _excise(
    outcomes: list[Outcome],
    constitution: Constitution,
    cfg: ReviseConfig,
    rescore: Rescore,
    embed: Embed,
    clock: _Clock,
) -> None:
    """Excise the flagged sentences of each outcome's original, in rounds, accepting what re-scores clean."""
    if not outcomes:
        return
    index = {n: i for i, n in enumerate(constitution.names)}
    sentences = [split_sentences(o.original_text) for o in outcomes]
    sent_scores = clock.score(
        rescore,
        [(f"{i}:{j}", o.original_text[s:e]) for i, o in enumerate(outcomes) for j, (s, e) in enumerate(sentences[i])],
    )
    # Per outcome: (sentence x flagged principle) scores and the principles' span thresholds.
    matrices = []
    for i, o in enumerate(outcomes):
        cols = [index[p] for p in o.principles]
        rows = [sent_scores[f"{i}:{j}"] for j in range(len(sentences[i]))]
        m = np.array([[r[c] for c in cols] for r in rows], dtype=float).reshape(len(rows), len(cols))
        matrices.append((m, np.array([constitution.get(p).spans_from for p in o.principles], dtype=float)))
    result: dict[int, tuple[str, list[str], float | None]] = {}  # i -> (text, reasons, score_after)
    last_plan: dict[int, list[int]] = {}
    done: set[int] = set()  # accepted, or left too short (a later round would only remove more)
    for extra in range(cfg.excise_rounds):
        batch: list[tuple[int, str]] = []
        for i in range(len(outcomes)):
            plan = removal_plan(*matrices[i], extra) if i not in done else []
            if not plan or plan == last_plan.get(i):
                continue  # nothing (new) to remove this round
            last_plan[i] = plan
            text = excise(outcomes[i].original_text, [sentences[i][j] for j in plan])
            if length_ratio(outcomes[i].original_text, text) < cfg.excise_min_ratio:
                result[i] = (text, ["excise_too_short"], None)
                done.add(i)
            else:
                batch.append((i, text))
        scores = clock.score(rescore, [(f"x{i}", text) for i, text in batch])
        for i, text in batch:
            s = scores[f"x{i}"]
            still = _still_flagged(s, outcomes[i].principles, constitution)
            result[i] = (text, [f"still_flagged:{p}" for p in still], _flagged_max(s, outcomes[i].principles, index))
            if not still:
                done.add(i)
    clean = [i for i in range(len(outcomes)) if i in result and not result[i][1]]
    worst = sentence_check(rescore, constitution, [(result[i][0], outcomes[i].principles) for i in clean], clock)
    for i, bad in zip(clean, worst, strict=True):
        if bad:
            result[i] = (result[i][0], bad, result[i][2])
    accepted = [i for i in clean if not result[i][1]]
    sims = _similarities(clock, embed, [(outcomes[i].original_text, result[i][0]) for i in accepted])
    sim_of = dict(zip(accepted, sims, strict=True))
    for i, o in enumerate(outcomes):
        text, reasons, after = result.get(i, (None, ["excise_nothing_flagged"], None))
        if i in sim_of:
            if o.method == Method.LLM:
                o.fallback_from, o.llm_rewrite = o.status, o.revised_text
                o.reject_reasons = [f"llm:{r}" for r in o.reject_reasons] or [f"llm:{o.status}"]
            o.method, o.status, o.revised_text = Method.EXCISE, RevisionStatus.OK, text
            o.score_after, o.similarity = after, sim_of[i]
            o.length_ratio = length_ratio(o.original_text, text or "")
        elif o.method == Method.LLM:
            o.reject_reasons = o.reject_reasons + [f"excise:{r}" for r in reasons]
        else:
            o.status, o.revised_text, o.reject_reasons, o.score_after = RevisionStatus.REJECTED, text, reasons, after
            o.length_ratio = None if text is None else length_ratio(o.original_text, text)


# ---- the stage: candidates, caps, the LLM pass, the excision pass ----------------------------------------------


def plan(ordered: list[dict[str, Any]], cfg: ReviseConfig, *, llm_allowed: bool) -> tuple[list, list, list[Outcome]]:
    """Split the candidates (highest score first) into (to the LLM, to excision, not attempted).

    The LLM takes up to `max_docs` documents that fit `max_doc_chars`; what it does not take is excised, up to
    `max_excise_docs`, when the config revises by excision (method `excise`, or fallback `excise`); the rest is
    `over_cap` (or `too_long`: it would not have fitted the LLM's answer)."""
    llm = cfg.method == Method.LLM and llm_allowed
    to_llm = [x for x in ordered if x["fits"]][: cfg.max_docs] if cfg.enabled and llm else []
    taken = {x["doc_id"] for x in to_llm}
    rest = [x for x in ordered if x["doc_id"] not in taken]
    excises = cfg.method == Method.EXCISE or cfg.fallback == Method.EXCISE
    to_excise = rest[: cfg.max_excise_docs] if cfg.enabled and excises else []
    attempted = taken | {x["doc_id"] for x in to_excise}
    untried = [
        Outcome(
            doc_id=x["doc_id"],
            status=RevisionStatus.OVER_CAP if x["fits"] else RevisionStatus.TOO_LONG,
            principles=[],
            original_text=x["text"],
        )
        for x in rest
        if x["doc_id"] not in attempted
    ]
    return to_llm, to_excise, untried


def _outcome_rows(outcomes: list[Outcome], run_id: str) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [
        (
            o.doc_id,
            run_id,
            o.original_text,
            o.revised_text,
            o.principles,
            str(o.method),
            o.model,
            o.prompt_version,
            str(o.status),
            o.reject_reasons,
            o.score_before,
            o.score_after,
            o.length_ratio,
            o.similarity,
            None if o.fallback_from is None else str(o.fallback_from),
            o.llm_rewrite,
            o.error,
            now,
        )
        for o in outcomes
    ]


@dataclass(frozen=True)
class Revise(BaseStage):
    """Revise the documents in a revise band: adds `revision_status`, `revised_text` (the decision step's inputs)
    and `revision` (the full outcome, null for documents not tried here), and returns the `revisions` rows.

    With `llm=False` (iteration) nothing is sent to an LLM: documents newly in a revise band are excised when the
    config revises by excision, else they take the decision step's fallback. When the input already carries
    `revision_status` / `revised_text` (the latest outcomes, in iteration), only documents no reviser has tried
    are revised and the earlier outcomes stand for the others.
    """

    name: ClassVar[str] = "revise_v2"
    reads: ClassVar[tuple[str, ...]] = (
        "doc_id",
        "text",
        "principle_scores",
        "quality_reasons",
        "is_duplicate",
        "drop_principles",
        "revise_principles",
    )
    adds: ClassVar[tuple[str, ...]] = ("revision_status", "revised_text", "revision")
    llm: bool = True

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        lake, r = ctx.the_lake, ctx.cfg.revise
        prior = "revision_status" in df.columns
        cands = candidates(df, ctx.constitution)
        if prior:
            cands = cands.join(df.select("doc_id", "revision_status"), "doc_id").where(
                F.col("revision_status").isNull() | F.col("revision_status").isin(*[str(s) for s in UNTRIED])
            )
        excises = r.method == Method.EXCISE or r.fallback == Method.EXCISE
        outcomes: list[Outcome] = []
        if self.llm or (r.enabled and excises):
            outcomes = self._revise(cands, ctx)
        if prior:  # an untried document keeps its earlier status (null or untried): nothing new happened to it
            outcomes = [o for o in outcomes if o.status not in UNTRIED]
        schema = nullable(TABLES["revisions"])
        done = ctx.stage(lake.spark.createDataFrame(_outcome_rows(outcomes, ctx.run_id), schema), "revise_outcomes")
        fields = [c for c in schema.fieldNames() if c != "doc_id"]
        joined = df.join(
            done.select("doc_id", F.struct(*fields).alias("revision")),
            "doc_id",
            "left",
        )
        status, text = F.col("revision.status"), F.col("revision.revised_text")
        if prior:
            status = F.coalesce(status, F.col("revision_status"))
            text = F.when(F.col("revision").isNotNull(), text).otherwise(F.col("revised_text"))
        return joined.withColumn("revision_status", status).withColumn("revised_text", text)

    def _revise(self, cands: DataFrame, ctx: StageContext) -> list[Outcome]:
        from pipelines.classify import transform as score

        lake, r, progress = ctx.the_lake, ctx.cfg.revise, ctx.progress or Progress(enabled=False)
        spark = lake.spark
        # max_doc_chars bounds what the LLM must write back; excision has no such limit.
        fits = F.length("text") <= r.max_doc_chars if r.method == Method.LLM and self.llm else F.lit(True)
        # Every candidate reaches the driver anyway (the attempted ones to be revised, the others as over_cap /
        # too_long outcomes): one ordered collect, split here.
        order = (F.col("score_before").desc(), F.col("doc_id"))
        ordered = [x.asDict() for x in cands.withColumn("fits", fits).orderBy(*order).collect()]
        if not ordered:
            return []
        to_llm, to_excise, outcomes = plan(ordered, r, llm_allowed=self.llm)
        constitution = ctx.constitution

        def rescore(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
            frame = spark.createDataFrame(pairs, "doc_id string, text string")
            rows = score(frame, constitution, ctx.cfg.classify, ctx.champions).select("doc_id", "principle_scores")
            found = {x["doc_id"]: list(x["principle_scores"]) for x in rows.collect()}
            if not ctx.cfg.classify.cascade.enabled:
                return found
            # the strongest scorer the cascade has: the teacher where the principle has one
            return local_scores(constitution, found, dict(pairs))

        embed = document_embedder(ctx.cfg.classify)  # loads the encoder on first use only
        if to_llm:
            with keepalive(spark), llm_client(r, lake.state_dir / "logs", progress) as (client, model):
                bar = progress.bar(f"revise: rewriting {len(to_llm)} documents", len(to_llm))
                try:
                    send = on_executors(spark, client.config, r)
                    outcomes += revise(to_llm, constitution, r, rescore, embed, client, model, progress=bar, send=send)
                finally:
                    progress.end_bar()
        if to_excise:
            with progress.stage(f"revise: excising flagged sentences of {len(to_excise)} documents"):
                excised = revise(to_excise, constitution, replace(r, method=Method.EXCISE), rescore, embed)
            for o, x in zip(excised, to_excise, strict=True):
                if r.method == Method.LLM and self.llm:  # the LLM never saw it: say why it was excised instead
                    o.fallback_from = RevisionStatus.OVER_CAP if x["fits"] else RevisionStatus.TOO_LONG
            outcomes += excised
        return outcomes

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        tried = out.where(F.col("revision").isNotNull() & ~F.col("revision.status").isin(*[str(s) for s in UNTRIED]))
        # no outcome, no commit: a lake whose runs never revised has no `revisions` table
        return {"revisions": tried.select("doc_id", "revision.*")} if tried.limit(1).count() else {}

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        here = out.where(F.col("revision").isNotNull())
        counts = {"revision_candidates": 0} if self.llm else {}
        rows = here.groupBy(F.col("revision.status").alias("s"), F.col("revision.method").alias("m")).count().collect()
        for x in rows:
            n = int(x["count"])
            counts["revision_candidates"] = counts.get("revision_candidates", 0) + n
            counts[f"revision:{x['s']}"] = counts.get(f"revision:{x['s']}", 0) + n
            if x["s"] == RevisionStatus.OK:
                counts[f"revision_method:{x['m']}"] = counts.get(f"revision_method:{x['m']}", 0) + n
        return counts

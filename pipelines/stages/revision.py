"""The revision of one batch of candidates, without the stage around it: LLM rewrites and excisions, each validated
(length, leaked instructions, meaning kept, every remaining sentence re-scored below the threshold) before it is
accepted. pipelines/stages/revise.py picks the candidates, runs this within the run's budget and records the
outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from pipelines.core.config import ClassifyConfig, ReviseConfig
from pipelines.core.constitution import Constitution
from pipelines.core.llm_exec import Send
from pipelines.judgement.teachers import local_scores
from schemas.vocab import FALLBACK_STATUSES, Method, RevisionStatus
from udfs.excise import excise, removal_plan
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
from udfs.sentences import split_sentences

if TYPE_CHECKING:
    from pipelines.core.registry import Champion
    from udfs.llm import LLMClient, LLMResult


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
    # The range of original_text an LLM rewrites (the deciding windows with a sentence of context); None = all.
    passage: tuple[int, int] | None = None

    def split(self) -> tuple[str, str, str]:
        """(before, passage, after) of the original text."""
        lo, hi = self.passage or (0, len(self.original_text))
        t = self.original_text
        return t[:lo], t[lo:hi], t[hi:]


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
    from pipelines.judgement.scorers import load_scorer, scorer_spec

    spec = scorer_spec(constitution, replace(cfg, windows="all"), champions)  # every window, as the stage does

    def rescore(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
        values = load_scorer(spec).score([t for _, t in pairs])
        found = {k: row.tolist() for (k, _), row in zip(pairs, values, strict=True)}
        return local_scores(constitution, found, dict(pairs), cfg.window_length) if cfg.cascade.enabled else found

    return rescore


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


def _harm_removed(
    outcomes: list[Outcome],
    sentences: list[list[tuple[int, int]]],
    plans: Mapping[int, list[int]],
    candidates: list[int],
    result: dict[int, tuple[str, list[str], float | None]],
    rescore: Rescore,
    constitution: Constitution,
    clock: _Clock,
) -> list[int]:
    """The candidates whose removed sentences, read together, still score at or above each flagged principle's span
    threshold; the others get `excise_context_only:<principle>`. Removing context is not removing harm: when no
    sentence is flagged alone, the later rounds remove the most offending ones, and the rest can then pass because
    what made it harmful was the sentence taken away ("Our enemies live among us." before "Get the lists, go door
    to door, and make sure none of them are alive by morning." - the second alone scored 0.59 for violence)."""
    index = {n: i for i, n in enumerate(constitution.names)}
    removed = {
        i: " ".join(outcomes[i].original_text[s:e] for s, e in (sentences[i][j] for j in plans[i])) for i in candidates
    }
    scores = clock.score(rescore, [(f"r{i}", text) for i, text in removed.items()])
    kept = []
    for i in candidates:
        weak = [p for p in outcomes[i].principles if scores[f"r{i}"][index[p]] < constitution.get(p).spans_from]
        if weak:
            result[i] = (result[i][0], [f"excise_context_only:{p}" for p in weak], result[i][2])
        else:
            kept.append(i)
    return kept


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
    if cfg.method == "auto":  # unresolved (a direct caller): the client it passes is the LLM it can afford
        cfg = replace(cfg, method=Method.LLM if client is not None else Method.EXCISE)
    clock = _Clock(timings)
    outcomes = [
        Outcome(
            doc_id=str(row["doc_id"]),
            status=RevisionStatus.PENDING,
            principles=list(row["revise_principles"]),  # type: ignore[call-overload]
            original_text=str(row["text"]),
            method=cfg.method,
            score_before=float(row["score_before"]),  # type: ignore[arg-type]
            passage=_passage(row),
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


def _passage(row: Mapping[str, object]) -> tuple[int, int] | None:
    """The deciding windows of a candidate widened by a sentence each side; None when it is the whole text."""
    from udfs.windows import with_context

    text, lo, hi = str(row["text"]), row.get("passage_start"), row.get("passage_end")
    if not isinstance(lo, int) or not isinstance(hi, int) or hi <= lo:
        return None
    lo, hi = with_context(text, lo, hi)
    return None if text[:lo].strip() == "" and text[hi:].strip() == "" else (lo, hi)


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
        m = build_messages(out.split()[1], tasks)  # the passage, not the page
        systems.append(m[0]["content"])
        messages.append(m)
    t0 = time.perf_counter()
    results = send(messages, progress) if send is not None else within_budget(client, messages, cfg, progress)
    clock.t.llm_s += time.perf_counter() - t0
    answered: list[Outcome] = []
    rewrites: dict[str, tuple[str, str]] = {}
    for out, system, res in zip(outcomes, systems, results, strict=True):
        if res is None:
            out.status = RevisionStatus.OVER_BUDGET
            continue
        if not res.ok:
            out.status, out.error = res.status, res.error
            continue
        rewrite = clean_output(res.text)
        before, passage, after = out.split()
        out.revised_text = before + rewrite + after
        # the checks compare the passage with its rewrite: the rest of the page is unchanged by construction
        out.length_ratio = length_ratio(passage, rewrite)
        out.reject_reasons = check_rewrite(
            passage, rewrite, system, min_ratio=cfg.min_length_ratio, max_ratio=cfg.max_length_ratio
        )
        if rewrite.strip():
            answered.append(out)
            rewrites[out.doc_id] = (passage, rewrite)
        else:
            out.status = RevisionStatus.REJECTED
    # Rejected rewrites are re-scored and compared too: the audit (and the benchmark) reads their scores.
    sims = _similarities(clock, embed, [rewrites[o.doc_id] for o in answered])
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
    accepted = _harm_removed(
        outcomes, sentences, last_plan, [i for i in clean if not result[i][1]], result, rescore, constitution, clock
    )
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

"""Revision: rewrite the flagged subset with an LLM, or excise its flagged sentences, and validate the result.

Only documents in a principle's revise band (and not dropped for another reason) are candidates; at most
`revise.max_docs` of them per run go to the LLM and `revise.max_excise_docs` to excision (method excise, or
fallback excise for the ones the LLM did not take), documents an earlier run deferred first, then highest score
first, so cost is bounded and reruns choose the same documents. A document flagged for several principles gets
one request carrying all their instructions. What no budget reached takes `revise.over_budget` (default: deferred
to the next run, pipelines/stages/decide.py).

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

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql import functions as F

from pipelines.core.config import ReviseConfig, default_cache_dir, resolve_revise_method
from pipelines.core.constitution import Constitution
from pipelines.core.decisions import deferred
from pipelines.core.engine import keepalive
from pipelines.core.lake import nullable
from pipelines.core.llm_exec import Send, sender
from pipelines.core.progress import Progress
from pipelines.core.stage import BaseStage, StageContext
from pipelines.judgement.teachers import local_scores
from schemas import TABLES
from schemas.vocab import UNTRIED, Method, RevisionStatus, Scorer

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from udfs.llm import LLMClient, LLMConfig
from pipelines.stages.revision import Outcome, document_embedder, revise


def candidates(df: DataFrame, constitution: Constitution) -> DataFrame:
    """Documents that need a rewrite: in a revise band, not dropped for quality, duplication or a principle (a
    judged member of a flagged representative's cluster is no duplicate here: `_member` is true, `_rep` its
    representative)."""
    names = F.array(*[F.lit(n) for n in constitution.names])
    if "decont_action" not in df.columns:  # the iteration chain has no decontamination stage
        df = df.withColumn("decont_action", F.lit(None).cast("string"))
    max_flagged = F.array_max(
        F.transform(
            F.col("revise_principles"),
            lambda n: F.element_at(F.col("principle_scores"), F.array_position(names, n).cast("int")),
        )
    )
    # the passage an LLM rewrites: from the first to the last deciding window of the principles it is revised for
    if "window_starts" in df.columns:

        def bound(column: str) -> Column:
            return F.transform(
                F.col("revise_principles"),
                lambda n: F.element_at(F.col(column), F.array_position(names, n).cast("int")),
            )

        first, last = F.array_min(bound("window_starts")), F.array_max(bound("window_ends"))
    else:
        first = last = F.lit(None).cast("int")
    # a near duplicate the members stage judged (pipelines/stages/members.py) is revised like any document, in a
    # second pass after the live ones, when its representative (`_rep`) is not published anyway (`Revise`)
    member = F.coalesce(F.col("member_judged"), F.lit(False)) if "member_judged" in df.columns else F.lit(False)
    rep = F.col("dup_of") if "dup_of" in df.columns else F.lit(None).cast("string")
    return (
        df.where(
            (F.size("quality_reasons") == 0)
            & (~F.coalesce(F.col("is_duplicate"), F.lit(False)) | member)
            & (F.size("drop_principles") == 0)
            & (F.size("revise_principles") > 0)
            # a document decontamination drops is not worth an LLM call
            & ~F.coalesce(F.col("decont_action") == "drop", F.lit(False))
        )
        .withColumn("score_before", max_flagged)
        .select(
            "doc_id",
            F.col("clean_text").alias("text"),
            "revise_principles",
            "principle_scores",
            "score_before",
            first.alias("passage_start"),
            last.alias("passage_end"),
            member.alias("_member"),
            rep.alias("_rep"),
        )
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


def on_executors(spark: SparkSession, llm: LLMConfig, cfg: ReviseConfig) -> Send:
    """Send the rewrite requests from the engine's executors (pipelines/core/llm_exec.py); every partition stops at the
    run's deadline, `time_budget_s` from the first request. None = not sent in time."""
    return sender(spark, llm, budget_s=cfg.time_budget_s)


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
            None,  # flagged_by: filled from the scores by `Revise.transform`
        )
        for o in outcomes
    ]


def flagged_by(constitution: Constitution) -> Column:
    """The strongest cascade stage (`decided_by`) that flagged one of the document's `revise_principles`; null where
    the scores carry no `decided_by` or nothing is flagged."""
    names = F.array(*[F.lit(n) for n in constitution.names])
    deciders = F.transform(
        F.col("revise_principles"),
        lambda n: F.element_at(F.col("decided_by"), F.array_position(names, n).cast("int")),
    )
    out = F.when(F.array_contains(deciders, str(Scorer.JUDGE)), F.lit(str(Scorer.JUDGE)))
    out = out.when(F.array_contains(deciders, str(Scorer.TEACHER)), F.lit(str(Scorer.TEACHER)))
    return out.when(F.size(deciders) > 0, F.lit(str(Scorer.CLASSIFIER)))


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
        "clean_text",
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
        lake, r = ctx.the_lake, resolve_revise_method(ctx.cfg).revise
        prior = "revision_status" in df.columns
        cands = candidates(df, ctx.constitution)
        if prior:
            cands = cands.join(df.select("doc_id", "revision_status"), "doc_id").where(
                F.col("revision_status").isNull() | F.col("revision_status").isin(*[str(s) for s in UNTRIED])
            )
        excises = r.method == Method.EXCISE or r.fallback == Method.EXCISE
        outcomes: list[Outcome] = []
        # Revision switched off is a choice, not a budget: its band documents get no outcome and take the fallback
        # (`revision_not_attempted`); only a cap or a time budget makes them `over_cap` / `over_budget` (deferred).
        if r.enabled and (self.llm or excises):
            ordered = self._ordered(cands, ctx, r)
            live = [x for x in ordered if not x["_member"]]
            outcomes, used_llm, used_excise = self._revise(live, ctx, r)
            # Members second, with what budget is left, and only those of a representative that is not published
            # anyway: one the run dropped (not a candidate) or whose own revision failed. A member of a representative
            # revised tonight would be its duplicate: revising it would spend the budget on a page nobody publishes.
            revised = {o.doc_id for o in outcomes if o.status == RevisionStatus.OK}
            members = [x for x in ordered if x["_member"] and x["_rep"] not in revised]
            left = replace(
                r, max_docs=max(0, r.max_docs - used_llm), max_excise_docs=max(0, r.max_excise_docs - used_excise)
            )
            outcomes += self._revise(members, ctx, left)[0]
        # In iteration an untried document stays untried; one the round's excision cap left out is `over_cap` (not
        # a null status, which would take the fallback: a cap must not turn into a drop there either).
        schema = nullable(TABLES["revisions"])
        done = ctx.stage(lake.spark.createDataFrame(_outcome_rows(outcomes, ctx.run_id), schema), "revise_outcomes")
        if "decided_by" in df.columns:  # who flagged it: iteration weighs whoever would clear it against that
            flaggers = df.select("doc_id", flagged_by(ctx.constitution).alias("flagged_by"))
            done = done.drop("flagged_by").join(flaggers, "doc_id", "left")
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

    def _ordered(self, cands: DataFrame, ctx: StageContext, r: ReviseConfig) -> list[dict[str, Any]]:
        """Every candidate as a row on the driver, in the order budgets are spent, with `fits` (it fits the LLM)."""
        # max_doc_chars bounds what the LLM must write back; excision has no such limit.
        # A long page is rewritten passage by passage (the deciding windows), so the limit is on the passage.
        passage = F.when(
            F.col("passage_end") > F.col("passage_start"), F.col("passage_end") - F.col("passage_start")
        ).otherwise(F.length("text"))
        fits = passage <= r.max_doc_chars if r.method == Method.LLM and self.llm else F.lit(True)
        # Every candidate reaches the driver anyway (the attempted ones to be revised, the others as over_cap /
        # too_long outcomes): one ordered collect, split here. Documents an earlier run deferred come first (its
        # budget ran out before them; tonight's must not push them back again), then the highest scores.
        backlog = deferred(ctx.the_lake).withColumn("_deferred", F.lit(True))
        cands = cands.join(backlog, "doc_id", "left").withColumn("_deferred", F.coalesce("_deferred", F.lit(False)))
        order = (F.col("_deferred").desc(), F.col("score_before").desc(), F.col("doc_id"))
        return [x.asDict() for x in cands.withColumn("fits", fits).orderBy(*order).drop("_deferred").collect()]

    def _revise(
        self, ordered: list[dict[str, Any]], ctx: StageContext, r: ReviseConfig
    ) -> tuple[list[Outcome], int, int]:
        """The outcomes of `ordered` (`_ordered`'s rows) under the caps of `r`, and how many documents went to the
        LLM and to excision."""
        from pipelines.stages.classify import transform as score

        if not ordered:
            return [], 0, 0
        lake, progress = ctx.the_lake, ctx.progress or Progress(enabled=False)
        spark = lake.spark
        to_llm, to_excise, outcomes = plan(ordered, r, llm_allowed=self.llm)
        constitution = ctx.constitution

        # a revision is accepted only when no window of it is over a threshold: the encoder reads them all
        every_window = replace(ctx.cfg.classify, windows="all")

        def rescore(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
            frame = spark.createDataFrame(pairs, "doc_id string, text string")
            rows = score(frame, constitution, every_window, ctx.champions).select("doc_id", "principle_scores")
            found = {x["doc_id"]: list(x["principle_scores"]) for x in rows.collect()}
            if not ctx.cfg.classify.cascade.enabled:
                return found
            # the strongest scorer the cascade has: the teacher where the principle has one
            return local_scores(constitution, found, dict(pairs), ctx.cfg.classify.window_length)

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
        return outcomes, len(to_llm), len(to_excise)

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

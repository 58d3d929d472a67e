"""Judge the near duplicates of a flagged document in the same run, so that a cluster whose representative is
dropped is represented by its best member that passes, tonight.

Dedup makes the smallest document of a cluster its representative and judges only it. When classify then flags
the representative (over a filter threshold, in a revise band, or dropped by decontamination), its cluster would
be left with nothing published: its members are no duplicates of anything in the corpus. Deferring them to the
next night (the earlier design) re-deduplicated them among themselves and judged one new representative per
cluster a night, so a family of k edited copies of a dropped page took k nights to clear (bench/README.md,
"Deferred backlog at 1M").

This stage takes the near duplicates (exact survivors with bands) of every flagged representative of the batch
and runs them through decontamination and the classifier cascade, as the representative was; the revise stage
then takes the ones in a revise band after the live documents, within the same caps. The decision stage
(pipelines/stages/decide.py `settle_clusters`) publishes the smallest member whose own decision keeps it in place
of a representative it does not publish, drops the others as its duplicates, and leaves the members of a cluster
that keeps none their own decisions. The members' `scores` and `contamination` rows amend the ones of classify and
decontamination; a member its own scores drop gets no spans (it is published by no decision: the spans, a
sentence-by-sentence re-scoring by the scorer that decided, were most of this stage's cost at 1M).

Cost: the members of flagged representatives only (4,634 of 1M documents in the 1M benchmark), scored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql import functions as F

from expectations import suites
from pipelines.core.stage import BaseStage, Gate, StageContext
from pipelines.stages import classify, decontaminate
from pipelines.stages.decide import MEMBER, principle_flags
from schemas.vocab import Count, DupKind

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_SCORED = ("principle_scores", "principle_models", *classify.CASCADE_COLUMNS)
_DECONT = ("clean_text", "decont_action", "contaminated_sets", "contamination")


def flagged(df: DataFrame) -> Column:
    """The document may not be published by the decision: dropped or to be revised for a principle, or dropped by
    decontamination (a revision may fail, a revise band may be over budget)."""
    risk = (F.size("drop_principles") > 0) | (F.size("revise_principles") > 0)
    if "decont_action" in df.columns:
        risk = risk | F.coalesce(F.col("decont_action") == "drop", F.lit(False))
    return risk


def members_of_flagged(df: DataFrame) -> DataFrame:
    """(doc_id, clean_text) of the near duplicates, passing quality, whose representative is a flagged document of
    this batch. Exact duplicates are not judged: their words are their exact survivor's."""
    reps = df.where(~F.coalesce(F.col("is_duplicate"), F.lit(False)) & flagged(df)).select(
        F.col("doc_id").alias("_rep")
    )
    near = df.where(
        F.coalesce(F.col("is_duplicate"), F.lit(False))
        & (F.col("dup_kind") == str(DupKind.NEAR))
        & (F.size("quality_reasons") == 0)
    )
    return near.join(reps, F.col("dup_of") == F.col("_rep"), "left_semi").select("doc_id", "clean_text")


class JudgeMembers(BaseStage):
    """Adds `member_judged`; a judged member gets the decontamination columns, its scores and its principle flags
    as any live document. Returns the members' `scores` and `contamination` rows (amending the earlier ones)."""

    name: ClassVar[str] = "members_v1"
    reads: ClassVar[tuple[str, ...]] = (
        "doc_id",
        "clean_text",
        "quality_reasons",
        "is_duplicate",
        "dup_of",
        "dup_kind",
        "principle_scores",
        "drop_principles",
        "revise_principles",
    )
    adds: ClassVar[tuple[str, ...]] = (MEMBER,)
    amends: ClassVar[tuple[str, ...]] = ("scores", "contamination")
    materialise: ClassVar[bool] = False  # a join with what it staged itself

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        found = members_of_flagged(df)
        if found.limit(1).count() == 0:
            return df.withColumn(MEMBER, F.lit(False))
        members = ctx.stage(found, "members")
        judged = members
        if "decont_action" in df.columns:
            d = ctx.cfg.decontaminate
            if d.enabled and d.sets:
                result, _, _ = decontaminate.match(members, ctx, prefix="members_")
            else:
                result = ctx.the_lake.spark.createDataFrame([], decontaminate.RESULT_SCHEMA)
            judged = decontaminate.with_result(members, result)
        live = judged
        if "decont_action" in judged.columns:  # a member decontamination drops is not scored, as in classify
            live = judged.where(F.coalesce(F.col("decont_action") != "drop", F.lit(True)))
        scored = classify.score(live.select("doc_id", F.col("clean_text").alias("text")), ctx, tag="members")
        results = judged.join(scored.select("doc_id", *_SCORED), "doc_id", "left")
        results = ctx.stage(results, "members_judged")
        cols = [c for c in (*_DECONT, *_SCORED) if c in results.columns]
        out = df.join(
            results.select("doc_id", F.lit(True).alias(MEMBER), *[F.col(c).alias(f"_m_{c}") for c in cols]),
            "doc_id",
            "left",
        )
        member = F.coalesce(F.col(MEMBER), F.lit(False))
        for c in cols:
            out = out.withColumn(c, F.when(member, F.col(f"_m_{c}")).otherwise(F.col(c)))
        out = out.drop(*[f"_m_{c}" for c in cols]).withColumn(MEMBER, member)
        return principle_flags(out, ctx.constitution)

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        judged = out.where(F.col(MEMBER))
        if judged.limit(1).count() == 0:
            return {}
        spans_for = F.size("drop_principles") == 0
        tables = {"scores": classify.scores_table(judged, ctx, "members_scores", spans_for=spans_for)}
        if "contamination" in out.columns:
            tables["contamination"] = decontaminate.contamination_rows(judged, ctx.run_id)
        return tables

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        names = ctx.constitution.names
        return (Gate("members_scores", lambda _ctx, _counts: suites.scores(names), on="scores", optional=True),)

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, Any]:
        return {Count.MEMBERS_JUDGED: out.where(F.col(MEMBER)).count() if "scores" in tables else 0}

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

The guard: a member may take its representative's place only without the passage the representative was flagged
for. Scorers are noisy on near copies (the violence teacher put a page at 0.92 and a lightly reworded copy at 0.70,
under the revise threshold), so "the first copy that passes" would pick the most lenient score, not the copy
without the harm. Before a member is judged, the representative's flagged passages (its `scores` spans for the
principles it is dropped or revised for) are looked for in the member's sentences (udfs/passages.py):
- a passage of a principle the representative is dropped for: the member is dropped for it too (reason
  `holds_passage:<principle>` beside `principle:<principle>`), whatever its own score;
- a passage of a principle in a revise band: the member's sentences holding it are cut, as decontamination cuts a
  benchmark item, and the member is judged on what is left (reason `passage_cut:<principle>`, action `revise`); a
  cut that would leave less than `revise.excise_min_ratio` of the text drops the member as above.
A representative with no spans for a principle (no sentence scored over its span threshold alone) has no passage to
look for: its members are judged on their own for it.

Cost: the members of flagged representatives only (4,634 of 1M documents in the 1M benchmark), scored once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from expectations import suites
from pipelines.core.progress import Progress
from pipelines.core.stage import BaseStage, Gate, StageContext
from pipelines.stages import classify, decontaminate
from pipelines.stages.decide import HELD, MEMBER, PASSAGE_CUT, principle_flags
from schemas.vocab import Count, DupKind
from udfs.excise import excise_keeping
from udfs.passages import held_sentences

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_SCORED = ("principle_scores", "principle_models", *classify.CASCADE_COLUMNS)
_DECONT = ("clean_text", "decont_action", "contaminated_sets", "contamination")
_GUARD = (HELD, PASSAGE_CUT)
_GUARDED = StructType(
    [
        StructField(HELD, ArrayType(StringType())),
        StructField(PASSAGE_CUT, ArrayType(StringType())),
        StructField("text", StringType()),
    ]
)


def flagged(df: DataFrame) -> Column:
    """The document may not be published by the decision: dropped or to be revised for a principle, or dropped by
    decontamination (a revision may fail, a revise band may be over budget)."""
    risk = (F.size("drop_principles") > 0) | (F.size("revise_principles") > 0)
    if "decont_action" in df.columns:
        risk = risk | F.coalesce(F.col("decont_action") == "drop", F.lit(False))
    return risk


def members_of_flagged(df: DataFrame) -> DataFrame:
    """(doc_id, clean_text, dup_of) of the near duplicates, passing quality, whose representative is a flagged
    document of this batch. Exact duplicates are not judged: their words are their exact survivor's."""
    reps = df.where(~F.coalesce(F.col("is_duplicate"), F.lit(False)) & flagged(df)).select(
        F.col("doc_id").alias("_rep")
    )
    near = df.where(
        F.coalesce(F.col("is_duplicate"), F.lit(False))
        & (F.col("dup_kind") == str(DupKind.NEAR))
        & (F.size("quality_reasons") == 0)
    )
    return near.join(reps, F.col("dup_of") == F.col("_rep"), "left_semi").select("doc_id", "clean_text", "dup_of")


def guard_text(text: str, rep_text: str | None, passages: list[dict[str, Any]] | None, min_ratio: float) -> tuple:
    """(principles whose passage `text` holds and that drop it, principles whose passage was cut, the text after the
    cuts) for one member; `passages`: the representative's (principle, drop, spans) entries."""
    held: list[str] = []
    cut: list[str] = []
    ranges: list[tuple[int, int]] = []
    for p in sorted(passages or [], key=lambda p: str(p["principle"])):  # collect_list has no order
        found = held_sentences(text, [(rep_text or "")[s["start"] : s["end"]] for s in p["spans"]])
        if found and p["drop"]:
            held.append(p["principle"])
        elif found:
            cut.append(p["principle"])
            ranges += found
    if held or not cut:
        return held, [], text
    after = excise_keeping(text, ranges, min_ratio)
    if after is None:  # too little left to stand for the page: dropped as if held
        return cut, [], text
    return [], cut, after


def _guard_column(text: Column, rep_text: Column, passages: Column, min_ratio: float) -> Column:
    @pandas_udf(_GUARDED)  # type: ignore[call-overload]
    def guard(batches: Iterator[tuple[pd.Series, pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        for texts, reps, entries in batches:
            rows = [
                guard_text(t, r, None if e is None else list(e), min_ratio)
                for t, r, e in zip(texts, reps, entries, strict=True)
            ]
            yield pd.DataFrame(rows, columns=[HELD, PASSAGE_CUT, "text"])

    return guard(text, rep_text, passages)


def guarded(members: DataFrame, df: DataFrame, scores: DataFrame | None, min_ratio: float) -> DataFrame:
    """`members` (`members_of_flagged`) with `held_passage` and `passage_cut` (see the module docstring) and
    `clean_text` after the cuts. `scores`: the run's `scores` rows so far, whose spans are the passages."""
    if scores is None:
        return members.withColumn(HELD, F.array().cast("array<string>")).withColumn(
            PASSAGE_CUT, F.array().cast("array<string>")
        )
    reps = df.where(~F.coalesce(F.col("is_duplicate"), F.lit(False))).select(
        F.col("doc_id").alias("_rep"),
        F.col("clean_text").alias("_rep_text"),
        F.col("drop_principles").alias("_rd"),
        F.col("revise_principles").alias("_rr"),
    )
    wanted = members.select(F.col("dup_of").alias("_rep")).distinct()
    spans = scores.where(F.size("spans") > 0).select(F.col("doc_id").alias("_rep"), "principle", "spans")
    passages = (
        spans.join(wanted, "_rep", "left_semi")
        .join(reps, "_rep")
        .where(F.array_contains("_rd", F.col("principle")) | F.array_contains("_rr", F.col("principle")))
        .groupBy("_rep", "_rep_text")
        .agg(
            F.collect_list(
                F.struct("principle", F.array_contains("_rd", F.col("principle")).alias("drop"), "spans")
            ).alias("_passages")
        )
    )
    j = members.join(passages, F.col("dup_of") == F.col("_rep"), "left")
    g = _guard_column(F.col("clean_text"), F.col("_rep_text"), F.col("_passages"), min_ratio)
    return j.withColumn("_g", g).select(
        "doc_id",
        F.col("_g.text").alias("clean_text"),
        "dup_of",
        F.col(f"_g.{HELD}").alias(HELD),
        F.col(f"_g.{PASSAGE_CUT}").alias(PASSAGE_CUT),
    )


def inherit_flags(df: DataFrame) -> DataFrame:
    """A member holding the passage of a principle its representative is dropped for is dropped for it too."""
    held = F.coalesce(F.col(HELD), F.array().cast("array<string>"))
    drop = F.array_distinct(F.concat(F.col("drop_principles"), held))
    return df.withColumn("drop_principles", drop).withColumn(
        "revise_principles", F.array_except(F.col("revise_principles"), drop)
    )


def _unguarded(df: DataFrame) -> DataFrame:
    """The guard's columns, null: for documents that are not members (a member's come from `guarded`)."""
    none = F.lit(None).cast("array<string>")
    return df.withColumn(HELD, none).withColumn(PASSAGE_CUT, none)


class JudgeMembers(BaseStage):
    """Adds `member_judged`; a judged member gets the decontamination columns, its scores and its principle flags
    as any live document. Returns the members' `scores` and `contamination` rows (amending the earlier ones)."""

    name: ClassVar[str] = "members_v2"
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
    adds: ClassVar[tuple[str, ...]] = (MEMBER, *_GUARD)
    amends: ClassVar[tuple[str, ...]] = ("scores", "contamination")
    materialise: ClassVar[bool] = False  # a join with what it staged itself

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        found = members_of_flagged(df)
        if found.limit(1).count() == 0:
            return _unguarded(df.withColumn(MEMBER, F.lit(False)))
        progress = ctx.progress or Progress(enabled=False)
        with progress.stage("members: passages of their pages"):
            guard = guarded(found, df, ctx.tables.get("scores"), ctx.cfg.revise.excise_min_ratio)
            members = ctx.stage(guard.drop("dup_of"), "members")
        judged = members
        if "decont_action" in df.columns:
            d = ctx.cfg.decontaminate
            if d.enabled and d.sets:
                with progress.stage("members: decontaminate"):
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
        cols = [c for c in (*_DECONT, *_SCORED, *_GUARD) if c in results.columns]
        out = _unguarded(df).join(
            results.select("doc_id", F.lit(True).alias(MEMBER), *[F.col(c).alias(f"_m_{c}") for c in cols]),
            "doc_id",
            "left",
        )
        member = F.coalesce(F.col(MEMBER), F.lit(False))
        for c in cols:
            out = out.withColumn(c, F.when(member, F.col(f"_m_{c}")).otherwise(F.col(c)))
        out = out.drop(*[f"_m_{c}" for c in cols]).withColumn(MEMBER, member)
        return inherit_flags(principle_flags(out, ctx.constitution))

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
        if "scores" not in tables:
            return {Count.MEMBERS_JUDGED: 0, Count.MEMBERS_HOLDING_PASSAGE: 0, Count.MEMBERS_PASSAGE_CUT: 0}
        got = (
            out.where(F.col(MEMBER))
            .agg(
                F.count(F.lit(1)).alias("judged"),
                F.sum(F.when(F.size(HELD) > 0, 1).otherwise(0)).alias("held"),
                F.sum(F.when(F.size(PASSAGE_CUT) > 0, 1).otherwise(0)).alias("cut"),
            )
            .first()
        )
        assert got is not None
        return {
            Count.MEMBERS_JUDGED: int(got["judged"]),
            Count.MEMBERS_HOLDING_PASSAGE: int(got["held"]),
            Count.MEMBERS_PASSAGE_CUT: int(got["cut"]),
        }

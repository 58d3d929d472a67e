"""What the packaged teacher thinks of what a run publishes: the last stage of both chains.

The classifier that decided may be the very model an iteration just retrained; the packaged teacher is fixed. So
every run records, per principle with a teacher, how many of the documents it keeps (their final text: the
revision where there is one) the teacher scores at or above the principle's revise threshold. Across the rounds
of `curate iterate` this is the harmful share "as the teacher sees it": it must not grow.

The stack teachers run MiniLM on the windows they read (~100 documents/s on 2 cores), so a large night audits a
sample: at most `classify.cascade.audit_max_docs` kept documents, chosen by a hash of doc_id (a rerun audits the
same ones); `audit_kept` is the number audited and `audit_of` the number kept. The share is the estimate.

A kept document whose text is the one the cascade's teacher scored (not revised) already has that score: the
audit's scorer is the cascade's (same teachers, same windows, `teacher_udf_spec`), so it is reused, not
recomputed. On a fresh lake, where the teacher sees every document, only revisions are scored again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from pyspark.sql import functions as F

from pipelines.core.stage import BaseStage, StageContext
from pipelines.judgement.teachers import teacher_specs
from pipelines.stages.cascade import teacher_column, teacher_udf_spec
from pipelines.stages.decide import is_kept

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

KEPT = "audit_kept"


def flagged_key(principle: str) -> str:
    return f"audit_flagged:{principle}"


class TeacherAudit(BaseStage):
    """Adds `audit_scores` (the teacher's score of the final text per principle, null for drops and principles
    without a teacher) and counts `audit_kept` and `audit_flagged:<principle>`."""

    name: ClassVar[str] = "audit_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "action", "out_text")
    adds: ClassVar[tuple[str, ...]] = ("audit_scores",)

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        specs = teacher_specs(ctx.constitution)
        nulls = F.array(*[F.lit(None).cast("double") for _ in specs])
        if not any(specs) or not ctx.cfg.classify.cascade.enabled:
            return df.withColumn("audit_scores", nulls)
        kept = is_kept(F.col("action"))
        budget = ctx.cfg.classify.cascade.audit_max_docs
        n_kept = df.where(kept).count()
        if n_kept > budget:
            share = budget / n_kept
            kept = kept & ((F.abs(F.xxhash64(F.col("doc_id"), F.lit("audit"))) % 1_000_000) < int(share * 1_000_000))
        # the cascade's score of the same text, where it has one
        reuse = [F.lit(False)] * len(specs)
        before = nulls
        if "teacher_scores" in df.columns and "text" in df.columns:
            same = F.col("out_text").eqNullSafe(F.col("text"))
            reuse = [same & F.element_at("teacher_scores", i + 1).isNotNull() for i in range(len(specs))]
            before = F.col("teacher_scores")
        # `need` false outside the sample and where reused: the UDF may be evaluated on every row, but scores only
        # what is needed
        need = F.array(*[kept & F.lit(s is not None) & ~reuse[i] for i, s in enumerate(specs)])
        if not df.where(F.array_contains(need, True)).limit(1).count():
            fresh = nulls
        else:
            taught = df.withColumn(
                "_audit", teacher_column(F.col("out_text"), need, teacher_udf_spec(specs, ctx.cfg.classify))
            )
            # staged: the UDF's result is read once per principle below, and must be computed once, not per read
            df = ctx.stage(taught, "audit_teacher")
            fresh = F.col("_audit.scores")
        scores = [
            F.when(reuse[i], F.element_at(before, i + 1)).otherwise(F.element_at(fresh, i + 1))
            if s is not None
            else F.lit(None).cast("double")
            for i, s in enumerate(specs)
        ]
        out = df.withColumn("audit_scores", F.when(kept, F.array(*scores)).otherwise(nulls))
        return out.drop("_audit") if "_audit" in out.columns else out

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        kept_all = out.where(is_kept(F.col("action")))
        specs = teacher_specs(ctx.constitution)
        first = next((i for i, s in enumerate(specs) if s is not None), None)
        audited = ctx.cfg.classify.cascade.enabled
        # a sampled document has every teacher's score; one outside the sample has none
        kept = kept_all
        if audited and first is not None:
            kept = kept_all.where(F.element_at("audit_scores", first + 1).isNotNull())
        aggs = [F.count("*").alias(KEPT)]
        for i, (p, spec) in enumerate(zip(ctx.constitution.principles, teacher_specs(ctx.constitution), strict=True)):
            if spec is not None:
                s = F.element_at("audit_scores", i + 1)
                aggs.append(F.sum(F.when(s >= p.revise_threshold, 1).otherwise(0)).alias(flagged_key(p.name)))
        row = kept.agg(*aggs).collect()[0]
        return {"audit_of": kept_all.count(), **{k: int(row[k] or 0) for k in row.asDict()}}

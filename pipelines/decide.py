"""Score first, decide once: turn quality reasons, dedup flags, principle scores and revision outcomes
into one `action` per document, with reasons and the stage that decided.

Precedence: quality -> duplicate -> principle drop -> revision -> tag -> keep. Everything is a native
expression over columns, so the same decisions come out on every engine, and a threshold can be re-tuned
by re-running this step alone.

Policies of a negative principle with score s (thresholds R = revise, F = filter):
- mode `drop`:   s >= F -> drop;            R <= s < F -> tag `<name>`
- mode `revise`: s >= F -> drop;            R <= s < F -> revise (a failed revision takes the fallback)
- mode `tag`:    s >= R -> tag `<name>`
- `retain_fraction` f: of the would-be drops (s >= F, modes drop and revise) the share f chosen by
  `pmod(xxhash64(doc_id, name), 10000) < round(f * 10000)` is kept with tag `retained:<name>` instead.
A positive principle (kind positive) never changes the action: a kept document scoring >= its
upsample_threshold gets weight `upsample` and the reason `upsampled:<name>`. With several positive principles
the weight is the LARGEST matching `upsample` (not the product: splitting one theme into two overlapping
principles must not square its weight); 1.0 when none matches; 0.0 for a dropped document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from pipelines.constitution import Constitution
from schemas import require_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

RETAIN_BUCKETS = 10_000


def _compact(items: list[Column]) -> Column:
    if not items:
        return F.array().cast("array<string>")
    return F.filter(F.array(*items), lambda x: x.isNotNull())


def retained(doc_id: Column, principle: str, fraction: float) -> Column:
    """Deterministic sample by hash of (doc_id, principle): every rerun and engine keeps the same docs."""
    if fraction <= 0:
        return F.lit(False)
    bucket = F.pmod(F.xxhash64(doc_id, F.lit(principle)), F.lit(RETAIN_BUCKETS))
    return bucket < F.lit(round(fraction * RETAIN_BUCKETS))


def principle_flags(df: DataFrame, constitution: Constitution) -> DataFrame:
    """Adds `drop_principles`, `revise_principles`, `tag_principles` and `upsample_principles` (arrays of
    names) from `principle_scores` (one score per principle, constitution order).

    Unscored rows (null `principle_scores`) get empty arrays.
    """
    require_columns(df.columns, ["doc_id", "principle_scores"], "decide")
    drops, revises, tags, upsamples = [], [], [], []
    for i, p in enumerate(constitution.principles):
        s = F.element_at(F.col("principle_scores"), i + 1)
        if p.positive_kind:
            upsamples.append(F.when(s >= F.lit(p.upsample_threshold), F.lit(p.name)))
            continue
        above_filter = s >= F.lit(p.filter_threshold)
        band = (s >= F.lit(p.revise_threshold)) & (s < F.lit(p.filter_threshold))
        keep_anyway = retained(F.col("doc_id"), p.name, p.retain_fraction)
        name = F.lit(p.name)
        if p.mode == "tag":
            tags.append(F.when(s >= F.lit(p.revise_threshold), name))
            continue
        drops.append(F.when(above_filter & ~keep_anyway, name))
        tags.append(F.when(above_filter & keep_anyway, F.lit(f"retained:{p.name}")))
        if p.mode == "revise":
            revises.append(F.when(band, name))
        else:
            tags.append(F.when(band, name))
    scored = F.col("principle_scores").isNotNull()
    empty = F.array().cast("array<string>")
    return (
        df.withColumn("drop_principles", F.when(scored, _compact(drops)).otherwise(empty))
        .withColumn("revise_principles", F.when(scored, _compact(revises)).otherwise(empty))
        .withColumn("tag_principles", F.when(scored, _compact(tags)).otherwise(empty))
        .withColumn("upsample_principles", F.when(scored, _compact(upsamples)).otherwise(empty))
    )


def weight_of(upsample_principles: Column, constitution: Constitution) -> Column:
    """The largest `upsample` of the matched positive principles, 1.0 when none matched (module docstring)."""
    factors = {p.name: p.upsample for p in constitution.positive}
    if not factors:
        return F.lit(1.0)
    lookup = F.create_map(*[x for name, u in factors.items() for x in (F.lit(name), F.lit(float(u)))])
    return F.coalesce(F.array_max(F.transform(upsample_principles, lambda n: F.element_at(lookup, n))), F.lit(1.0))


def transform(df: DataFrame, constitution: Constitution, fallback: str = "drop") -> DataFrame:
    """Adds `action`, `reasons`, `stage`, `tags`, `weight` and the final `out_text`.

    Needs the flag columns from `principle_flags`, `quality_reasons`, `is_duplicate` (null = not
    evaluated), and the revision outcome `revision_status` / `revised_text` (null = not attempted).
    """
    require_columns(
        df.columns,
        [
            "doc_id",
            "text",
            "quality_reasons",
            "is_duplicate",
            "drop_principles",
            "revise_principles",
            "tag_principles",
            "revision_status",
            "revised_text",
        ],
        "decide",
    )
    q_fail = F.size("quality_reasons") > 0
    dup = F.coalesce(F.col("is_duplicate"), F.lit(False))
    p_drop = F.size("drop_principles") > 0
    needs_revision = F.size("revise_principles") > 0
    revised_ok = needs_revision & (F.col("revision_status") == "ok")
    rev_failed = needs_revision & ~F.coalesce(F.col("revision_status") == "ok", F.lit(False))
    status = F.coalesce(F.col("revision_status"), F.lit("not_attempted"))
    tagged = F.size("tag_principles") > 0
    empty = F.array().cast("array<string>")
    upsampled = F.col("upsample_principles") if "upsample_principles" in df.columns else empty

    action = (
        F.when(q_fail | dup | p_drop, "drop")
        .when(revised_ok, "revise")
        .when(rev_failed, F.lit(fallback))
        .when(tagged, "tag")
        .otherwise("keep")
    )
    prefix = lambda pre, col: F.transform(F.col(col), lambda x: F.concat(F.lit(pre), x))  # noqa: E731
    reasons = (
        F.when(q_fail, F.col("quality_reasons"))
        .when(dup, F.array(F.col("dup_kind") if "dup_kind" in df.columns else F.lit("exact_duplicate")))
        .when(p_drop, prefix("principle:", "drop_principles"))
        .when(revised_ok, prefix("revised:", "revise_principles"))
        .when(
            rev_failed,
            F.concat(F.array(F.concat(F.lit("revision_"), status)), prefix("flagged:", "revise_principles")),
        )
        .when(tagged, prefix("tagged:", "tag_principles"))
        .otherwise(F.array().cast("array<string>"))
    )
    kept = action != F.lit("drop")
    reasons = F.when(
        kept, F.concat(reasons, F.transform(upsampled, lambda n: F.concat(F.lit("upsampled:"), n)))
    ).otherwise(reasons)
    stage = (
        F.when(q_fail, "quality")
        .when(dup, "dedup")
        .when(p_drop, "classify")
        .when(needs_revision, "revise")
        .when(tagged, "classify")
        .otherwise("publish")
    )
    unrevised_tags = F.when(rev_failed & (F.lit(fallback) == "tag"), prefix("unrevised:", "revise_principles"))
    tags = F.array_distinct(
        F.concat(F.col("tag_principles"), F.coalesce(unrevised_tags, F.array().cast("array<string>")))
    )
    return (
        df.withColumn("action", action)
        .withColumn("reasons", reasons)
        .withColumn("stage", stage)
        .withColumn("tags", tags)
        .withColumn("weight", F.when(kept, weight_of(upsampled, constitution)).otherwise(F.lit(0.0)))
        .withColumn("out_text", F.when(revised_ok, F.col("revised_text")).otherwise(F.col("text")))
    )


def decision_rows(decided: DataFrame, run_id: str) -> DataFrame:
    """The `decisions` rows of decided documents (every one of them, drops included)."""
    return decided.select(
        "doc_id",
        F.lit(run_id).alias("run_id"),
        "crawl_id",
        "action",
        "reasons",
        "stage",
        F.current_timestamp().alias("decided_at"),
    )


def corpus_rows(decided: DataFrame, constitution: Constitution, run_id: str) -> DataFrame:
    """The `corpus` rows of decided documents, drops included (callers filter or delete them): final text,
    tags, weight and the scores as a map (null for an unscored document)."""
    names = F.array(*[F.lit(n) for n in constitution.names])
    scores = F.when(F.col("principle_scores").isNotNull(), F.map_from_arrays(names, F.col("principle_scores")))
    return decided.select(
        "doc_id",
        F.col("out_text").alias("text"),
        "source",
        "url",
        "crawl_id",
        "action",
        "tags",
        scores.alias("scores"),
        "weight",
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("updated_at"),
    )

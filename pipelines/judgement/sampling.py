"""Which documents to label: stratified by source and by the current score, plus the most uncertain.

A uniform sample of a crawl is almost all benign; labels are worth most where the classifier is unsure and
in the rare high-score strata. So: a bounded share (`uncertain_fraction`) goes to the documents whose
current score is closest to the principle's label threshold, and the rest is spread evenly over the strata
(source x score bin, unscored documents forming their own bin), taking the same number from each stratum
where it can. Deterministic for a seed (order within a stratum is a hash of doc_id and seed), so a rerun
draws the same sample and the label cache makes it free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from schemas import require_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def sample_for_labeling(
    docs: DataFrame,
    scores: DataFrame | None,
    n: int,
    *,
    threshold: float = 0.5,
    uncertain_fraction: float = 0.2,
    score_bins: int = 5,
    seed: int = 0,
) -> DataFrame:
    """`docs` (doc_id, text, source) -> at most `n` rows (doc_id, text, source, score, stratum, why)."""
    require_columns(docs.columns, ["doc_id", "text"], "sample")
    if not 0.0 <= uncertain_fraction <= 1.0:
        raise ValueError("uncertain_fraction must lie in [0, 1]")
    base = docs.select("doc_id", "text", (F.col("source") if "source" in docs.columns else F.lit(None)).alias("source"))
    if scores is not None:
        require_columns(scores.columns, ["doc_id", "score"], "sample")
        current = scores.groupBy("doc_id").agg(F.avg("score").alias("score"))
        base = base.join(current, "doc_id", "left")
    else:
        base = base.withColumn("score", F.lit(None).cast("double"))
    order = F.xxhash64(F.col("doc_id"), F.lit(seed))
    base = base.withColumn("_h", order)
    n_uncertain = int(n * uncertain_fraction) if scores is not None else 0
    uncertain = (
        base.where(F.col("score").isNotNull())
        .orderBy(F.abs(F.col("score") - F.lit(threshold)), "_h")
        .limit(n_uncertain)
        .withColumn("why", F.lit("uncertain"))
    )
    rest = base.join(uncertain.select("doc_id"), "doc_id", "left_anti")
    bin_ = F.when(F.col("score").isNull(), F.lit("unscored")).otherwise(
        F.least(F.floor(F.col("score") * score_bins), F.lit(score_bins - 1)).cast("string")
    )
    stratum = F.concat_ws("|", F.coalesce(F.col("source"), F.lit("?")), bin_)
    ranked = rest.withColumn("stratum", stratum).withColumn(
        "_rank", F.row_number().over(Window.partitionBy("stratum").orderBy("_h"))
    )
    # Round-robin over strata: every stratum's first document before any stratum's second.
    spread = ranked.orderBy("_rank", "_h").limit(max(0, n - n_uncertain)).withColumn("why", F.lit("stratified"))
    cols = ["doc_id", "text", "source", "score", "stratum", "why"]
    uncertain = uncertain.withColumn("stratum", F.lit("uncertain"))
    return uncertain.select(*cols).unionByName(spread.select(*cols))

"""Exact deduplication on normalised text, within the batch and against every earlier crawl.

Normalisation (documented because it defines what "the same document" means): lower-case; remove every
character that is not a letter, digit or whitespace (Unicode classes); collapse whitespace runs to one
space; trim. The hash is SHA-256 of that string. Unicode NFKC folding is not applied (Spark has no native
expression for it), so full-width and ASCII forms of a letter count as different.

Representative of a group of equal hashes: a document already in the `dedup` table as a representative
(an earlier crawl) wins; otherwise the earliest `crawl_id`, then the smallest `doc_id`. Deterministic on
every engine: the choice is a min over a struct, not a row order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from schemas import require_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

EXACT_DUPLICATE = "exact_duplicate"


def normalise(text: Column) -> Column:
    stripped = F.regexp_replace(F.lower(text), r"[^\p{L}\p{N}\s]", "")
    return F.trim(F.regexp_replace(stripped, r"\s+", " "))


def exact_hash(text: Column) -> Column:
    return F.sha2(normalise(text), 256)


def transform(batch: DataFrame, prior: DataFrame | None = None) -> DataFrame:
    """Adds `exact_hash`, `cluster_id`, `dup_of`, `is_duplicate` to the batch.

    `prior` holds earlier representatives (`doc_id`, `crawl_id`, `exact_hash`), e.g. the `dedup` table's
    rows with `is_duplicate = false`; rows whose doc_id is in the batch are ignored (a rerun after a crash).
    """
    require_columns(batch.columns, ["doc_id", "crawl_id", "text"], "dedup")
    hashed = batch.withColumn("exact_hash", exact_hash(F.col("text")))
    # rank 0 = an earlier crawl's representative, which beats anything in tonight's batch
    candidates = hashed.select("exact_hash", F.lit(1).alias("rank"), "crawl_id", "doc_id")
    if prior is not None:
        earlier = prior.select("exact_hash", "crawl_id", "doc_id").join(batch.select("doc_id"), "doc_id", "left_anti")
        candidates = candidates.unionByName(earlier.select("exact_hash", F.lit(0).alias("rank"), "crawl_id", "doc_id"))
    reps = candidates.groupBy("exact_hash").agg(F.min(F.struct("rank", "crawl_id", "doc_id")).alias("_rep"))
    out = hashed.join(reps.select("exact_hash", F.col("_rep.doc_id").alias("cluster_id")), "exact_hash")
    is_dup = F.col("cluster_id") != F.col("doc_id")
    return out.withColumn("is_duplicate", is_dup).withColumn("dup_of", F.when(is_dup, F.col("cluster_id")))

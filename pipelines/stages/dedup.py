"""Deduplication: exact (normalised-text hash) and near (MinHash-LSH), within the batch and against the corpus.

**Exact.** Normalisation (it defines what "the same document" means): lower-case; delete every character
that is not a letter (``\\p{L}``), a digit (``\\p{N}``) or whitespace; collapse whitespace runs to one space;
trim. Whitespace is spelled out - tab, LF, VT, FF, CR, NEL (U+0085) and every ``\\p{Z}`` separator, NBSP
included - rather than ``\\s``, which means ASCII whitespace to the JVM's regex engine and Unicode whitespace
to Rust's, so the hash is the same on every engine. The hash is SHA-256 of that string. Unicode NFKC folding
is not applied (Spark has no native expression for it).

**Near.** MinHash-LSH (udfs/minhash.py: shingles, permutations, band keys; the default `edit-robust` preset is
5-character shingles, 14 bands x 8 rows and verification; `dedup.preset: fineweb` gives FineWeb's 5-word shingles
without verification, pipelines/core/config.py). Signatures come from one vectorised pandas UDF over the exact
survivors.
Documents sharing a (band, key) bucket are candidates; each bucket links every member to its smallest member
(a star, not a clique: a 10,000-member boilerplate bucket makes 9,999 edges, not 50 million, and connects
exactly the same documents). Candidate edges are optionally verified by exact Jaccard of the shingle sets; then a
member that fails against the smallest member is verified against every other member of its bucket (buckets of at
most `dedup.verify_bucket_max` members), so two true duplicates sharing a bucket with a dissimilar smallest member
are still linked (`verified_edges`).
Clusters are the connected components, found by min-label propagation with pointer jumping in DataFrame
operations until no label changes; a component's label is its smallest member, so the result depends only
on the input - never on partitioning, engine or run.

**Order and representative.** A document's key is (rank, crawl_id, doc_id) with rank 0 for documents already
in the corpus and 1 for the batch; the smallest key of a cluster is its representative (`cluster_id`), every
other member is a duplicate with `dup_of` = the representative, possibly a document published months ago.
Published documents are never retracted, so a crawl is deduplicated against the corpus as it stood before
it: a batch holding several crawls is processed crawl by crawl (earliest first), each against the kept
documents of the ones before. That is why a backfill of three crawls and three nightly runs give the same
clusters. An exact duplicate of a document that was itself a near duplicate points at that document's
representative.

**Incremental, against what is published.** The `minhash_index` table holds the band keys of every *published*
document (in `corpus`) with the name of the MinHash scheme that made them; `dedup.dedup_text` keeps the text dedup
read for each document it kept, so that verification compares the same form (cleaned, redacted) on both sides of a
cross-night pair. A nightly run computes signatures for its own documents only, reads the index rows whose buckets
it touches (of published documents only: a lake indexed by an older release may hold others), verifies against
`dedup_text`, and exact-matches only earlier documents whose representative is published. The index rows are
written after the decision (`DedupIndex`), in the same publish as `corpus`: a document a later stage drops or defers
leaves no keys, and an iteration round that drops a published document deletes its keys. When the run does not
publish a cluster's representative, its near duplicates, judged on their own (pipelines/stages/members.py), put
the smallest that passes in its place, and the decision amends the `dedup` rows it regrouped
(pipelines/stages/decide.py `settle_clusters`); a member left without a decision of its own is deferred, and the
next run decides it again first, against an index that holds only published documents.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pyarrow as pa
from pyspark.sql import Column
from pyspark.sql import functions as F

from expectations import suites
from pipelines.core.config import DedupConfig
from pipelines.core.publish import DELETE
from pipelines.core.stage import BaseStage, Gate, StageContext
from pipelines.stages.decide import is_kept
from schemas import TABLES, require_columns
from schemas.vocab import DupKind
from udfs.minhash import MinHashParams

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql import DataFrame, SparkSession

    from pipelines.core.lake import Lake

#: Materialises a DataFrame and hands back one that reads the result (Sail has no `persist`).
Checkpoint = Callable[["DataFrame", str], "DataFrame"]

_WS = r"\t\n\x0B\f\r\x{85}\p{Z}"


class DedupError(RuntimeError):
    """Dedup cannot run as configured (missing checkpoint or texts, index of another scheme, no convergence)."""


class ParquetCheckpoint:
    """A `Checkpoint` that writes Parquet under `root`: for engines without Delta, tests and benchmarks."""

    def __init__(self, spark: SparkSession, root: str | Path) -> None:
        self.spark, self.root = spark, Path(root)

    def __call__(self, df: DataFrame, name: str) -> DataFrame:
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        df.write.mode("overwrite").parquet(str(path))
        if not path.exists():  # Sail writes no file at all for an empty DataFrame
            return self.spark.createDataFrame([], df.schema)
        return self.spark.read.parquet(str(path))

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def params_of(cfg: DedupConfig) -> MinHashParams:
    return MinHashParams(
        shingle=cfg.shingle, ngram=cfg.ngram, num_perm=cfg.num_perm, bands=cfg.bands, rows=cfg.rows, seed=cfg.seed
    )


# ---- exact -----------------------------------------------------------------------------------------


def normalise(text: Column) -> Column:
    stripped = F.regexp_replace(F.lower(text), rf"[^\p{{L}}\p{{N}}{_WS}]", "")
    return F.trim(F.regexp_replace(stripped, rf"[{_WS}]+", " "))


def exact_hash(text: Column) -> Column:
    return F.sha2(normalise(text), 256)


_SEP = "\x00"


def order_key(rank: Column, crawl_id: Column, doc_id: Column) -> Column:
    """A document's place in the representative order as one string: rank, crawl_id, NUL, doc_id.

    A string rather than a struct because engines take the min of a string natively and of a struct row by row
    (Sail 0.7: 5 s instead of 0.2 s for 270k bucket rows). NUL sorts before every character a crawl_id holds,
    so string order is (rank, crawl_id, doc_id) order; a null crawl_id sorts first, as in a struct.
    """
    return F.concat(rank.cast("string"), F.coalesce(crawl_id, F.lit("")), F.lit(_SEP), doc_id)


def key_doc(key: Column) -> Column:
    """The doc_id inside an `order_key`."""
    return F.substring_index(key, _SEP, -1)


def _exact(hashed: DataFrame, prior: DataFrame | None, enabled: bool) -> DataFrame:
    """(doc_id, exact_hash, the exact group's representative) for `hashed` (doc_id, crawl_id, exact_hash):
    `_exact_rank` (0 = earlier crawl), `_exact_rep` (its doc_id), `_exact_cluster` (its cluster_id: itself, or
    for an earlier near duplicate, that one's cluster)."""
    if not enabled:
        return hashed.select(
            "doc_id",
            "exact_hash",
            F.lit(1).alias("_exact_rank"),
            F.col("doc_id").alias("_exact_rep"),
            F.col("doc_id").alias("_exact_cluster"),
        )
    # the cluster rides after the key: keys are unique, so appending does not change the order
    mine = order_key(F.lit(1), F.col("crawl_id"), F.col("doc_id"))
    candidates = hashed.select("exact_hash", F.concat(mine, F.lit(_SEP), F.col("doc_id")).alias("k"))
    if prior is not None:
        earlier = prior.join(hashed.select("doc_id"), "doc_id", "left_anti")
        cluster = F.col("cluster_id") if "cluster_id" in prior.columns else F.col("doc_id")
        theirs = order_key(F.lit(0), F.col("crawl_id"), F.col("doc_id"))
        candidates = candidates.unionByName(
            earlier.select("exact_hash", F.concat(theirs, F.lit(_SEP), cluster).alias("k"))
        )
    reps = candidates.groupBy("exact_hash").agg(F.min("k").alias("_k"))
    return hashed.join(reps, "exact_hash").select(
        "doc_id",
        "exact_hash",
        F.substring(F.col("_k"), 1, 1).cast("int").alias("_exact_rank"),
        key_doc(F.substring_index(F.col("_k"), _SEP, 2)).alias("_exact_rep"),
        key_doc(F.col("_k")).alias("_exact_cluster"),
    )


# ---- MinHash-LSH -------------------------------------------------------------------------------------


def band_udf(params: MinHashParams) -> Callable[[Column], Column]:
    """Iterator Arrow UDF text -> array<bigint> of the document's LSH band keys (null when it has no shingle).

    Arrow in, Arrow out: a pandas UDF turned every text into a Python string and back before `minhash` read it
    as Arrow again."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf("array<bigint>")  # type: ignore[call-overload]
    def minhash_bands(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        from udfs import minhash

        for texts in batches:
            sig, has = minhash.signatures(texts.cast(pa.string()), params)
            keys = minhash.bands_of(sig, params)
            offsets = np.arange(len(keys) + 1, dtype=np.int32) * params.bands
            yield pa.ListArray.from_arrays(offsets, pa.array(keys.ravel()), mask=pa.array(~has))

    return minhash_bands  # type: ignore[no-any-return]


def jaccard_udf(params: MinHashParams) -> Callable[[Column, Column], Column]:
    """Iterator Arrow UDF (text_a, text_b) -> exact Jaccard of their shingle sets. Arrow in and out: a bucket's
    centre is in every pair of the bucket, and a pandas UDF made a Python string of it for each pair."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf("double")  # type: ignore[call-overload]
    def shingle_jaccard(batches: Iterator[tuple[pa.Array, pa.Array]]) -> Iterator[pa.Array]:
        from udfs import minhash

        for a, b in batches:
            yield pa.array(minhash.jaccard(a.cast(pa.string()), b.cast(pa.string()), params))

    return shingle_jaccard  # type: ignore[no-any-return]


def star_edges(members: DataFrame) -> DataFrame:
    """One edge from every bucket member to the bucket's smallest member, as (a, b) `order_key`s.

    `members`: key, band, bucket. Edges between two corpus documents (keys starting with rank 0) are left out:
    the corpus is settled, a batch only attaches to it. Distinct edges; a pair sharing several buckets counts
    once.
    """
    centres = members.groupBy("band", "bucket").agg(F.min("key").alias("b"), F.count("*").alias("size"))
    linked = members.join(centres.where(F.col("size") > 1), ["band", "bucket"])
    batch_side = F.col("key").startswith("1") | F.col("b").startswith("1")
    return linked.where((F.col("key") != F.col("b")) & batch_side).select(F.col("key").alias("a"), "b").distinct()


def _batch_side(a: Column, b: Column) -> Column:
    return a.startswith("1") | b.startswith("1")


def _verifier(survivors: DataFrame, lookup: DataFrame, params: MinHashParams) -> Callable[[DataFrame], DataFrame]:
    """pairs (a, b) of `order_key`s, `a` a batch document -> (a, b, jaccard) of their texts as dedup read them."""
    member_text = survivors.select(F.col("doc_id").alias("_a_doc"), F.col("text").alias("_ta"))
    other_text = lookup.select(F.col("doc_id").alias("_b_doc"), F.col("text").alias("_tb"))

    def verify(pairs: DataFrame) -> DataFrame:
        scored = pairs.withColumn("_a_doc", key_doc(F.col("a"))).withColumn("_b_doc", key_doc(F.col("b")))
        scored = scored.join(member_text, "_a_doc").join(other_text, "_b_doc", "left")
        return scored.select("a", "b", jaccard_udf(params)(F.col("_ta"), F.col("_tb")).alias("jaccard"))

    return verify


def verified_edges(
    members: DataFrame, verify: Callable[[DataFrame], DataFrame], cfg: DedupConfig, checkpoint: Checkpoint, name: str
) -> DataFrame:
    """(a, b, jaccard) for every verified pair: first each member against its bucket's smallest member (the star),
    then, in buckets of at most `cfg.verify_bucket_max` members, each member that failed there against every other
    member. A bucket whose smallest member verifies everyone is settled by the star (its members are one component
    through it); only a bucket with a dissimilar member pays for pairs, and then only that member's pairs. So two
    true duplicates that share a bucket with a dissimilar smallest member are linked, at the star's cost where the
    buckets are clean. `a` is the larger key (always a batch document), `b` the smaller.
    """
    centres = members.groupBy("band", "bucket").agg(F.min("key").alias("b"), F.count("*").alias("size"))
    star = members.join(centres.where(F.col("size") > 1), ["band", "bucket"])
    star = star.where((F.col("key") != F.col("b")) & _batch_side(F.col("key"), F.col("b")))
    star = star.select("band", "bucket", "size", F.col("key").alias("a"), "b")
    first = checkpoint(verify(star.select("a", "b").distinct()), f"{name}_star")
    passed = F.col("jaccard") >= F.lit(cfg.threshold)
    edges = first.where(passed)
    if cfg.verify_bucket_max > 2:
        failed = first.where(~passed).select("a", "b")
        small = star.where(F.col("size") <= cfg.verify_bucket_max).join(failed, ["a", "b"], "left_semi")
        others = members.select("band", "bucket", F.col("key").alias("m"))
        pairs = small.select("band", "bucket", F.col("a").alias("f")).join(others, ["band", "bucket"])
        pairs = pairs.where(F.col("f") != F.col("m")).select(
            F.greatest("f", "m").alias("a"), F.least("f", "m").alias("b")
        )
        pairs = pairs.where(_batch_side(F.col("a"), F.col("b"))).distinct()
        pairs = pairs.join(first.select("a", "b"), ["a", "b"], "left_anti")
        second = checkpoint(verify(pairs), f"{name}_pairs")
        edges = edges.unionByName(second.where(passed))
    return edges


def connected_components(edges: DataFrame, checkpoint: Checkpoint, name: str, max_iterations: int = 64) -> DataFrame:
    """(node, label) for every node of `edges` (a, b): label = the smallest node of its component.

    Min-label propagation plus pointer jumping (a node takes the label of its label), materialised each round,
    until no label changes; the rounds grow with the log of the component diameter, not with its size. Labels
    are minima, so the result does not depend on partitioning, engine or run.
    """
    adjacency = checkpoint(
        edges.select(F.col("a").alias("node"), F.col("b").alias("nbr")).unionByName(
            edges.select(F.col("b").alias("node"), F.col("a").alias("nbr"))
        ),
        f"{name}_adjacency",
    )
    seeds = adjacency.select("node", F.least("node", "nbr").alias("label"))
    labels = checkpoint(seeds.groupBy("node").agg(F.min("label").alias("label")), f"{name}_0")
    for i in range(1, max_iterations + 1):
        # Done when every edge joins two equal labels: labels are then constant on each component, and the
        # component's smallest node labels itself, so the constant is that node. A star (one bucket's edges)
        # is done from the seeds on.
        ends = edges.join(labels.select(F.col("node").alias("a"), F.col("label").alias("_la")), "a")
        ends = ends.join(labels.select(F.col("node").alias("b"), F.col("label").alias("_lb")), "b")
        if ends.where(F.col("_la") != F.col("_lb")).limit(1).count() == 0:
            return labels
        from_nbrs = adjacency.join(labels.withColumnRenamed("node", "nbr"), "nbr").select("node", "label")
        spread = labels.unionByName(from_nbrs).groupBy("node").agg(F.min("label").alias("label"))
        target = spread.select(F.col("node").alias("label"), F.col("label").alias("_jump"))
        jumped = spread.join(target, "label").select("node", F.col("_jump").alias("label"))
        labels = checkpoint(
            spread.unionByName(jumped).groupBy("node").agg(F.min("label").alias("label")), f"{name}_{i}"
        )
    raise DedupError(f"connected components did not converge in {max_iterations} rounds")


def _near(
    survivors: DataFrame,
    cfg: DedupConfig,
    index: DataFrame | None,
    texts: DataFrame | None,
    checkpoint: Checkpoint,
    tag: str,
    published: DataFrame | None = None,
) -> DataFrame:
    """(doc_id, _near_cluster, bands) for the exact survivors (doc_id, crawl_id, text), crawl by crawl (see the
    module docstring). Texts are read where they are, never copied into a checkpoint."""
    params = params_of(cfg)
    sig = checkpoint(
        survivors.select("doc_id", "crawl_id", band_udf(params)(F.col("text")).alias("bands")),
        f"{tag}_signatures",
    )
    indexed = None  # (doc_id, crawl_id, band, bucket) of the published documents
    if index is not None:
        indexed = index.where(F.col("scheme") == params.scheme).select("doc_id", "crawl_id", "band", "bucket")
        indexed = indexed.join(sig.select("doc_id"), "doc_id", "left_anti")
    corpus = None  # the same for the batch's kept documents of the crawls before this step
    lookup = None
    if cfg.verify:
        lookup = survivors.select("doc_id", "text")
        if texts is not None:
            lookup = lookup.unionByName(
                texts.select("doc_id", "text").join(survivors.select("doc_id"), "doc_id", "left_anti")
            )
    crawls = [
        r["crawl_id"] for r in sig.select("crawl_id").distinct().orderBy(F.col("crawl_id").asc_nulls_first()).collect()
    ]
    results = []
    for step, crawl in enumerate(crawls):
        docs = sig.where(F.col("crawl_id").eqNullSafe(F.lit(crawl))).withColumn(
            "key", order_key(F.lit(1), F.col("crawl_id"), F.col("doc_id"))
        )
        members = docs.where(F.col("bands").isNotNull()).select("key", F.posexplode("bands").alias("band", "bucket"))
        if indexed is not None or corpus is not None:  # only the corpus rows in tonight's buckets take part
            buckets = members.select("band", "bucket").distinct()
            touched = None
            if indexed is not None:
                touched = indexed.join(buckets, ["band", "bucket"], "left_semi")
                if published is not None:  # what an older release indexed may since have been dropped
                    touched = touched.join(published, "doc_id", "left_semi")
            if corpus is not None:
                mine = corpus.join(buckets, ["band", "bucket"], "left_semi")
                touched = mine if touched is None else touched.unionByName(mine)
            assert touched is not None
            members = members.unionByName(
                touched.select(order_key(F.lit(0), F.col("crawl_id"), F.col("doc_id")).alias("key"), "band", "bucket")
            )
        if lookup is not None:
            verify = _verifier(survivors, lookup, params)
            edges = verified_edges(members, verify, cfg, checkpoint, f"{tag}_verify_{step}")
        else:
            edges = star_edges(members)
        edges = checkpoint(edges, f"{tag}_edges_{step}")
        labelled = docs.select("doc_id", "key", "bands")
        if edges.limit(1).count() > 0:
            labels = connected_components(edges, checkpoint, f"{tag}_cc_{step}", cfg.max_iterations)
            labelled = labelled.join(labels.withColumnRenamed("node", "key"), "key", "left")
            cluster = F.coalesce(key_doc(F.col("label")), F.col("doc_id"))
        else:
            cluster = F.col("doc_id")
        near = checkpoint(labelled.select("doc_id", cluster.alias("_near_cluster"), "bands"), f"{tag}_near_{step}")
        results.append(near)
        if step + 1 < len(crawls):
            kept = near.where(F.col("_near_cluster") == F.col("doc_id")).join(
                docs.select("doc_id", "crawl_id"), "doc_id"
            )
            rows = kept.select("doc_id", "crawl_id", F.posexplode("bands").alias("band", "bucket"))
            corpus = rows if corpus is None else corpus.unionByName(rows)
    if not results:  # no exact survivor in the batch
        return sig.select("doc_id", F.col("doc_id").alias("_near_cluster"), "bands")
    out = results[0]
    for r in results[1:]:
        out = out.unionByName(r)
    return out


# ---- the stage -----------------------------------------------------------------------------------------


def transform(
    batch: DataFrame,
    prior: DataFrame | None = None,
    cfg: DedupConfig | None = None,
    *,
    index: DataFrame | None = None,
    texts: DataFrame | None = None,
    published: DataFrame | None = None,
    checkpoint: Checkpoint | None = None,
) -> DataFrame:
    """Adds `exact_hash`, `cluster_id`, `dup_of`, `is_duplicate`, `dup_kind` (the decision reason, or null) and
    `bands` (LSH keys of the batch's exact survivors, for `index_rows`) to the batch (doc_id, crawl_id, text).

    `prior`: earlier `dedup` rows (`doc_id`, `crawl_id`, `exact_hash`, optional `cluster_id`). `index`: the
    `minhash_index` table. `texts` (`doc_id`, `text`): where verification finds the text of indexed documents, in
    the form their bands were made from (the batch's `text` is compared with it). `published` (`doc_id`): when
    given, index rows of other documents are ignored. Prior and index rows whose doc_id is in the batch are ignored
    (a rerun after a crash). `checkpoint` materialises intermediate results; near dedup needs one.
    """
    cfg = cfg or DedupConfig()
    require_columns(batch.columns, ["doc_id", "crawl_id", "text"], "dedup")
    params = params_of(cfg)
    hashed = batch.select("doc_id", "crawl_id", exact_hash(F.col("text")).alias("exact_hash"))
    if not cfg.fuzzy:
        exact = _exact(hashed, prior, cfg.exact)
        joined = batch.join(exact, "doc_id")
        via_batch = F.col("_exact_rep")
        bands = F.lit(None).cast("array<bigint>")
    else:
        if checkpoint is None:
            raise DedupError("near dedup needs a checkpoint to materialise its intermediate results")
        if index is not None:
            require_columns(index.columns, ["band", "bucket", "doc_id", "crawl_id", "scheme"], "dedup (index)")
            if index.where(F.col("scheme") != F.lit(params.scheme)).limit(1).count():
                raise DedupError(
                    f"minhash_index holds band keys of another MinHash scheme than {params.scheme}: restore that "
                    "dedup config or rebuild the index (a lake indexed before the default became `edit-robust`: "
                    "--set dedup.preset=fineweb)"
                )
        if cfg.verify and index is not None and texts is None:
            raise DedupError("dedup.verify needs `texts` (doc_id, text) for the indexed documents")
        tag = f"dedup_{uuid.uuid4().hex[:8]}"  # checkpoint names unique per call: earlier results stay readable
        exact = _exact(checkpoint(hashed, f"{tag}_hashes"), prior, cfg.exact)  # cheap to recompute: no checkpoint
        first = exact.where((F.col("_exact_rank") == 1) & (F.col("_exact_rep") == F.col("doc_id"))).select("doc_id")
        survivors = batch.select("doc_id", "crawl_id", "text").join(first, "doc_id")
        near = _near(survivors, cfg, index, texts, checkpoint, tag, published)
        joined = batch.join(exact, "doc_id").join(near.withColumnRenamed("doc_id", "_exact_rep"), "_exact_rep", "left")
        via_batch = F.coalesce(F.col("_near_cluster"), F.col("_exact_rep"))
        bands = F.when(F.col("_exact_rep") == F.col("doc_id"), F.col("bands"))
    cluster = F.when(F.col("_exact_rank") == 0, F.col("_exact_cluster")).otherwise(via_batch)
    out = joined.withColumn("cluster_id", cluster).withColumn("bands", bands)
    is_dup = F.col("cluster_id") != F.col("doc_id")
    kind = F.when(F.col("_exact_rep") != F.col("doc_id"), F.lit(str(DupKind.EXACT))).when(
        is_dup, F.lit(str(DupKind.NEAR))
    )
    return (
        out.withColumn("is_duplicate", is_dup)
        .withColumn("dup_of", F.when(is_dup, F.col("cluster_id")))
        .withColumn("dup_kind", kind)
        .drop("_exact_rank", "_exact_rep", "_exact_cluster", "_near_cluster")
    )


def index_rows(deduped: DataFrame, cfg: DedupConfig, run_id: str) -> DataFrame:
    """The band keys of the batch's kept (non-duplicate) documents, as `minhash_index` rows. What is published
    is narrower: `index_changes` keeps only the documents a run publishes."""
    kept = deduped.where(~F.col("is_duplicate") & F.col("bands").isNotNull())
    return kept.select(
        F.posexplode("bands").alias("band", "bucket"),
        "doc_id",
        "crawl_id",
        F.lit(run_id).alias("run_id"),
        F.lit(params_of(cfg).scheme).alias("scheme"),
    )


def index_changes(decided: DataFrame, cfg: DedupConfig, run_id: str, kept: Column) -> DataFrame:
    """`minhash_index` rows with the `DELETE` flag for a run's decided documents (doc_id, crawl_id, `bands`): the
    keys of every document with bands that `kept` publishes, and a deletion of every band of each one it does not.
    The deletions make the write idempotent when a rerun decides differently, and take an iteration's new drops
    out of the index; a deletion of a document that was never indexed matches nothing."""
    scheme = F.lit(params_of(cfg).scheme)
    added = decided.where(kept & F.col("bands").isNotNull()).select(
        F.posexplode("bands").alias("band", "bucket"),
        "doc_id",
        "crawl_id",
        F.lit(run_id).alias("run_id"),
        scheme.alias("scheme"),
        F.lit(False).alias(DELETE),
    )
    every_band = F.explode(F.sequence(F.lit(0), F.lit(cfg.bands - 1)))
    removed = decided.where(~kept).select(
        every_band.alias("band"),
        F.lit(0).cast("long").alias("bucket"),
        "doc_id",
        "crawl_id",
        F.lit(run_id).alias("run_id"),
        scheme.alias("scheme"),
        F.lit(True).alias(DELETE),
    )
    return added.unionByName(removed)


#: What the stage adds: the `dedup` table's columns (less key, run and crawl) and the LSH band keys.
DEDUP_COLUMNS = ("exact_hash", "cluster_id", "dup_of", "is_duplicate", "dup_kind", "bands")


def published_ids(lake: Lake) -> DataFrame:
    """doc_id of every published document: the only ones a night deduplicates against."""
    return lake.read("corpus").select("doc_id")


def verification_texts(lake: Lake) -> DataFrame:
    """(doc_id, text) of the indexed documents in the form dedup read them (`dedup.dedup_text`); rows an older
    release wrote without it fall back to `raw_docs.text` (the only text those runs left)."""
    stored = lake.read("dedup").where(~F.col("is_duplicate")).select("doc_id", "dedup_text")
    if stored.where(F.col("dedup_text").isNull()).limit(1).count() == 0:
        return stored.select("doc_id", F.col("dedup_text").alias("text"))
    raw = lake.read("raw_docs").select("doc_id", "text")
    return stored.join(raw, "doc_id", "left").select("doc_id", F.coalesce("dedup_text", "text").alias("text"))


class Dedup(BaseStage):
    """Exact and MinHash-LSH near dedup of the documents that passed the quality rules, against the batch and
    every published document (`dedup` rows whose representative is in `corpus`, `minhash_index`). Rows that failed
    quality get null dedup columns (not evaluated). Returns the `dedup` rows; the index rows are written by
    `DedupIndex`, after the decision, for the documents the run publishes."""

    name: ClassVar[str] = "dedup_v3"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "crawl_id", "clean_text", "quality_reasons")
    adds: ClassVar[tuple[str, ...]] = DEDUP_COLUMNS
    materialise: ClassVar[bool] = False  # a join with the batch result it staged itself

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        lake, cfg = ctx.the_lake, ctx.cfg.dedup
        passing = df.where(F.size("quality_reasons") == 0).select(
            "doc_id", "crawl_id", F.col("clean_text").alias("text")
        )
        published = published_ids(lake)
        # an earlier exact copy counts only when its group's representative is published (a page dropped for
        # toxicity, or deferred, is no reason to drop its copy: the copy is judged on its own)
        prior = lake.read("dedup").join(published.withColumnRenamed("doc_id", "cluster_id"), "cluster_id", "left_semi")
        d = transform(
            passing,
            prior,
            cfg,
            index=lake.read("minhash_index") if cfg.fuzzy else None,
            texts=verification_texts(lake) if cfg.fuzzy and cfg.verify else None,
            published=published if cfg.fuzzy else None,
            checkpoint=ctx.stage,
        )
        return df.join(ctx.stage(d, "dedup_batch").select("doc_id", *DEDUP_COLUMNS), "doc_id", "left")

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        return (Gate("dedup", lambda _ctx, _counts: suites.dedup(), on="dedup"),)

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        evaluated = out.where(F.col("is_duplicate").isNotNull()).withColumn("run_id", F.lit(ctx.run_id))
        evaluated = evaluated.withColumn("dedup_text", F.when(~F.col("is_duplicate"), F.col("clean_text")))
        return {"dedup": evaluated.select(*TABLES["dedup"].fieldNames())}

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        counts = {f"{k.removesuffix('_duplicate')}_duplicates": 0 for k in DupKind}
        for r in out.where(F.col("is_duplicate")).groupBy("dup_kind").count().collect():
            counts[f"{r['dup_kind'].removesuffix('_duplicate')}_duplicates"] = int(r["count"])
        return counts


@dataclass(frozen=True)
class DedupIndex(BaseStage):
    """The `minhash_index` rows of what the run publishes, after its decision: the keys of every kept document that
    dedup kept, and deletions of the keys of every document the run does not publish (`index_changes`). So the
    index, like `corpus`, holds published documents only, in the same publish.

    With `redecide` (an iteration round: no `bands` column, everything re-decided was a dedup survivor) the keys of
    a document the round newly publishes are computed from its `dedup_text`, and a document it drops loses its
    keys."""

    name: ClassVar[str] = "dedup_index_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "crawl_id", "action")
    materialise: ClassVar[bool] = False  # the input, unchanged
    redecide: bool = False

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        return df

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        cfg = ctx.cfg.dedup
        if not cfg.fuzzy:
            return {}
        kept = is_kept(F.col("action"))
        if self.redecide:
            lake = ctx.the_lake
            was_kept = F.coalesce(is_kept(F.col("prev_action")), F.lit(False))
            new = out.where(kept & ~was_kept).select("doc_id", "crawl_id")
            texts = new.join(lake.read("dedup").select("doc_id", "dedup_text"), "doc_id", "left")
            texts = texts.join(out.select("doc_id", "clean_text"), "doc_id").select(
                "doc_id", "crawl_id", F.coalesce("dedup_text", "clean_text").alias("text")
            )
            bands = texts.select("doc_id", "crawl_id", band_udf(params_of(cfg))(F.col("text")).alias("bands"))
            decided = out.select("doc_id", "crawl_id", "action").join(bands.select("doc_id", "bands"), "doc_id", "left")
        else:  # a duplicate was never indexed: only dedup's survivors have keys to add or remove
            survivor = ~F.coalesce(F.col("is_duplicate"), F.lit(True))
            decided = out.where(survivor).select("doc_id", "crawl_id", "action", "bands")
        return {"minhash_index": index_changes(decided, cfg, ctx.run_id, kept)}

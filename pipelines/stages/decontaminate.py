"""Benchmark decontamination: documents that hold evaluation-benchmark text, found by word n-gram overlap.

Targets: each item's question and each of its correct answers (udfs/benchmarks.py), as the hashes of their
n-grams of normalised words (n = 13 by default, GPT-3's choice), or of the whole target when it has `min_words`
to n-1 words (udfs/ngrams.py). They live in the `benchmark_ngrams` Delta table, built once per set and scheme
and extended when a set is added or its file changes: a run hashes only the sets the table lacks.

Matching is a join on the engine: every candidate document's window hashes (an Arrow UDF) exploded and joined
with the targets, counted per document and item. Only documents still in the running are looked at (no quality
reason, not a duplicate): the others are dropped anyway.

Action (`decontaminate.action`): `excise` removes the sentences that hold a matched n-gram when at least
`revise.excise_min_ratio` of the text is left, else the document is dropped; `drop`; `tag`. The stage drops
nothing itself: it sets `decont_action` and `contaminated_sets`, and replaces `clean_text` by the excised text
(so classification and revision see the text that will be published); the decision stage turns them into
`drop` with the reason `contaminated:<set>`, `revise` (text changed), or a `contaminated:<set>` tag. Every match is
a `contamination` row: document, set, item, distinct matched n-grams, action taken.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from pipelines.core.config import default_cache_dir
from pipelines.core.lake import nullable
from pipelines.core.stage import BaseStage, Gate, StageContext, decided
from schemas import TABLES
from udfs.benchmarks import BenchmarkSet, load_set
from udfs.excise import excise_keeping
from udfs.ngrams import hashes_udf, matched_char_ranges, target_hashes
from udfs.sentences import split_sentences

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from pipelines.core.config import RunConfig

NORMALISATION = "v2"  # bump when udfs/ngrams.py's words or hashes change: the stored targets no longer match
MATCH = "struct<set: string, item: string, matched: bigint>"
RESULT_SCHEMA = (
    "doc_id string, decont_action string, excised_text string, contaminated_sets array<string>, "
    f"contamination array<{MATCH}>"
)


def scheme(cfg: RunConfig) -> str:
    d = cfg.decontaminate
    return f"n{d.n}-min{d.min_words}-{NORMALISATION}"


def target_rows(bench: BenchmarkSet, cfg: RunConfig, run_id: str) -> pd.DataFrame:
    """A set's `benchmark_ngrams` rows (one per distinct hash and item). The hashes of a set version are kept in
    the model cache (`CURATE_CACHE`): a new lake (every test, every demo) reads them instead of hashing again."""
    cache = default_cache_dir() / "benchmarks" / f"{bench.name}-{bench.fingerprint}-{scheme(cfg)}.parquet"
    try:
        frame = pd.read_parquet(cache)
    except (OSError, ValueError):  # absent, or a torn write: hash again
        frame = _hash_targets(bench, cfg)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(cache)
        except OSError:
            pass  # a read-only cache only costs the hashing
    frame["set"] = bench.name
    frame["set_version"] = bench.fingerprint
    frame["scheme"] = scheme(cfg)
    frame["run_id"] = run_id
    frame["built_at"] = pd.Timestamp(datetime.now(UTC))
    return frame[TABLES["benchmark_ngrams"].names]


def _hash_targets(bench: BenchmarkSet, cfg: RunConfig) -> pd.DataFrame:
    d = cfg.decontaminate
    hashes: list[int] = []
    lengths: list[int] = []
    items: list[str] = []
    for t in bench.targets:
        hs, k = target_hashes(t.text, d.n, d.min_words)
        hashes.extend(hs.tolist())
        lengths.extend([k] * len(hs))
        items.extend([t.item_id] * len(hs))
    frame = pd.DataFrame({"ngram": hashes, "n_words": lengths, "item": items}).drop_duplicates(["ngram", "item"])
    return frame.astype({"ngram": "int64", "n_words": "int32"}).reset_index(drop=True)


def targets(ctx: StageContext, prefix: str = "") -> tuple[DataFrame, DataFrame | None, dict[str, int]]:
    """(the configured sets' targets: ngram, n_words, set, item; the new `benchmark_ngrams` rows or None; counts).
    Sets already in the table at this version and scheme are read, not hashed again."""
    cfg, lake = ctx.cfg, ctx.the_lake
    loaded = [load_set(s) for s in cfg.decontaminate.sets]
    table = lake.read("benchmark_ngrams").where(F.col("scheme") == scheme(cfg))
    have = {(r["set"], r["set_version"]) for r in table.select("set", "set_version").distinct().collect()}
    fresh = [b for b in loaded if (b.name, b.fingerprint) not in have]
    counts = {"benchmark_sets": len(loaded), "benchmark_sets_built": len(fresh)}
    counts["benchmark_items_skipped"] = sum(b.skipped_rows for b in loaded)
    wanted = [(b.name, b.fingerprint) for b in loaded]
    cond = F.lit(False)
    for name, version in wanted:
        cond = cond | ((F.col("set") == name) & (F.col("set_version") == version))
    stored = table.where(cond)
    new = None
    if fresh:
        frame = pd.concat([target_rows(b, cfg, ctx.run_id) for b in fresh], ignore_index=True)
        fresh_rows = lake.spark.createDataFrame(frame, nullable(TABLES["benchmark_ngrams"]))
        new = ctx.stage(fresh_rows, f"{prefix}benchmark_new")
        counts["benchmark_ngrams_built"] = len(frame)
        stored = stored.unionByName(new)
    return ctx.stage(stored.select("ngram", "n_words", "set", "item"), f"{prefix}benchmark_targets"), new, counts


def excised(text: str, matched: set[int], lengths: tuple[int, ...], min_ratio: float) -> str | None:
    """`text` without the sentences that hold a matched window; None when too little would be left (or when the
    windows cannot be found again, which would mean the engine hashed another text: never excise blind)."""
    ranges = matched_char_ranges(text, matched, lengths)
    if not ranges:
        return None
    cut = [(s, e) for s, e in split_sentences(text) if any(s < re and rs < e for rs, re in ranges)]
    return excise_keeping(text, cut, min_ratio)


def match(live: DataFrame, ctx: StageContext, prefix: str = "") -> tuple[DataFrame, DataFrame | None, dict[str, int]]:
    """(`RESULT_SCHEMA` rows of the contaminated documents of `live` (doc_id, clean_text); the new `benchmark_ngrams`
    rows or None; counts). `prefix` names what it stages, so that a second call in a run leaves the first's alone."""
    spark, d = ctx.the_lake.spark, ctx.cfg.decontaminate
    tgt, new, counts = targets(ctx, prefix)
    lengths = tuple(sorted(int(r["n_words"]) for r in tgt.select("n_words").distinct().collect()))
    # The UDF keeps only window hashes that are some target's (a vectorised membership test against the sorted
    # hashes, ~1.3 MB for the default sets); the join then says which set and item each belongs to. Exploding
    # every window of every document into join rows made the join the stage's cost (bench/README.md).
    wanted = np.unique(tgt.select("ngram").toPandas()["ngram"].to_numpy(dtype=np.int64))
    grams = live.select("doc_id", F.explode(hashes_udf(lengths, wanted)(F.col("clean_text"))).alias("ngram"))
    hits = grams.join(F.broadcast(tgt), "ngram")
    matches = hits.groupBy("doc_id", "set", "item").agg(
        F.countDistinct("ngram").alias("matched"), F.collect_set("ngram").alias("ngrams")
    )
    per_doc = matches.groupBy("doc_id").agg(
        F.array_sort(F.collect_set("set")).alias("sets"),
        F.flatten(F.collect_list("ngrams")).alias("ngrams"),
        F.array_sort(F.collect_list(F.struct("set", "item", F.col("matched").cast("long").alias("matched")))).alias(
            "items"
        ),
    )
    found = per_doc.join(live.select("doc_id", "clean_text"), "doc_id").collect()
    rows: list[tuple[Any, ...]] = []
    for r in found:
        action, text = d.action, None
        if d.action == "excise":
            text = excised(r["clean_text"] or "", set(r["ngrams"]), lengths, ctx.cfg.revise.excise_min_ratio)
            action = "excise" if text is not None else "drop"
        items = [(x["set"], x["item"], int(x["matched"])) for x in r["items"]]
        rows.append((r["doc_id"], action, text, list(r["sets"]), items))
    return ctx.stage(spark.createDataFrame(rows, RESULT_SCHEMA), f"{prefix}decont_result"), new, counts


def contamination_rows(out: DataFrame, run_id: str) -> DataFrame:
    """The `contamination` rows of documents with `decont_action` and `contamination` columns: one per matched item."""
    found = out.select("doc_id", "decont_action", F.explode("contamination").alias("m"))
    return found.select(
        "doc_id",
        "m.set",
        "m.item",
        "m.matched",
        F.col("decont_action").alias("action"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("found_at"),
    )


def with_result(df: DataFrame, result: DataFrame) -> DataFrame:
    """`df` with the decontamination columns from `match`'s rows (clean where it has none), and the excised
    `clean_text` of an excised document."""
    joined = df.join(result, "doc_id", "left")
    return (
        joined.withColumn("clean_text", F.coalesce(F.col("excised_text"), F.col("clean_text")))
        .withColumn("contaminated_sets", F.coalesce(F.col("contaminated_sets"), F.array().cast("array<string>")))
        .withColumn("contamination", F.coalesce(F.col("contamination"), F.array().cast(f"array<{MATCH}>")))
        .drop("excised_text")
    )


class Decontaminate(BaseStage):
    """Adds `decont_action` (null = clean; excise | drop | tag), `contaminated_sets` and `contamination` (the
    matched items: set, item, matched); replaces `clean_text` of an excised document. Returns the `contamination`
    rows and the new `benchmark_ngrams` rows."""

    name: ClassVar[str] = "decontaminate_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "clean_text", "quality_reasons", "is_duplicate")
    adds: ClassVar[tuple[str, ...]] = ("decont_action", "contaminated_sets", "contamination")

    def __init__(self) -> None:
        # per run id: the targets this run hashed (published with the run's tables) and the target counts; the
        # new rows cannot be derived from the stage's output, the only state a stage keeps between its calls
        self._built: dict[str, tuple[DataFrame | None, dict[str, int]]] = {}

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        spark, d = ctx.the_lake.spark, ctx.cfg.decontaminate
        self._built = {}  # one run at a time per process (the writer lock): drop the state of earlier runs
        off = not d.enabled or not d.sets
        result = spark.createDataFrame([], RESULT_SCHEMA) if off else self._match(df, ctx)
        return with_result(df, result)

    def _match(self, df: DataFrame, ctx: StageContext) -> DataFrame:
        live = df.where((F.size("quality_reasons") == 0) & ~F.coalesce(F.col("is_duplicate"), F.lit(False)))
        result, new, counts = match(live, ctx)
        self._built[ctx.run_id] = (new, counts)
        return result

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        new, _ = self._built.get(ctx.run_id, (None, {}))
        tables = {"contamination": contamination_rows(out, ctx.run_id)}
        return {**tables, "benchmark_ngrams": new} if new is not None else tables

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        limit = ctx.cfg.decontaminate.max_fraction

        def share(_ctx: StageContext, counts: Mapping[str, int]) -> list[gxe.Expectation]:
            # a batch this contaminated is a benchmark crawled wholesale, or a target set that matches ordinary text
            return [gxe.ExpectTableRowCountToBeBetween(min_value=0, max_value=int(limit * decided(counts)))]

        return (Gate("decontaminate", share, where="decont_action IS NOT NULL"),)

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        counts = dict(self._built.get(ctx.run_id, (None, {}))[1])
        hit = out.where(F.col("decont_action").isNotNull())
        for r in hit.groupBy("decont_action").count().collect():
            counts[f"decontaminate:{r['decont_action']}"] = int(r["count"])
        for r in hit.select(F.explode("contaminated_sets").alias("s")).groupBy("s").count().collect():
            counts[f"contaminated:{r['s']}"] = int(r["count"])
        counts["contaminated"] = hit.count()
        return counts

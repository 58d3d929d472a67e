"""Runs the stage transforms on one engine and writes the results as JSON (used by test_conformance.py).

A separate process per engine: PySpark dispatches `functions` on a process-wide Connect flag, so a classic
session and a Connect session cannot live in one interpreter.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from pyspark.sql import functions as F

from pipelines.core.config import DedupConfig, EngineConfig, IngestConfig, QualityConfig
from pipelines.core.constitution import load_constitution
from pipelines.core.engine import spark_session
from pipelines.stages import decide, dedup, ingest, quality


def run(spark, crawl: Path, prior_path: Path, out_dir: Path) -> dict[str, list[dict[str, object]]]:
    base_c = load_constitution()
    constitution = dataclasses.replace(
        base_c,
        principles=tuple(
            dataclasses.replace(p, retain_fraction=0.5) if p.name == "toxicity" else p for p in base_c.principles
        ),
    )
    parsed = ingest.parse_inputs(spark, ingest.list_inputs(crawl), IngestConfig(max_doc_bytes=20_000))
    raw = ingest.to_raw_docs(parsed, "2026-11-01", "run").drop("ingested_at")
    # quality: every rule set with its defaults, language id included (CLD3 in an Arrow UDF on both engines)
    q = quality.transform(raw.select("doc_id", "crawl_id", "text"), QualityConfig())
    # dedup: exact and MinHash-LSH (signatures UDF, band buckets, Jaccard verification, connected components)
    # against an earlier crawl that is in `dedup` and `minhash_index`, plus tonight's near duplicates of every
    # passing document (one word appended, a day later) so that near clusters form within the batch too
    ck = dedup.ParquetCheckpoint(spark, Path(out_dir) / "checkpoints")
    near_cfg = DedupConfig(verify=True)
    earlier = spark.read.parquet(str(prior_path))
    prior = dedup.transform(earlier, cfg=DedupConfig(fuzzy=False))
    bands = dedup.band_udf(dedup.params_of(near_cfg))(F.col("text"))
    index = ck(dedup.index_rows(prior.withColumn("bands", bands), near_cfg, "run-0"), "index")
    passing = ck(q.where(F.size("quality_reasons") == 0).select("doc_id", "crawl_id", "text"), "passing")
    echoes = passing.select(
        F.concat(F.lit("echo-"), "doc_id").alias("doc_id"),
        F.lit("2026-11-02").alias("crawl_id"),
        F.concat("text", F.lit(" Updated daily.")).alias("text"),
    )
    d = dedup.transform(passing.unionByName(echoes), prior, near_cfg, index=index, texts=earlier, checkpoint=ck)
    d = ck(d, "dedup")
    # stand-in scores derived from the text by a native hash, so both engines see identical inputs
    h = F.abs(F.xxhash64("text")) % 1000 / 1000.0
    ai = F.when(F.lower("text").contains("bread"), 0.8).otherwise(0.1)
    # the positive principle (weights): every other document by the same hash, so some kept ones are upweighted
    aligned = F.when(h < 0.5, 0.9).otherwise(0.2)
    scored = d.select("doc_id", F.array(h, F.lit(0.1), (h * 0.7 + 0.25), ai, aligned).alias("principle_scores"))
    base = (
        raw.select("doc_id", "text")
        .join(q.select("doc_id", "quality_reasons"), "doc_id")
        .join(d.select("doc_id", "is_duplicate", "dup_kind"), "doc_id", "left")
        .join(scored, "doc_id", "left")
        .withColumn("revision_status", F.lit(None).cast("string"))
        .withColumn("revised_text", F.lit(None).cast("string"))
    )
    decided = decide.transform(decide.principle_flags(base, constitution), constitution)

    def rows(df) -> list[dict[str, object]]:
        out = [r.asDict(recursive=True) for r in df.collect()]
        return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))

    return {
        "parsed": rows(parsed),
        "raw": rows(raw),
        "quality": rows(q.drop("text")),
        "dedup": rows(d.drop("text")),
        "decisions": rows(decided.select("doc_id", "action", "reasons", "stage", "tags", "weight")),
    }


def main(argv: list[str]) -> int:
    engine, crawl, prior, out = argv
    with spark_session(EngineConfig(kind=engine, parallelism=2, shuffle_partitions=2)) as spark:
        result = run(spark, Path(crawl), Path(prior), Path(out).parent / engine)
    Path(out).write_text(json.dumps(result, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

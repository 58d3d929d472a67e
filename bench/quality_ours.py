"""Our side of bench/quality_bench.py: the quality stage on embedded Sail over JSONL shards, one process.

Reads the shards, runs pipelines.stages.quality.transform with the default QualityConfig (or with language id off),
and writes the `quality` columns as Parquet - the counterpart of datatrove's executor reading JSONL, running the
filters and writing what it keeps. The caller times the whole process, start-up (imports, Sail) included.

Usage: python -m bench.quality_ours OUT_DIR SHARD... [--no-lang]
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> None:
    t0 = time.monotonic()
    no_lang = "--no-lang" in argv
    out, *shards = [a for a in argv if not a.startswith("--")]
    os.environ.setdefault("RUST_LOG", "error")
    from dataclasses import replace

    from pyspark.sql import functions as F

    from pipelines.core.config import EngineConfig, QualityConfig
    from pipelines.core.engine import spark_session
    from pipelines.stages import quality

    cfg = QualityConfig()
    if no_lang:
        cfg = replace(cfg, lang=replace(cfg.lang, model="none"))
    with spark_session(EngineConfig(kind="sail", shuffle_partitions=2)) as spark:
        started = time.monotonic() - t0
        docs = spark.read.json(shards).select(F.col("id").alias("doc_id"), "text")
        q = quality.transform(docs, cfg).drop("text")
        q.write.mode("overwrite").parquet(out)
        n = spark.read.parquet(out).count()
    print(json.dumps({"docs": n, "startup_s": round(started, 2), "seconds_in_process": time.monotonic() - t0}))


if __name__ == "__main__":
    main(sys.argv[1:])

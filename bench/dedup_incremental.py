"""Incremental near dedup: tonight's crawl against the indexed corpus, versus recomputing every crawl.

Why: a nightly run must cost what the new crawl costs, not what the corpus costs. crawl_dev has 3 nightly
crawls; the question is what deduplicating crawl 3 against crawls 1-2 (already in the `dedup` and
`minhash_index` Delta tables) costs compared with deduplicating all three from scratch, and whether both give
the same clusters.

What is timed is the dedup stage as pipelines/chains/run.py runs it - read `dedup` and `minhash_index`, transform
(exact + MinHash-LSH, intermediate results staged as Delta), stage the result, MERGE into `dedup`, append the
survivors' bands to `minhash_index` - on one embedded Sail session (default engine config, 2 cores):

- full: an empty lake, all three crawls in one batch;
- incremental: a lake that already holds crawls 1-2 (prepared untimed the same way), crawl 3 as the batch.

With `"verify": true` the texts of indexed documents are looked up in the three crawls' Parquet files, as
run.py looks them up in `raw_docs` (a scan of the corpus's text: the part of a verified run that grows with
the corpus).

Each is repeated `--repeat` times, alternating, on fresh lakes; the medians are reported with `uptime`.
Identical clusters: the final `dedup` tables (doc_id, cluster_id, is_duplicate, dup_kind) of both lakes are
compared row for row.

Usage: python bench/dedup_incremental.py [--work /tmp/curate-dedup-incr] [--repeat 3] [--cfg '{"verify": true}']
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from dedup_common import ROOT, DeltaCheckpoint, load_corpus, uptime

sys.path.insert(0, str(ROOT))

from pyspark.sql import functions as F

from pipelines.core.config import DedupConfig, EngineConfig
from pipelines.core.engine import spark_session
from pipelines.core.lake import Lake
from pipelines.stages import dedup


def dedup_stage(lake: Lake, batch, texts, cfg: DedupConfig, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """The dedup block and dedup publish lines of pipelines/chains/run.py, nothing else (`texts` plays `raw_docs`)."""
    stage = DeltaCheckpoint(lake.spark, lake.state_dir / "staging" / run_id)
    d = dedup.transform(
        batch,
        lake.read("dedup"),
        cfg,
        index=lake.read("minhash_index") if cfg.fuzzy else None,
        texts=texts.select("doc_id", "text") if cfg.verify else None,
        checkpoint=stage,
    )
    d = stage(d, "dedup")
    lake.merge(d.withColumn("run_id", F.lit(run_id)), "dedup", ("doc_id",))
    lake.merge(dedup.index_rows(d, cfg, run_id), "minhash_index", ("doc_id", "band"), update=False)
    shutil.rmtree(lake.state_dir / "staging" / run_id, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/curate-dedup-incr"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cfg", default="{}")
    args = ap.parse_args()
    cfg = DedupConfig(**json.loads(args.cfg))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    docs = load_corpus()
    crawls = sorted({d.crawl for d in docs})
    import pyarrow as pa
    import pyarrow.parquet as pq

    for c in crawls:
        part = [d for d in docs if d.crawl == c]
        table = pa.table({"doc_id": [d.id for d in part], "crawl_id": [c] * len(part), "text": [d.text for d in part]})
        pq.write_table(table, args.work / f"{c}.parquet")
    print(f"crawls: {', '.join(f'{c} ({sum(d.crawl == c for d in docs)})' for c in crawls)}", flush=True)

    full_s, incr_s, clusters = [], [], {}
    load = [uptime()]
    with spark_session(EngineConfig()) as spark:

        def read(names: list[str]):  # type: ignore[no-untyped-def]
            return spark.read.parquet(*[str(args.work / f"{c}.parquet") for c in names])

        for rep in range(args.repeat):
            full = Lake(args.work / f"full-{rep}", spark)
            t = time.perf_counter()
            dedup_stage(full, read(crawls), read(crawls), cfg, "full")
            full_s.append(time.perf_counter() - t)

            incr = Lake(args.work / f"incr-{rep}", spark)
            dedup_stage(incr, read(crawls[:-1]), read(crawls[:-1]), cfg, "setup")
            t = time.perf_counter()
            dedup_stage(incr, read(crawls[-1:]), read(crawls), cfg, "tonight")
            incr_s.append(time.perf_counter() - t)
            print(f"round {rep}: full {full_s[-1]:.1f}s, incremental {incr_s[-1]:.1f}s", flush=True)
            for name, lake in (("full", full), ("incremental", incr)):
                rows = lake.read("dedup").select("doc_id", "cluster_id", "is_duplicate", "dup_kind").collect()
                clusters.setdefault(name, []).append({tuple(r) for r in rows})
        index_rows = Lake(args.work / "incr-0", spark).read("minhash_index").count()
    load.append(uptime())

    same = all(c == clusters["full"][0] for runs in clusters.values() for c in runs)
    f, i = statistics.median(full_s), statistics.median(incr_s)
    near = sum(1 for r in clusters["full"][0] if r[3] == "near_duplicate")
    exact = sum(1 for r in clusters["full"][0] if r[3] == "exact_duplicate")
    print(f"\nload before: {load[0]}\nload after:  {load[1]}\nconfig: {cfg}\n")
    print("| path | median s | runs (s) |")
    print("|---|---|---|")
    print(f"| full: crawls 1-3 from scratch | {f:.1f} | {', '.join(f'{x:.1f}' for x in full_s)} |")
    print(f"| incremental: crawl 3 against 1-2 | {i:.1f} | {', '.join(f'{x:.1f}' for x in incr_s)} |")
    print(f"\nincremental / full = {i / f:.0%}; identical final clusters: {same} ({len(clusters['full'][0])} docs, ")
    print(f"{exact} exact and {near} near duplicates); minhash_index rows after crawl 3: {index_rows}")


if __name__ == "__main__":
    main()

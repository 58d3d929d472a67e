"""Run datatrove 0.10.1's MinHash dedup (its 4 stages) on JSONL shards; write every document's cluster.

Runs in datatrove's own venv (`datatrove==0.10.1 spacy orjson regex tokenizers "xxhash<4"`), started by
bench/dedup_vs_datatrove.py. Parameters as FineWeb: 5-gram shingles, 14 buckets x 8 hashes, 64-bit hashes.
Parallelism: one task per shard for signatures and filtering, one per bucket for the bucket stage, on
`--workers` processes. Output: JSONL `{"id", "cluster", "removed"}` (cluster -1 = no duplicate).

Usage: python bench/dedup_datatrove.py --shards DIR --work DIR --out FILE [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--buckets", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    args = ap.parse_args()
    tasks = len(list(args.shards.glob("*.jsonl.gz")))
    cfg = MinhashConfig(
        n_grams=args.ngram,
        num_buckets=args.buckets,
        hashes_per_bucket=args.rows,
        hash_config=HashConfig(precision=64),
    )
    w = args.work
    reader = JsonlReader(str(args.shards), glob_pattern="*.jsonl.gz")
    stages = {
        "signatures": LocalPipelineExecutor(
            pipeline=[reader, MinhashDedupSignature(output_folder=str(w / "sigs"), config=cfg, language="en")],
            tasks=tasks,
            workers=args.workers,
            logging_dir=str(w / "logs/sigs"),
        ),
        "buckets": LocalPipelineExecutor(
            pipeline=[MinhashDedupBuckets(input_folder=str(w / "sigs"), output_folder=str(w / "buckets"), config=cfg)],
            tasks=cfg.num_buckets,
            workers=args.workers,
            logging_dir=str(w / "logs/buckets"),
        ),
        "cluster": LocalPipelineExecutor(
            pipeline=[
                MinhashDedupCluster(
                    input_folder=str(w / "buckets"), output_folder=str(w / "remove"), config=cfg, save_cluster_id=True
                )
            ],
            tasks=1,
            logging_dir=str(w / "logs/cluster"),
        ),
        "filter": LocalPipelineExecutor(
            pipeline=[
                JsonlReader(str(args.shards), glob_pattern="*.jsonl.gz"),
                MinhashDedupFilter(
                    input_folder=str(w / "remove"),
                    exclusion_writer=JsonlWriter(str(w / "removed")),
                    load_cluster_ids=True,
                ),
                JsonlWriter(str(w / "kept")),
            ],
            tasks=tasks,
            workers=args.workers,
            logging_dir=str(w / "logs/filter"),
        ),
    }
    seconds = {}
    for name, executor in stages.items():
        t = time.perf_counter()
        executor.run()
        seconds[name] = time.perf_counter() - t
    import gzip

    with args.out.open("w") as out:
        for kind in ("kept", "removed"):
            for path in sorted((w / kind).glob("*.jsonl.gz")):
                with gzip.open(path, "rt") as f:
                    for line in f:
                        d = json.loads(line)
                        cluster = d["metadata"].get("minhash_cluster_id", -1)
                        out.write(json.dumps({"id": d["id"], "cluster": cluster, "removed": kind == "removed"}) + "\n")
    (args.out.with_suffix(".seconds.json")).write_text(json.dumps(seconds))


if __name__ == "__main__":
    main()

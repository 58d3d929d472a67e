"""Dedup at 10x crawl_dev: a generated corpus with a fixed seed, then the stage's wall time and peak memory.

Why: fuzzy dedup is where peers run out of memory. This measures the whole dedup stage (exact + MinHash-LSH +
connected components, embedded Sail, default engine config) on a corpus ten times crawl_dev, in a child
process whose peak resident memory (`/usr/bin/time`: engine, UDF threads and driver - Sail runs in-process)
is the number reported.

The corpus: `--factor` x 68,135 documents, each a copy of a random crawl_dev document (seed `--seed`): 10%
verbatim, the rest with a light edit - a rate drawn uniformly from 0-10% of the words dropped, replaced by a
word of the same document or swapped with a neighbour - under a new id, spread over the 3 crawl dates. So most
documents have ~10 near duplicates: heavier LSH buckets and larger clusters than the real crawl. Written as
zstd Parquet in row groups, never held in memory at once.

Usage: python bench/dedup_scale.py [--factor 10] [--seed 7] [--work /tmp/curate-dedup-scale] [--cfg '{}']
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

from dedup_common import ROOT, load_corpus, timed, uptime

sys.path.insert(0, str(ROOT))

from pipelines.core.config import DedupConfig


def light_edit(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    for _ in range(round(len(out) * rate)):
        if len(out) < 2:
            break
        i = rng.randrange(len(out))
        op = rng.random()
        if op < 1 / 3:
            del out[i]
        elif op < 2 / 3:
            out[i] = rng.choice(words)
        else:
            j = min(i + 1, len(out) - 1)
            out[i], out[j] = out[j], out[i]
    return out


def generate(folder: Path, factor: int, seed: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = load_corpus()
    crawls = sorted({d.crawl for d in docs})
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total, chunk = factor * len(docs), 50_000
    # src: the crawl_dev document a copy came from (ground truth for the quality estimate; the stage never reads it)
    schema = pa.schema([("doc_id", pa.string()), ("crawl_id", pa.string()), ("text", pa.string()), ("src", pa.int64())])
    with pq.ParquetWriter(folder / "corpus.parquet", schema, compression="zstd") as w:
        for start in range(0, total, chunk):
            ids, cr, texts, srcs = [], [], [], []
            for n in range(start, min(start + chunk, total)):
                k = rng.randrange(len(docs))
                src = docs[k]
                srcs.append(k)
                text = src.text
                if rng.random() >= 0.1:
                    text = " ".join(light_edit(text.split(), rng.uniform(0.0, 0.1), rng))
                ids.append(f"g{seed}-{n:08d}")
                cr.append(crawls[n % len(crawls)])
                texts.append(text or src.text)
            w.write_table(pa.table({"doc_id": ids, "crawl_id": cr, "text": texts, "src": srcs}, schema=schema))
    return total


def job(args: argparse.Namespace) -> None:
    """Child process: read the Parquet corpus, run the stage, write the clusters."""

    from dedup_common import DeltaCheckpoint

    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session
    from pipelines.stages import dedup

    cfg = DedupConfig(**json.loads(args.cfg))
    shutil.rmtree(args.work / "run", ignore_errors=True)
    t = time.perf_counter()
    with spark_session(EngineConfig()) as spark:
        batch = spark.read.parquet(str(args.work / "corpus" / "corpus.parquet")).drop("src")
        d = dedup.transform(batch, None, cfg, checkpoint=DeltaCheckpoint(spark, args.work / "run" / "checkpoints"))
        out = d.select("doc_id", "cluster_id", "is_duplicate", "dup_kind")
        out.write.mode("overwrite").parquet(str(args.work / "run" / "clusters"))
        counts = {r["dup_kind"]: r["count"] for r in out.groupBy("dup_kind").count().collect()}
    (args.work / "run" / "summary.json").write_text(json.dumps({"seconds": time.perf_counter() - t, "counts": counts}))


def shingle_set(text: str, kind: str) -> set[str]:
    if kind == "char":
        t = " ".join(text.split())
        return {t[i : i + 5] for i in range(max(1, len(t) - 4))}
    w = text.split()
    return {" ".join(w[i : i + 5]) for i in range(max(1, len(w) - 4))}


def jaccard(a: str, b: str, kind: str) -> float:
    x, y = shingle_set(a, kind), shingle_set(b, kind)
    return len(x & y) / max(1, len(x | y))


def quality(work: Path, sample: int, seed: int = 0) -> dict[str, float]:
    """Removal precision and pair recall against the generator's ground truth, on seeded samples.

    A removed near duplicate is correct when it and its cluster's representative are copies of one crawl_dev
    document, or when the two texts are near duplicates by either yardstick (word 5-gram or char 5-gram Jaccard
    >= 0.7: crawl_dev has natural near duplicates across its own documents). Recall: two random copies of one
    crawl_dev document (each with up to 10% of its words edited) end in one cluster.
    """
    import pandas as pd

    corpus = pd.read_parquet(work / "corpus" / "corpus.parquet").set_index("doc_id")
    clusters = pd.read_parquet(work / "run" / "clusters").set_index("doc_id")
    df = corpus.join(clusters, how="inner")
    rng = random.Random(seed)
    near = df[df["dup_kind"] == "near_duplicate"]
    picks = rng.sample(range(len(near)), min(sample, len(near)))
    same_src = similar = 0
    for i in picks:
        row = near.iloc[i]
        rep = df.loc[row["cluster_id"]]
        if rep["src"] == row["src"]:
            same_src += 1
        elif max(jaccard(row["text"], rep["text"], "word"), jaccard(row["text"], rep["text"], "char")) >= 0.7:
            similar += 1
    groups = df.groupby("src").indices
    multi = [g for g in groups.values() if len(g) >= 2]
    hits = 0
    for _ in range(sample):
        g = multi[rng.randrange(len(multi))]
        a, b = rng.sample(list(g), 2)
        hits += df["cluster_id"].iat[a] == df["cluster_id"].iat[b]
    n = max(1, len(picks))
    return {
        "removal_precision": (same_src + similar) / n,
        "removal_same_source": same_src / n,
        "n_removed_sampled": len(picks),
        "pair_recall": hits / sample,
        "n_pairs": sample,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("job", nargs="?", default="bench", choices=["bench", "job"])
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=Path("/tmp/curate-dedup-scale"))
    ap.add_argument("--cfg", default="{}")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--sample", type=int, default=2000, help="removed documents and pairs sampled for quality")
    args = ap.parse_args()
    if args.job == "job":
        job(args)
        return
    corpus = args.work / "corpus"
    if args.regenerate or not (corpus / "corpus.parquet").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        t = time.perf_counter()
        n = generate(corpus, args.factor, args.seed)
        size = (corpus / "corpus.parquet").stat().st_size / 1e6
        print(f"generated {n} documents ({size:.0f} MB zstd Parquet) in {time.perf_counter() - t:.0f}s", flush=True)
    before = uptime()
    wall, rss = timed([sys.executable, __file__, "job", "--work", str(args.work), "--cfg", args.cfg])
    after = uptime()
    summary = json.loads((args.work / "run" / "summary.json").read_text())
    print(f"\nload before: {before}\nload after:  {after}\nconfig: {DedupConfig(**json.loads(args.cfg))}\n")
    print("| corpus | documents | wall s (process) | stage s | peak RSS MB | exact dups | near dups |")
    print("|---|---|---|---|---|---|---|")
    c = summary["counts"]
    print(
        f"| {args.factor}x crawl_dev (seed {args.seed}) | {sum(c.values())} | {wall:.0f} | {summary['seconds']:.0f} | "
        f"{rss:.0f} | {c.get('exact_duplicate', 0)} | {c.get('near_duplicate', 0)} |"
    )
    q = quality(args.work, args.sample)
    print(
        f"\nremoval precision {q['removal_precision']:.3f} (same source {q['removal_same_source']:.3f}; "
        f"n={q['n_removed_sampled']}), pair recall {q['pair_recall']:.3f} (n={q['n_pairs']})"
    )
    (args.work / "run" / "quality.json").write_text(json.dumps({**summary, **q, "wall_s": wall, "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()

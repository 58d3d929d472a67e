"""Shared pieces of the dedup benchmarks: the corpus, shards, our run, and the evaluation.

The evaluation is exact and engine-free (numpy over the shingle sets of `udfs/minhash.py`):

- injected recall: a pair of crawl_dev.near_dups.jsonl is found when the near duplicate lands in the same
  cluster as a document with the original's url (urls repeat across crawls);
- true pairs: (q, x) with Jaccard(shingles(q), shingles(x)) >= t, for q in a random sample of documents and x
  anywhere in the corpus (found through an inverted index of shingles, so every pair sharing a shingle is
  scored); predicted pairs: x in q's cluster. Precision and recall are over those pairs;
- removal precision: the share of removed documents whose Jaccard with their cluster's kept document is >= t.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from udfs import minhash  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CORPUS = DATA / "crawl_dev.jsonl.gz"
NEAR_DUPS = DATA / "crawl_dev.near_dups.jsonl"


@dataclass
class Doc:
    id: str
    url: str
    crawl: str
    text: str


def corpus_absent() -> bool:
    """True, after saying so, when crawl_dev is not beside the checkout (benchmark data lives only on dev machines)."""
    if CORPUS.is_file():
        return False
    print(f"skipped: {CORPUS} is absent (benchmark data lives only on dev machines)")
    return True


def load_corpus(path: Path = CORPUS) -> list[Doc]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [Doc(r["id"], r["url"], r["crawl_date"], r["text"]) for r in rows]


def write_shards(docs: list[Doc], folder: Path, n: int) -> list[Path]:
    """`n` JSONL.gz shards (datatrove parallelises over files), round-robin, ids and order kept."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"shard-{i:02d}.jsonl.gz" for i in range(n)]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(gzip.open(p, "wt", encoding="utf-8", compresslevel=1)) for p in paths]
        for i, d in enumerate(docs):
            files[i % n].write(json.dumps({"id": d.id, "text": d.text, "url": d.url, "crawl_date": d.crawl}) + "\n")
    return paths


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a child process; (wall seconds, its peak RSS in MB via /usr/bin/time)."""
    t = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "__maxrss_kb=%M", *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    rss = [line for line in proc.stderr.splitlines() if line.startswith("__maxrss_kb=")]
    return wall, int(rss[-1].split("=")[1]) / 1024 if rss else float("nan")


# ---- our run (imported by the job scripts that run in a child process) -------------------------------------


def run_ours(shards: Path, cfg: object, out: Path, work: Path) -> dict[str, float]:
    """Read the shards with Spark, deduplicate, write (doc_id, cluster_id, is_duplicate, dup_kind) as Parquet."""
    from pyspark.sql import functions as F

    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session
    from pipelines.stages import dedup

    t0 = time.perf_counter()
    with spark_session(EngineConfig()) as spark:
        t1 = time.perf_counter()
        ck = DeltaCheckpoint(spark, work / "checkpoints")
        raw = spark.read.json(str(shards))
        batch = raw.select(F.col("id").alias("doc_id"), F.col("crawl_date").alias("crawl_id"), "text")
        d = dedup.transform(batch, None, cfg, checkpoint=ck)  # type: ignore[arg-type]
        d.select("doc_id", "crawl_id", "cluster_id", "is_duplicate", "dup_kind").write.mode("overwrite").parquet(
            str(out)
        )
        t2 = time.perf_counter()
    return {"engine_start_s": t1 - t0, "dedup_s": t2 - t1}


class DeltaCheckpoint:
    """What pipelines/chains/run.py's stager does: write Delta under the run's staging folder and read it back."""

    def __init__(self, spark: object, root: Path) -> None:
        self.spark, self.root = spark, root

    def __call__(self, df: object, name: str) -> object:
        path = str(self.root / name)
        df.write.format("delta").mode("overwrite").save(path)  # type: ignore[attr-defined]
        return self.spark.read.format("delta").load(path)  # type: ignore[attr-defined]


def read_clusters(path: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["doc_id", "cluster_id"]).to_pydict()
    return dict(zip(t["doc_id"], t["cluster_id"], strict=True))


# ---- evaluation -----------------------------------------------------------------------------------------


def injected_recall(docs: list[Doc], cluster: dict[str, str]) -> dict[str, float]:
    by_url: dict[str, list[str]] = defaultdict(list)
    for d in docs:
        by_url[d.url].append(d.id)
    found: dict[float, list[bool]] = defaultdict(list)
    with NEAR_DUPS.open() as f:
        for line in f:
            p = json.loads(line)
            originals = {cluster[i] for i in by_url[p["original_url"]]}
            near = [cluster[i] for i in by_url[p["near_dup_url"]]]
            found[p["edit_rate"]].append(any(c in originals for c in near))
    out = {f"edit_{k:.2f}": float(np.mean(v)) for k, v in sorted(found.items())}
    out["all"] = float(np.mean([x for v in found.values() for x in v]))
    out["pairs"] = sum(len(v) for v in found.values())
    return out


class ShingleIndex:
    """Distinct shingle hashes of every document, and an inverted index (shingle -> documents)."""

    def __init__(self, docs: list[Doc], params: minhash.MinHashParams) -> None:
        self.ids = [d.id for d in docs]
        self.pos = {d.id: i for i, d in enumerate(docs)}
        sets: list[np.ndarray] = []
        step = 2000
        for s in range(0, len(docs), step):
            h, per = minhash.shingle_hashes([d.text for d in docs[s : s + step]], params)
            # the hashes themselves, sorted per document: chunk-local integer codes (pandas.factorize) neither
            # compare across chunks nor suit `similar`'s binary searches (they gave precision/recall 0.000)
            sets.extend(np.unique(x) for x in np.split(h, np.cumsum(per)[:-1]))
        self.sets = sets
        self.sizes = sizes = np.array([len(x) for x in sets], np.int64)
        flat = np.concatenate(sets)
        owner = np.repeat(np.arange(len(docs)), sizes)
        order = np.argsort(flat, kind="stable")
        self.keys, self.owner = flat[order], owner[order]
        self.vocab, self.freq = np.unique(self.keys, return_counts=True)

    def similar(self, i: int, threshold: float) -> np.ndarray:
        """Every document x != i with Jaccard(i, x) >= threshold, exactly.

        Prefix filter (Chaudhuri et al. 2006): J >= t implies |q & x| >= t|q|, so x shares at least one of any
        |q| - ceil(t|q|) + 1 shingles of q; taking q's rarest ones keeps the candidates few. The candidates'
        Jaccard is then computed from their full shingle sets.
        """
        q = self.sets[i]
        if len(q) == 0:
            return np.zeros(0, np.int64)
        need = int(np.ceil(threshold * len(q) - 1e-9))
        rare = q[np.argsort(self.freq[np.searchsorted(self.vocab, q)], kind="stable")[: len(q) - need + 1]]
        lo, hi = np.searchsorted(self.keys, rare, "left"), np.searchsorted(self.keys, rare, "right")
        cand = np.unique(np.concatenate([self.owner[a:b] for a, b in zip(lo, hi, strict=True)]))
        lens = self.sizes[cand]
        # size filter: J >= t needs t|q| <= |x| <= |q|/t
        cand = cand[(cand != i) & (lens >= threshold * len(q) - 1e-9) & (lens * threshold <= len(q) + 1e-9)]
        if len(cand) == 0:
            return cand
        lens = self.sizes[cand]
        members = np.concatenate([self.sets[c] for c in cand])
        at = np.minimum(np.searchsorted(q, members), len(q) - 1)
        hits = (q[at] == members).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        inter = np.add.reduceat(hits, starts) if len(members) else np.zeros(len(cand), np.int64)
        inter = np.where(lens > 0, inter, 0)
        jac = inter / (len(q) + lens - inter)
        return cand[jac >= threshold - 1e-12]

    def jaccard_pair(self, a: str, b: str) -> float:
        x, y = self.sets[self.pos[a]], self.sets[self.pos[b]]
        if len(x) == 0 or len(y) == 0:
            return 0.0
        inter = len(np.intersect1d(x, y, assume_unique=True))
        return inter / (len(x) + len(y) - inter)


def pair_metrics(
    index: ShingleIndex, cluster: dict[str, str], threshold: float, sample: int, seed: int = 0
) -> dict[str, float]:
    members: dict[str, list[int]] = defaultdict(list)
    for i, doc_id in enumerate(index.ids):
        members[cluster[doc_id]].append(i)
    rng = random.Random(seed)
    chosen = rng.sample(range(len(index.ids)), sample)
    tp = fp = fn = 0
    for i in chosen:
        if index.sizes[i] == 0:
            continue
        true = set(index.similar(i, threshold).tolist())
        pred = set(members[cluster[index.ids[i]]]) - {i}
        tp += len(true & pred)
        fp += len(pred - true)
        fn += len(true - pred)
    return {
        "sample": sample,
        "true_pairs": tp + fn,
        "predicted_pairs": tp + fp,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
    }


def removal_precision(index: ShingleIndex, cluster: dict[str, str], kept: dict[str, str], threshold: float) -> float:
    """Share of removed documents whose Jaccard with the kept document of their cluster is >= threshold."""
    scores = [index.jaccard_pair(d, kept[c]) for d, c in cluster.items() if kept.get(c, d) != d]
    return float(np.mean(np.array(scores) >= threshold)) if scores else 1.0


def evaluate(
    docs: list[Doc], cluster: dict[str, str], kept: dict[str, str], index: ShingleIndex, threshold: float, sample: int
) -> dict[str, object]:
    removed = sum(1 for d, c in cluster.items() if kept.get(c, d) != d)
    return {
        "removed": removed,
        "injected_recall": injected_recall(docs, cluster),
        "pairs": pair_metrics(index, cluster, threshold, sample),
        "removal_precision": removal_precision(index, cluster, kept, threshold),
    }


def iter_jsonl(path: Path) -> Iterator[dict[str, object]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for line in f:
            yield json.loads(line)

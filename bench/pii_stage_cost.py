"""What the pii stage costs a night: its seconds over crawl_dev resampled to `--docs` documents, on the frame it
sees in the chain (the quality stage's `clean_text` and `quality_reasons`), output materialised as the executor
does. Before/after comparisons run this same file against two checkouts, one at a time (issue 23: the stage redacts
only the documents the quality rules keep).

    PYTHONPATH=. .venv/bin/python bench/pii_stage_cost.py [--docs 100000] [--input /tmp/pii-cost-100000.parquet]

The quality-scored input is computed once and kept at `--input` (the quality stage's cost is not the pii stage's);
a later run with the same path reads it. ROOT is this file's checkout, so a copy of the file in another checkout
times that checkout's stage.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dedup_common import corpus_absent, load_corpus  # noqa: E402


def prepare(n_docs: int, path: Path) -> None:
    """crawl_dev resampled to `n_docs` (as bench/pii_vs_datatrove.py), through the quality stage's transform."""
    import pandas as pd
    from pyspark.sql import functions as F

    from pipelines.core.config import EngineConfig, load_config
    from pipelines.core.engine import spark_session
    from pipelines.stages import quality

    rng = random.Random(5)
    docs = load_corpus()
    texts = [d.text for d in docs]
    while len(texts) < n_docs:
        texts.append(rng.choice(docs).text)
    cfg = load_config().quality
    with tempfile.TemporaryDirectory(prefix="pii-cost-") as tmp, spark_session(EngineConfig(kind="sail")) as spark:
        raw = Path(tmp) / "raw.parquet"
        pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "text": texts[:n_docs]}).to_parquet(raw)
        scored = quality.transform(spark.read.parquet(str(raw)), cfg)
        out = scored.select(
            "doc_id",
            quality.text_for_later_stages(cfg).alias("clean_text"),
            "quality_reasons",
            F.col("clean_text").alias(quality.C4_OUTPUT),
        )
        t0 = time.monotonic()
        out.toPandas().to_parquet(path)
        print(f"prepared {n_docs} documents in {time.monotonic() - t0:.0f} s -> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--input", type=Path, default=None)
    args = ap.parse_args()
    if corpus_absent():
        return
    path = args.input or Path(tempfile.gettempdir()) / f"pii-cost-{args.docs}.parquet"
    if not path.is_file():
        prepare(args.docs, path)
    from pyspark.sql import functions as F

    from pipelines.core.config import EngineConfig, load_config
    from pipelines.core.constitution import load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.stage import StageContext
    from pipelines.stages.pii import Pii

    ctx = StageContext(cfg=load_config(), constitution=load_constitution(), run_id="b", crawl_id="b")
    with tempfile.TemporaryDirectory(prefix="pii-cost-") as tmp, spark_session(EngineConfig(kind="sail")) as spark:
        df = spark.read.parquet(str(path))
        n = df.count()
        kept = df.where(F.size("quality_reasons") == 0).count()
        print(f"{Pii.name} from {ROOT}: {n} documents, {kept} without a quality reason; load {os.getloadavg()}")
        t0 = time.monotonic()
        Pii().transform(df, ctx).write.format("delta").save(str(Path(tmp) / "out"))  # materialised, as the executor
        secs = time.monotonic() - t0
        staged = spark.read.format("delta").load(str(Path(tmp) / "out"))
        found = staged.where(F.size("pii_kinds") > 0).count()
        print(f"pii stage: {secs:.1f} s, {n / secs:,.0f} docs/s; {found} documents with personal data found")
        print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()

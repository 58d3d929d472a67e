"""PII redaction: precision and recall per kind on the labelled set, against datatrove 0.10.1's `PIIFormatter` on the
kinds it covers (email, IPv4), and the pii stage's docs/s on the engine (issue 23).

Scoring is per document and the same for both tools, from their output text only: a planted value counts as found
when it is gone from the output (and, for ours, the finding has the planted kind); a hard-negative document counts
as a false positive of a kind when the tool changed it (ours: the kinds it reported; datatrove: its email or IP
replacement appears). The labelled set is tests/data/pii_labelled.jsonl.gz (bench/pii_labelled.py).

    PYTHONPATH=. .venv/bin/python bench/pii_vs_datatrove.py [--docs 100000]

`--docs`: documents for the speed run, crawl_dev resampled with new ids up to that many (skipped without
../shared/data). datatrove runs in its own venv (/tmp/dtvenv, DATATROVE_PYTHON).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dedup_common import corpus_absent, load_corpus  # noqa: E402
from udfs import pii  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "pii_labelled.jsonl.gz"
DT_PYTHON = Path(os.environ.get("DATATROVE_PYTHON", "/tmp/dtvenv/bin/python"))
# datatrove's default IP replacements (PIIFormatter.ip_replacement)
DT_IPS = ("22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206", "220.127.116.11", "18.104.22.168")
DT_SCRIPT = """
import json, sys
from datatrove.pipeline.formatters import PIIFormatter
f = PIIFormatter()
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for r in rows:
        out.write(json.dumps(f.format(r["text"])) + "\\n")
"""


def score(rows: list[dict], outputs: list[str], kinds_of: list[list[str]], covered: tuple[str, ...]) -> dict:
    tp, fn, fp = Counter(), Counter(), Counter()
    fp_by_negative: Counter = Counter()
    for r, out, kinds in zip(rows, outputs, kinds_of, strict=True):
        if r["label"].startswith("neg:"):
            for k in set(kinds):
                fp[k] += 1
                fp_by_negative[(r["label"], k)] += 1
            continue
        if r["label"] not in covered:
            continue
        (tp if r["value"] not in out and r["label"] in kinds else fn)[r["label"]] += 1
        fp.update(k for k in set(kinds) if k != r["label"])
    table = {}
    for k in covered:
        table[k] = {
            "precision": tp[k] / max(1, tp[k] + fp[k]),
            "recall": tp[k] / max(1, tp[k] + fn[k]),
            "tp": tp[k],
            "fn": fn[k],
            "fp": fp[k],
        }
    return {"per_kind": table, "fp_by_negative": {f"{a}->{b}": n for (a, b), n in fp_by_negative.items()}}


def labelled() -> None:
    with gzip.open(LABELLED, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    t0 = time.monotonic()
    ours = [pii.redact(r["text"]) for r in rows]
    secs = time.monotonic() - t0
    print(f"labelled set: {len(rows)} records; ours {len(rows) / secs:,.0f} docs/s (one core, pure Python)")
    mine = score(rows, [o for o, _ in ours], [[k for k, _, _ in f] for _, f in ours], pii.KINDS)
    print("ours:", json.dumps(mine, indent=1))
    if not DT_PYTHON.is_file():
        print(f"datatrove skipped: {DT_PYTHON} absent")
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        subprocess.run([str(DT_PYTHON), "-c", DT_SCRIPT, str(src), str(dst)], check=True)
        outs = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    kinds = []
    for r, out in zip(rows, outs, strict=True):
        k = []
        if out != r["text"]:
            if "@example." in out and "@example." not in r["text"]:
                k.append("email")
            if any(ip in out and ip not in r["text"] for ip in DT_IPS):
                k.append("ip")
        kinds.append(k)
    theirs = score(rows, outs, kinds, ("email", "ip"))
    print("datatrove PIIFormatter:", json.dumps(theirs, indent=1))
    ip_rows = [r for r in rows if r["label"] == "ip"]
    v4 = [i for i, r in enumerate(rows) if r["label"] == "ip" and ":" not in r["value"]]
    found_v4 = sum(rows[i]["value"] not in outs[i] for i in v4)
    print(f"datatrove on IPv4 only: {found_v4}/{len(v4)} (of {len(ip_rows)} ip values, the rest IPv6)")


def speed(n_docs: int) -> None:
    if corpus_absent():
        return
    from pyspark.sql import functions as F

    from pipelines.core.config import EngineConfig, load_config
    from pipelines.core.constitution import load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.stage import StageContext
    from pipelines.stages.pii import Pii

    rng = random.Random(5)
    docs = load_corpus()
    texts = [d.text for d in docs]
    while len(texts) < n_docs:
        texts.append(rng.choice(docs).text)
    texts = texts[:n_docs]
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="pii-bench-") as tmp:
        path = Path(tmp) / "docs.parquet"
        pd.DataFrame({"doc_id": [f"d{i}" for i in range(len(texts))], "clean_text": texts}).to_parquet(path)
        ctx = StageContext(cfg=load_config(), constitution=load_constitution(), run_id="b", crawl_id="b")
        with spark_session(EngineConfig(kind="sail")) as spark:
            # every document as if it had passed the quality rules: the redaction's own speed on every text (the
            # stage in a night scans only those; bench/pii_stage_cost.py measures that)
            df = spark.read.parquet(str(path)).withColumn("quality_reasons", F.array().cast("array<string>"))
            print(f"speed: {len(texts)} documents, load average before {os.getloadavg()}")
            t0 = time.monotonic()
            out = Pii().transform(df, ctx)
            out.write.format("delta").save(str(Path(tmp) / "out"))  # materialised, as the executor does
            secs = time.monotonic() - t0
            staged = spark.read.format("delta").load(str(Path(tmp) / "out"))
            found = staged.where(F.size("pii_kinds") > 0).count()
            per_kind = staged.select(F.explode("pii_kinds").alias("k")).groupBy("k").count().collect()
            print(f"pii stage: {secs:.1f} s, {len(texts) / secs:,.0f} docs/s; load average after {os.getloadavg()}")
            kinds = sorted((r["k"], r["count"]) for r in per_kind)
            print(f"documents with personal data: {found}; values per kind {kinds}")
            sample = staged.where(F.size("pii_kinds") > 0).select("clean_text", "pii_kinds").limit(400)
            rows = sample.collect()
            marks = tuple(pii.PLACEHOLDERS.values())
            for r in random.Random(1).sample(rows, min(12, len(rows))):
                text = r["clean_text"]
                at = min((i for m in marks if (i := text.find(m)) >= 0), default=0)
                print(f"  {r['pii_kinds']} ... {text[max(0, at - 80) : at + 60]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    labelled()
    if args.docs:
        speed(args.docs)


if __name__ == "__main__":
    main()

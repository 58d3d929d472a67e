"""Speed of the scoring UDF against a plain `transformers.pipeline("text-classification")` loop.

Same documents, same model: an encoder-kind champion (frozen MiniLM + logistic head) is distilled from
exemplar labels in a scratch lake, then

- `udf`: `classify.transform` on Sail (iterator pandas UDF, model loaded once per worker, length-sorted
  batches), timed warm (a first small run loads the model) and cold;
- `pipeline loop`: the same weights wrapped as a transformers sequence-classification model (mean pooling,
  L2 norm, the head) called once per document in a Python loop, as a plain script would;
- `pipeline batched`: the same pipeline given the whole list with batch_size 32.

Scores of the three agree (max abs difference printed). Documents come from ../shared/data/crawl_dev.jsonl.gz
when present, else from the demo crawl built from packaged text.

    .venv/bin/python bench/classifier_speed.py [--n 1000] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CRAWL = ROOT.parent / "shared" / "data" / "crawl_dev.jsonl.gz"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_docs(n: int, scratch: Path) -> list[str]:
    texts: list[str] = []
    if CRAWL.is_file():
        with gzip.open(CRAWL, "rt", encoding="utf-8") as f:
            for line in f:
                t = json.loads(line).get("text")
                if isinstance(t, str) and t.strip():
                    texts.append(t)
                if len(texts) >= 20 * n:
                    break
    else:
        from pipelines.ops.demo import build_demo_crawls

        for path in build_demo_crawls(scratch / "demo-input"):
            opener = gzip.open if str(path).endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
                for line in f:
                    try:
                        t = json.loads(line).get("text")
                    except ValueError:
                        continue
                    if isinstance(t, str) and t.strip():
                        texts.append(t)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(texts), min(n, len(texts)), replace=False)
    return [texts[i] for i in sorted(pick)]


def pipeline_model(head_coef: np.ndarray, head_bias: float) -> object:
    """The same encoder + head as a transformers sequence-classification model (one logit)."""
    import torch
    from transformers import AutoModel, BertConfig, PreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    from udfs.encoder import encoder_dir

    class MeanPoolHead(PreTrainedModel):
        config_class = BertConfig

        def __init__(self, config: BertConfig) -> None:
            super().__init__(config)
            self.bert = AutoModel.from_pretrained(encoder_dir())
            self.head = torch.nn.Linear(config.hidden_size, 1)

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_: object):  # type: ignore[no-untyped-def]
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)
            return SequenceClassifierOutput(logits=self.head(pooled))

    config = BertConfig.from_pretrained(encoder_dir())
    config.num_labels = 1
    config.id2label = {0: "violates"}
    config.label2id = {"violates": 0}
    model = MeanPoolHead(config).eval()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(head_coef).reshape(1, -1))
        model.head.bias.fill_(head_bias)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/curate-bench-speed"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from dataclasses import replace

    from pipelines.core import registry
    from pipelines.core.config import load_config
    from pipelines.core.constitution import Constitution, load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.judgement.distill import distill
    from pipelines.judgement.label import label_documents
    from pipelines.stages import classify
    from udfs.labelers import ExemplarLabeler

    shutil.rmtree(args.lake, ignore_errors=True)
    docs = load_docs(args.n, args.lake)
    cfg = load_config(
        overrides={
            "tracking.experiment": "bench-speed",
            "classify.max_tokens": args.max_tokens,
            "classify.device": "auto",
        }
    )
    constitution = load_constitution()
    toxicity = constitution.get("toxicity")
    only = Constitution(version=1, principles=(toxicity,), source="bench")
    results: dict[str, object] = {"n_docs": len(docs), "max_tokens": args.max_tokens}
    with spark_session(cfg.engine) as spark:
        lake = Lake(args.lake, spark)
        # a champion to time: distilled from exemplar labels on 300 of the documents
        train = [{"doc_id": f"d{i}", "text": t, "source": "bench"} for i, t in enumerate(docs[:300])]
        label_documents(lake, toxicity, ExemplarLabeler(max_tokens=args.max_tokens), train, chunk_size=300)
        # exemplar scores are soft: positives are the top of the distribution
        dcfg = replace(cfg, distill=replace(cfg.distill, min_labels=50))
        toxicity_soft = replace(toxicity, label_threshold=0.3)
        r = distill(lake, toxicity_soft, dcfg, kind="encoder")
        resolved = registry.resolve(cfg, lake.state_dir)
        ccfg = resolved.classify
        champions = registry.champions_for(only, resolved)
        results["model"] = r.model_uri
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        results["uptime_before"] = load
        print(f"{len(docs)} docs, model {r.model_uri}; uptime: {load}", flush=True)

        frame = spark.createDataFrame([(f"d{i}", t) for i, t in enumerate(docs)], "doc_id string, text string")
        frame = frame.repartition(2)

        def run_udf() -> tuple[float, np.ndarray]:
            t0 = time.monotonic()
            rows = classify.transform(frame, only, ccfg, champions).select("doc_id", "principle_scores").collect()
            dt = time.monotonic() - t0
            by = {row["doc_id"]: row["principle_scores"][0] for row in rows}
            return dt, np.array([by[f"d{i}"] for i in range(len(docs))])

        cold, udf_scores = run_udf()
        warm, _ = run_udf()
        results["udf_cold_docs_per_s"] = len(docs) / cold
        results["udf_warm_docs_per_s"] = len(docs) / warm
        print(f"udf: cold {len(docs) / cold:.1f} docs/s, warm {len(docs) / warm:.1f} docs/s", flush=True)

    from transformers import AutoTokenizer, pipeline

    from udfs.encoder import encoder_dir
    from udfs.heads import load_head

    head = load_head(Path(champions["toxicity"].local_path) / "artifacts" / "head")
    model = pipeline_model(head.coef, head.intercept)  # type: ignore[arg-type]
    tok = AutoTokenizer.from_pretrained(encoder_dir())
    clf = pipeline("text-classification", model=model, tokenizer=tok, device=-1, function_to_apply="sigmoid")
    kw = {"truncation": True, "max_length": args.max_tokens}
    clf(docs[:4], **kw)  # warm-up
    t0 = time.monotonic()
    loop_scores = np.array([clf(d, **kw)[0]["score"] for d in docs])
    loop = time.monotonic() - t0
    t0 = time.monotonic()
    batched_scores = np.array([o["score"] for o in clf(docs, batch_size=32, **kw)])
    batched = time.monotonic() - t0
    results["pipeline_loop_docs_per_s"] = len(docs) / loop
    results["pipeline_batched_docs_per_s"] = len(docs) / batched
    results["max_abs_diff_udf_vs_loop"] = float(np.max(np.abs(udf_scores - loop_scores)))
    results["max_abs_diff_batched_vs_loop"] = float(np.max(np.abs(batched_scores - loop_scores)))
    results["speedup_warm_vs_loop"] = (len(docs) / warm) / (len(docs) / loop)
    results["speedup_warm_vs_batched"] = (len(docs) / warm) / (len(docs) / batched)
    results["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

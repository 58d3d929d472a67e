"""Revision of held-out violent passages, read by eye: does an accepted revision still describe the act?

Issue 21 asks that no accepted revision still describe the act. The held-out split of the hand-labelled violence set
(tests/data/violence_labelled.jsonl, `split: test`: 25 violent, 64 neutral passages; ships with the project) is
scored by the default scorer of a fresh lake (the packaged teachers), and the passages in a revise band or over it
are revised as documents of their own by the real stage (`pipelines.stages.revision.revise`):

- `excise`: excision only (what `revise.method: auto` does on a CPU without an endpoint);
- `llm` (with `--llm`): the packaged SmolLM2-135M behind `transformers serve`, excision as the fallback.

Every outcome is printed (status, reasons, scores, the original and the published text) and written as JSONL.

    PYTHONPATH=. .venv/bin/python bench/violent_revisions.py [--llm] [--out /tmp/curate-bench/violent]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import replace
from pathlib import Path

from revision_common import load_avg

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "violence_labelled.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", action="store_true", help="also revise with the packaged SmolLM2 (slow on a CPU)")
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--llm-violent-only", action="store_true", help="send only the violent-labelled ones to the LLM")
    ap.add_argument("--out", type=Path, default=Path("/tmp/curate-bench/violent"))
    args = ap.parse_args()

    from pipelines.core.config import ClassifyConfig, default_cache_dir, load_config
    from pipelines.core.constitution import load_constitution
    from pipelines.stages.revision import document_embedder, local_rescorer, revise
    from udfs.llm import LLMClient, LLMConfig

    args.out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, {})
    constitution = load_constitution(None)
    rescore = local_rescorer(constitution, ClassifyConfig())
    embed = document_embedder(ClassifyConfig())
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    held = [r for r in rows if r["split"] == "test"]
    scores = rescore([(r["id"], r["text"]) for r in held])
    label = {r["id"]: r["label"] for r in held}
    candidates = []
    for r in held:
        flagged = [
            p.name
            for p, s in zip(constitution.principles, scores[r["id"]], strict=True)
            if not p.positive_kind and s >= p.revise_threshold
        ]
        if flagged:
            best = max(scores[r["id"]][constitution.names.index(p)] for p in flagged)
            row = {"doc_id": r["id"], "text": r["text"], "revise_principles": flagged, "score_before": best}
            candidates.append(row)
    n_violent = sum(label[c["doc_id"]] for c in candidates)
    print(f"{len(held)} held-out passages; {len(candidates)} flagged ({n_violent} violent by hand label); {load_avg()}")

    methods = ["excise"] + (["llm"] if args.llm else [])
    for method in methods:
        t0 = time.monotonic()
        rcfg = replace(cfg.revise, method=method, max_docs=len(candidates), time_budget_s=3600.0)
        if method == "excise":
            outcomes = revise(candidates, constitution, rcfg, rescore, embed)
        else:
            from udfs.llm_server import EmbeddedLLMServer

            if args.llm_violent_only:  # the question is about violent passages; the 135M model is slow on a CPU
                candidates = [c for c in candidates if label[c["doc_id"]]]

            with EmbeddedLLMServer(default_cache_dir() / "llm", args.out / "logs") as server:
                llm = LLMConfig(
                    base_url=server.base_url,
                    model=server.model,
                    max_concurrency=1,
                    timeout_s=300.0,
                    max_retries=0,
                    max_tokens=args.max_tokens,
                )
                client = LLMClient(llm)
                rcfg = replace(rcfg, llm=llm)
                outcomes = revise(candidates, constitution, rcfg, rescore, embed, client, server.model)
                client.close()
        wall = time.monotonic() - t0
        ok = [o for o in outcomes if o.status == "ok"]
        print(f"\n## {method}: {len(ok)} accepted of {len(outcomes)} in {wall:.0f} s; {load_avg()}")
        with (args.out / f"{method}.jsonl").open("w", encoding="utf-8") as fh:
            for o in outcomes:
                fh.write(json.dumps({**dataclasses.asdict(o), "label": label[o.doc_id]}) + "\n")
                print(f"- {o.doc_id} (violent={label[o.doc_id]}) {o.status} {o.method} {o.reject_reasons[:2]}")
                if o.status == "ok":
                    print(f"    original:  {o.original_text}")
                    print(f"    published: {o.revised_text}")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()

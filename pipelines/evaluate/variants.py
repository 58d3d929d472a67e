"""What the lake's own decisions give the evaluation: the documents it flagged for each principle (the forget sets'
lake-drawn part, held out by a hash of the doc id), and Model C's training set - the same night's corpus with
`evaluate.retain_fraction` of the would-be drops kept and tagged, built from `decisions` without rerunning the
night (the research behind `retain_fraction`: keeping ~10% of toxic data, tagged, makes a model easier to steer).

Model C's extra documents are exactly those `decide` would have kept with that `retain_fraction`: dropped by the
classifier for a principle (reason `principle:<name>`, stage classify - not quality, duplicate or revision drops),
and every such principle's hash bucket `pmod(xxhash64(doc_id, name), 10000)` under the fraction (the rule of
pipelines/stages/decide.py, computed by the same Spark expression). They get tag `retained:<name>` and go in as
`curate export` would write them: the principles' tag tokens and separator before the text, the `scores` spans
of those principles as loss masks (`export.spans`), in the export's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.core.config import RunConfig
from pipelines.core.constitution import Constitution
from pipelines.evaluate import lm
from pipelines.evaluate.data import Row, TrainingSet, capped, order_key, version_at

if TYPE_CHECKING:
    from pipelines.core.lake import Lake

#: reason prefixes that flag a document for a principle (schemas.vocab.Reason): dropped over the filter threshold,
#: revised, or in the revise band with a failed revision
FLAG_PREFIXES = ("principle", "revised", "flagged")


@dataclass(frozen=True)
class Flagged:
    doc_id: str
    text: str  # the original (raw_docs) text
    principles: tuple[str, ...]  # dropped, revised or flagged for these
    retainable: tuple[str, ...]  # dropped by the classifier for these: the drops retain_fraction applies to
    retained: bool  # every retainable principle's hash bucket is under evaluate.retain_fraction
    spans: tuple[tuple[str, int, int], ...]  # (principle, start, end) in `text`, from `scores`


def _before_next(lake: Lake, table: str, version: int) -> int | None:
    """`table`'s newest version committed before corpus version `version + 1` (its latest when there is none): a
    run publishes `decisions` (and after `scores`) *after* `corpus` (pipelines/core/publish.py ORDER), so the
    decisions behind a corpus version are newer than it, and older than the next one."""
    nxt = {h["version"]: h.get("timestamp") for h in lake.history("corpus")}.get(version + 1)
    if isinstance(nxt, int):
        return version_at(lake, table, nxt - 1)
    return lake.version(table) if lake.exists(table) else None


def flagged_docs(
    lake: Lake, constitution: Constitution, version: int, raw_version: int | None, retain_fraction: float
) -> tuple[list[Flagged], list[str]]:
    """Every document whose decision (the latest behind corpus version `version`) flags it for a principle."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pipelines.stages.decide import retained

    notes: list[str] = []
    dv = _before_next(lake, "decisions", version)
    if dv is None or raw_version is None:
        return [], ["no decisions at the corpus version: no lake-drawn forget sets and no tagged variant"]
    negative = [p for p in constitution.principles if not p.positive_kind]
    latest = Window.partitionBy("doc_id").orderBy(F.col("decided_at").desc(), F.col("run_id").desc())
    pattern = "^(" + "|".join(FLAG_PREFIXES) + "):"
    dec = (
        lake.read("decisions", version=dv)
        .withColumn("_r", F.row_number().over(latest))
        .where(F.col("_r") == 1)
        .where(F.exists("reasons", lambda r: r.rlike(pattern)))
        .select("doc_id", "action", "stage", "reasons", *[retained(F.col("doc_id"), p.name, retain_fraction).alias(
            f"_keep{i}") for i, p in enumerate(negative)])
    )  # fmt: skip
    raw = lake.read("raw_docs", version=raw_version).select("doc_id", "text")
    rows = dec.join(raw, "doc_id").collect()
    spans: dict[str, list[tuple[str, int, int]]] = {}
    sv = _before_next(lake, "scores", version)
    if sv is not None and rows:
        ids = lake.spark.createDataFrame([(r["doc_id"],) for r in rows], "doc_id string")
        scored = lake.read("scores", version=sv).join(ids, "doc_id").select("doc_id", "principle", "spans")
        for r in scored.collect():
            spans.setdefault(r["doc_id"], []).extend((r["principle"], s["start"], s["end"]) for s in r["spans"] or [])
    out = []
    for r in sorted(rows, key=lambda r: r["doc_id"]):
        named: dict[str, set[str]] = {}
        for reason in r["reasons"]:
            prefix, _, name = reason.partition(":")
            if prefix in FLAG_PREFIXES:
                named.setdefault(name, set()).add(prefix)
        principles = tuple(p.name for p in negative if p.name in named)
        drops = tuple(
            p.name
            for p in negative
            if "principle" in named.get(p.name, ()) and r["action"] == "drop" and r["stage"] == "classify"
        )
        keep = all(r[f"_keep{i}"] for i, p in enumerate(negative) if p.name in drops)
        mine = tuple(s for s in spans.get(r["doc_id"], []) if s[0] in principles)
        out.append(Flagged(r["doc_id"], r["text"], principles, drops, bool(drops) and keep, mine))
    return out, notes


def tagged_set(
    rows: Sequence[Row],
    flagged: Sequence[Flagged],
    constitution: Constitution,
    cfg: RunConfig,
    char_cap: int,
    exclude: frozenset[str] | set[str],
    name: str,
    info: dict[str, Any],
) -> TrainingSet:
    """Model C's set: the corpus rows plus the retained would-be drops, tagged, merged in the export's order."""
    from pipelines.ops.export import tag_prefix

    ecfg = cfg.export
    extra: list[Row] = []
    masked = 0
    for f in flagged:
        if not f.retained or f.doc_id in exclude:
            continue
        tags = [f"retained:{p}" for p in f.retainable]
        prefix = tag_prefix(tags, constitution, ecfg.tag_separator) if ecfg.tag_tokens else ""
        spans: tuple[tuple[int, int], ...] = ()
        if ecfg.spans and cfg.evaluate.tagged_mask_spans:
            shift = len(prefix)
            spans = tuple(sorted((s + shift, e + shift) for p, s, e in f.spans if p in f.retainable))
            masked += bool(spans)
        extra.append(Row(order_key(ecfg.seed, f.doc_id, 0), f.doc_id, lm.TrainDoc(prefix + f.text, spans)))
    merged = sorted([*rows, *extra], key=lambda r: r.key)
    by_principle = {p.name: sum(p.name in r for r in (f.retainable for f in flagged if f.retained and f.doc_id not in
                    exclude)) for p in constitution.principles if not p.positive_kind}  # fmt: skip
    c_info = {
        **info,
        "retained_drops": len(extra),
        "retained_by_principle": by_principle,
        "retained_with_masked_spans": masked,
        "retain_fraction": cfg.evaluate.retain_fraction,
    }
    return capped(name, merged, char_cap, c_info, exclude)

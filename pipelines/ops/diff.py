"""`curate diff`: the documents added, removed or changed between two corpus versions.

- **diff** reads the two corpus versions with the engine (a join, so it scales with the corpus) and explains each
  added, removed or changed document by the latest `decisions` row (and `revisions` row) of the runs between them;
  documents a restore moved are explained by the restore. The explanations are read as the handle reads them:
  `curate diff` passes the published state (pipelines/core/published.py), so a night killed half-way explains
  nothing; `curate diff --latest-commit` passes the latest commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.core.decisions import latest_decisions
from pipelines.core.lake import Lake

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
from pipelines.ops.versions import RESTORE, RunRow, check_readable, read_runs


@dataclass
class Diff:
    v1: int
    v2: int
    counts: dict[str, int]
    rows: list[dict[str, Any]]
    runs_between: list[RunRow]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


DIFF_COLUMNS = [
    *("change", "doc_id", "url", "fields", "action_before", "action_after"),
    *("run_id", "command", "decision", "reasons", "stage", "revision"),
]


def diff(lake: Lake, v1: int, v2: int, limit: int | None = None) -> Diff:
    """Documents added, removed and changed (text, weight or tags) from corpus version `v1` to `v2`, each with
    the latest decision (and revision) of the runs between the two versions that explains it."""
    from pyspark.sql import functions as F

    rows = read_runs(lake)
    for v in (v1, v2):
        check_readable(lake, v, rows)
    lo, hi = sorted((v1, v2))
    between = [r for r in rows if lo < r.table_versions.get("corpus", -1) <= hi]

    def side(version: int, n: int) -> DataFrame:
        return lake.read("corpus", version=version).select(
            "doc_id",
            F.lit(True).alias(f"in_{n}"),
            F.col("url").alias(f"url_{n}"),
            F.col("text").alias(f"text_{n}"),
            F.col("weight").alias(f"weight_{n}"),
            F.array_sort("tags").alias(f"tags_{n}"),
            F.col("action").alias(f"action_{n}"),
        )

    joined = side(v1, 1).join(side(v2, 2), "doc_id", "full_outer")
    differs = {
        "text": ~F.col("text_1").eqNullSafe(F.col("text_2")),
        "weight": ~F.col("weight_1").eqNullSafe(F.col("weight_2")),
        "tags": ~F.col("tags_1").eqNullSafe(F.col("tags_2")),
    }
    change = (
        F.when(F.col("in_1").isNull(), F.lit("added"))
        .when(F.col("in_2").isNull(), F.lit("removed"))
        .when(differs["text"] | differs["weight"] | differs["tags"], F.lit("changed"))
    )
    changes = joined.withColumn("change", change).where(F.col("change").isNotNull())
    counts = {"added": 0, "removed": 0, "changed": 0}
    counts.update({r["change"]: int(r["n"]) for r in changes.groupBy("change").agg(F.count("*").alias("n")).collect()})

    shown = changes.orderBy("change", "doc_id")
    if limit is not None:
        shown = shown.limit(limit)
    ids = [r.run_id for r in between]
    if ids and lake.exists("decisions"):
        columns = ("decided_at", "run_id", "action", "reasons", "stage")
        decided = latest_decisions(lake, columns, run_ids=ids).select("doc_id", F.struct(*columns).alias("d"))
        shown = shown.join(decided, "doc_id", "left")
    else:
        shown = shown.withColumn("d", F.lit(None))
    if ids and lake.exists("revisions"):
        revised = (
            lake.read("revisions")
            .where(F.col("run_id").isin(ids))
            .groupBy("doc_id")
            .agg(F.max(F.struct("revised_at", "status", "method", "model")).alias("r"))
        )
        shown = shown.join(revised, "doc_id", "left")
    else:
        shown = shown.withColumn("r", F.lit(None))
    by_id = {r.run_id: r for r in rows}
    restores = [r for r in between if r.command == RESTORE]
    out = [_diff_row(r.asDict(recursive=True), by_id, restores) for r in shown.collect()]
    out.sort(key=lambda r: (r["change"], r["doc_id"]))
    return Diff(v1, v2, counts, out, between)


def _diff_row(r: dict[str, Any], by_id: dict[str, RunRow], restores: list[RunRow]) -> dict[str, Any]:
    fields = []
    if r["change"] == "changed":
        if r["text_1"] != r["text_2"]:
            fields.append("text")
        if r["weight_1"] != r["weight_2"]:
            fields.append(f"weight {r['weight_1']:g}->{r['weight_2']:g}")
        if r["tags_1"] != r["tags_2"]:
            fields.append(f"tags {r['tags_1']}->{r['tags_2']}")
    d, rev = r.get("d") or {}, r.get("r") or {}
    run_id, decision, reasons, stage = d.get("run_id"), d.get("action"), d.get("reasons"), d.get("stage")
    if run_id is None and restores:  # no run decided it: a restore moved it
        last = restores[-1]
        run_id, reasons = last.run_id, [f"restored to corpus version {last.counts.get('restored_corpus_version')}"]
    run = by_id.get(run_id or "")
    return {
        "change": r["change"],
        "doc_id": r["doc_id"],
        "url": r["url_2"] if r["url_2"] is not None else r["url_1"],
        "fields": ", ".join(fields),
        "action_before": r["action_1"],
        "action_after": r["action_2"],
        "run_id": run_id,
        "command": None if run is None else (f"{run.command} {run.crawl_id}" if run.command == "run" else run.command),
        "decision": decision,
        "reasons": reasons,
        "stage": stage,
        "revision": f"{rev.get('method')} {rev.get('status')} ({rev.get('model')})" if rev else None,
    }

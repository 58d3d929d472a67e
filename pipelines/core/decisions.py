"""The latest decision of a document, one definition for every reader: the executor's accounting, iteration's
re-decided set, the nightly run's deferred backlog, `curate diff` and `curate repair`.

A document's decisions are ordered by the sequence of the runs that made them (`runs.seq`, assigned under the
writer lock when a run starts), not by `decided_at` (the engine's clock, which two engines or a clock step can
disagree on). Runs an older release recorded have no `seq`: they come before every numbered run, in the order
of their recorded `started_at`; the run id breaks any tie left, so the answer never depends on row order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import Column, DataFrame

    from pipelines.core.lake import Lake

#: The columns of a `decisions` row that `latest_decisions` returns by default.
DECISION_COLUMNS = ("run_id", "crawl_id", "action", "reasons", "stage", "decided_at")


def run_order(lake: Lake) -> DataFrame:
    """run_id, `_order`: a struct that sorts runs in the lake's sequence (see the module docstring)."""
    return lake.read("runs").select(
        "run_id",
        F.struct(F.coalesce(F.col("seq"), F.lit(0)).alias("seq"), F.col("started_at").alias("started")).alias("_order"),
    )


def run_positions(lake: Lake) -> dict[str, tuple[int, Any]]:
    """run_id -> its place in the sequence, as `run_order` sorts it, for the driver-side readers (repair)."""
    if not lake.exists("runs"):
        return {}
    return {r["run_id"]: (int(r["_order"]["seq"]), r["_order"]["started"]) for r in run_order(lake).collect()}


def sequence_key(row_order: Column, run_id: Column) -> Column:
    """The sort key of one decision: its run's place in the sequence, then the run id."""
    return F.struct(row_order.alias("run"), run_id.alias("run_id"))


def latest_decisions(
    lake: Lake, columns: Sequence[str] = DECISION_COLUMNS, run_ids: Sequence[str] | None = None
) -> DataFrame:
    """doc_id and `columns` of every document's latest decision (among the runs `run_ids`, when given)."""
    decisions = lake.read("decisions")
    if run_ids is not None:
        decisions = decisions.where(F.col("run_id").isin(list(run_ids)) if run_ids else F.lit(False))
    # a decision whose run has no `runs` row (written by hand, or by a test) sorts before every recorded run
    ordered = decisions.join(run_order(lake), "run_id", "left")
    fields = list(dict.fromkeys(("run_id", *columns)))
    last = F.max(F.struct(sequence_key(F.col("_order"), F.col("run_id")).alias("_key"), *fields)).alias("_last")
    return ordered.groupBy("doc_id").agg(last).select("doc_id", *[F.col(f"_last.{c}").alias(c) for c in columns])


def deferred(lake: Lake) -> DataFrame:
    """doc_id of every document whose latest decision is `defer` (the backlog the next run takes first)."""
    from schemas.vocab import Action

    return latest_decisions(lake, ("action",)).where(F.col("action") == str(Action.DEFER)).select("doc_id")


def next_seq(lake: Lake) -> int:
    """The sequence number of a run starting now (the caller holds the writer lock)."""
    if not lake.exists("runs"):
        return 1
    top = lake.read("runs").agg(F.max("seq").alias("m")).collect()[0]["m"]
    return int(top or 0) + 1

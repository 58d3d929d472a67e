"""What `curate report` shows, collected from the lake: the run's `runs` row and the tables at the versions it
names. Rendering is pipelines/ops/report.py; a new figure collects its numbers here and draws them there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from pipelines.core.constitution import Constitution, default_constitution_path, load_constitution
from pipelines.core.lake import Lake, LakeError
from schemas.vocab import Action, Count, RunStatus

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


logger = logging.getLogger(__name__)


RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


BINS = 20


TREND_RUNS = 14  # the last two weeks of nights


SAMPLE_REVISIONS = 5


SAMPLE_CHARS = 3000  # per side of a revision sample: the page stays small whatever the documents are


ITERATE_CRAWL = "iterate"  # `crawl_id` of iteration rounds (pipelines/chains/iterate.py): not nights


class ReportError(LakeError):
    """No such run, or nothing to report on; the message says what to do (exit 2 from the CLI)."""


@dataclass(frozen=True)
class RevisionSample:
    doc_id: str
    method: str
    status: str
    principles: list[str]
    original: str
    revised: str | None
    score_before: float | None
    score_after: float | None
    similarity: float | None
    reject_reasons: list[str]
    fallback_from: str | None


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    crawl_id: str
    started_at: datetime | None
    records: int
    published: int
    dropped: int
    quarantined: int


@dataclass
class ReportData:
    """Everything the page shows, read from the lake; `render` turns it into HTML without touching the lake."""

    run: dict[str, Any]
    counts: dict[str, int]
    constitution: Constitution | None
    constitution_source: str
    drops: dict[tuple[str, str], int] = field(default_factory=dict)  # (stage, reason) -> documents
    drop_stages: dict[str, int] = field(default_factory=dict)  # stage -> documents
    hists: dict[str, list[int]] = field(default_factory=dict)
    decided_by: dict[str, dict[str, int]] = field(default_factory=dict)
    revision_statuses: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, status) -> n
    revisions: list[RevisionSample] = field(default_factory=list)
    trend: list[TrendPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise ReportError(f"not a run id: {run_id!r} (run ids look like 20260101T020000Z-1a2b3c4d)")
    return run_id


def published(counts: dict[str, int]) -> int:
    return sum(counts.get(Count.action(a), 0) for a in (Action.KEEP, Action.REVISE, Action.TAG))


def is_night() -> Column:
    """A `runs` row of a nightly `curate run` (rows an older release wrote have no `command`: they were runs)."""
    return F.coalesce(F.col("command"), F.lit("run")) == F.lit("run")


def _select_run(lake: Lake, run_id: str | None, any_status: bool = False) -> dict[str, Any]:
    if not lake.exists("runs"):
        raise ReportError(f"no runs in {lake.root}: create some with `curate run --lake {lake.root} --input CRAWL`")
    runs = lake.read("runs")
    if run_id is not None:
        rows = runs.where(F.col("run_id") == check_run_id(run_id)).collect()
        if not rows:
            raise ReportError(
                f"no run {run_id} in {lake.root}: list them with "
                f'`curate sql --lake {lake.root} "SELECT run_id, status, crawl_id FROM runs ORDER BY started_at"`'
            )
    else:
        # the latest night: a `curate run`, not an operation (maintain, restore) that read no crawl; with
        # --latest-commit also one still running, killed or failed (what its commits hold is what the page shows)
        nights = is_night() if any_status else (F.col("status") == str(RunStatus.SUCCESS)) & is_night()
        rows = runs.where(nights).orderBy(F.desc("started_at")).limit(1).collect()
        if not rows:
            raise ReportError(f"no successful nightly run in {lake.root}: name one with --run-id")
    return rows[0].asDict(recursive=True)


def trend_nights(lake: Lake, run: dict[str, Any]) -> DataFrame:
    """The last TREND_RUNS successful nights up to `run`, oldest first: no operation (maintain, restore) and no
    iteration round, which read no crawl and would show as empty nights."""
    nights = lake.read("runs").where(
        (F.col("status") == str(RunStatus.SUCCESS))
        & is_night()
        & (F.coalesce(F.col("crawl_id"), F.lit("")) != ITERATE_CRAWL)
        & ((F.col("started_at") <= F.lit(run["started_at"])) | (F.col("run_id") == run["run_id"]))
    )
    latest = nights.orderBy(F.desc("started_at")).limit(TREND_RUNS)
    return latest.orderBy("started_at").select("run_id", "crawl_id", "started_at", "counts")


def _at_version(
    lake: Lake, table: str, run: dict[str, Any], notes: list[str], latest_commit: bool = False
) -> DataFrame | None:
    """`table` as the run left it (None when no run ever wrote it: reading would create it); where the run named
    no version (it is running, or was killed) as `lake` reads it: the published state unless --latest-commit."""
    if not lake.exists(table):
        return None
    version = None if latest_commit else (run.get("table_versions") or {}).get(table)
    if version is None:
        return lake.read(table)
    try:
        df = lake.read(table, version=int(version))
        df.limit(0).collect()  # a version the Delta log no longer holds fails here, not mid-page
        return df
    except Exception as exc:
        notes.append(f"{table}: version {version} is no longer readable ({type(exc).__name__}); read the latest")
        return lake.read(table)


def constitution_for_run(state_dir: Path, run: dict[str, Any]) -> tuple[Constitution, str]:
    """The constitution the run used, for its thresholds: the lake remembers the last successful run's, and each
    run's MLflow params name the fingerprint of its copy under `_state/constitutions/`."""
    from pipelines.core.lake_config import remembered

    rem = remembered(state_dir)
    if rem is not None and rem.run_id == run["run_id"]:
        return load_constitution(rem.constitution), f"this run's constitution ({rem.constitution.name})"
    fingerprint = _mlflow_param(state_dir, run.get("mlflow_run_id"), "constitution")
    if fingerprint and re.fullmatch(r"[0-9a-f]{6,64}", fingerprint):
        path = state_dir / "constitutions" / f"{fingerprint}.yaml"
        if path.is_file():
            return load_constitution(path), f"this run's constitution ({path.name})"
    if rem is not None:
        return (
            load_constitution(rem.constitution),
            f"the lake's latest constitution ({rem.constitution.name}; this run's own was not found)",
        )
    return load_constitution(default_constitution_path()), "the packaged default constitution (none remembered)"


def _mlflow_param(state_dir: Path, mlflow_run_id: str | None, name: str) -> str | None:
    db = state_dir / "mlflow.db"
    if not mlflow_run_id or not db.is_file():
        return None
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db.resolve()}")
        return client.get_run(mlflow_run_id).data.params.get(name)
    except Exception:  # a store another MLflow wrote, a deleted run: the thresholds fall back, the page says so
        return None


def collect(
    lake: Lake, run_id: str | None = None, constitution: Constitution | None = None, latest_commit: bool = False
) -> ReportData:
    """Read what the page shows: about six small aggregations, whatever the lake's size. `latest_commit`: the
    latest night whatever its status, and the tables' latest commits (`lake` should read them too)."""
    run = _select_run(lake, run_id, any_status=latest_commit)
    counts = {str(k): int(v) for k, v in (run.get("counts") or {}).items()}
    if constitution is not None:
        source = f"this run's constitution ({constitution.fingerprint()})"
    else:
        constitution, source = constitution_for_run(lake.state_dir, run)
    data = ReportData(run=run, counts=counts, constitution=constitution, constitution_source=source)
    rid = run["run_id"]

    decisions = _at_version(lake, "decisions", run, data.notes, latest_commit)
    if decisions is not None:
        drops = decisions.where((F.col("run_id") == rid) & (F.col("action") == str(Action.DROP)))
        for r in drops.groupBy("stage", "reasons").count().collect():
            stage, n = str(r["stage"]), int(r["count"])
            data.drop_stages[stage] = data.drop_stages.get(stage, 0) + n
            for reason in r["reasons"] or ["(no reason)"]:
                data.drops[(stage, reason)] = data.drops.get((stage, reason), 0) + n

    scores = _at_version(lake, "scores", run, data.notes, latest_commit)
    if scores is not None:
        bins = F.least(F.floor(F.col("score") * BINS), F.lit(BINS - 1)).cast("int")
        grouped = scores.where(F.col("run_id") == rid).groupBy(
            "principle", F.coalesce(F.col("decided_by"), F.lit("classifier")).alias("by"), bins.alias("bin")
        )
        for r in grouped.count().collect():
            p, n = str(r["principle"]), int(r["count"])
            data.hists.setdefault(p, [0] * BINS)[max(0, min(BINS - 1, int(r["bin"] or 0)))] += n
            by = data.decided_by.setdefault(p, {})
            by[str(r["by"])] = by.get(str(r["by"]), 0) + n
        order = {n: i for i, n in enumerate(constitution.names if constitution is not None else [])}
        data.hists = dict(sorted(data.hists.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    revisions = _at_version(lake, "revisions", run, data.notes, latest_commit)
    if revisions is not None:
        mine = revisions.where(F.col("run_id") == rid)
        for r in mine.groupBy("method", "status").count().collect():
            data.revision_statuses[(str(r["method"]), str(r["status"]))] = int(r["count"])
        # accepted revisions first: they are what went into the corpus
        sample = mine.orderBy((F.col("status") != "ok").cast("int"), "doc_id").limit(SAMPLE_REVISIONS)
        data.revisions = [
            RevisionSample(
                doc_id=r["doc_id"],
                method=r["method"],
                status=r["status"],
                principles=list(r["principles"] or []),
                original=r["original_text"] or "",
                revised=r["revised_text"],
                score_before=r["score_before"],
                score_after=r["score_after"],
                similarity=r["similarity"],
                reject_reasons=list(r["reject_reasons"] or []),
                fallback_from=r["fallback_from"],
            )
            for r in sample.collect()
        ]

    for r in trend_nights(lake, run).collect():
        c = {str(k): int(v) for k, v in (r["counts"] or {}).items()}
        data.trend.append(
            TrendPoint(
                run_id=r["run_id"],
                crawl_id=r["crawl_id"] or "",
                started_at=r["started_at"],
                records=c.get("records", 0),
                published=published(c),
                dropped=c.get(Count.action(Action.DROP), 0),
                quarantined=c.get("quarantined", 0),
            )
        )
    return data

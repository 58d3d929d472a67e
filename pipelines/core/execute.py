"""The executor: runs a chain of stages (pipelines/core/stage.py) with the whole run lifecycle around it.

For every command that publishes (`curate run`, each round of `curate iterate`):

1. a `runs` row with status `running` is written before anything else (a run killed mid-way stays visible);
2. one MLflow run holds the resolved config, the per-stage counts, notes and figures;
3. each stage's output is materialised under `_state/staging/<run_id>` (Sail has no `persist`, and a model
   UDF must run once per document), its declared columns are checked, its gates run, its counts are kept;
4. bronze tables are written as soon as their stage's gates pass (those a stage names in `before_gates`, just
   before them); everything else is published at the end, in the crash-safe order of pipelines/core/publish.py,
   unless a stage halts the chain;
5. the accounting invariant is checked, the `runs` row gets its final status, counts and table versions, and
   the staging directory is removed, whatever happened.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pyspark.sql import functions as F

from expectations.runner import GateFailed, run_gate
from pipelines.core import publish
from pipelines.core.decisions import deferred, latest_decisions, next_seq
from pipelines.core.engine import engine_name
from pipelines.core.faults import kill_point
from pipelines.core.interrupt import interrupted, interrupted_by
from pipelines.core.lake import Lake, write_delta
from pipelines.core.progress import Progress
from pipelines.core.registry import champion_of, champion_versions, champions_for, move_champions
from pipelines.core.stage import Stage, StageContext, check_columns
from pipelines.core.tracking import flatten, track
from schemas import TABLES
from schemas.vocab import OUT_ACTIONS, Action, Count, RunStatus

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class InvariantViolation(RuntimeError):
    """A document is unaccounted for or counted twice: a bug, never silently ignored."""


@dataclass(frozen=True)
class Chain:
    """A named tuple of stages. `documents` is the count key of the documents the chain decides (the
    denominator of `flagged_fraction:<principle>`); `published` is the status of a chain that ran to the end."""

    name: str
    stages: tuple[Stage, ...]
    documents: str = Count.PENDING
    published: str = RunStatus.SUCCESS


@dataclass
class RunSummary:
    run_id: str
    status: str
    crawl_id: str
    counts: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    error: str | None = None
    seconds: float = 0.0
    seq: int | None = None  # the run's place in the lake's sequence (runs.seq), fixed at its first runs row
    notes: dict[str, str] = field(default_factory=dict)  # what stages had to say beyond counts (why, not how many)
    promotions: dict[str, str] = field(default_factory=dict)  # principle -> model URI a stage chose as champion

    def flagged_fraction(self, principle: str, documents: str) -> float:
        n = self.counts.get(documents, 0)
        flagged = self.counts.get(Count.flagged(principle), self.counts.get(Count.flagged(principle, True), 0))
        return flagged / n if n else 0.0


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


class Stager:
    """Materialise a DataFrame once under the run's staging dir and read it back."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark, self.root = spark, root

    def __call__(self, df: DataFrame, name: str) -> DataFrame:
        path = str(self.root / name)
        write_delta(df, path, "overwrite")
        kill_point(f"staged:{name}")
        return self.spark.read.format("delta").load(path)


def accounting(lake: Lake) -> DataFrame:
    """One row per `raw_docs` row (per `corpus` row where a doc_id is there twice) with `places`: how many of
    `corpus`, (latest decision) `drop` and (latest decision) `defer` hold it, and `deferred` (1 when the latest
    decision is `defer`). `curate repair` reads the rows whose `places` is not 1."""
    raw = lake.read("raw_docs").select("doc_id")
    corpus = lake.read("corpus").select("doc_id").withColumn("in_corpus", F.lit(1))
    latest = latest_decisions(lake, ("action",)).where(F.col("action").isin(*[str(a) for a in OUT_ACTIONS]))
    out = latest.select(
        "doc_id",
        F.lit(1).alias("decided_out"),
        F.when(F.col("action") == str(Action.DEFER), 1).otherwise(0).alias("deferred"),
    )
    joined = raw.join(corpus, "doc_id", "left").join(out, "doc_id", "left")
    return joined.withColumn(
        "places", F.coalesce(F.col("in_corpus"), F.lit(0)) + F.coalesce(F.col("decided_out"), F.lit(0))
    ).withColumn("deferred", F.coalesce(F.col("deferred"), F.lit(0)))


def corpus_without_raw(lake: Lake) -> DataFrame:
    """doc_id of every `corpus` row whose document was never ingested (in no `raw_docs` row): text that came from
    nowhere the lake can trace. The check from `raw_docs` alone never sees these."""
    raw = lake.read("raw_docs").select("doc_id")
    return lake.read("corpus").select("doc_id").join(raw, "doc_id", "left_anti").distinct()


def check_accounting(lake: Lake) -> dict[str, int]:
    """Both ways: every document in `raw_docs` is in exactly one of `corpus`, (latest decision) `drop` or (latest
    decision) `defer` (`unaccounted`: in none, `double_counted`: in more than one - kept and dropped, kept and
    deferred), and every `corpus` row has its `raw_docs` row (`corpus_without_raw`); `deferred` is the backlog the
    next run takes first."""
    places = F.col("places")
    row = (
        accounting(lake)
        .agg(
            F.countDistinct("doc_id").alias("raw_docs"),  # a doc_id twice in `corpus` (a fault) is one document
            F.sum(F.when(places == 0, 1).otherwise(0)).alias("unaccounted"),
            F.sum(F.when(places > 1, 1).otherwise(0)).alias("double_counted"),
            F.sum(F.when(places == 1, F.col("deferred")).otherwise(0)).alias("deferred"),
        )
        .collect()[0]
    )
    out = {k: int(row[k] or 0) for k in ("raw_docs", "unaccounted", "double_counted", "deferred")}
    out["corpus_without_raw"] = corpus_without_raw(lake).count()
    return out


def deferred_age_hours(lake: Lake) -> int:
    """Hours since the oldest document of the deferred backlog was ingested (0 without a backlog)."""
    oldest = (
        lake.read("raw_docs")
        .join(deferred(lake), "doc_id", "left_semi")
        .agg(F.min("ingested_at").alias("t"))
        .collect()[0]["t"]
    )
    if oldest is None:
        return 0
    now = datetime.now(UTC)
    return int((now - (oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC))).total_seconds() // 3600)


def final_counts(lake: Lake) -> dict[str, int]:
    """The invariant, raised on; and the lake's totals for the run's counts."""
    acct = check_accounting(lake)
    if acct["unaccounted"] or acct["double_counted"] or acct["corpus_without_raw"]:
        orphans = acct["corpus_without_raw"]
        raise InvariantViolation(
            f"accounting invariant broken: {acct['unaccounted']} document(s) unaccounted for, "
            f"{acct['double_counted']} in both corpus and drops (or deferred)"
            + (f", {orphans} corpus row(s) without a raw_docs document" if orphans else "")
        )
    return {
        Count.CORPUS_SIZE: lake.read("corpus").count(),
        Count.RAW_DOCS_TOTAL: acct["raw_docs"],
        Count.QUARANTINE_TOTAL: lake.read("quarantine").count(),
        Count.UNACCOUNTED: acct["unaccounted"],
        Count.CORPUS_WITHOUT_RAW: acct["corpus_without_raw"],
        Count.DEFERRED_TOTAL: acct["deferred"],
        Count.DEFERRED_OLDEST_H: deferred_age_hours(lake) if acct["deferred"] else 0,
    }


def write_run_row(
    lake: Lake, summary: RunSummary, ctx: StageContext, engine: str, started: datetime, command: str = "run"
) -> None:
    if summary.seq is None:
        summary.seq = next_seq(lake)
    row = (
        summary.run_id,
        summary.status,
        summary.crawl_id,
        ctx.label,
        engine,
        ctx.cfg.config_hash(),
        summary.mlflow_run_id,
        {k: int(v) for k, v in summary.counts.items()},
        {k: int(v) for k, v in summary.table_versions.items()},
        summary.error,
        started,
        datetime.now(UTC),
        command,
        None,
        summary.seq,
    )
    if summary.status == RunStatus.INTERRUPTED:
        # the engine may still be busy with the query the signal cut short: every call through it would queue
        # behind that query (pipelines/core/interrupt.py), so the end is recorded through delta-rs
        lake.merge_rows_without_engine([row], "runs", ("run_id",))
        return
    try:
        lake.merge(lake.spark.createDataFrame([row], TABLES["runs"]), "runs", ("run_id",))
    except Exception:
        if summary.status == RunStatus.RUNNING or not lake.exists("runs"):
            raise
        # the engine is unreachable (a lost Spark Connect endpoint): record the end through delta-rs, so that
        # no `running` row is left behind for a run that is over
        lake.merge_rows_without_engine([row], "runs", ("run_id",))


def _remember(lake: Lake, ctx: StageContext) -> None:
    from pipelines.core.constitution import default_constitution_path
    from pipelines.core.lake_config import remember

    path = Path(ctx.cfg.classify.constitution) if ctx.cfg.classify.constitution else default_constitution_path()
    remember(lake.state_dir, ctx.cfg, path, ctx.constitution.fingerprint(), ctx.run_id)


def recover_abandoned(lake: Lake, tracking: Any, current_run_id: str) -> list[str]:
    """Close what a killed writer left open. Called by a writer that holds the lake's lock
    (pipelines/core/writer_lock.py), so every `running` row of another run is abandoned: it becomes `failed` (with
    the reason), its MLflow run
    (tagged `curate.run_id` at start) is marked FAILED, and staging folders of other runs are removed. Returns
    what it did, for the run's notes."""
    done: list[str] = []
    stale = []
    if lake.exists("runs"):
        stale = (
            lake.read("runs")
            .where((F.col("status") == str(RunStatus.RUNNING)) & (F.col("run_id") != current_run_id))
            .collect()
        )
    if stale:
        now = datetime.now(UTC)
        reason = f"abandoned: its process ended without recording an end (found by run {current_run_id})"
        ended = {"status": str(RunStatus.FAILED), "error": reason, "finished_at": now}
        names = TABLES["runs"].fieldNames()
        rows = [tuple({**r.asDict(), **ended}.get(n) for n in names) for r in stale]  # .get: rows of an older contract
        lake.merge(lake.spark.createDataFrame(rows, TABLES["runs"]), "runs", ("run_id",))
        done.append(f"marked {len(rows)} abandoned run(s) failed: {', '.join(r['run_id'] for r in stale)}")
        if tracking.enabled and not tracking.tracking_uri and (lake.state_dir / "mlflow.db").is_file():
            import mlflow

            uri = f"sqlite:///{(lake.state_dir / 'mlflow.db').resolve()}"
            client = mlflow.MlflowClient(tracking_uri=uri)
            ids = [e.experiment_id for e in client.search_experiments()]
            for r in stale:
                for run in client.search_runs(
                    ids, f"attributes.status = 'RUNNING' and tags.`curate.run_id` = '{r['run_id']}'"
                ):
                    client.set_tag(run.info.run_id, "curate.status", str(RunStatus.FAILED))
                    client.set_terminated(run.info.run_id, "FAILED")
    staging = lake.state_dir / "staging"
    leftovers = [d for d in staging.iterdir() if d.name != current_run_id] if staging.is_dir() else []
    for d in leftovers:
        shutil.rmtree(d, ignore_errors=True)
    if leftovers:
        done.append(f"removed {len(leftovers)} staging folder(s) of ended runs")
    return done


def execute(chain: Chain, ctx: StageContext, lake: Lake, progress: Progress | None = None) -> RunSummary:
    """Run `chain` on `lake` with the lifecycle above. Raises on a failed gate or stage (after recording it)."""
    t0 = time.monotonic()
    progress = progress or Progress(enabled=False)
    summary = RunSummary(run_id=ctx.run_id, status=RunStatus.RUNNING, crawl_id=ctx.crawl_id)
    started = datetime.now(UTC)
    engine = engine_name(lake.spark) + f" ({ctx.cfg.engine.kind})"
    staging = lake.state_dir / "staging" / ctx.run_id
    ctx = replace(
        ctx,
        lake=lake,
        materialise=Stager(lake.spark, staging),
        progress=progress,
        notes=summary.notes,
        promotions=summary.promotions,
    )
    lake.ensure_tables()  # the one place a run evolves older tables: every read after this only reads
    for i, what in enumerate(recover_abandoned(lake, ctx.cfg.tracking, ctx.run_id)):
        summary.notes[f"recovered:{i}"] = what
        if progress.enabled:
            progress.console.print(f"note: {what}")
    write_run_row(lake, summary, ctx, engine, started, chain.name)
    try:
        with track(lake.state_dir, ctx.cfg.tracking, run_name=f"{ctx.crawl_id}:{ctx.label or ctx.run_id}") as tracker:
            summary.mlflow_run_id = tracker.run_id
            tracker.tags({"curate.run_id": ctx.run_id})  # at start: a killed run's MLflow run can be found and closed
            tracker.params(flatten({"config": ctx.cfg.to_dict()}))
            tracker.params(
                {
                    "input_path": ctx.label,
                    "crawl_id": ctx.crawl_id,
                    "run_id": ctx.run_id,
                    "chain": chain.name,
                    "stages": ",".join(s.name for s in chain.stages),
                    "config_hash": ctx.cfg.config_hash(),
                    "constitution": ctx.constitution.fingerprint(),
                    **ctx.extra,
                }
            )
            tracker.text(yaml.safe_dump(ctx.cfg.to_dict(), sort_keys=False), "resolved_config.yaml")
            figures: dict[str, Any] = {}
            try:
                summary.status = _run_stages(chain, ctx, lake, summary, figures)
                for name, fig in figures.items():
                    tracker.figure(fig, name)
            except GateFailed as exc:
                summary.status, summary.error = RunStatus.FAILED_GATE, str(exc)
                raise
            except Exception as exc:
                if interrupted():  # the engine client's own reaction to the interrupt failed (a gRPC error)
                    summary.status, summary.error = RunStatus.INTERRUPTED, _during(interrupted_by(), progress)
                else:
                    summary.status, summary.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
                raise
            except KeyboardInterrupt as exc:  # Interrupted (the CLI's signals), or a notebook's interrupt
                summary.status, summary.error = RunStatus.INTERRUPTED, _during(str(exc) or "interrupted", progress)
                raise
            finally:
                summary.seconds = time.monotonic() - t0
                summary.counts[Count.SECONDS] = int(summary.seconds)
                tracker.metrics({k: float(v) for k, v in summary.counts.items()})
                tracker.metrics(
                    {
                        f"flagged_fraction:{p}": summary.flagged_fraction(p, chain.documents)
                        for p in ctx.constitution.names
                        if chain.documents in summary.counts
                    }
                )
                tracker.tags({"curate.status": summary.status, "curate.run_id": ctx.run_id})
                tracker.tags({f"curate.{k}": v for k, v in ctx.extra.items()})
                summary.table_versions = lake.versions()
                if summary.status in (RunStatus.SUCCESS, RunStatus.PUBLISHED):
                    _remember(lake, ctx)
                write_run_row(lake, summary, ctx, engine, started, chain.name)
                kill_point("run:recorded")
                summary.table_versions["runs"] = lake.version("runs") or 0
                tracker.dict(asdict(summary), "summary.json")
    except BaseException:
        if interrupted() and summary.status == RunStatus.RUNNING:  # before the stages (MLflow's start)
            summary.status, summary.error = RunStatus.INTERRUPTED, _during(interrupted_by(), progress)
            write_run_row(lake, summary, ctx, engine, started, chain.name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def amended(earlier: DataFrame, rows: DataFrame, table: str) -> DataFrame:
    """`earlier` with `rows` in place of its rows of the same key (pipelines/core/stage.py `amends`)."""
    key = list(publish.KEYS[table][0])
    return earlier.join(rows.select(*key), key, "left_anti").unionByName(rows)


def _during(what: str, progress: Progress) -> str:
    return f"{what} during {progress.current}" if progress.current else what


def _run_stages(chain: Chain, ctx: StageContext, lake: Lake, summary: RunSummary, figures: dict[str, Any]) -> str:
    progress = ctx.progress or Progress(enabled=False)
    df: DataFrame | None = None
    pending: dict[str, DataFrame] = {}
    ctx = replace(ctx, tables=pending)  # the same dict: a stage sees what the stages before it returned
    gates = 0

    def finish(status: str) -> str:
        summary.counts[Count.GATES_PASSED] = gates
        summary.counts.update(final_counts(lake))
        # Models move with the data: a champion chosen in this run takes the alias only now, after every gate
        # passed and the publish (whose scores it made) committed and was accounted for.
        if ctx.promotions:
            kill_point("champions:move")
            move_champions(ctx.cfg, {p: int(uri.rsplit("/", 1)[1]) for p, uri in ctx.promotions.items()})
        # which model version was champion for each principle when this run ended (0: none): restore moves back
        summary.counts.update({Count.champion(p): v for p, v in champion_versions(ctx.constitution, ctx.cfg).items()})
        return status

    for stage in chain.stages:
        if df is not None:
            check_columns(stage, df.columns, "reads")
        kill_point(f"{stage.name}:start")
        with progress.stage(stage.name):
            out = stage.transform(df, ctx)
            # a stage whose output is a join of frames it staged itself, or cheap expressions, is not written again
            out = ctx.stage(out, stage.name) if stage.materialise else out
            check_columns(stage, out.columns, "adds")
            tables = dict(stage.tables(out, ctx))
            summary.counts.update(stage.counts(out, tables, ctx))
        kill_point(f"{stage.name}:staged")
        halt = stage.halt(summary.counts, ctx)
        if halt is not None:  # before the stage's own gates: what it halts on is not published
            with progress.stage(f"{stage.name}: {halt.status}"):
                publish.publish(lake, {t: pending[t] for t in halt.publish if t in pending})
            return finish(halt.status)
        early = {t: tables[t] for t in stage.before_gates if t in tables} if stage.bronze else {}
        if early:
            with progress.stage(f"{stage.name}: writing {', '.join(early)}"):
                publish.publish_bronze(lake, early)
        for gate in stage.gates(ctx):
            if gate.optional and gate.on not in tables:
                continue
            target = out if gate.on is None else tables[gate.on]
            if gate.where is not None:
                target = target.where(gate.where)
            with progress.stage(f"gate: {gate.name}"):
                try:
                    report = run_gate(gate.name, target, gate.suite(ctx, summary.counts))
                except GateFailed as exc:
                    if gate.hint is None:
                        raise
                    raise GateFailed(exc.gate, exc.failures, gate.hint(ctx, summary.counts)) from None
            summary.counts[Count.gate(gate.name)] = report.evaluated  # what the run's report shows per gate
            gates += 1
        kill_point(f"{stage.name}:gated")
        figures.update(stage.figures(tables, ctx))
        if stage.bronze:
            rest = {t: df for t, df in tables.items() if t not in early}
            with progress.stage(f"{stage.name}: writing {', '.join(rest)}"):
                publish.publish_bronze(lake, rest)
        else:
            for t, rows in tables.items():  # a later stage's table replaces an earlier one's, or amends it
                pending[t] = amended(pending[t], rows, t) if t in stage.amends and t in pending else rows
        if stage.updates_champions:  # the aliases, overlaid with this run's choices (not yet aliased: see finish)
            chosen = {p: champion_of(ctx.cfg, p, uri) for p, uri in ctx.promotions.items()}
            ctx = ctx.with_champions({**champions_for(ctx.constitution, ctx.cfg), **chosen})
        df = out
    with progress.stage("publish: merging into Delta tables"):
        publish.publish(lake, pending)
    return finish(chain.published)

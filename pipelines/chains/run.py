"""`curate run`: the nightly chain (ingest -> undecided -> quality -> secrets -> pii -> dedup -> decontaminate ->
classify -> members -> revise -> decide -> dedup index -> audit), run by the executor (pipelines/core/execute.py),
which also publishes (pipelines/core/publish.py); a successful run gets its HTML report (pipelines/ops/report.py)
among its MLflow artifacts.

Crash safety: nothing user-visible but the bronze tables is written before every gate has passed; the published
tables are written by idempotent MERGEs, `corpus` before `decisions`, so a rerun after a crash at any point
re-decides exactly the documents that have no decision yet and converges to the same state.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.core import registry
from pipelines.core.config import RunConfig, resolve_revise_method
from pipelines.core.constitution import load_constitution
from pipelines.core.engine import EngineError, spark_session
from pipelines.core.execute import Chain, RunSummary, execute, new_run_id
from pipelines.core.lake import Lake
from pipelines.core.progress import Progress
from pipelines.core.stage import StageContext
from pipelines.ops.report import log_report
from pipelines.stages import ingest
from pipelines.stages.audit import TeacherAudit
from pipelines.stages.classify import Classify
from pipelines.stages.decide import Decide
from pipelines.stages.decontaminate import Decontaminate
from pipelines.stages.dedup import Dedup, DedupIndex
from pipelines.stages.members import JudgeMembers
from pipelines.stages.pii import Pii
from pipelines.stages.quality import Quality
from pipelines.stages.revise import Revise
from pipelines.stages.secrets import Secrets

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["NIGHTLY", "RunSummary", "context", "default_crawl_id", "run_pipeline"]

#: The nightly chain. A new stage is a module with a `Stage` class and an entry here (pipelines/core/stage.py).
NIGHTLY = Chain(
    name="run",
    stages=(
        ingest.Ingest(),
        ingest.Undecided(),
        Quality(),
        Secrets(),
        Pii(),
        Dedup(),
        Decontaminate(),
        Classify(),
        JudgeMembers(),  # the near duplicates of what classify flagged, judged on their own in the same run
        Revise(),
        Decide(),
        DedupIndex(),  # the index keys of what the run publishes, after its decision
        TeacherAudit(),
    ),
)


def check_engine_can_write_delta(spark: SparkSession, cfg: RunConfig) -> None:
    if cfg.engine.kind != "classic":
        return
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if "DeltaSparkSessionExtension" not in extensions:
        raise EngineError(
            "classic PySpark here has no Delta Lake JARs, so it cannot read or write the lake: use the default "
            "Sail engine, --remote sc://HOST:PORT to a Spark with Delta, or a cluster with delta-spark configured"
        )


def default_crawl_id(input_path: str | Path) -> str:
    name = Path(input_path).name
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".txt", ".csv", ".parquet", ".wet", ".warc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or "crawl"


def context(
    lake_root: str | Path,
    input_path: str | Path,
    cfg: RunConfig,
    crawl_id: str | None = None,
    *,
    champions: bool = True,
) -> StageContext:
    """The run's context, resolved before any engine starts: inputs listed, constitution loaded, the registry
    URI filled into the config (the config MLflow records), champions downloaded (not for a dry run)."""
    state_dir = Path(lake_root).resolve() / "_state"
    cfg = resolve_revise_method(registry.resolve(cfg, state_dir))
    constitution = load_constitution(cfg.classify.constitution)
    return StageContext(
        cfg=cfg,
        constitution=constitution,
        run_id=new_run_id(),
        crawl_id=crawl_id or default_crawl_id(input_path),
        champions=registry.champions_for(constitution, cfg) if champions else {},
        inputs=tuple(ingest.list_inputs(input_path)),
        label=str(input_path),
    )


def run_pipeline(
    lake_root: str | Path,
    input_path: str | Path,
    cfg: RunConfig,
    *,
    crawl_id: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the nightly chain on one input batch and publish a new corpus version. Raises on a failed gate."""
    from pipelines.core.writer_lock import writer_lock

    ctx = context(lake_root, input_path, cfg, crawl_id)
    progress = progress or Progress(enabled=False)
    root = Path(lake_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        note = stack.enter_context(writer_lock(root, "run", ctx.run_id))  # before the engine: refuse at once
        if note and progress.enabled:
            progress.console.print(f"note: {note}")
        with progress.stage(f"starting engine ({cfg.engine.kind})"):
            spark = stack.enter_context(spark_session(cfg.engine))
        check_engine_can_write_delta(spark, cfg)
        lake = Lake(root, spark)
        summary = execute(NIGHTLY, ctx, lake, progress)
        log_report(lake, summary, ctx.constitution, ctx.cfg.tracking, progress)
        return summary

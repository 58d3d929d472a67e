"""The nightly run: ingest -> quality -> dedup -> classify -> revise -> decide -> publish.

Crash safety: nothing user-visible but the bronze tables is written before every gate has passed; the
published tables are written by idempotent MERGEs, `corpus` before `decisions`, so a rerun after a crash
at any point re-decides exactly the documents that have no decision yet and converges to the same state.
Intermediate results are materialised under `_state/staging/<run_id>` (Sail has no `persist`), so the
model UDF runs once per document.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pyspark.sql import functions as F

from expectations import suites
from expectations.runner import GateFailed, run_gate
from pipelines import classify, decide, dedup, ingest, quality, revise
from pipelines.config import RunConfig
from pipelines.constitution import Constitution, load_constitution
from pipelines.engine import EngineError, engine_name, keepalive, spark_session
from pipelines.lake import Lake
from pipelines.progress import Progress
from pipelines.tracking import flatten, track
from schemas import TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class InvariantViolation(RuntimeError):
    """A document is unaccounted for or counted twice: a bug, never silently ignored."""


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
    score_histograms: dict[str, list[int]] = field(default_factory=dict)


HIST_BINS = 20


def check_engine_can_write_delta(spark: SparkSession, cfg: RunConfig) -> None:
    if cfg.engine.kind != "classic":
        return
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if "DeltaSparkSessionExtension" not in extensions:
        raise EngineError(
            "classic PySpark here has no Delta Lake JARs, so it cannot read or write the lake: use the default "
            "Sail engine, --remote sc://HOST:PORT to a Spark with Delta, or a cluster with delta-spark configured"
        )


def score_histogram_figure(hists: dict[str, list[int]], constitution: Constitution) -> Any:
    """Score distribution per principle with its revise and filter thresholds: the plot people look at first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(hists)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    edges = [i / HIST_BINS for i in range(HIST_BINS)]
    for ax, name in zip(axes[0], names, strict=True):
        ax.bar(edges, hists[name], width=1 / HIST_BINS, align="edge", color="#4c72b0")
        p = constitution.get(name)
        ax.axvline(p.revise_threshold, color="#dd8452", linestyle="--", label="revise")
        ax.axvline(p.filter_threshold, color="#c44e52", linestyle="--", label="filter")
        ax.set_yscale("symlog")
        ax.set_title(f"{name} ({p.mode})")
        ax.set_xlabel("score")
    axes[0][0].set_ylabel("documents")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def default_crawl_id(input_path: str | Path) -> str:
    name = Path(input_path).name
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".parquet", ".wet", ".warc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or "crawl"


class _Stager:
    """Materialise a DataFrame once under the run's staging dir and read it back."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark, self.root = spark, root

    def __call__(self, df: DataFrame, name: str) -> DataFrame:
        path = str(self.root / name)
        df.write.format("delta").mode("overwrite").save(path)
        return self.spark.read.format("delta").load(path)


def check_accounting(lake: Lake) -> dict[str, int]:
    """Every document in `raw_docs` is in exactly one of `corpus` or (latest decision) `drop`."""
    raw = lake.read("raw_docs").select("doc_id")
    corpus = lake.read("corpus").select("doc_id").withColumn("in_corpus", F.lit(1))
    latest = (
        lake.read("decisions")
        .groupBy("doc_id")
        .agg(F.max(F.struct("decided_at", "run_id", "action")).alias("last"))
        .where(F.col("last.action") == "drop")
        .select("doc_id", F.lit(1).alias("dropped"))
    )
    joined = raw.join(corpus, "doc_id", "left").join(latest, "doc_id", "left")
    places = F.coalesce(F.col("in_corpus"), F.lit(0)) + F.coalesce(F.col("dropped"), F.lit(0))
    row = joined.agg(
        F.count("*").alias("raw_docs"),
        F.sum(F.when(places == 0, 1).otherwise(0)).alias("unaccounted"),
        F.sum(F.when(places > 1, 1).otherwise(0)).alias("double_counted"),
    ).collect()[0]
    return {k: int(row[k] or 0) for k in ("raw_docs", "unaccounted", "double_counted")}


def _write_run_row(
    lake: Lake, summary: RunSummary, cfg: RunConfig, input_path: str, engine: str, started: datetime
) -> None:
    spark = lake.spark
    assert spark is not None
    row = (
        summary.run_id,
        summary.status,
        summary.crawl_id,
        input_path,
        engine,
        cfg.config_hash(),
        summary.mlflow_run_id,
        {k: int(v) for k, v in summary.counts.items()},
        {k: int(v) for k, v in summary.table_versions.items()},
        summary.error,
        started,
        datetime.now(UTC),
    )
    lake.merge(spark.createDataFrame([row], TABLES["runs"]), "runs", ("run_id",))


def run_pipeline(
    lake_root: str | Path,
    input_path: str | Path,
    cfg: RunConfig,
    *,
    crawl_id: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run every stage on one input batch and publish a new corpus version. Raises on a failed gate."""
    t0 = time.monotonic()
    files = ingest.list_inputs(input_path)
    constitution = load_constitution(cfg.classify.constitution)
    crawl_id = crawl_id or default_crawl_id(input_path)
    run_id = new_run_id()
    progress = progress or Progress(enabled=False)
    summary = RunSummary(run_id=run_id, status="running", crawl_id=crawl_id)
    started = datetime.now(UTC)
    root = Path(lake_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        with progress.stage(f"starting engine ({cfg.engine.kind})"):
            spark = stack.enter_context(spark_session(cfg.engine))
        check_engine_can_write_delta(spark, cfg)
        lake = Lake(root, spark)
        engine = engine_name(spark) + (f" ({cfg.engine.kind})")
        staging = lake.state_dir / "staging" / run_id
        # A run killed mid-way stays visible as `running` in `runs` (its staging dir is left for inspection).
        _write_run_row(lake, summary, cfg, str(input_path), engine, started)
        with track(lake.state_dir, cfg.tracking, run_name=f"{crawl_id}:{run_id}") as tracker:
            summary.mlflow_run_id = tracker.run_id
            tracker.params(flatten({"config": cfg.to_dict()}))
            tracker.params(
                {
                    "input_path": str(input_path),
                    "crawl_id": crawl_id,
                    "run_id": run_id,
                    "config_hash": cfg.config_hash(),
                    "constitution": constitution.fingerprint(),
                }
            )
            tracker.text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "resolved_config.yaml")
            try:
                _stages(lake, spark, files, cfg, constitution, crawl_id, run_id, staging, summary, progress)
                summary.status = "success"
                if summary.score_histograms:
                    tracker.figure(score_histogram_figure(summary.score_histograms, constitution), "scores.png")
            except GateFailed as exc:
                summary.status, summary.error = "failed_gate", str(exc)
                raise
            except Exception as exc:
                summary.status, summary.error = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                summary.seconds = time.monotonic() - t0
                summary.counts["seconds"] = int(summary.seconds)
                tracker.metrics({k: float(v) for k, v in summary.counts.items()})
                tracker.tags({"curate.status": summary.status, "curate.run_id": run_id})
                summary.table_versions = lake.versions()
                _write_run_row(lake, summary, cfg, str(input_path), engine, started)
                summary.table_versions["runs"] = lake.version("runs") or 0
                tracker.dict(asdict(summary), "summary.json")
                shutil.rmtree(staging, ignore_errors=True)
    return summary


def _stages(
    lake: Lake,
    spark: SparkSession,
    files: list[tuple[str, str]],
    cfg: RunConfig,
    constitution: Constitution,
    crawl_id: str,
    run_id: str,
    staging: Path,
    summary: RunSummary,
    progress: Progress,
) -> None:
    stage = _Stager(spark, staging)
    counts = summary.counts
    gates: list[str] = []

    def gate(name: str, df: DataFrame, expectations: list[Any]) -> None:
        with progress.stage(f"gate: {name}"):
            run_gate(name, df, expectations)
        gates.append(name)

    # ---- ingest (bronze) -------------------------------------------------------------------------
    with progress.stage(f"ingest: parsing {len(files)} file(s)"):
        parsed = stage(ingest.parse_inputs(spark, files, cfg.ingest), "parsed")
    gate("ingest", parsed, suites.ingest(cfg.ingest.max_quarantine_fraction))
    with progress.stage("ingest: writing raw_docs and quarantine"):
        before = lake.version("raw_docs")
        lake.ensure("raw_docs")
        raw_before = lake.read("raw_docs", version=before if before is not None else None)
        result = ingest.summarise(parsed, raw_before)
        ingest.write(lake, parsed, crawl_id, run_id)
    counts.update({k: v for k, v in asdict(result).items() if isinstance(v, int)})
    counts.update({f"quarantine:{k}": v for k, v in result.quarantine_reasons.items()})

    # ---- the documents this run decides: every ingested doc without a decision yet ----------------
    with progress.stage("selecting undecided documents"):
        decided = lake.read("decisions").select("doc_id").distinct()
        pending = stage(lake.read("raw_docs").join(decided, "doc_id", "left_anti"), "pending")
        counts["pending"] = n_pending = pending.count()
    if n_pending == 0:
        counts.update(_final_counts(lake))
        return
    gate("pending", pending, suites.pending_docs())

    # ---- quality ---------------------------------------------------------------------------------
    with progress.stage(f"quality: {n_pending} documents"):
        q = stage(quality.transform(pending.select("doc_id", "text"), cfg.quality), "quality")
        counts["quality_failed"] = q.where(F.size("quality_reasons") > 0).count()
    gate("quality", q, suites.quality(cfg.quality))
    # C4's line cleaning: dedup, classify, revise and the corpus read the cleaned text; raw_docs keeps the original
    pending = pending.drop("text").join(
        q.select("doc_id", quality.text_for_later_stages(cfg.quality).alias("text")), "doc_id"
    )

    # ---- exact dedup, against every earlier crawl ------------------------------------------------
    # ... and MinHash-LSH near dedup against the corpus's `minhash_index` (pipelines/dedup.py).
    with progress.stage("dedup: exact and MinHash-LSH, against the corpus"):
        passing = pending.join(q.where(F.size("quality_reasons") == 0).select("doc_id"), "doc_id")
        d = stage(
            dedup.transform(
                passing.select("doc_id", "crawl_id", "text"),
                lake.read("dedup"),
                cfg.dedup,
                index=lake.read("minhash_index") if cfg.dedup.fuzzy else None,
                texts=lake.read("raw_docs").select("doc_id", "text") if cfg.dedup.verify else None,
                checkpoint=stage,
            ),
            "dedup",
        )
        for r in d.where(F.col("is_duplicate")).groupBy("dup_kind").count().collect():
            counts[f"{r['dup_kind'].removesuffix('_duplicate')}_duplicates"] = int(r["count"])
        counts.setdefault("exact_duplicates", 0)
        counts.setdefault("near_duplicates", 0)
    gate("dedup", d, suites.dedup())

    # ---- principle scores --------------------------------------------------------------------------
    to_score = d.where(~F.col("is_duplicate")).select("doc_id", "text")
    n_score = to_score.count()

    from pipelines.tracking import tracking_uri

    # Champions come from the lake's own registry unless configured; revise's re-scoring (below) uses the same.
    registry = cfg.classify.registry_uri or tracking_uri(lake.state_dir, cfg.tracking)
    cfg = replace(cfg, classify=replace(cfg.classify, registry_uri=registry))
    champions = classify.resolve_champions(constitution, cfg.classify)
    with progress.stage(f"classify: scoring {n_score} documents x {len(constitution.names)} principles"):
        scored_text = stage(classify.transform(to_score, constitution, cfg.classify, champions), "scored")
        scores_long = stage(
            classify.to_scores_table(scored_text, constitution, run_id, cfg.classify, champions), "scores"
        )
        scored = scored_text.drop("text", "principle_models")
    counts["scored"] = n_score
    counts["principles_with_champion"] = len(champions)
    bins = F.least(F.floor(F.col("score") * HIST_BINS), F.lit(HIST_BINS - 1)).cast("int")
    summary.score_histograms = {n: [0] * HIST_BINS for n in constitution.names}
    for r in scores_long.groupBy("principle", bins.alias("bin")).count().collect():
        summary.score_histograms[r["principle"]][r["bin"]] = int(r["count"])
    gate("scores", scores_long, suites.scores(constitution.names))

    base = (
        pending.select("doc_id", "crawl_id", "text", "source", "url")
        .join(q.select("doc_id", "quality_reasons"), "doc_id")
        .join(d.select("doc_id", "is_duplicate", "dup_kind"), "doc_id", "left")
        .join(scored, "doc_id", "left")
    )
    flagged = stage(decide.principle_flags(base, constitution), "flagged")
    for p in constitution.principles:
        # a positive principle is never flagged: its count is of the documents it upweights
        counts[f"{'upsampled' if p.positive_kind else 'flagged'}:{p.name}"] = scores_long.where(
            (F.col("principle") == p.name) & (F.col("score") >= p.revise_threshold)
        ).count()

    # ---- revision ----------------------------------------------------------------------------------
    outcomes = _revise(lake, spark, flagged, constitution, cfg, counts, progress)
    out_schema = "doc_id string, revision_status string, revised_text string"
    out_df = spark.createDataFrame([(o.doc_id, o.status, o.revised_text) for o in outcomes], out_schema)
    decided_df = stage(
        decide.transform(flagged.join(out_df, "doc_id", "left"), constitution, revise.decide_fallback(cfg.revise)),
        "decided",
    )

    # ---- gates before publishing ---------------------------------------------------------------------
    decisions = decide.decision_rows(decided_df, run_id)
    gate("decisions", decisions, suites.decisions(n_pending))
    corpus_rows = decide.corpus_rows(decided_df.where(F.col("action") != "drop"), constitution, run_id)
    gate("corpus", corpus_rows, suites.corpus())

    # ---- publish: stage tables, corpus, then decisions (see the module docstring) -------------------
    with progress.stage("publish: merging into Delta tables"):
        lake.merge(
            q.select(*[F.lit(run_id).alias(c) if c == "run_id" else F.col(c) for c in TABLES["quality"].fieldNames()]),
            "quality",
            ("doc_id",),
        )
        lake.merge(d.withColumn("run_id", F.lit(run_id)), "dedup", ("doc_id",))
        lake.merge(dedup.index_rows(d, cfg.dedup, run_id), "minhash_index", ("doc_id", "band"), update=False)
        lake.merge(scores_long, "scores", ("doc_id", "principle"))
        if outcomes:
            lake.merge(_revisions_df(spark, outcomes, run_id), "revisions", ("doc_id", "run_id"))
        lake.merge(corpus_rows, "corpus", ("doc_id",))
        lake.merge(decisions, "decisions", ("doc_id", "run_id"), update=False)
    for r in decisions.groupBy("action").count().collect():
        counts[f"action:{r['action']}"] = int(r["count"])
    for r in decisions.select(F.explode("reasons").alias("reason")).groupBy("reason").count().collect():
        counts[f"reason:{r['reason']}"] = int(r["count"])
    counts["gates_passed"] = len(gates)
    counts.update(_final_counts(lake))


def _final_counts(lake: Lake) -> dict[str, int]:
    acct = check_accounting(lake)
    if acct["unaccounted"] or acct["double_counted"]:
        raise InvariantViolation(
            f"accounting invariant broken: {acct['unaccounted']} document(s) unaccounted for, "
            f"{acct['double_counted']} in both corpus and drops"
        )
    return {
        "corpus_size": lake.read("corpus").count(),
        "raw_docs_total": acct["raw_docs"],
        "quarantine_total": lake.read("quarantine").count(),
        "unaccounted": acct["unaccounted"],
    }


def _revise(
    lake: Lake,
    spark: SparkSession,
    flagged: DataFrame,
    constitution: Constitution,
    cfg: RunConfig,
    counts: dict[str, int],
    progress: Progress,
) -> list[revise.Outcome]:
    r = cfg.revise
    llm = r.method == "llm"
    # max_doc_chars bounds what the LLM must write back; excision has no such limit.
    fits = F.length("text") <= r.max_doc_chars if llm else F.lit(True)
    # Every candidate reaches the driver anyway (the attempted ones to be revised, the others as over_cap /
    # too_long rows of `revisions`, with their text): one ordered collect, split here.
    order = (F.col("score_before").desc(), F.col("doc_id"))
    ordered = [
        x.asDict() for x in revise.candidates(flagged, constitution).withColumn("fits", fits).orderBy(*order).collect()
    ]
    counts["revision_candidates"] = len(ordered)
    if not ordered:
        return []
    to_llm = [x for x in ordered if x["fits"]][: r.max_docs] if r.enabled and llm else []
    taken = {x["doc_id"] for x in to_llm}
    rest = [x for x in ordered if x["doc_id"] not in taken]
    # what the LLM does not take is excised, cheaply
    to_excise = rest[: r.max_excise_docs] if r.enabled and (not llm or r.fallback == "excise") else []
    attempted = taken | {x["doc_id"] for x in to_excise}
    outcomes = [
        revise.Outcome(
            doc_id=x["doc_id"],
            status="over_cap" if x["fits"] else "too_long",
            principles=[],
            original_text=x["text"],
        )
        for x in rest
        if x["doc_id"] not in attempted
    ]

    def rescore(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
        df = spark.createDataFrame(pairs, "doc_id string, text string")
        rows = classify.transform(df, constitution, cfg.classify).select("doc_id", "principle_scores").collect()
        return {x["doc_id"]: list(x["principle_scores"]) for x in rows}

    embed = revise.document_embedder(cfg.classify)  # loads the encoder on first use only
    if to_llm:
        with (
            keepalive(spark),
            revise.llm_client(r, lake.state_dir / "logs", progress) as (client, model),
        ):
            bar: Callable[[int], None] = progress.bar(f"revise: rewriting {len(to_llm)} documents", len(to_llm))
            try:
                outcomes += revise.revise(to_llm, constitution, r, rescore, embed, client, model, progress=bar)
            finally:
                progress.end_bar()
    if to_excise:
        with progress.stage(f"revise: excising flagged sentences of {len(to_excise)} documents"):
            excised = revise.revise(to_excise, constitution, replace(r, method="excise"), rescore, embed)
        for o, x in zip(excised, to_excise, strict=True):
            if llm:  # the LLM never saw it: say why it was excised instead
                o.fallback_from = "over_cap" if x["fits"] else "too_long"
        outcomes += excised
    for o in outcomes:
        counts[f"revision:{o.status}"] = counts.get(f"revision:{o.status}", 0) + 1
        if o.status == "ok":
            counts[f"revision_method:{o.method}"] = counts.get(f"revision_method:{o.method}", 0) + 1
    return outcomes


def _revisions_df(spark: SparkSession, outcomes: list[revise.Outcome], run_id: str) -> DataFrame:
    now = datetime.now(UTC)
    rows = [
        (
            o.doc_id,
            run_id,
            o.original_text,
            o.revised_text,
            o.principles,
            o.method,
            o.model,
            o.prompt_version,
            o.status,
            o.reject_reasons,
            o.score_before,
            o.score_after,
            o.length_ratio,
            o.similarity,
            o.fallback_from,
            o.llm_rewrite,
            o.error,
            now,
        )
        for o in outcomes
        if o.status not in ("over_cap", "too_long")
    ]
    return spark.createDataFrame(rows, TABLES["revisions"])

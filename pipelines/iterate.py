"""`curate iterate`: curate the published corpus again with a classifier retrained on it, until a fixed point.

One round:
1. **the re-decided documents** R: every document whose latest decision is not a drop (the documents of the
   latest corpus version), plus every document whose latest decision is a drop by a principle (stage
   `classify`: over a filter threshold; stage `revise`: flagged and its revision failed or was not made).
   Drops for quality or duplication are final: no classifier can change them. The set is read from the latest
   decisions, not from `corpus`, so that a round killed between its corpus and decisions commits is repaired by
   the next one (see "publish" below);
2. **relabel** a sample of R per principle with the configured labeler (`iterate.labeler`; labels are cached by
   text, so a document labelled before costs nothing; `human:<dataset>` means: imported labels only) - the
   sample is stratified by the current scores (pipelines/sampling.py);
3. **retrain** every principle (pipelines/distill.py, `distill.kind`); the `champion` alias moves only when the
   new model beats it, and a principle without enough labels keeps its current scorer;
4. **rescore** R's text (the quality stage's cleaned text, the text the nightly run scored) with the champions
   and write the scores (with spans) to `scores`;
5. **re-decide** R (pipelines/decide.py) with the same policies as the nightly run; the revision outcome is the
   latest one in `revisions` (an accepted rewrite or excision stays accepted). A document newly in a revise band
   that no reviser has tried is excised when the config revises by excision (`revise.method` or the default
   `revise.fallback: excise`; up to `revise.max_excise_docs` a round, `revisions` rows written at once so a
   rejected excision is not retried); iteration never calls the LLM. Otherwise, or when excision fails, it takes
   the decision step's fallback - drop, or tag with `revise.fallback: tag`;
6. a document **changed decision** when its action, its tags or its weight differ from before the round;
   a round in which none changed is the **fixed point**: nothing is published and iteration stops;
7. **publish** otherwise (the nightly run's rules): gates first, then `scores`, then `corpus` in one MERGE
   commit (upserts of kept documents, deletes of newly dropped ones: one new corpus version), then one
   `decisions` row per re-decided document with the round's run id; the accounting invariant is checked.

Every round is a row in `runs` (counts: `round`, `redecided`, `changed`, `flagged:<principle>` - for a positive
principle `upsampled:<principle>` - and `action:<action>`) and an MLflow run with the same numbers plus
`flagged_fraction__<principle>` (flagged documents / re-decided documents).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from expectations import suites
from expectations.runner import run_gate
from pipelines import classify, decide, quality, revise
from pipelines.config import RunConfig
from pipelines.constitution import Constitution, load_constitution
from pipelines.engine import engine_name
from pipelines.lake import _quote_path, check_ident
from pipelines.progress import Progress
from pipelines.run import (
    InvariantViolation,
    RunSummary,
    _revise,
    _revisions_df,
    _Stager,
    _write_run_row,
    check_accounting,
    new_run_id,
)
from pipelines.tracking import flatten, track, tracking_uri
from schemas import TABLES

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pipelines.lake import Lake

PRINCIPLE_DROP_STAGES = ("classify", "revise")


@dataclass
class RoundResult:
    round: int
    run_id: str
    status: str  # published | fixed_point | failed
    redecided: int = 0
    changed: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    flagged_fraction: dict[str, float] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    champions: dict[str, str] = field(default_factory=dict)  # principle -> model URI that scored this round
    promoted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # principle -> why it was not retrained
    corpus_version: int | None = None
    mlflow_run_id: str | None = None
    error: str | None = None


@dataclass
class IterateSummary:
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def fixed_point(self) -> bool:
        return bool(self.rounds) and self.rounds[-1].status == "fixed_point"


def latest_decisions(lake: Lake) -> DataFrame:
    """doc_id, action, stage, reasons of every document's latest decision."""
    last = F.max(F.struct("decided_at", "run_id", "action", "stage", "reasons")).alias("last")
    return (
        lake.read("decisions")
        .groupBy("doc_id")
        .agg(last)
        .select("doc_id", F.col("last.action").alias("action"), "last.stage", F.col("last.reasons").alias("reasons"))
    )


def redecide_set(lake: Lake) -> DataFrame:
    """doc_id, prev_action: the documents a round re-decides (module docstring, step 1)."""
    latest = latest_decisions(lake)
    chosen = (F.col("action") != "drop") | F.col("stage").isin(*PRINCIPLE_DROP_STAGES)
    return latest.where(chosen).select("doc_id", F.col("action").alias("prev_action"))


def _documents(lake: Lake, cfg: RunConfig) -> DataFrame:
    """R with what scoring and the corpus need: the cleaned text, source, url, crawl and previous state."""
    ids = redecide_set(lake)
    raw = lake.read("raw_docs").select("doc_id", "crawl_id", "source", "url", "text")
    q = lake.read("quality").select("doc_id", "clean_text")
    text = quality.text_for_later_stages(cfg.quality)
    corpus = lake.read("corpus").select(
        "doc_id", F.col("tags").alias("prev_tags"), F.col("weight").alias("prev_weight")
    )
    return (
        ids.join(raw, "doc_id")
        .join(q, "doc_id", "left")
        .select("doc_id", "crawl_id", "source", "url", text.alias("text"), "prev_action")
        .join(corpus, "doc_id", "left")
    )


def _latest_revisions(lake: Lake) -> DataFrame:
    last = F.max(F.struct("revised_at", "run_id", "status", "revised_text")).alias("last")
    return (
        lake.read("revisions")
        .groupBy("doc_id")
        .agg(last)
        .select(
            "doc_id",
            F.col("last.status").alias("revision_status"),
            F.col("last.revised_text").alias("revised_text"),
        )
    )


# Revision statuses of documents no reviser has tried: iteration may excise them.
_UNTRIED = ("over_cap", "too_long")


def _excise_newly_flagged(
    lake: Lake,
    flagged: DataFrame,
    constitution: Constitution,
    cfg: RunConfig,
    counts: dict[str, int],
    progress: Progress,
    run_id: str,
) -> DataFrame:
    """Excise the re-decided documents that are now in a revise band and that no reviser has tried, when the
    config revises by excision (`revise.method` or `revise.fallback` excise); iteration never calls the LLM (that
    is the nightly run's, under its cost cap). Their `revisions` rows are written at once, so a rejected
    excision is not retried by the next round. Returns `flagged` with these outcomes as the revision inputs."""
    r = cfg.revise
    if not r.enabled or "excise" not in (r.method, r.fallback):
        return flagged
    untried = F.col("revision_status").isNull() | F.col("revision_status").isin(*_UNTRIED)
    spark = lake._spark()
    xcfg = replace(cfg, revise=replace(r, method="excise"))
    outcomes = _revise(lake, spark, flagged.where(untried), constitution, xcfg, counts, progress)
    tried = [o for o in outcomes if o.status not in _UNTRIED]
    if not tried:
        return flagged
    lake.merge(_revisions_df(spark, tried, run_id), "revisions", ("doc_id", "run_id"))
    new = spark.createDataFrame(
        [(o.doc_id, o.status, o.revised_text) for o in tried], "doc_id string, _status string, _text string"
    )
    return (
        flagged.join(new, "doc_id", "left")
        .withColumn("revision_status", F.coalesce(F.col("_status"), F.col("revision_status")))
        .withColumn(
            "revised_text", F.when(F.col("_status").isNotNull(), F.col("_text")).otherwise(F.col("revised_text"))
        )
        .drop("_status", "_text")
    )


def changed_decision() -> Column:
    """Action, tags or weight differ from the document's state before the round."""
    empty = F.array().cast("array<string>")
    tags_now = F.array_sort(F.col("tags"))
    tags_before = F.array_sort(F.coalesce(F.col("prev_tags"), empty))
    kept = F.col("action") != "drop"
    return (F.col("action") != F.col("prev_action")) | (
        kept
        & (
            (tags_now != tags_before)
            | (F.col("weight") != F.coalesce(F.col("prev_weight"), F.lit(1.0)))
            | F.col("prev_tags").isNull()
        )
    )


def _relabel_and_retrain(
    lake: Lake, docs: DataFrame, constitution: Constitution, cfg: RunConfig, result: RoundResult, progress: Progress
) -> None:
    from pipelines.distill import DistillError, distill
    from pipelines.label import label_documents
    from pipelines.revise import default_cache_dir
    from pipelines.sampling import sample_for_labeling
    from udfs.labelers import LabelerContext, make_labeler

    names = list(cfg.iterate.principles) or constitution.names
    principles = [constitution.get(n) for n in names]
    labeler = None
    if not cfg.iterate.labeler.startswith("human:") and cfg.iterate.sample > 0:
        ctx = LabelerContext(cfg.label, default_cache_dir() / "llm", lake.state_dir / "logs")
        labeler = make_labeler(cfg.iterate.labeler, ctx)
    try:
        for p in principles:
            if labeler is not None:
                with progress.stage(f"round {result.round}: labelling {p.name} ({labeler.name})"):
                    scores = lake.read("scores").where(F.col("principle") == p.name).select("doc_id", "score")
                    sample = sample_for_labeling(
                        docs.select("doc_id", "text", "source"),
                        scores,
                        cfg.iterate.sample,
                        threshold=p.label_threshold,
                        uncertain_fraction=cfg.label.uncertain_fraction,
                        score_bins=cfg.label.score_bins,
                        seed=cfg.label.seed,
                    )
                    rows = [r.asDict() for r in sample.select("doc_id", "text", "source").collect()]
                    label_documents(lake, p, labeler, rows, chunk_size=cfg.label.chunk_size)
            with progress.stage(f"round {result.round}: distilling {p.name} ({cfg.distill.kind})"):
                try:
                    out = distill(lake, p, cfg)
                except DistillError as exc:
                    result.skipped[p.name] = str(exc)
                    continue
            if out.champion:
                result.promoted.append(p.name)
    finally:
        if labeler is not None:
            labeler.close()


def _publish_corpus(lake: Lake, rows: DataFrame) -> None:
    """One MERGE commit: upsert the kept documents, delete the dropped ones (a new corpus version)."""
    spark = lake._spark()
    lake.ensure("corpus")
    cols = [check_ident(c) for c in TABLES["corpus"].fieldNames()]
    view = check_ident("_src_iterate_corpus")
    rows.select(*cols, "_drop").createOrReplaceTempView(view)
    target = f"delta.`{_quote_path(lake.path('corpus'))}`"
    sets = ", ".join(f"t.{c} = s.{c}" for c in cols)
    spark.sql(
        f"MERGE INTO {target} AS t USING {view} AS s ON t.doc_id = s.doc_id "
        "WHEN MATCHED AND s._drop THEN DELETE "
        f"WHEN MATCHED THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED AND NOT s._drop THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('s.' + c for c in cols)})"
    )
    spark.catalog.dropTempView(view)


def _round(
    lake: Lake,
    cfg: RunConfig,
    constitution: Constitution,
    result: RoundResult,
    staging: Path,
    progress: Progress,
    counts: dict[str, int],
) -> None:
    spark = lake._spark()
    stage = _Stager(spark, staging)
    run_id = result.run_id
    with progress.stage(f"round {result.round}: selecting the documents to re-decide"):
        docs = stage(_documents(lake, cfg), "docs")
        result.redecided = counts["redecided"] = n = docs.count()
    if n == 0:
        result.status = "fixed_point"
        return
    _relabel_and_retrain(lake, docs, constitution, cfg, result, progress)

    ccfg = cfg.classify
    champions = classify.resolve_champions(constitution, ccfg)
    fallback = classify.model_uri(constitution)
    result.champions = {p: champions[p].model_uri if p in champions else fallback for p in constitution.names}
    with progress.stage(f"round {result.round}: scoring {n} documents x {len(constitution.names)} principles"):
        scored_text = stage(classify.transform(docs.select("doc_id", "text"), constitution, ccfg, champions), "scored")
        scores_long = stage(classify.to_scores_table(scored_text, constitution, run_id, ccfg, champions), "scores")
    run_gate("scores", scores_long, suites.scores(constitution.names))

    empty = F.array().cast("array<string>")
    base = (
        docs.join(scored_text.select("doc_id", "principle_scores"), "doc_id")
        .withColumn("quality_reasons", empty)
        .withColumn("is_duplicate", F.lit(False))
        .join(_latest_revisions(lake), "doc_id", "left")
    )
    flagged = stage(decide.principle_flags(base, constitution), "flagged")
    flagged = _excise_newly_flagged(lake, flagged, constitution, cfg, counts, progress, run_id)
    decided = stage(
        decide.transform(flagged, constitution, revise.decide_fallback(cfg.revise))
        .withColumn("changed", changed_decision())
        .drop("principle_models"),
        "decided",
    )
    for p in constitution.principles:
        key = f"{'upsampled' if p.positive_kind else 'flagged'}:{p.name}"
        k = scores_long.where((F.col("principle") == p.name) & (F.col("score") >= p.revise_threshold)).count()
        result.flagged[p.name] = counts[key] = k
        result.flagged_fraction[p.name] = k / n
    result.actions = {r["action"]: int(r["count"]) for r in decided.groupBy("action").count().collect()}
    counts.update({f"action:{a}": c for a, c in result.actions.items()})
    result.changed = counts["changed"] = decided.where(F.col("changed")).count()
    if result.changed == 0:
        # scores are still published: they are the current champions' view of the corpus
        lake.merge(scores_long, "scores", ("doc_id", "principle"))
        result.status = "fixed_point"
        return

    decisions = decide.decision_rows(decided, run_id)
    run_gate("decisions", decisions, suites.decisions(n))
    corpus_rows = decide.corpus_rows(decided, constitution, run_id).withColumn("_drop", F.col("action") == "drop")
    run_gate("corpus", corpus_rows.where(~F.col("_drop")), suites.corpus())
    with progress.stage(f"round {result.round}: publishing (scores, corpus, decisions)"):
        lake.merge(scores_long, "scores", ("doc_id", "principle"))
        _publish_corpus(lake, corpus_rows)
        lake.merge(decisions, "decisions", ("doc_id", "run_id"), update=False)
    result.corpus_version = lake.version("corpus")
    acct = check_accounting(lake)
    if acct["unaccounted"] or acct["double_counted"]:
        raise InvariantViolation(
            f"accounting invariant broken after round {result.round}: {acct['unaccounted']} unaccounted, "
            f"{acct['double_counted']} double counted"
        )
    result.status = "published"


def iterate(lake: Lake, cfg: RunConfig, rounds: int | None = None, progress: Progress | None = None) -> IterateSummary:
    """Run up to `rounds` (default `iterate.rounds`) rounds; stop early at a fixed point."""
    progress = progress or Progress(enabled=False)
    rounds = cfg.iterate.rounds if rounds is None else rounds
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    constitution = load_constitution(cfg.classify.constitution)
    unknown = sorted(set(cfg.iterate.principles) - set(constitution.names))
    if unknown:
        raise ValueError(f"iterate.principles names unknown principle(s) {unknown} (have: {constitution.names})")
    if not lake.exists("decisions"):
        raise ValueError(f"no decisions in {lake.root}: run `curate run` first")
    registry = cfg.classify.registry_uri or tracking_uri(lake.state_dir, cfg.tracking)
    cfg = replace(cfg, classify=replace(cfg.classify, registry_uri=registry))
    spark = lake._spark()
    engine = engine_name(spark) + f" ({cfg.engine.kind})"
    iteration = new_run_id()
    summary = IterateSummary()
    for k in range(1, rounds + 1):
        t0 = time.monotonic()
        result = RoundResult(round=k, run_id=new_run_id(), status="running")
        counts: dict[str, int] = {"round": k}
        run = RunSummary(run_id=result.run_id, status="running", crawl_id="iterate", counts=counts)
        started = datetime.now(UTC)
        where = f"iterate:{iteration}:round-{k}"
        _write_run_row(lake, run, cfg, where, engine, started)
        staging = lake.state_dir / "staging" / result.run_id
        try:
            _round(lake, cfg, constitution, result, staging, progress, counts)
        except Exception as exc:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            counts["seconds"] = int(time.monotonic() - t0)
            counts["promoted"] = len(result.promoted)
            # distill opens MLflow runs of its own: the round's run is opened once they are closed
            with track(lake.state_dir, cfg.tracking, run_name=where) as tracker:
                result.mlflow_run_id = tracker.run_id
                tracker.params(flatten({"config": cfg.to_dict()}))
                tracker.params({"iteration": iteration, "round": str(k), "run_id": result.run_id})
                tracker.metrics({k2: float(v) for k2, v in counts.items()})
                tracker.metrics({f"flagged_fraction:{p}": v for p, v in result.flagged_fraction.items()})
                tracker.tags({"curate.status": result.status, "curate.iteration": iteration})
                tracker.dict(asdict(result), "round.json")
            run.status, run.error, run.mlflow_run_id = result.status, result.error, result.mlflow_run_id
            run.table_versions = lake.versions()
            _write_run_row(lake, run, cfg, where, engine, started)
        summary.rounds.append(result)
        if result.status == "fixed_point":
            break
    return summary

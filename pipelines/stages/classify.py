"""Principle scoring: an iterator pandas UDF that loads the scorers once per worker and scores batches.

Per principle, the scorer is the registered champion `models:/<model_prefix>_<principle>@champion` when the
registry has one (resolved once on the driver to `models:/<name>/<version>`, so every worker scores with the
same version even if the alias moves mid-run), and the exemplar-similarity scorer on MiniLM otherwise
(udfs/exemplar.py, the cold start). Encoder heads and exemplar scorers share one MiniLM encoding per batch;
texts are batched by padded length, and the encoder uses CUDA with bf16 when a GPU is present. A document's
scores do not depend on the batch the engine put it in (udfs/encoder.py: fixed padded lengths, `row_dots`).

The contract: `principle_scores` array<double>, one entry per principle in constitution order, on the
[0, 1] scale; `principle_models` array<string>, the model URI behind each entry. `to_scores_table` adds
sentence-level character spans for documents at or above a principle's span threshold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from expectations import suites
from pipelines.core.config import ClassifyConfig
from pipelines.core.constitution import Constitution
from pipelines.core.progress import UdfCounter
from pipelines.core.registry import Champion
from pipelines.core.stage import BaseStage, Gate, StageContext
from pipelines.stages import cascade
from pipelines.stages.cascade import SCORED
from schemas import require_columns
from schemas.tables import SPAN
from schemas.vocab import Count
from udfs.teachers import teacher_model

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pipelines.core.config import RunConfig
    from pipelines.core.lake import Lake
from pipelines.judgement.scorers import load_scorer, model_uri, scorer_spec


def _texts(series: pd.Series) -> list[str]:
    return [t if isinstance(t, str) else "" for t in series]


#: What the spans UDF returns per document: per principle the spans and whose judgement they are.
SPANS_BY = StructType([StructField("spans", ArrayType(ArrayType(SPAN))), StructField("by", ArrayType(StringType()))])


def score_column(text: Column, spec: str, progress_dir: str | None = None) -> Column:
    """The scores UDF; with `progress_dir`, every task counts the documents it scored there (UdfCounter)."""

    @pandas_udf(SCORED)  # type: ignore[call-overload]
    def score(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        scorer = load_scorer(spec)  # once per worker, before the loop
        add = UdfCounter.task(progress_dir) if progress_dir else None
        for texts in batches:
            got = scorer.score_windowed(_texts(texts))
            scores = np.nan_to_num(got.scores, nan=0.0)
            if add is not None:
                add(len(texts))
            yield pd.DataFrame(
                {
                    "scores": [row.tolist() for row in scores],
                    "starts": [row.tolist() for row in got.starts],
                    "ends": [row.tolist() for row in got.ends],
                }
            )

    return score(text)


def _matrix(values: pd.Series, fill: Any, n: int) -> list[list[Any]]:
    """Arrays of a column as lists of `n`, nulls (whole rows or entries) as `fill`."""
    return [[fill if x is None else x for x in r] if r is not None else [fill] * n for r in values]


def spans_column(text: Column, scores: Column, decided: Column, starts: Column, ends: Column, spec: str) -> Column:
    @pandas_udf(SPANS_BY)  # type: ignore[call-overload]
    def spans(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
        scorer = load_scorer(spec)
        n = len(scorer.names)
        for texts, rows, deciders, lo, hi in batches:
            got, by = scorer.spans(
                _texts(texts),
                np.array(_matrix(rows, 0.0, n), dtype=float).reshape(-1, n),
                _matrix(deciders, "classifier", n),
                np.array(_matrix(lo, 0, n), dtype=np.int64).reshape(-1, n),
                np.array(_matrix(hi, 0, n), dtype=np.int64).reshape(-1, n),
            )
            yield pd.DataFrame({"spans": got, "by": by})

    return spans(text, scores, decided, starts, ends)


def transform(
    df: DataFrame,
    constitution: Constitution,
    cfg: ClassifyConfig,
    champions: Mapping[str, Champion] | None = None,
    progress_dir: str | None = None,
) -> DataFrame:
    """Adds `principle_scores` (array<double>, constitution order) and `principle_models` (array<string>).

    `champions` (pipelines/core/registry.py, resolved once per run) score their principles; the others are scored by
    the exemplar scorer. `progress_dir`: see `score_column`."""
    require_columns(df.columns, ["doc_id", "text"], "classify")
    champions = champions or {}
    fallback = model_uri(constitution)
    uris = [champions[n].model_uri if n in champions else fallback for n in constitution.names]
    spec = scorer_spec(constitution, cfg, champions)
    return (
        df.withColumn("_scored", score_column(F.col("text"), spec, progress_dir))
        .withColumn("principle_scores", F.col("_scored.scores"))
        .withColumn("window_starts", F.col("_scored.starts"))
        .withColumn("window_ends", F.col("_scored.ends"))
        .withColumn("principle_models", F.array(*[F.lit(u) for u in uris]))
        .drop("_scored")
    )


def to_scores_table(
    df: DataFrame,
    constitution: Constitution,
    run_id: str,
    cfg: ClassifyConfig | None = None,
    champions: Mapping[str, Champion] | None = None,
    judge_model: str | None = None,
) -> DataFrame:
    """Long form for the `scores` table: one row per (doc_id, principle).

    With a `text` column and `cfg.spans`, flagged documents get sentence-level spans (else empty spans).
    """
    require_columns(df.columns, ["doc_id", "principle_scores"], "scores")
    names = F.array(*[F.lit(n) for n in constitution.names])
    # one (empty) span list per principle: element_at past the end of an array fails under ANSI mode
    empty = F.array(*[F.array().cast(ArrayType(SPAN)) for _ in constitution.names])
    n = len(constitution.names)
    int_nulls = F.array(*[F.lit(None).cast("int") for _ in range(n)])
    starts = F.col("window_starts") if "window_starts" in df.columns else int_nulls
    ends = F.col("window_ends") if "window_ends" in df.columns else int_nulls
    deciders = F.col("decided_by") if "decided_by" in df.columns else F.array(*[F.lit("classifier")] * n)
    if "text" in df.columns and cfg is not None and cfg.spans:
        spec = scorer_spec(constitution, cfg, champions)
        got = spans_column(F.col("text"), F.col("principle_scores"), deciders, starts, ends, spec)
        df = df.withColumn("_sp", got).withColumn("_spans", F.col("_sp.spans")).withColumn("_by", F.col("_sp.by"))
    else:
        df = df.withColumn("_spans", empty).withColumn("_by", F.array(*[F.lit(None).cast("string")] * n))
    uris = (
        F.col("principle_models")
        if "principle_models" in df.columns
        else F.array(*[F.lit(model_uri(constitution)) for _ in constitution.names])
    )
    nulls = F.array(*[F.lit(None).cast("double") for _ in constitution.names])
    stage = {c: F.col(c) if c in df.columns else nulls for c in ("classifier_scores", "teacher_scores", "judge_scores")}
    if "classifier_scores" not in df.columns:
        stage["classifier_scores"] = F.col("principle_scores")
    teachers = F.array(*[F.lit(teacher_model(p.teacher) if p.teacher else None) for p in constitution.principles])
    judge = F.lit(judge_model).cast("string")
    i = F.col("_i") + 1
    teacher = F.element_at("_t", i)
    judged = F.element_at("_j", i)
    return df.select(
        "doc_id",
        F.posexplode("principle_scores").alias("_i", "score"),
        F.col("_spans").alias("_all_spans"),
        F.col("_by").alias("_all_by"),
        starts.alias("_ws"),
        ends.alias("_we"),
        uris.alias("_uris"),
        stage["classifier_scores"].alias("_c"),
        stage["teacher_scores"].alias("_t"),
        stage["judge_scores"].alias("_j"),
    ).select(
        "doc_id",
        F.element_at(names, i).alias("principle"),
        "score",
        F.element_at("_all_spans", i).alias("spans"),
        F.element_at("_uris", i).alias("model_uri"),
        F.lit(run_id).alias("run_id"),
        F.element_at("_c", i).alias("classifier_score"),
        teacher.alias("teacher_score"),
        F.when(teacher.isNotNull(), F.element_at(teachers, i)).alias("teacher_model"),
        judged.alias("judge_score"),
        F.when(judged.isNotNull(), judge).alias("judge_model"),
        F.when(judged.isNotNull(), "judge")
        .when(teacher.isNotNull(), "teacher")
        .otherwise("classifier")
        .alias("decided_by"),
        F.element_at("_ws", i).alias("window_start"),
        F.element_at("_we", i).alias("window_end"),
        F.element_at("_all_by", i).alias("spans_by"),
    )


def score(df: DataFrame, ctx: StageContext, tag: str = "classify") -> DataFrame:
    """`df` (doc_id, text) scored as the nightly run scores: the context's champions (exemplar scorer elsewhere),
    then the cascade (pipelines/stages/cascade.py). `curate score` calls this too. `tag` names what it stages and
    its progress line, so that a second call in a run (pipelines/stages/members.py) leaves the first's alone."""
    fallback = model_uri(ctx.constitution)
    for p in ctx.constitution.names:  # which model scored what, for the run's record
        ctx.notes[f"model:{p}"] = ctx.champions[p].model_uri if p in ctx.champions else fallback
    progress = ctx.progress
    if progress is None or not progress.enabled or ctx.lake is None:
        scored = ctx.stage(transform(df, ctx.constitution, ctx.cfg.classify, ctx.champions), f"{tag}_scored")
    else:
        # the scoring runs in the engine's UDFs while this thread waits on the write: they count, this polls
        counter = UdfCounter(ctx.lake.state_dir / "staging" / ctx.run_id / "progress" / tag)
        total = df.count()
        with progress.stage(f"{tag}: classifier"), progress.polled(f"{tag}: documents scored", total, counter.done):
            scoring = transform(df, ctx.constitution, ctx.cfg.classify, ctx.champions, str(counter.root))
            scored = ctx.stage(scoring, f"{tag}_scored")
    return ctx.stage(cascade.apply(scored, ctx, tag), f"{tag}_cascade")


def score_texts(
    lake: Lake,
    texts: Sequence[str],
    cfg: RunConfig,
    constitution: Constitution,
    purpose: str,
    *,
    write_labels: bool = False,
) -> tuple[list[Any], dict[str, str]]:
    """Score `texts` outside a run, exactly as the nightly run scores (`score`): the lake's champions, then the
    cascade; intermediate results staged in a temporary directory removed afterwards. Returns one row per text,
    in order (`principle_scores`, `decided_by` and the cascade's columns), and the notes (`model:<principle>`).

    A text's id is the hash of its content (pipelines/judgement/label.py `text_hash`), never its position: a judge's
    cached label is looked up by that hash, so it is always the label of this very text. The judge's labels go to
    `labels` only with `write_labels` (these texts are not the lake's documents)."""
    import shutil
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from pipelines.core import registry
    from pipelines.core.execute import Stager, new_run_id
    from pipelines.judgement.label import text_hash

    cfg = registry.resolve(cfg, lake.state_dir)
    cascade = replace(cfg.classify.cascade, judge_writes_labels=write_labels)
    cfg = replace(cfg, classify=replace(cfg.classify, cascade=cascade))
    clean = [t if isinstance(t, str) else "" for t in texts]
    ids = [f"text:{text_hash(t)}" for t in clean]
    unique = dict(zip(ids, clean, strict=True))  # the same text twice is scored (and judged) once
    staging = Path(tempfile.mkdtemp(prefix=f"curate-{purpose}-"))
    try:
        ctx = StageContext(
            cfg=cfg,
            constitution=constitution,
            run_id=new_run_id(),
            crawl_id=purpose,
            champions=registry.champions_for(constitution, cfg),
            lake=lake,
            materialise=Stager(lake.spark, staging),
        )
        frame = lake.spark.createDataFrame(list(unique.items()), "doc_id string, text string")
        rows = score(frame, ctx).select("doc_id", "principle_scores", *CASCADE_COLUMNS).collect()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    by_id = {r["doc_id"]: r for r in rows}
    return [by_id[i] for i in ids], dict(ctx.notes)


HIST_BINS = 20


CASCADE_COLUMNS = ("classifier_scores", "teacher_scores", "judge_scores", "decided_by", "window_starts", "window_ends")


def score_histogram_figure(hists: Mapping[str, list[int]], constitution: Constitution) -> Any:
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


def scores_table(out: DataFrame, ctx: StageContext, name: str = "scores", spans_for: Column | None = None) -> DataFrame:
    """The `scores` rows, with spans, of the scored documents of a stage's output (`clean_text`, the scores and
    the cascade's columns), staged as `name`. `spans_for`: only these documents get spans (the others none)."""
    scored = out.where(F.col("principle_scores").isNotNull())
    judge = next((v for k, v in ctx.notes.items() if k.startswith("judge:")), None)
    parts = (
        [(scored, True)] if spans_for is None else [(scored.where(spans_for), True), (scored.where(~spans_for), False)]
    )
    rows: DataFrame | None = None
    for part, spans in parts:
        text = [F.col("clean_text").alias("text")] if spans else []  # no text, no spans (to_scores_table)
        frame = part.select("doc_id", *text, "principle_scores", "principle_models", *CASCADE_COLUMNS)
        got = to_scores_table(frame, ctx.constitution, ctx.run_id, ctx.cfg.classify, ctx.champions, judge)
        rows = got if rows is None else rows.unionByName(got)
    assert rows is not None
    # the spans UDF runs here: materialised once for the gate, the counts and publishing
    return ctx.stage(rows, name)


class Classify(BaseStage):
    """Scores every document still in the running (no quality reason, not a duplicate) against every principle,
    with the context's champions (exemplar scorer elsewhere), and adds the principle flags the revision and
    decision steps read (pipelines/stages/decide.py: `principle_flags`). Returns the `scores` rows, with spans."""

    name: ClassVar[str] = "classify_v2"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "clean_text", "quality_reasons", "is_duplicate")
    adds: ClassVar[tuple[str, ...]] = (
        "principle_scores",
        "principle_models",
        *CASCADE_COLUMNS,
        "drop_principles",
        "revise_principles",
        "tag_principles",
        "upsample_principles",
    )

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        from pipelines.stages.decide import principle_flags

        assert df is not None
        eligible = (F.size("quality_reasons") == 0) & ~F.coalesce(F.col("is_duplicate"), F.lit(False))
        # prev_flagged (iteration): the principles a document was flagged for before, re-judged by the teacher
        carry = [c for c in ("prev_flagged",) if c in df.columns]
        scored = score(df.where(eligible).select("doc_id", F.col("clean_text").alias("text"), *carry), ctx)
        kept = ("principle_scores", "principle_models", *CASCADE_COLUMNS)
        out = df.join(scored.select("doc_id", *kept), "doc_id", "left")
        return principle_flags(out, ctx.constitution)

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        names = ctx.constitution.names
        return (Gate("scores", lambda _ctx, _counts: suites.scores(names), on="scores"),)

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        return {"scores": scores_table(out, ctx)}

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        scores = tables["scores"]
        counts = {
            "scored": out.where(F.col("principle_scores").isNotNull()).count(),
            "principles_with_champion": len(ctx.champions),
        }
        thresholds = F.create_map(
            *[x for p in ctx.constitution.principles for x in (F.lit(p.name), F.lit(p.revise_threshold))]
        )
        above = scores.where(F.col("score") >= F.element_at(thresholds, F.col("principle")))
        found = {r["principle"]: int(r["count"]) for r in above.groupBy("principle").count().collect()}
        counts.update(cascade.counts(out, ctx.constitution))
        for p in ctx.constitution.principles:
            # a positive principle is never flagged: its count is of the documents it upweights
            counts[Count.flagged(p.name, p.positive_kind)] = found.get(p.name, 0)
        return counts

    def figures(self, tables: Mapping[str, DataFrame], ctx: StageContext) -> Mapping[str, Any]:
        bins = F.least(F.floor(F.col("score") * HIST_BINS), F.lit(HIST_BINS - 1)).cast("int")
        hists = {n: [0] * HIST_BINS for n in ctx.constitution.names}
        for r in tables["scores"].groupBy("principle", bins.alias("bin")).count().collect():
            hists[r["principle"]][r["bin"]] = int(r["count"])
        return {"scores.png": score_histogram_figure(hists, ctx.constitution)}

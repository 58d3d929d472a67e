"""Judgement as a cascade per principle: the cheap distilled classifier scores every document; the documents it is
unsure about go to a stronger scorer, within a budget; the last scorer that saw a document decides.

1. **classifier** - the champion (or the exemplar scorer), already in `principle_scores` (pipelines/stages/classify.py).
2. **teacher** - the principle's packaged teacher (constitution `teacher: jigsaw:<output>`, udfs/jigsaw.py, or
   `teacher: stack:toxic`, udfs/stack_teacher.py), for documents whose classifier score lies within
   `classify.cascade.band` of the revise or the filter threshold, and for every document of a principle that has
   no champion yet (exemplar similarity is a cold start, not a judgement: on a fresh lake the teacher decides).
   At most `classify.cascade.teacher_max_docs` documents per run, nearest a threshold first. The BiLSTM reads
   at most 100 words at a time, so a document is scored as the maximum over its 100-word windows (at most
   `MAX_WINDOWS` of them); the stack reads its Jigsaw features the same way (its document handling:
   udfs/stack_teacher.py).
3. **judge** - the labeler named by `classify.cascade.judge` (an LLM behind an OpenAI-compatible endpoint in
   production; any registered labeler), for documents still within the band after the teacher, at most
   `classify.cascade.judge_max_docs` per run. Its answers go through the `labels` table, so a text judged once
   (same principle, judge and prompt version) is never sent again.

Every stage's score is kept: `classifier_scores`, `teacher_scores`, `judge_scores` (null where a stage did not
see the document) and `decided_by`; `principle_scores` becomes the deciding score.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StructField, StructType

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pipelines.core.config import ClassifyConfig
    from pipelines.core.constitution import Constitution, Principle
    from pipelines.core.stage import StageContext
from pipelines.core.progress import Progress
from pipelines.judgement.teachers import shared_scorer, teacher_specs
from pipelines.judgement.windowed import deciding_range, resolve_top_k
from udfs.windows import with_context


def teacher_udf_spec(teachers: list[str | None], cfg: ClassifyConfig) -> str:
    """What a worker needs to build the teachers: their names and the window settings of `classify`."""
    return json.dumps(
        {
            "teachers": teachers,
            "window_words": cfg.window_length,
            "windows": cfg.windows,
            "top_k": cfg.top_k,
            "device": cfg.device,
        },
        sort_keys=True,
    )


def teacher_column(text: Column, need: Column, specs: str) -> Column:
    """The teachers' window-max scores (null where not needed) and each deciding window's range."""

    @pandas_udf(SCORED)  # type: ignore[call-overload]
    def teach(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        spec = json.loads(specs)
        top_k = resolve_top_k(spec["windows"], spec["top_k"], spec["device"])
        scorer = shared_scorer(tuple(spec["teachers"]), spec["window_words"], top_k)  # once per worker
        for texts, needs in batches:
            mask = np.array([list(x) for x in needs], dtype=bool).reshape(len(texts), -1)
            got = scorer.score_windowed([t if isinstance(t, str) else "" for t in texts], mask)
            yield pd.DataFrame(
                {
                    "scores": [[None if np.isnan(v) else float(v) for v in row] for row in got.scores],
                    "starts": [row.tolist() for row in got.starts],
                    "ends": [row.tolist() for row in got.ends],
                }
            )

    return teach(text, need)


#: What a window-max scoring UDF returns per document (the classifier's and the teachers'): per principle the
#: document score (the maximum over its windows) and the range of the window that gave it.
SCORED = StructType(
    [
        StructField("scores", ArrayType(DoubleType())),
        StructField("starts", ArrayType(IntegerType())),
        StructField("ends", ArrayType(IntegerType())),
    ]
)


def _windows_after(df: DataFrame, scores: str, starts: str, ends: str, n: int) -> DataFrame:
    """`window_starts`/`window_ends` of the stage that scored `scores` where it did, the earlier ones elsewhere."""
    if "window_starts" not in df.columns:  # scores that came without windows (a caller's own classifier scores)
        zeros = F.array(*[F.lit(None).cast("int") for _ in range(n)])
        df = df.withColumn("window_starts", zeros).withColumn("window_ends", zeros)
    pick = [_at(scores, i).isNotNull() for i in range(n)]
    return df.withColumn(
        "window_starts",
        F.array(*[F.when(pick[i], _at(starts, i)).otherwise(_at("window_starts", i)) for i in range(n)]),
    ).withColumn(
        "window_ends", F.array(*[F.when(pick[i], _at(ends, i)).otherwise(_at("window_ends", i)) for i in range(n)])
    )


def _at(column: str, i: int) -> Column:
    return F.element_at(F.col(column), i + 1)


def _in_band(score: Column, p: Principle, band: float) -> Column:
    near = [(score - F.lit(t)).between(-band, band) for t in {p.revise_threshold, p.filter_threshold}]
    out = near[0]
    for x in near[1:]:
        out = out | x
    return out


def _distance(score: Column, p: Principle) -> Column:
    return F.least(F.abs(score - F.lit(p.revise_threshold)), F.abs(score - F.lit(p.filter_threshold)))


def zone(score: Column, p: Principle) -> Column:
    """0 below the revise threshold, 1 in the revise band, 2 at or above the filter threshold."""
    return F.when(score >= p.filter_threshold, 2).when(score >= p.revise_threshold, 1).otherwise(0)


def apply(df: DataFrame, ctx: StageContext, tag: str = "classify") -> DataFrame:
    """`df` (doc_id, text, principle_scores from the classifier) with the cascade's columns (module docstring).
    `tag` prefixes what it stages (`<tag>_teacher`; see classify.score)."""
    cfg, constitution = ctx.cfg.classify.cascade, ctx.constitution
    principles = constitution.principles
    n = len(principles)
    scores = F.col("principle_scores")
    s = [F.element_at(scores, i + 1) for i in range(n)]
    teach = [spec is not None and cfg.enabled for spec in teacher_specs(constitution)]
    cold = [t and p.name not in ctx.champions for t, p in zip(teach, principles, strict=True)]
    # A document flagged for a principle before (iteration) is re-judged by the teacher whatever its new score:
    # it is restored only when a scorer at least as strong as the one that flagged it clears it (for an accepted
    # revision, pipelines/stages/decide.py `hold_revisions` enforces that against its recorded flagger).
    was = (
        [
            F.array_contains(F.coalesce(F.col("prev_flagged"), F.array().cast("array<string>")), p.name)
            for p in principles
        ]
        if "prev_flagged" in df.columns
        else [F.lit(False)] * n
    )
    need = [
        (F.lit(True) if cold[i] else _in_band(s[i], p, cfg.band) | was[i]) if teach[i] else F.lit(False)
        for i, p in enumerate(principles)
    ]
    nulls = F.array(*[F.lit(None).cast("double") for _ in range(n)])
    out = df.withColumn("classifier_scores", scores).withColumn("_need", F.array(*need))
    if any(teach):
        dists = [
            F.when(need[i], F.lit(0.0) if cold[i] else F.when(was[i], F.lit(0.0)).otherwise(_distance(s[i], p)))
            for i, p in enumerate(principles)
        ]
        dist = dists[0] if len(dists) == 1 else F.least(*dists)  # least() wants two or more
        wanted = out.where(F.array_contains("_need", True)).select("doc_id", dist.alias("_dist"))
        chosen = (
            wanted.orderBy("_dist", "doc_id").limit(cfg.teacher_max_docs).select("doc_id", F.lit(True).alias("_go"))
        )
        specs = teacher_udf_spec([p.teacher if teach[i] else None for i, p in enumerate(principles)], ctx.cfg.classify)
        out = (
            out.join(chosen, "doc_id", "left")
            # the condition on each field: Sail keeps a struct's fields when a CASE WHEN without ELSE yields null
            .withColumn("_taught", teacher_column(F.col("text"), F.col("_need"), specs))
            .withColumn("teacher_scores", F.when(F.col("_go"), F.col("_taught.scores")).otherwise(nulls))
            .withColumn("_t_starts", F.when(F.col("_go"), F.col("_taught.starts")))
            .withColumn("_t_ends", F.when(F.col("_go"), F.col("_taught.ends")))
            .drop("_taught")
        )
        with (ctx.progress or Progress(enabled=False)).stage(f"{tag}: teacher"):
            out = ctx.stage(out.drop("_go"), f"{tag}_teacher")
    else:
        no_window = F.lit(None).cast("array<int>")
        out = (
            out.withColumn("teacher_scores", nulls).withColumn("_t_starts", no_window).withColumn("_t_ends", no_window)
        )
    # per-index arrays: Sail has no zip_with
    after_teacher = F.array(*[F.coalesce(_at("teacher_scores", i), _at("classifier_scores", i)) for i in range(n)])
    out = out.withColumn("principle_scores", after_teacher)
    out = _windows_after(out, "teacher_scores", "_t_starts", "_t_ends", n).drop("_t_starts", "_t_ends")
    out = _judge(out, ctx)
    final = F.array(*[F.coalesce(_at("judge_scores", i), _at("principle_scores", i)) for i in range(n)])
    decided = F.array(
        *[
            F.when(_at("judge_scores", i).isNotNull(), "judge")
            .when(_at("teacher_scores", i).isNotNull(), "teacher")
            .otherwise("classifier")
            for i in range(n)
        ]
    )
    return out.withColumn("principle_scores", final).withColumn("decided_by", decided).drop("_need", "prev_flagged")


def _judge(df: DataFrame, ctx: StageContext) -> DataFrame:
    """The judge step on the driver (it is an LLM's cost, bounded by `judge_max_docs`); labels are the cache."""
    from pipelines.judgement.label import label_documents, open_labeler
    from udfs.labelers import PrincipleSpec

    cfg, constitution = ctx.cfg.classify.cascade, ctx.constitution
    n = len(constitution.principles)
    nulls = F.array(*[F.lit(None).cast("double") for _ in range(n)])
    if not cfg.enabled or not cfg.judge or cfg.judge_max_docs <= 0:
        return df.withColumn("judge_scores", nulls)
    lake = ctx.the_lake
    judged = {p.name: {} for p in constitution.principles}  # principle -> doc_id -> score
    seen: dict[tuple[str, int], tuple[int, int]] = {}  # (doc_id, principle index) -> the range the judge read
    labeler = open_labeler(cfg.judge, ctx.cfg.label, lake)
    try:
        for i, p in enumerate(constitution.principles):
            if p.positive_kind or (cfg.judge_principles and p.name not in cfg.judge_principles):
                continue
            s = F.element_at("principle_scores", i + 1)
            picked = (
                df.where(_in_band(s, p, cfg.band))
                .orderBy(_distance(s, p), "doc_id")
                .limit(cfg.judge_max_docs)
                .select("doc_id", "text", _at("window_starts", i).alias("ws"), _at("window_ends", i).alias("we"))
                .collect()
            )
            if not picked:
                continue
            # the judge reads the deciding window with a sentence of context each side, not a truncated head
            rows = []
            for r in picked:
                text = r["text"] or ""
                lo, hi = with_context(text, *deciding_range(text, r["ws"], r["we"]))
                seen[(r["doc_id"], i)] = (lo, hi)
                rows.append({"doc_id": r["doc_id"], "text": text[lo:hi], "source": None})
            # the scores come back from the call, keyed by these rows' doc_ids and looked up by their texts' hashes:
            # never read back from `labels` by doc_id, where an id may have labelled another text
            got = label_documents(
                lake,
                p,
                labeler,
                rows,
                chunk_size=ctx.cfg.label.chunk_size,
                write=cfg.judge_writes_labels,
            )
            version = labeler.prompt_version(PrincipleSpec.of(p))
            judged[p.name] = dict(got.scores)
            ctx.notes[f"judge:{p.name}"] = f"{labeler.name} ({version})"
    finally:
        labeler.close()
    flat = [(d, i, v, *seen[(d, i)]) for i, p in enumerate(constitution.principles) for d, v in judged[p.name].items()]
    if not flat:
        return df.withColumn("judge_scores", nulls)
    spark = lake.spark
    j = spark.createDataFrame(flat, "doc_id string, i int, score double, lo int, hi int")
    per_doc = j.groupBy("doc_id").agg(
        F.map_from_entries(F.collect_list(F.struct("i", "score"))).alias("_j"),
        F.map_from_entries(F.collect_list(F.struct("i", "lo"))).alias("_jlo"),
        F.map_from_entries(F.collect_list(F.struct("i", "hi"))).alias("_jhi"),
    )
    arr = F.array(*[F.element_at(F.col("_j"), F.lit(i)) for i in range(n)])
    out = (
        df.join(per_doc, "doc_id", "left")
        .withColumn("judge_scores", F.when(F.col("_j").isNotNull(), arr).otherwise(nulls))
        .withColumn("_j_starts", F.array(*[F.element_at(F.col("_jlo"), F.lit(i)) for i in range(n)]))
        .withColumn("_j_ends", F.array(*[F.element_at(F.col("_jhi"), F.lit(i)) for i in range(n)]))
    )
    return _windows_after(out, "judge_scores", "_j_starts", "_j_ends", n).drop(
        "_j", "_jlo", "_jhi", "_j_starts", "_j_ends"
    )


def counts(out: DataFrame, constitution: Constitution) -> dict[str, int]:
    """Per principle: how many documents reached the teacher and the judge, and how many decisions each changed
    (the document's zone - untouched / revise band / over the filter threshold - differs from the stage
    before)."""
    aggs = []
    for i, p in enumerate(constitution.principles):
        c, t, j = (F.element_at(x, i + 1) for x in ("classifier_scores", "teacher_scores", "judge_scores"))
        before_judge = F.coalesce(t, c)
        aggs += [
            F.count(t).alias(f"cascade:{p.name}:teacher"),
            F.count(j).alias(f"cascade:{p.name}:judge"),
            F.sum(F.when(t.isNotNull() & (zone(t, p) != zone(c, p)), 1).otherwise(0)).alias(
                f"cascade_changed:{p.name}:teacher"
            ),
            F.sum(F.when(j.isNotNull() & (zone(j, p) != zone(before_judge, p)), 1).otherwise(0)).alias(
                f"cascade_changed:{p.name}:judge"
            ),
        ]
    row = out.where(F.col("classifier_scores").isNotNull()).agg(*aggs).collect()[0]
    return {k: int(row[k] or 0) for k in row.asDict()}

"""Judgement as a cascade per principle: the cheap distilled classifier scores every document; the documents it is
unsure about go to a stronger scorer, within a budget; the last scorer that saw a document decides.

1. **classifier** - the champion (or the exemplar scorer), already in `principle_scores` (pipelines/classify.py).
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
import threading
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, DoubleType

from udfs.jigsaw import MAX_WINDOWS, WINDOW_WORDS, word_windows

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pipelines.constitution import Constitution, Principle
    from pipelines.stage import StageContext

#: Packaged teachers by name: the outputs each offers. A principle names one as `<teacher>:<output>`.
TEACHERS: dict[str, tuple[str, ...]] = {
    "jigsaw": ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"),
    # udfs/stack_teacher.py: a logistic regression over MiniLM + Jigsaw + profanity, fitted on human labels
    "stack": ("toxic",),
}
STAGES = ("classifier", "teacher", "judge")


def check_teacher(spec: str) -> tuple[str, str]:
    """`jigsaw:threat` -> ("jigsaw", "threat"); a ValueError that lists the choices otherwise."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"teacher must be '<teacher>:<output>', got {spec!r}")
    name, output = spec.split(":", 1)
    if name not in TEACHERS or output not in TEACHERS[name]:
        choices = ", ".join(f"{t}:{o}" for t, outs in TEACHERS.items() for o in outs)
        raise ValueError(f"unknown teacher {spec!r} (packaged: {choices})")
    return name, output


def teacher_model(spec: str) -> str:
    """The model identifier recorded beside a teacher's score."""
    name, output = check_teacher(spec)
    if name == "stack":
        from udfs.stack_teacher import MODE, StackTeacher

        return f"{StackTeacher.load().model.model_id}+{MODE}:{output}"  # the weights' digest: a retrain is new
    from udfs.jigsaw import PINNED_VERSION

    return f"{name}-bilstm-{PINNED_VERSION}:{output}"


def windows(text: str, size: int = WINDOW_WORDS, limit: int = MAX_WINDOWS) -> list[str]:
    """Consecutive `size`-word windows of `text` (at least one, possibly empty), at most `limit` of them."""
    return word_windows(text, size, limit)


class TeacherScorer:
    """All packaged teachers a constitution names, loaded once per process (on first use); the Jigsaw BiLSTM scores a
    document by its window maximum, the stack as udfs/stack_teacher.py's `MODE` says."""

    def __init__(self, specs: Sequence[str | None]) -> None:
        self.specs = list(specs)
        for spec in self.specs:
            if spec is not None:
                check_teacher(spec)

    def _outputs(self, name: str, texts: list[str]) -> np.ndarray:
        """(len(texts), len(TEACHERS[name])): the teacher's document scores, columns in TEACHERS order."""
        if name == "stack":
            from udfs.stack_teacher import StackTeacher

            return StackTeacher.load().score(texts)[:, None]
        from udfs.jigsaw import JigsawClassifier

        return JigsawClassifier.load().predict_windows(texts)

    def score(self, texts: Sequence[str], need: np.ndarray | None = None) -> np.ndarray:
        """(n_docs, n_principles): the teacher's document score where `need` (default: every principle with a
        teacher), NaN elsewhere. Each teacher sees only the documents some principle needs it for."""
        n, m = len(texts), len(self.specs)
        out = np.full((n, m), np.nan)
        has = np.array([s is not None for s in self.specs], dtype=bool)
        need = np.broadcast_to(has, (n, m)) if need is None else need & has
        by_name: dict[str, list[int]] = {}
        for j, spec in enumerate(self.specs):
            if spec is not None:
                by_name.setdefault(check_teacher(spec)[0], []).append(j)
        for name, cols in by_name.items():
            rows = np.flatnonzero(need[:, cols].any(axis=1))
            if not len(rows):
                continue
            values = self._outputs(name, [texts[i] for i in rows])
            for j in cols:
                col = TEACHERS[name].index(check_teacher(self.specs[j])[1])  # type: ignore[arg-type]
                hit = need[rows, j]
                out[rows[hit], j] = values[hit, col]
        return out


_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _scorer(specs: tuple[str | None, ...]) -> TeacherScorer:
    return TeacherScorer(specs)


def shared_scorer(specs: tuple[str | None, ...]) -> TeacherScorer:
    """One scorer per process and teacher list (UDF partitions are threads of one process on Sail)."""
    with _LOCK:
        return _scorer(specs)


def teacher_specs(constitution: Constitution) -> list[str | None]:
    """Per principle, in constitution order, the teacher that judges it: none for a positive principle (it is
    upweighted, never flagged) or one without a `teacher`."""
    return [None if p.positive_kind else p.teacher for p in constitution.principles]


def teacher_scorer(constitution: Constitution) -> TeacherScorer:
    return shared_scorer(tuple(teacher_specs(constitution)))


def has_teachers(constitution: Constitution) -> bool:
    return any(teacher_specs(constitution))


def teacher_column(text: Column, need: Column, specs: str) -> Column:
    @pandas_udf(ArrayType(DoubleType()))  # type: ignore[call-overload]
    def teach(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        scorer = shared_scorer(tuple(json.loads(specs)))  # once per worker, before the loop
        for texts, needs in batches:
            mask = np.array([list(x) for x in needs], dtype=bool).reshape(len(texts), -1)
            values = scorer.score([t if isinstance(t, str) else "" for t in texts], mask)
            yield pd.Series([[None if np.isnan(v) else float(v) for v in row] for row in values])

    return teach(text, need)


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


def apply(df: DataFrame, ctx: StageContext) -> DataFrame:
    """`df` (doc_id, text, principle_scores from the classifier) with the cascade's columns (module docstring)."""
    cfg, constitution = ctx.cfg.classify.cascade, ctx.constitution
    principles = constitution.principles
    n = len(principles)
    scores = F.col("principle_scores")
    s = [F.element_at(scores, i + 1) for i in range(n)]
    teach = [spec is not None and cfg.enabled for spec in teacher_specs(constitution)]
    cold = [t and p.name not in ctx.champions for t, p in zip(teach, principles, strict=True)]
    # A document flagged for a principle before (iteration) is re-judged by the teacher whatever its new score:
    # it is restored only when a scorer at least as strong as the one that flagged it clears it.
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
        specs = json.dumps([p.teacher if teach[i] else None for i, p in enumerate(principles)])
        out = out.join(chosen, "doc_id", "left").withColumn(
            "teacher_scores",
            F.when(F.col("_go"), teacher_column(F.col("text"), F.col("_need"), specs)).otherwise(nulls),
        )
        out = ctx.stage(out.drop("_go"), "cascade_teacher")
    else:
        out = out.withColumn("teacher_scores", nulls)
    # per-index arrays: Sail has no zip_with
    after_teacher = F.array(*[F.coalesce(_at("teacher_scores", i), _at("classifier_scores", i)) for i in range(n)])
    out = out.withColumn("principle_scores", after_teacher)
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
    from pipelines.label import existing_labels, label_documents, open_labeler
    from udfs.labelers import PrincipleSpec

    cfg, constitution = ctx.cfg.classify.cascade, ctx.constitution
    n = len(constitution.principles)
    nulls = F.array(*[F.lit(None).cast("double") for _ in range(n)])
    if not cfg.enabled or not cfg.judge or cfg.judge_max_docs <= 0:
        return df.withColumn("judge_scores", nulls)
    lake = ctx.the_lake
    judged = {p.name: {} for p in constitution.principles}  # principle -> doc_id -> score
    labeler = open_labeler(cfg.judge, ctx.cfg.label, lake)
    try:
        for i, p in enumerate(constitution.principles):
            if p.positive_kind or (cfg.judge_principles and p.name not in cfg.judge_principles):
                continue
            s = F.element_at("principle_scores", i + 1)
            rows = (
                df.where(_in_band(s, p, cfg.band))
                .orderBy(_distance(s, p), "doc_id")
                .limit(cfg.judge_max_docs)
                .select("doc_id", "text", F.lit(None).cast("string").alias("source"))
                .collect()
            )
            if not rows:
                continue
            label_documents(lake, p, labeler, [r.asDict() for r in rows], chunk_size=ctx.cfg.label.chunk_size)
            version = labeler.prompt_version(PrincipleSpec.of(p))
            got = existing_labels(lake, p.name, labeler.name, version).where(
                F.col("doc_id").isin(*[r["doc_id"] for r in rows])
            )
            judged[p.name] = {r["doc_id"]: float(r["score"]) for r in got.select("doc_id", "score").collect()}
            ctx.notes[f"judge:{p.name}"] = f"{labeler.name} ({version})"
    finally:
        labeler.close()
    flat = [(d, i, v) for i, p in enumerate(constitution.principles) for d, v in judged[p.name].items()]
    if not flat:
        return df.withColumn("judge_scores", nulls)
    spark = lake.spark
    j = spark.createDataFrame(flat, "doc_id string, i int, score double")
    per_doc = j.groupBy("doc_id").agg(F.map_from_entries(F.collect_list(F.struct("i", "score"))).alias("_j"))
    arr = F.array(*[F.element_at(F.col("_j"), F.lit(i)) for i in range(n)])
    return (
        df.join(per_doc, "doc_id", "left")
        .withColumn("judge_scores", F.when(F.col("_j").isNotNull(), arr).otherwise(nulls))
        .drop("_j")
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


def local_scores(
    constitution: Constitution, classifier: Mapping[str, list[float]], texts: Mapping[str, str]
) -> dict[str, list[float]]:
    """The strongest packaged view of `texts` for re-scoring a revision: per principle the teacher's score where
    the principle has one (revision candidates sit in a revise band, so the teacher decided them), the
    classifier's elsewhere."""
    if not has_teachers(constitution):
        return dict(classifier)
    keys = list(classifier)
    teacher = teacher_scorer(constitution).score([texts[k] for k in keys])
    out = {}
    for k, row in zip(keys, teacher, strict=True):
        out[k] = [c if np.isnan(t) else float(t) for c, t in zip(classifier[k], row, strict=True)]
    return out

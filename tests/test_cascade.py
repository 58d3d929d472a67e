"""The scoring cascade (pipelines/stages/cascade.py): teacher specs, window scoring of long documents, routing by the
uncertainty band and the budget, the cold start on a fresh lake, the judge through the label cache, every
stage's score in `scores`, and the counts."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import functions as F

from pipelines.core.config import load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.registry import Champion
from pipelines.core.stage import StageContext
from pipelines.judgement.teachers import TeacherScorer
from pipelines.stages import cascade
from pipelines.stages.classify import to_scores_table
from udfs import teachers
from udfs.jigsaw import LABELS, JigsawClassifier, word_windows

INSULT = "You are a worthless idiot and a pathetic loser, shut your stupid mouth, you brain-dead moron."
CLEAN = "The committee reviewed the proposal and asked for a revised budget by Friday."
FILLER = " ".join(["The river flows south through the valley and the farmers grow wheat on its banks."] * 20)


def test_teacher_specs_are_checked() -> None:
    assert teachers.check_teacher("jigsaw:threat") == ("jigsaw", "threat")
    for bad in ("jigsaw", "jigsaw:violence", "detoxify:toxic"):
        with pytest.raises(ValueError, match="teacher"):
            teachers.check_teacher(bad)


def test_windows_cover_a_long_document() -> None:
    words = " ".join(f"w{i}" for i in range(250))
    ws = word_windows(words)
    assert [len(w.split()) for w in ws] == [100, 100, 50] and ws[0].startswith("w0 ") and ws[2].endswith("w249")
    assert word_windows("") == [""]
    assert len(word_windows(words, size=10, limit=3)) == 3


def test_a_long_document_is_judged_by_its_worst_window() -> None:
    """The BiLSTM reads the last 100 words of a text: an insult at the top of a long page is invisible to it."""
    doc = INSULT + " " + FILLER
    whole = JigsawClassifier.load().predict([doc])[0][LABELS.index("toxic")]
    assert whole < 0.2  # what the model alone sees: the clean tail
    scorer = TeacherScorer(["jigsaw:toxic", None])
    scores = scorer.score([doc, CLEAN + " " + FILLER])
    assert scores[0, 0] > 0.9 and scores[1, 0] < 0.1
    assert scores[0, 1] != scores[0, 1]  # NaN: the second principle has no teacher


def _ctx(champions: tuple[str, ...] = (), **overrides: Any) -> StageContext:
    c = load_constitution()
    return StageContext(
        cfg=load_config(overrides=overrides),
        constitution=c,
        run_id="r",
        crawl_id="c",
        champions={p: Champion(p, f"models:/curate_{p}/1", "/not/loaded/here") for p in champions},
    )


def _frame(spark: Any, rows: list[tuple[str, str, float]]) -> Any:
    """doc_id, text and a classifier score for toxicity (0.0 for the other principles)."""
    n = len(load_constitution().names)
    data = [(d, t, [s] + [0.0] * (n - 1)) for d, t, s in rows]
    return spark.createDataFrame(data, "doc_id string, text string, principle_scores array<double>")


def test_uncertain_documents_go_to_the_teacher_within_budget(spark: Any) -> None:
    # toxicity has a champion: only scores within 0.2 of 0.7 or 0.9 are uncertain
    rows = [("far", INSULT, 0.1), ("near", INSULT, 0.72), ("edge", CLEAN, 0.52), ("top", INSULT, 0.99)]
    ctx = _ctx(("toxicity", "violence"), **{"classify.cascade.teacher_max_docs": 2})
    out = {r["doc_id"]: r for r in cascade.apply(_frame(spark, rows), ctx).collect()}
    taught = {d for d, r in out.items() if r["teacher_scores"][0] is not None}
    # in band: near (0.02 from 0.7), top (0.09 from 0.9), edge (0.18 from 0.7); the budget takes the nearest two
    assert taught == {"near", "top"}
    assert out["far"]["decided_by"][0] == "classifier" and out["far"]["principle_scores"][0] == 0.1
    assert out["near"]["decided_by"][0] == "teacher"
    assert out["near"]["principle_scores"][0] == out["near"]["teacher_scores"][0] > 0.9  # the teacher decides
    assert out["near"]["classifier_scores"][0] == 0.72  # and the classifier's score is kept
    assert all(r["judge_scores"] == [None] * 5 for r in out.values())


def test_without_a_champion_the_teacher_scores_everything(spark: Any) -> None:
    rows = [("a", INSULT, 0.01), ("b", CLEAN, 0.99)]
    out = {r["doc_id"]: r for r in cascade.apply(_frame(spark, rows), _ctx()).collect()}
    names = load_constitution().names
    for r in out.values():
        by = dict(zip(names, r["decided_by"], strict=True))
        # cold start: exemplar similarity does not decide where a packaged teacher exists (violence: stack:violence)
        assert by["toxicity"] == by["violence"] == "teacher"
        assert by["deception"] == by["misaligned_ai"] == by["aligned_ai"] == "classifier"  # no packaged teacher
    assert out["a"]["principle_scores"][0] > 0.9 > 0.1 > out["b"]["principle_scores"][0]
    # an insult is toxic, not violent: the violence teacher keeps it below the revise threshold
    assert out["a"]["principle_scores"][1] < 0.75 and out["b"]["principle_scores"][1] < 0.75


def test_cascade_off_keeps_the_classifier(spark: Any) -> None:
    out = cascade.apply(_frame(spark, [("a", INSULT, 0.3)]), _ctx(**{"classify.cascade.enabled": False})).collect()
    assert out[0]["decided_by"] == ["classifier"] * 5 and out[0]["principle_scores"][0] == 0.3


def test_the_judge_decides_last_and_is_cached_in_labels(spark: Any, lake: Any) -> None:
    from dataclasses import replace

    ctx = replace(
        _ctx(("toxicity", "violence"), **{"classify.cascade.judge": "exemplar", "classify.cascade.judge_max_docs": 1}),
        lake=lake,
    )
    rows = [("near", CLEAN, 0.72), ("far", INSULT, 0.1)]
    out = {r["doc_id"]: r for r in cascade.apply(_frame(spark, rows), ctx).collect()}
    # the teacher clears `near` (its score leaves the band), so nothing is left for the judge on toxicity
    assert out["near"]["teacher_scores"][0] < 0.2 and out["near"]["judge_scores"][0] is None
    # principles without a teacher go to the judge when their score is uncertain: none are here
    assert lake.read("labels").count() == 0
    rows = [("j", CLEAN, 0.0)]
    n = len(load_constitution().names)
    frame = spark.createDataFrame(
        [("j", CLEAN, [0.0, 0.0, 0.8] + [0.0] * (n - 3))], "doc_id string, text string, principle_scores array<double>"
    )
    (j,) = cascade.apply(frame, ctx).collect()
    assert j["decided_by"][2] == "judge" and j["judge_scores"][2] is not None  # deception: 0.8 is within the band
    assert j["principle_scores"][2] == j["judge_scores"][2]
    labels = lake.read("labels").where("principle = 'deception'").collect()
    assert [(x["doc_id"], x["labeler"].split(":")[0]) for x in labels] == [("j", "exemplar")]
    cascade.apply(frame, ctx).collect()  # again: answered from the label cache, nothing new written
    assert lake.read("labels").count() == 1
    scores = {
        r["principle"]: r
        for r in to_scores_table(cascade.apply(frame, ctx), ctx.constitution, "r", judge_model="exemplar").collect()
    }
    assert scores["deception"]["decided_by"] == "judge" and scores["deception"]["judge_model"] == "exemplar"
    assert scores["deception"]["classifier_score"] == 0.8 and scores["toxicity"]["teacher_score"] is None


def test_counts_say_who_saw_what_and_what_it_changed(spark: Any) -> None:
    rows = [("near", INSULT, 0.72), ("clear", CLEAN, 0.75), ("far", CLEAN, 0.0)]
    out = cascade.apply(_frame(spark, rows), _ctx(("toxicity", "violence")))
    c = cascade.counts(out, load_constitution())
    assert c["cascade:toxicity:teacher"] == 2 and c["cascade:toxicity:judge"] == 0
    # near: revise band -> over the filter threshold; clear: revise band -> untouched
    assert c["cascade_changed:toxicity:teacher"] == 2
    assert out.where(F.col("decided_by")[0] == "teacher").count() == 2

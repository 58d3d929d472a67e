"""Whole-document judgement (issue 21): sentence-aligned windows, the windows an encoder reads, harm in the middle of
a long page found by the classifier and the teachers, the deciding window recorded, and spans from the decider."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from pipelines.core.config import ClassifyConfig, ConfigError, load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.stage import StageContext
from pipelines.judgement import scorers
from pipelines.judgement.teachers import TeacherScorer
from pipelines.judgement.windowed import plan
from pipelines.stages import cascade, classify
from udfs.windows import select, sentence_groups, sentence_windows, with_context, words_for_tokens

INSULT = "You are a worthless idiot and a pathetic loser, shut your stupid mouth, you brain-dead moron."
PROSE = [
    "The river rises in the hills north of the town and flows south for about forty kilometres.",
    "Farmers along its banks grow wheat, barley and sugar beet on the flat and fertile land.",
    "A railway bridge built in the last century still carries the line across the valley.",
    "The town council meets on the first Monday of each month in the old market hall.",
    "Visitors come in summer to walk the towpath and to watch the boats pass through the locks.",
    "The local school has about four hundred pupils and a small library open to the public.",
]
#: About 380 words of clean prose, four or five windows at the default window length.
PAGE = " ".join(PROSE * 4)


def _spliced(middle: str) -> str:
    half = len(PROSE) * 2
    sentences = PROSE * 4
    return " ".join([*sentences[:half], middle, *sentences[half:]])


def test_windows_are_whole_sentences_with_one_of_overlap() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten eleven twelve."
    windows = sentence_windows(text, 6)
    assert [text[s:e] for s, e in windows] == [
        "One two three. Four five six.",
        "Four five six. Seven eight nine.",
        "Seven eight nine. Ten eleven twelve.",
    ]
    # a text within the length is one window, whatever its sentences
    assert sentence_windows(text, 12) == [(0, len(text))]
    assert sentence_windows("   ", 5) == []
    # a sentence longer than the window is cut at words, so the encoder truncates nothing
    long = "a b c d e f g h i j"
    assert [long[s:e] for s, e in sentence_windows(long, 4)] == ["a b c d", "e f g h", "i j"]
    assert words_for_tokens(128) == 94


def test_sentence_groups_pack_whole_sentences_without_overlap() -> None:
    text = "One two three. Four five six seven. Eight. A sentence of more than five words stays whole. Last one."
    groups = sentence_groups(text, 5)
    assert [text[s:e] for s, e in groups] == [
        "One two three.",
        "Four five six seven. Eight.",
        "A sentence of more than five words stays whole.",
        "Last one.",
    ]
    # in order, disjoint, and together every character of the text but the spaces between groups
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(groups))
    assert " ".join(text[s:e] for s, e in groups) == text
    assert sentence_groups(text, 100) == [(0, len(text))]
    assert sentence_groups("  ", 5) == []


def test_window_length_is_one_setting_for_every_scorer() -> None:
    assert ClassifyConfig().window_length == words_for_tokens(128) == 94
    assert ClassifyConfig(max_tokens=256).window_length == words_for_tokens(256)
    assert ClassifyConfig(window_words=40, max_tokens=256).window_length == 40
    spec = cascade.teacher_udf_spec(["stack:toxic"], ClassifyConfig(window_words=40))
    assert '"window_words": 40' in spec


def test_select_reads_the_head_and_the_highest_ranked() -> None:
    assert select([0.1, 0.9, 0.2, 0.8, 0.3], 3) == [0, 1, 3]
    assert select([0.5, 0.1], 3) == [0, 1]
    assert select([0.0, 0.4, 0.4, 0.4], 2) == [0, 1]  # ties: the earlier window


def test_context_adds_a_sentence_each_side() -> None:
    text = "First one. Second one. Third one. Fourth one."
    s = text.index("Second")
    e = text.index("Third") - 1
    lo, hi = with_context(text, s, e)
    assert text[lo:hi] == "First one. Second one. Third one."
    assert with_context(text, s, e, sentences=0) == (s, e)


def test_the_cheap_tier_sends_the_encoder_to_the_insult() -> None:
    doc = _spliced(INSULT)
    p = plan([doc], words_for_tokens(128), top_k=2)
    windows = p.windows[0]
    assert len(windows) >= 4
    read = [doc[windows[j][0] : windows[j][1]] for j in p.read[0]]
    assert p.read[0][0] == 0 and INSULT not in read[0]
    assert INSULT in read[1]
    # top_k 0 reads every window
    assert plan([doc], words_for_tokens(128), top_k=0).read[0] == list(range(len(windows)))


@pytest.mark.parametrize("windows", ["top_k", "all"])
def test_harm_in_the_middle_of_a_long_page_is_scored(windows: str) -> None:
    """The old classifier read the first 128 tokens: the insult in the middle of this page was invisible to it."""
    constitution = load_constitution()
    tox = constitution.names.index("toxicity")
    cfg = ClassifyConfig(windows=windows)
    scorer = scorers.load_scorer(scorers.scorer_spec(constitution, cfg))
    doc, clean = _spliced(INSULT), PAGE
    got = scorer.score_windowed([doc, clean])
    head = scorer.score_passages([doc])[0, tox]  # the document read as one truncated passage, as before
    alone = scorer.score_passages([INSULT])[0, tox]
    assert got.scores[0, tox] > head + 0.1
    assert got.scores[0, tox] > got.scores[1, tox] + 0.1
    assert INSULT in doc[got.starts[0, tox] : got.ends[0, tox]]
    assert got.scores[0, tox] <= alone + 1e-9  # a window holds the insult and clean context: never above it alone


def test_the_teacher_finds_the_passage_and_says_where() -> None:
    doc = _spliced(INSULT)
    teacher = TeacherScorer(["jigsaw:toxic", "stack:toxic"], top_k=2)
    got = teacher.score_windowed([doc, PAGE])
    assert got.scores[0, 0] > 0.9 and got.scores[1, 0] < 0.1
    assert got.scores[0, 1] >= 0.7 > got.scores[1, 1]
    for j in (0, 1):
        assert INSULT in doc[got.starts[0, j] : got.ends[0, j]]
    # only what is needed is scored
    need = np.array([[True, False], [False, False]])
    masked = teacher.score_windowed([doc, PAGE], need)
    assert masked.scores[0, 0] == got.scores[0, 0]
    assert np.isnan(masked.scores[0, 1]) and np.isnan(masked.scores[1]).all()


def test_which_windows_are_read_does_not_depend_on_the_batch() -> None:
    constitution = load_constitution()
    scorer = scorers.load_scorer(scorers.scorer_spec(constitution, ClassifyConfig()))
    doc = _spliced(INSULT)
    alone = scorer.score_windowed([doc])
    batch = scorer.score_windowed([PAGE, "Short text.", doc, _spliced("The weather was fine.")])
    assert (alone.scores[0] == batch.scores[2]).all()
    assert (alone.starts[0] == batch.starts[2]).all() and (alone.ends[0] == batch.ends[2]).all()


def test_window_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="top_k"):
        load_config(overrides={"classify.top_k": 0})
    with pytest.raises(ConfigError, match="windows"):
        load_config(overrides={"classify.windows": "some"})


def _ctx(**overrides: Any) -> StageContext:
    return StageContext(
        cfg=load_config(overrides=overrides), constitution=load_constitution(), run_id="r", crawl_id="c", champions={}
    )


def test_a_teacher_flagged_page_has_the_teachers_spans_and_window(spark: Any) -> None:
    """Fresh lake: the teacher decides toxicity. Its window and its sentences go to `scores`, not the classifier's."""
    ctx = _ctx()
    doc = _spliced(INSULT)
    frame = spark.createDataFrame([("spliced", doc), ("clean", PAGE)], "doc_id string, text string")
    scored = cascade.apply(classify.transform(frame, ctx.constitution, ctx.cfg.classify), ctx)
    rows = classify.to_scores_table(scored, ctx.constitution, "r", ctx.cfg.classify).collect()
    tox = {r["doc_id"]: r for r in rows if r["principle"] == "toxicity"}
    hit = tox["spliced"]
    assert hit["decided_by"] == "teacher" and hit["score"] >= 0.7
    assert INSULT in doc[hit["window_start"] : hit["window_end"]]
    assert [doc[s["start"] : s["end"]] for s in hit["spans"]] == [INSULT]
    assert hit["spans_by"] == "teacher"
    assert tox["clean"]["spans"] == [] and tox["clean"]["spans_by"] is None


def test_the_audit_scores_a_hash_chosen_sample_of_a_large_night(spark: Any) -> None:
    """The stack teachers cost an encoder pass per window: past `audit_max_docs` kept documents the audit scores a
    sample, the same one on a rerun, and says of how many."""
    from pipelines.stages.audit import TeacherAudit

    rows = [(f"d{i}", "keep", f"Clean page number {i} about the river.") for i in range(40)]
    rows += [("bad", "keep", INSULT), ("gone", "drop", INSULT)]
    frame = spark.createDataFrame(rows, "doc_id string, action string, out_text string")
    stage = TeacherAudit()
    whole = stage.counts(stage.transform(frame, _ctx()), {}, _ctx())
    assert (whole["audit_kept"], whole["audit_of"], whole["audit_flagged:toxicity"]) == (41, 41, 1)
    ctx = _ctx(**{"classify.cascade.audit_max_docs": 10})
    first = stage.transform(frame, ctx).collect()
    counts = stage.counts(stage.transform(frame, ctx), {}, ctx)
    assert counts["audit_of"] == 41 and 3 <= counts["audit_kept"] <= 20
    audited = {r["doc_id"] for r in first if r["audit_scores"][0] is not None}
    assert len(audited) == counts["audit_kept"] and "gone" not in audited
    again = {r["doc_id"] for r in stage.transform(frame, ctx).collect() if r["audit_scores"][0] is not None}
    assert again == audited


def test_the_audit_reuses_the_cascades_teacher_score_of_an_unrevised_text(spark: Any) -> None:
    """The audit's scorer is the cascade's: a kept text the teacher already scored is not scored again (the planted
    0.123 comes back), a revised text is (its old score is of another text), and so is one the cascade skipped."""
    from pipelines.stages.audit import TeacherAudit

    rows = [
        ("same", "keep", INSULT, INSULT, [0.123, 0.456, None, None, None]),
        ("revised", "revise", PROSE[0], INSULT, [0.99, 0.01, None, None, None]),
        ("unseen", "keep", INSULT, INSULT, [None] * 5),
    ]
    frame = spark.createDataFrame(
        rows, "doc_id string, action string, out_text string, text string, teacher_scores array<double>"
    )
    got = {r["doc_id"]: r["audit_scores"] for r in TeacherAudit().transform(frame, _ctx()).collect()}
    assert got["same"] == [0.123, 0.456, None, None, None]  # no teacher for the other three principles
    assert got["revised"][0] < 0.5  # the calm revision, scored afresh (not the 0.99 of the text it replaced)
    assert got["unseen"][0] >= 0.7  # the insult, scored by the teacher

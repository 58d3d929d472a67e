"""The policies of the decision step on hand-made scores: drop, revise, tag, retain_fraction, upsample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.core.constitution import Constitution, default_constitution_path, load_constitution
from pipelines.stages import decide

SCHEMA = (
    "doc_id string, text string, quality_reasons array<string>, is_duplicate boolean, "
    "principle_scores array<double>, revision_status string, revised_text string"
)


@pytest.fixture(scope="module")
def constitution(tmp_path_factory: pytest.TempPathFactory) -> Constitution:
    """The default constitution plus a second positive principle; deception keeps all its would-be drops."""
    data = yaml.safe_load(default_constitution_path().read_text())
    helpful = dict(data["principles"][4])
    helpful.update(
        name="helpful_ai",
        upsample=3.0,
        upsample_threshold=0.6,
        prompts={"label": {"version": "helpful-ai-label-v1", "text": "Rate how helpful the AI is. One digit."}},
    )
    data["principles"].append(helpful)
    data["principles"][2]["retain_fraction"] = 1.0
    path = tmp_path_factory.mktemp("constitution") / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    c = load_constitution(path)
    assert c.names == ["toxicity", "violence", "deception", "misaligned_ai", "aligned_ai", "helpful_ai"]
    return c


def _decide(spark: Any, c: Constitution, rows: list[tuple[Any, ...]], fallback: str = "drop") -> dict[str, Any]:
    df = spark.createDataFrame(rows, SCHEMA)
    return {r.doc_id: r for r in decide.transform(decide.principle_flags(df, c), c, fallback=fallback).collect()}


def _s(
    tox: float = 0.1, vio: float = 0.1, dec: float = 0.1, mis: float = 0.1, aligned: float = 0.1, helpful: float = 0.1
) -> list[float]:
    return [tox, vio, dec, mis, aligned, helpful]


def test_each_policy_on_hand_made_cases(spark: Any, constitution: Constitution) -> None:
    rows = [
        ("keep", "t", [], False, _s(), None, None),
        ("unscored", "t", [], False, None, None, None),
        # revise mode (toxicity 0.7 / 0.9)
        ("tox_filter", "t", [], False, _s(tox=0.9), None, None),
        ("tox_band_ok", "t", [], False, _s(tox=0.7), "ok", "rewritten"),
        ("tox_band_rejected", "t", [], False, _s(tox=0.89), "rejected", "bad rewrite"),
        ("tox_below", "t", [], False, _s(tox=0.69), None, None),
        # drop mode with retain_fraction 1.0 (deception 0.75 / 0.9): every would-be drop is kept, tagged
        ("dec_filter", "t", [], False, _s(dec=0.95), None, None),
        ("dec_band", "t", [], False, _s(dec=0.8), None, None),
        # tag mode (misaligned_ai 0.75): at or above the revise threshold, even above the filter threshold
        ("mis_band", "t", [], False, _s(mis=0.75), None, None),
        ("mis_filter", "t", [], False, _s(mis=0.99), None, None),
        # positive principles: aligned_ai x2 at >= 0.75, helpful_ai x3 at >= 0.6; the largest weight wins
        ("up_aligned", "t", [], False, _s(aligned=0.75), None, None),
        ("up_just_below", "t", [], False, _s(aligned=0.7499), None, None),
        ("up_both", "t", [], False, _s(aligned=0.9, helpful=0.6), None, None),
        ("up_and_tagged", "t", [], False, _s(mis=0.8, aligned=0.8), None, None),
        ("up_and_revised", "t", [], False, _s(tox=0.8, aligned=0.8), "ok", "rewritten"),
        ("up_but_dropped", "t", [], False, _s(tox=0.95, aligned=0.95, helpful=0.95), None, None),
        ("up_but_quality", "t", ["gopher_short_doc"], False, _s(aligned=0.95), None, None),
    ]
    out = _decide(spark, constitution, rows)
    expect = {
        "keep": ("keep", [], [], 1.0),
        "unscored": ("keep", [], [], 1.0),
        "tox_filter": ("drop", ["principle:toxicity"], [], 0.0),
        "tox_band_ok": ("revise", ["revised:toxicity"], [], 1.0),
        "tox_band_rejected": ("drop", ["revision_rejected", "flagged:toxicity"], [], 0.0),
        "tox_below": ("keep", [], [], 1.0),
        "dec_filter": ("tag", ["tagged:retained:deception"], ["retained:deception"], 1.0),
        "dec_band": ("tag", ["tagged:deception"], ["deception"], 1.0),
        "mis_band": ("tag", ["tagged:misaligned_ai"], ["misaligned_ai"], 1.0),
        "mis_filter": ("tag", ["tagged:misaligned_ai"], ["misaligned_ai"], 1.0),
        "up_aligned": ("keep", ["upsampled:aligned_ai"], [], 2.0),
        "up_just_below": ("keep", [], [], 1.0),
        "up_both": ("keep", ["upsampled:aligned_ai", "upsampled:helpful_ai"], [], 3.0),
        "up_and_tagged": ("tag", ["tagged:misaligned_ai", "upsampled:aligned_ai"], ["misaligned_ai"], 2.0),
        "up_and_revised": ("revise", ["revised:toxicity", "upsampled:aligned_ai"], [], 2.0),
        "up_but_dropped": ("drop", ["principle:toxicity"], [], 0.0),
        "up_but_quality": ("drop", ["gopher_short_doc"], [], 0.0),
    }
    assert set(out) == set(expect)
    for doc_id, (action, reasons, tags, weight) in expect.items():
        r = out[doc_id]
        assert (r.action, r.reasons, r.tags, r.weight) == (action, reasons, tags, weight), doc_id
    assert out["tox_band_ok"].out_text == "rewritten" and out["up_and_revised"].out_text == "rewritten"
    assert out["tox_band_rejected"].out_text == "t"


def test_fallback_tag_keeps_an_unrevised_document_with_its_weight(spark: Any, constitution: Constitution) -> None:
    out = _decide(spark, constitution, [("m", "t", [], False, _s(vio=0.8, helpful=0.7), "timeout", None)], "tag")
    r = out["m"]
    assert (r.action, r.tags, r.weight) == ("tag", ["unrevised:violence"], 3.0)
    assert r.reasons == ["revision_timeout", "flagged:violence", "upsampled:helpful_ai"]


def test_a_positive_principle_never_flags(spark: Any, constitution: Constitution) -> None:
    df = spark.createDataFrame([("a", "t", [], False, _s(aligned=1.0, helpful=1.0), None, None)], SCHEMA)
    (r,) = decide.principle_flags(df, constitution).collect()
    assert (r.drop_principles, r.revise_principles, r.tag_principles) == ([], [], [])
    assert r.upsample_principles == ["aligned_ai", "helpful_ai"]


def _retain_constitution(tmp: Path, fraction: float) -> Constitution:
    data = yaml.safe_load(default_constitution_path().read_text())
    data["principles"][0]["retain_fraction"] = fraction
    path = tmp / f"retain-{fraction}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_constitution(path)


def test_retain_fraction_is_deterministic_and_close_to_the_fraction(spark: Any, tmp_path: Path) -> None:
    c = _retain_constitution(tmp_path, 0.1)
    n = 10_000
    rows = [(f"doc-{i:05d}", "t", [], False, [0.95, 0.1, 0.1, 0.1, 0.1], None, None) for i in range(n)]
    df = spark.createDataFrame(rows, SCHEMA)

    def kept(frame: Any) -> set[str]:
        decided = decide.transform(decide.principle_flags(frame, c), c)
        return {r.doc_id for r in decided.where("action = 'tag'").select("doc_id").collect()}

    first = kept(df.repartition(7))
    again = kept(df.repartition(3).orderBy("doc_id", ascending=False))
    assert first == again
    assert 0.09 <= len(first) / n <= 0.11
    # the documented rule, written out independently in SQL: bucket of xxhash64(doc_id, principle) below 10%
    df.createOrReplaceTempView("retain_ids")
    by_rule = spark.sql(
        "SELECT doc_id FROM retain_ids WHERE pmod(xxhash64(doc_id, 'toxicity'), 10000) < 1000"
    ).collect()
    assert first == {r.doc_id for r in by_rule}
    # every other would-be drop is dropped, tagged docs carry the retained tag
    decided = {r.doc_id: r for r in decide.transform(decide.principle_flags(df, c), c).collect()}
    assert all(
        (r.action, r.tags) == (("tag", ["retained:toxicity"]) if d in first else ("drop", []))
        for d, r in decided.items()
    )


def test_retain_fraction_extremes(spark: Any, tmp_path: Path) -> None:
    rows = [(f"d{i}", "t", [], False, [0.95, 0.1, 0.1, 0.1, 0.1], None, None) for i in range(200)]
    for fraction, action in ((0.0, "drop"), (1.0, "tag")):
        c = _retain_constitution(tmp_path, fraction)
        out = _decide(spark, c, rows)
        assert {r.action for r in out.values()} == {action}, fraction


def test_an_accepted_revision_stands_unless_a_strong_enough_scorer_clears_it(
    spark: Any, constitution: Constitution
) -> None:
    """Iteration (`hold_revisions`): toxicity scores 0.1 everywhere (cleared); who cleared it and who flagged the
    revision decide whether the original text comes back. Strength: classifier < teacher < judge, and the classifier
    never clears a revision."""
    schema = f"{SCHEMA}, decided_by array<string>, revision_principles array<string>, revision_flagged_by string"
    by = lambda tox: [tox] + ["classifier"] * 5  # noqa: E731
    rows = [
        # (doc, toxicity scores, revision status, toxicity decided by, flagged by)
        ("champion_vs_champion", _s(), "ok", by("classifier"), "classifier"),
        ("teacher_vs_champion", _s(), "ok", by("teacher"), "classifier"),
        ("teacher_vs_teacher", _s(), "ok", by("teacher"), "teacher"),
        ("teacher_vs_judge", _s(), "ok", by("teacher"), "judge"),
        ("judge_vs_judge", _s(), "ok", by("judge"), "judge"),
        ("teacher_vs_unknown", _s(), "ok", by("teacher"), None),  # a row written before flagged_by was
        ("judge_vs_unknown", _s(), "ok", by("judge"), None),
        ("rejected", _s(), "rejected", by("classifier"), "classifier"),  # no accepted revision to hold
        ("still_in_band", _s(tox=0.8), "ok", by("classifier"), "teacher"),  # flagged anyway: the revision stands
        ("over_filter", _s(tox=0.95), "ok", by("classifier"), "teacher"),  # a drop is no republication
    ]
    df = spark.createDataFrame(
        [
            (d, "original", [], False, s, status, "revised" if status == "ok" else None, dec, ["toxicity"], flag)
            for d, s, status, dec, flag in rows
        ],
        schema,
    )
    flagged = decide.hold_revisions(decide.principle_flags(df, constitution), constitution)
    out = {r.doc_id: r for r in decide.transform(flagged, constitution).collect()}
    held = {d for d, r in out.items() if r.held_principles}
    assert held == {"champion_vs_champion", "teacher_vs_judge", "teacher_vs_unknown"}
    for d in held | {"still_in_band"}:
        assert (out[d].action, out[d].reasons, out[d].out_text) == ("revise", ["revised:toxicity"], "revised"), d
    for d in ("teacher_vs_champion", "teacher_vs_teacher", "judge_vs_judge", "judge_vs_unknown", "rejected"):
        assert (out[d].action, out[d].out_text) == ("keep", "original"), d
    assert out["over_filter"].action == "drop"

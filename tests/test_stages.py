"""Stage transforms on the embedded engine: ingest (idempotent), quality reasons, exact dedup, decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipelines import decide, dedup, ingest, quality
from pipelines.config import IngestConfig, QualityConfig
from pipelines.constitution import load_constitution
from tests.fixtures import ARTICLES, BAD_LINES, jsonl_lines, write_jsonl, write_parquet, write_warc, write_wet


def _parsed(spark, files):
    return ingest.parse_inputs(spark, files, IngestConfig(max_doc_bytes=10_000))


def test_ingest_all_formats_and_reasons(spark, lake, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_jsonl(d / "a.jsonl.gz", jsonl_lines() + list(BAD_LINES.values()))
    write_parquet(d / "b.parquet")
    write_wet(d / "c.warc.wet.gz", [("https://wet.example/1", ARTICLES[0][1] + " (wet copy)")])
    write_warc(d / "d.warc.gz", [("https://warc.example/1", ARTICLES[1][1] + " Archived.")])
    files = ingest.list_inputs(d)
    assert [f for _, f in files] == ["jsonl", "parquet", "wet", "warc"]
    parsed = _parsed(lake.spark, files)
    result = ingest.summarise(parsed, lake.read("raw_docs"))
    assert result.records == 11 + 5 + 1 + 3
    assert result.quarantine_reasons == {
        "empty_text": 2,
        "invalid_utf8": 1,
        "malformed_json": 1,
        "missing_text": 2,
        "no_text_extracted": 1,
        "not_an_object": 1,
        "too_large": 1,
        "unsupported_content_type:image/png": 1,
        "wrong_type:text": 1,
        "wrong_type:url": 1,
    }
    # the jsonl and parquet files carry the same three articles (same url and text): one document each
    assert result.documents == 3 + 3 + 1 + 1
    assert result.new_documents == 5 and result.repeated_in_batch == 3
    ingest.write(lake, parsed, "night-1", "run-1")
    assert lake.read("raw_docs").count() == 5
    assert lake.read("quarantine").count() == 12


def test_reingest_is_idempotent(spark, lake, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "n1.jsonl", [*jsonl_lines(), BAD_LINES["malformed_json"]])
    files = ingest.list_inputs(path)
    for run in ("run-1", "run-2"):
        parsed = _parsed(lake.spark, files)
        before = lake.read("raw_docs")
        result = ingest.summarise(parsed, before)
        ingest.write(lake, parsed, "n1", run)
        if run == "run-2":
            assert result.new_documents == 0 and result.already_ingested == 3
    assert lake.read("raw_docs").count() == 3
    assert lake.read("quarantine").count() == 1
    assert {r.run_id for r in lake.read("raw_docs").collect()} == {"run-1"}


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ingest.IngestError, match="input not found"):
        ingest.list_inputs(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ingest.IngestError, match="no input files"):
        ingest.list_inputs(tmp_path)


def _docs(spark, rows):
    return spark.createDataFrame(rows, "doc_id string, crawl_id string, text string")


def test_quality_reasons_exact(spark) -> None:
    good = ARTICLES[0][1]
    rows = [
        ("good", "c", good),
        ("short", "c", "The cat sat on the mat and that was that."),
        ("symbols", "c", " ".join(["#tag"] * 60)),
        ("longwords", "c", " ".join(["internationalisation"] * 60) + " the and"),
        ("ellipsis", "c", " ".join(["and the wait..."] * 30)),
        ("bullets", "c", "\n".join(["- the item with words and more"] * 20)),
        ("empty", "c", "   "),
    ]
    out = {r.doc_id: r for r in quality.transform(_docs(spark, rows), QualityConfig()).collect()}
    assert out["good"].quality_reasons == []
    assert out["short"].quality_reasons == ["gopher_short_doc"]
    assert out["symbols"].quality_reasons == ["gopher_too_many_hashes", "gopher_enough_stop_words"]
    assert out["longwords"].quality_reasons == ["gopher_above_avg_threshold"]
    assert out["ellipsis"].quality_reasons == ["gopher_too_many_ellipsis"]
    assert out["bullets"].quality_reasons == ["gopher_too_many_bullets"]
    assert out["empty"].quality_reasons == ["gopher_short_doc", "gopher_enough_stop_words"]
    assert out["empty"].mean_word_length is None and out["empty"].n_words == 0
    assert out["short"].n_words == 10 and out["short"].stop_word_count == 4
    assert out["bullets"].bullet_line_ratio == 1.0


def test_quality_thresholds_are_configurable(spark) -> None:
    df = _docs(spark, [("short", "c", "The cat sat on the mat and that was that.")])
    (row,) = quality.transform(df, QualityConfig(min_words=5)).collect()
    assert row.quality_reasons == []


def test_exact_dedup_within_batch_and_against_earlier(spark) -> None:
    prior = spark.createDataFrame(
        [("old1", "n0", "Hello, World!  The same text.")], "doc_id string, crawl_id string, text string"
    ).withColumn("exact_hash", dedup.exact_hash(F.col("text")))
    batch = _docs(
        spark,
        [
            ("b2", "n1", "hello world the SAME text"),  # equal to old1 after normalisation
            ("b1", "n1", "A fresh document."),
            ("a9", "n1", "a fresh document"),  # smaller doc_id wins within the batch
            ("c1", "n1", "unique"),
        ],
    )
    out = {r.doc_id: r for r in dedup.transform(batch, prior).collect()}
    assert (out["b2"].is_duplicate, out["b2"].dup_of) == (True, "old1")
    assert (out["a9"].is_duplicate, out["a9"].dup_of, out["a9"].cluster_id) == (False, None, "a9")
    assert (out["b1"].is_duplicate, out["b1"].dup_of) == (True, "a9")
    assert (out["c1"].is_duplicate, out["c1"].cluster_id) == (False, "c1")
    import hashlib

    assert out["c1"].exact_hash == hashlib.sha256(b"unique").hexdigest()
    assert out["a9"].exact_hash == hashlib.sha256(b"a fresh document").hexdigest()


def test_earliest_crawl_wins_within_batch(spark) -> None:
    batch = _docs(spark, [("aaa", "2026-11-02", "same words"), ("zzz", "2026-11-01", "Same words!")])
    out = {r.doc_id: r for r in dedup.transform(batch).collect()}
    assert out["aaa"].dup_of == "zzz" and out["zzz"].dup_of is None


def _decide_input(spark, rows):
    schema = (
        "doc_id string, text string, quality_reasons array<string>, is_duplicate boolean, "
        "principle_scores array<double>, revision_status string, revised_text string"
    )
    return spark.createDataFrame(rows, schema)


def test_decisions_follow_precedence_and_policies(spark) -> None:
    c = load_constitution()  # toxicity revise 0.7/0.9 (revise), deception 0.75/0.9 (drop), misaligned_ai (tag)
    clean = [0.1, 0.1, 0.1, 0.1]
    rows = [
        ("q", "t", ["gopher_short_doc"], None, None, None, None),
        ("d", "t", [], True, None, None, None),
        ("keep", "t", [], False, clean, None, None),
        ("toxic_high", "t", [], False, [0.95, 0.1, 0.1, 0.1], None, None),
        ("toxic_mid_ok", "t", [], False, [0.8, 0.1, 0.1, 0.1], "ok", "clean text"),
        ("toxic_mid_rejected", "t", [], False, [0.8, 0.1, 0.1, 0.1], "rejected", "still bad"),
        ("toxic_mid_capped", "t", [], False, [0.8, 0.1, 0.1, 0.1], "over_cap", None),
        ("deception_mid", "t", [], False, [0.1, 0.1, 0.8, 0.1], None, None),
        ("ai_high", "t", [], False, [0.1, 0.1, 0.1, 0.95], None, None),
    ]
    flagged = decide.principle_flags(_decide_input(spark, rows), c)
    out = {r.doc_id: r for r in decide.transform(flagged, c, fallback="drop").collect()}
    expect = {
        "q": ("drop", ["gopher_short_doc"], "quality", []),
        "d": ("drop", ["exact_duplicate"], "dedup", []),
        "keep": ("keep", [], "publish", []),
        "toxic_high": ("drop", ["principle:toxicity"], "classify", []),
        "toxic_mid_ok": ("revise", ["revised:toxicity"], "revise", []),
        "toxic_mid_rejected": ("drop", ["revision_rejected", "flagged:toxicity"], "revise", []),
        "toxic_mid_capped": ("drop", ["revision_over_cap", "flagged:toxicity"], "revise", []),
        "deception_mid": ("tag", ["tagged:deception"], "classify", ["deception"]),
        "ai_high": ("tag", ["tagged:misaligned_ai"], "classify", ["misaligned_ai"]),
    }
    for doc_id, (action, reasons, stage, tags) in expect.items():
        r = out[doc_id]
        assert (r.action, r.reasons, r.stage, r.tags) == (action, reasons, stage, tags), doc_id
    assert out["toxic_mid_ok"].out_text == "clean text"
    assert out["toxic_mid_rejected"].out_text == "t"


def test_fallback_tag_keeps_unrevised_with_a_tag(spark) -> None:
    c = load_constitution()
    rows = [("m", "t", [], False, [0.8, 0.1, 0.1, 0.1], "timeout", None)]
    (r,) = decide.transform(decide.principle_flags(_decide_input(spark, rows), c), c, fallback="tag").collect()
    assert (r.action, r.tags) == ("tag", ["unrevised:toxicity"])
    assert r.reasons == ["revision_timeout", "flagged:toxicity"]

"""Stage transforms on the embedded engine: ingest (idempotent), quality reasons, decisions (dedup: test_dedup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.config import IngestConfig
from pipelines.core.constitution import load_constitution
from pipelines.stages import decide, ingest
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
    assert [f.fmt for f in files] == ["jsonl", "parquet", "wet", "warc"]
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
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ingest.IngestError, match="no input files"):
        ingest.list_inputs(tmp_path)


def test_other_files_beside_the_crawl_are_quarantined_not_skipped(spark, lake, tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    write_jsonl(d / "a.jsonl", jsonl_lines())
    (d / "notes.md").write_text("crawl notes: night 1 was partial\n")
    (d / "sub" / "export.xlsx").write_bytes(b"PK\x03\x04 a spreadsheet")
    (d / ".a.jsonl.crc").write_bytes(b"\x00\x01")  # a writer's bookkeeping: never data
    (d / "_SUCCESS").write_text("")
    files = ingest.list_inputs(d)
    assert [(f.name, f.fmt) for f in files] == [
        ("a.jsonl", "jsonl"),
        ("notes.md", "unsupported"),
        ("sub/export.xlsx", "unsupported"),
    ]
    parsed = _parsed(lake.spark, files)
    result = ingest.summarise(parsed, lake.read("raw_docs"))
    assert result.documents == 3
    assert result.quarantine_reasons == {"unsupported_file_type:.md": 1, "unsupported_file_type:.xlsx": 1}
    ingest.write(lake, parsed, "night-1", "run-1")
    rows = {Path(r.source_file).name: r for r in lake.read("quarantine").collect()}
    assert set(rows) == {"notes.md", "export.xlsx"}
    assert rows["notes.md"].raw.startswith("crawl notes") and rows["export.xlsx"].position == 0
    assert rows["export.xlsx"].raw == "PK\\x03\\x04 a spreadsheet"  # control bytes escaped, not replaced


def _docs(spark, rows):
    return spark.createDataFrame(rows, "doc_id string, crawl_id string, text string")


def _decide_input(spark, rows):
    schema = (
        "doc_id string, text string, quality_reasons array<string>, is_duplicate boolean, "
        "principle_scores array<double>, revision_status string, revised_text string"
    )
    return spark.createDataFrame(rows, schema)


def test_decisions_follow_precedence_and_policies(spark) -> None:
    # toxicity revise 0.7/0.9 (revise), deception 0.75/0.9 (drop), misaligned_ai (tag), aligned_ai (positive)
    c = load_constitution()
    clean = [0.1, 0.1, 0.1, 0.1, 0.1]
    rows = [
        ("q", "t", ["gopher_short_doc"], None, None, None, None),
        ("d", "t", [], True, None, None, None),
        ("keep", "t", [], False, clean, None, None),
        ("toxic_high", "t", [], False, [0.95, 0.1, 0.1, 0.1, 0.1], None, None),
        ("toxic_mid_ok", "t", [], False, [0.8, 0.1, 0.1, 0.1, 0.1], "ok", "clean text"),
        ("toxic_mid_rejected", "t", [], False, [0.8, 0.1, 0.1, 0.1, 0.1], "rejected", "still bad"),
        ("toxic_mid_capped", "t", [], False, [0.8, 0.1, 0.1, 0.1, 0.1], "over_cap", None),
        ("deception_mid", "t", [], False, [0.1, 0.1, 0.8, 0.1, 0.1], None, None),
        ("ai_high", "t", [], False, [0.1, 0.1, 0.1, 0.95, 0.1], None, None),
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
        # no budget is not a content decision: deferred to the next run (revise.over_budget's default)
        "toxic_mid_capped": ("defer", ["revision_over_cap", "flagged:toxicity"], "revise", []),
        "deception_mid": ("tag", ["tagged:deception"], "classify", ["deception"]),
        "ai_high": ("tag", ["tagged:misaligned_ai"], "classify", ["misaligned_ai"]),
    }
    for doc_id, (action, reasons, stage, tags) in expect.items():
        r = out[doc_id]
        assert (r.action, r.reasons, r.stage, r.tags) == (action, reasons, stage, tags), doc_id
    assert out["toxic_mid_ok"].out_text == "clean text"
    assert (out["toxic_mid_capped"].weight, out["toxic_high"].weight) == (0.0, 0.0)
    assert out["toxic_mid_rejected"].out_text == "t"


@pytest.mark.parametrize(
    ("over_budget", "action", "tags"),
    [("defer", "defer", []), ("tag", "tag", ["unrevised:toxicity"]), ("drop", "drop", [])],
)
def test_over_budget_takes_its_own_choice_not_the_fallback(spark, over_budget, action, tags) -> None:
    c = load_constitution()
    band = [0.8, 0.1, 0.1, 0.1, 0.1]
    rows = [("cap", "t", [], False, band, "over_cap", None), ("time", "t", [], False, band, "over_budget", None)]
    rows.append(("rejected", "t", [], False, band, "rejected", "still bad"))  # a content failure: the fallback
    flagged = decide.principle_flags(_decide_input(spark, rows), c)
    out = {r.doc_id: r for r in decide.transform(flagged, c, fallback="drop", over_budget=over_budget).collect()}
    assert (out["cap"].action, out["cap"].tags) == (action, tags)
    assert (out["time"].action, out["time"].reasons) == (action, ["revision_over_budget", "flagged:toxicity"])
    assert out["rejected"].action == "drop"


def test_fallback_tag_keeps_unrevised_with_a_tag(spark) -> None:
    c = load_constitution()
    rows = [("m", "t", [], False, [0.8, 0.1, 0.1, 0.1, 0.1], "timeout", None)]
    (r,) = decide.transform(decide.principle_flags(_decide_input(spark, rows), c), c, fallback="tag").collect()
    assert (r.action, r.tags) == ("tag", ["unrevised:toxicity"])
    assert r.reasons == ["revision_timeout", "flagged:toxicity"]

"""udfs.parse: every record becomes exactly one document or one quarantine entry with the right reason."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pipelines.core.config import IngestConfig
from tests.fixtures import ARTICLES, BAD_LINES, jsonl_lines, write_jsonl, write_parquet, write_warc, write_wet
from udfs.parse import parse_file
from udfs.records import detect_format, doc_id_for

OPTS = IngestConfig(max_doc_bytes=10_000)


@pytest.mark.parametrize("name", ["crawl.jsonl", "crawl.jsonl.gz"])
def test_jsonl_every_quarantine_reason(tmp_path: Path, name: str) -> None:
    lines = jsonl_lines() + list(BAD_LINES.values())
    path = write_jsonl(tmp_path / name, lines)
    out = list(parse_file(str(path), "jsonl", OPTS))
    assert len(out) == len(lines)
    docs = [r for r in out if r.reason is None]
    assert [d.url for d in docs] == [u for u, _ in ARTICLES]
    assert docs[0].meta == {"id": "doc-0"} and docs[0].source == "fixture"
    assert [r.reason for r in out if r.reason] == list(BAD_LINES)
    assert [r.position for r in out] == list(range(len(lines)))
    bad = {r.reason: r for r in out if r.reason}
    assert bad["malformed_json"].raw and "cut off" in bad["malformed_json"].raw


def test_raw_is_truncated(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [BAD_LINES["too_large"]])
    (rec,) = parse_file(str(path), "jsonl", IngestConfig(max_doc_bytes=100, raw_truncate_chars=50))
    assert rec.reason == "too_large" and rec.raw is not None and len(rec.raw) == 50


def test_lone_surrogate_escape_is_invalid_utf8(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [b'{"text": "bad \\ud800 surrogate here"}\n'])
    (rec,) = parse_file(str(path), "jsonl", OPTS)
    assert rec.reason == "invalid_utf8"


def test_truncated_gzip_is_quarantined_not_fatal(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(jsonl_lines() * 50), mtime=0)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    out = list(parse_file(str(path), "jsonl", OPTS))
    assert out[-1].reason == "truncated_file"
    assert all(r.reason is None for r in out[:-1]) and len(out) > 1


def test_parquet_rows(tmp_path: Path) -> None:
    out = list(parse_file(str(write_parquet(tmp_path / "c.parquet")), "parquet", OPTS))
    assert [r.reason for r in out] == [None, None, None, "missing_text", "empty_text"]


def test_parquet_without_text_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "x.parquet")
    out = list(parse_file(str(tmp_path / "x.parquet"), "parquet", OPTS))
    assert [r.reason for r in out] == ["missing_text", "missing_text"]


def test_wet_conversion_records(tmp_path: Path) -> None:
    out = list(parse_file(str(write_wet(tmp_path / "c.warc.wet.gz")), "wet", OPTS))
    assert [r.reason for r in out] == [None, None, None]  # warcinfo is not a document
    assert [(r.url, r.text) for r in out] == ARTICLES
    assert out[0].meta["warc_record_id"].startswith("<urn:uuid:")


def test_warc_html_extraction(tmp_path: Path) -> None:
    out = list(parse_file(str(write_warc(tmp_path / "c.warc.gz")), "warc", OPTS))
    assert [r.reason for r in out] == [
        None,
        None,
        None,
        "unsupported_content_type:image/png",
        "no_text_extracted",
    ]
    first = out[0].text or ""
    assert "flood barrier will be finished" in first
    assert "All rights reserved" not in first and "Sign in" not in first


def test_formats_detected() -> None:
    assert detect_format("a/b.jsonl.gz") == "jsonl"
    assert detect_format("x.json") == "json"
    assert detect_format("x.ndjson.gz") == "jsonl"
    assert detect_format("CC-MAIN-1.warc.wet.gz") == "wet"
    assert detect_format("CC-MAIN-1.warc.gz") == "warc"
    assert detect_format("part-0.parquet") == "parquet"
    assert detect_format("notes.txt") == "txt" and detect_format("rows.csv.gz") == "csv"
    assert detect_format("notes.md") is None


def test_doc_id_is_stable_and_content_addressed() -> None:
    a = doc_id_for("same text", "https://a.example", None)
    assert a == doc_id_for("same text", "https://a.example", "ignored-when-url-present")
    assert a != doc_id_for("other text", "https://a.example", None)
    assert a != doc_id_for("same text", "https://b.example", None)
    assert len(a) == 32 and int(a, 16) >= 0


SHARED_RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"


@pytest.mark.skipif(not SHARED_RAW.is_dir(), reason="../shared/data/raw is only on development machines")
def test_real_samples_from_shared_data() -> None:
    warcs = sorted((SHARED_RAW / "warc").glob("*.warc.gz"))
    out = [r for w in warcs for r in parse_file(str(w), "warc", IngestConfig())]
    docs = [r for r in out if r.reason is None]
    assert len(out) >= 30 and len(docs) >= len(out) // 2
    for f in sorted((SHARED_RAW / "cc_jsonl").glob("*.json*")):
        recs = list(parse_file(str(f), "jsonl", IngestConfig()))
        assert recs and all(r.reason is None for r in recs)

"""The accounting invariant both ways: every ingested document in exactly one of corpus, drops and deferred, and
no corpus row without an ingested document; checked at the end of every run (final_counts) and by `curate repair`.

The lake is written by hand (ingest's own writer for raw_docs, the contract schemas for the rest): the state a
writer that bypassed the pipeline (a `curate sql --write`, a restore of one table) leaves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.core.config import IngestConfig, TrackingConfig
from pipelines.core.execute import InvariantViolation, check_accounting, final_counts
from pipelines.core.lake import Lake
from pipelines.ops.repair import repair
from pipelines.stages import ingest
from schemas import TABLES
from tests.fixtures import ARTICLES, jsonl_lines, write_jsonl
from udfs.records import doc_id_for

RUN = "20260101T000000Z-handmade"


def _rows(table: str, rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    names = TABLES[table].fieldNames()
    return [tuple(r.get(n) for n in names) for r in rows]


def _lake(lake: Lake, tmp: Path) -> list[str]:
    """Three ingested articles: the first kept, the second dropped, the third deferred (all consistent)."""
    path = write_jsonl(tmp / "n1.jsonl", jsonl_lines(ARTICLES[:3]))
    parsed = ingest.parse_inputs(lake.spark, ingest.list_inputs(path), IngestConfig())
    ingest.write(lake, parsed, "n1", RUN)
    ids = [doc_id_for(text, url, None) for url, text in ARTICLES[:3]]
    now = datetime.now(UTC)
    decisions = [
        {
            "doc_id": d,
            "run_id": RUN,
            "crawl_id": "n1",
            "action": a,
            "reasons": [],
            "stage": "publish",
            "decided_at": now,
        }
        for d, a in zip(ids, ("keep", "drop", "defer"), strict=True)
    ]
    lake.merge(
        lake.spark.createDataFrame(_rows("decisions", decisions), TABLES["decisions"]),
        "decisions",
        ("doc_id", "run_id"),
    )
    kept = {
        "doc_id": ids[0],
        "text": "t",
        "action": "keep",
        "tags": [],
        "weight": 1.0,
        "run_id": RUN,
        "updated_at": now,
    }
    lake.merge(lake.spark.createDataFrame(_rows("corpus", [kept]), TABLES["corpus"]), "corpus", ("doc_id",))
    return ids


def test_deferred_documents_are_counted_once(spark, lake: Lake, tmp_path: Path) -> None:
    _lake(lake, tmp_path)
    assert check_accounting(lake) == {
        "raw_docs": 3,
        "unaccounted": 0,
        "double_counted": 0,
        "deferred": 1,
        "corpus_without_raw": 0,
    }
    assert final_counts(lake)["deferred_total"] == 1


def test_a_corpus_row_without_a_raw_document_is_reported(spark, lake: Lake, tmp_path: Path) -> None:
    _lake(lake, tmp_path)
    planted = "f" * 32  # in no raw_docs row: its text came from nowhere the lake ingested
    row = {"doc_id": planted, "text": "t", "action": "keep", "tags": [], "weight": 1.0, "run_id": RUN}
    lake.merge(lake.spark.createDataFrame(_rows("corpus", [row]), TABLES["corpus"]), "corpus", ("doc_id",))
    # the raw side alone is in order: the check that starts from raw_docs cannot see it
    acct = check_accounting(lake)
    assert (acct["unaccounted"], acct["double_counted"], acct["corpus_without_raw"]) == (0, 0, 1)
    with pytest.raises(InvariantViolation, match="1 corpus row"):
        final_counts(lake)  # the end of every run
    found = repair(lake, TrackingConfig(enabled=False), dry_run=True)
    assert found.broken
    assert any(planted in line and "raw_docs" in line for line in found.unfixed)


def test_a_document_kept_and_deferred_is_double_counted(spark, lake: Lake, tmp_path: Path) -> None:
    ids = _lake(lake, tmp_path)
    now = datetime.now(UTC)
    row = {"doc_id": ids[2], "text": "t", "action": "keep", "tags": [], "weight": 1.0, "run_id": RUN, "updated_at": now}
    lake.merge(lake.spark.createDataFrame(_rows("corpus", [row]), TABLES["corpus"]), "corpus", ("doc_id",))
    assert check_accounting(lake)["double_counted"] == 1
    with pytest.raises(InvariantViolation):
        final_counts(lake)

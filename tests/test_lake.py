"""The lake's contract tables across releases: a table written with an older schema takes the new columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from pipelines.core.lake import Lake
from schemas import TABLES

# `revisions` as the first release wrote it (commit 1502358): no `similarity`,
# `fallback_from` or `llm_rewrite` yet.
OLD_REVISIONS = pa.schema(
    [
        ("doc_id", pa.string()),
        ("run_id", pa.string()),
        ("original_text", pa.string()),
        ("revised_text", pa.string()),
        ("principles", pa.list_(pa.string())),
        ("method", pa.string()),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("status", pa.string()),
        ("reject_reasons", pa.list_(pa.string())),
        ("score_before", pa.float64()),
        ("score_after", pa.float64()),
        ("length_ratio", pa.float64()),
        ("error", pa.string()),
        ("revised_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _old_row(doc_id: str) -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "run_id": "r0",
        "original_text": "old text",
        "revised_text": None,
        "principles": ["toxicity"],
        "method": "llm",
        "model": "m",
        "prompt_version": "v1",
        "status": "rejected",
        "reject_reasons": ["length_ratio"],
        "score_before": 0.8,
        "score_after": None,
        "length_ratio": 0.1,
        "error": None,
        "revised_at": datetime(2026, 11, 1, tzinfo=UTC),
    }


def test_older_table_gets_new_columns_and_keeps_its_rows(spark: Any, tmp_path: Any) -> None:
    lake = Lake(tmp_path / "lake", spark)
    write_deltalake(str(lake.path("revisions")), pa.Table.from_pylist([_old_row("a")], schema=OLD_REVISIONS))
    new_columns = [f for f in TABLES["revisions"].fieldNames() if f not in OLD_REVISIONS.names]
    assert new_columns, "the contract has no column the old release lacked: this test no longer tests anything"

    row = {**_old_row("b"), "run_id": "r1", **{c: None for c in new_columns}}
    lake.merge(spark.createDataFrame([row], TABLES["revisions"]), "revisions", ("doc_id", "run_id"))

    names = {f.name for f in DeltaTable(str(lake.path("revisions"))).schema().fields}
    assert set(new_columns) <= names
    got = {r["doc_id"]: r.asDict() for r in lake.read("revisions").collect()}
    assert sorted(got) == ["a", "b"]
    assert got["a"]["original_text"] == "old text" and got["a"]["reject_reasons"] == ["length_ratio"]
    assert all(got["a"][c] is None for c in new_columns)


def test_a_table_whose_log_holds_no_commit_is_absent_and_created_by_the_next_run(spark: Any, tmp_path: Any) -> None:
    """SIGKILL while a run creates a table leaves `_delta_log/` with no commit (tests/test_debris.py hit it): such a
    table was never created, so the next run's evolution pass skips it and its first write creates it."""
    lake = Lake(tmp_path / "lake", spark)
    (lake.path("scores") / "_delta_log").mkdir(parents=True)
    assert not lake.exists("scores")
    lake.ensure_tables()  # before the fix: delta-rs "No files in log segment"
    lake.ensure("scores")
    assert lake.exists("scores") and DeltaTable(str(lake.path("scores"))).version() == 0

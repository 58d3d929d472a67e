"""Small CLI behaviours a new user tripped over: a typo in `curate sql` is a syntax error (not a write), machine
formats of `curate diff` are complete unless --limit is given, and `curate report` without --run-id reports the
latest night, not a maintenance or restore run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.cli.lake import DIFF_TABLE_ROWS, _diff_limit
from pipelines.cli.parser import build_parser
from pipelines.cli.sql_guard import SqlSyntaxError, read_only_problem
from schemas import TABLES


def test_a_misspelt_select_is_a_syntax_error_not_a_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SqlSyntaxError, match="SELEC is not a SQL statement"):
        read_only_problem("SELEC * FROM corpus")
    assert read_only_problem("DELETE FROM corpus") == "DELETE statements change the lake"  # a real write still is
    assert read_only_problem("SELECT * FROM corpus") is None
    (tmp_path / "lake" / "raw_docs" / "_delta_log").mkdir(parents=True)  # what `curate sql` checks a lake by
    assert main(["sql", "--lake", str(tmp_path / "lake"), "SELEC * FROM corpus"]) == 2
    err = capsys.readouterr().err
    assert "syntax error: SELEC" in err and "change" not in err and "--write" not in err


def test_diff_machine_formats_are_complete_unless_limited() -> None:
    args = build_parser().parse_args(["diff", "--lake", "L", "1", "2", "--format", "json"])
    assert args.limit is None
    assert _diff_limit(args.limit, "json") is None and _diff_limit(None, "csv") is None  # every row
    assert _diff_limit(None, "table") == DIFF_TABLE_ROWS == 100  # a terminal's view
    assert _diff_limit(5, "json") == 5 and _diff_limit(0, "table") is None


def test_report_defaults_to_the_latest_night(spark: Any, lake: Any) -> None:
    from pipelines.ops.report_data import _select_run

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    names = TABLES["runs"].fieldNames()

    def row(run_id: str, command: str | None, minutes: int) -> tuple[Any, ...]:
        r = {
            "run_id": run_id,
            "status": "success",
            "crawl_id": "n1" if command == "run" else None,
            "counts": {},
            "table_versions": {},
            "started_at": t0 + timedelta(minutes=minutes),
            "command": command,
        }
        return tuple(r.get(n) for n in names)  # fmt: skip

    rows = [row("night-1", "run", 0), row("night-2", None, 10), row("maintain-1", "maintain", 20)]
    rows.append(row("restore-1", "restore", 30))
    lake.merge(lake.spark.createDataFrame(rows, TABLES["runs"]), "runs", ("run_id",))
    # an older release's row (no command) was a nightly run; the later maintain and restore are operations
    assert _select_run(lake, None)["run_id"] == "night-2"
    assert _select_run(lake, "maintain-1")["run_id"] == "maintain-1"  # asked for by name: still reported

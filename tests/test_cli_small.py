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
    from pipelines.ops.report_data import _select_run, trend_nights

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
    # the trend of a report on the restore: the nights before it, without the operations
    trend = trend_nights(lake, _select_run(lake, "restore-1")).collect()
    assert [r.run_id for r in trend] == ["night-1", "night-2"]


def test_version_as_of_a_missing_version_names_the_versions_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    lake = tmp_path / "lake"
    for i in range(3):  # versions 0-2
        write_deltalake(str(lake / "corpus"), pa.table({"doc_id": [f"d{i}"]}), mode="append")
    assert main(["sql", "--lake", str(lake), "SELECT count(*) FROM corpus VERSION AS OF 9"]) == 2
    err = capsys.readouterr().err
    assert "curate: error: corpus has no version 9 (corpus versions: 0-2)" in err, err


def test_a_port_that_refuses_connections_fails_in_seconds_not_the_connect_timeout() -> None:
    import time

    from pipelines.core.engine import EngineError, wait_for_endpoint
    from tests.fixtures import free_port

    url = f"sc://127.0.0.1:{free_port()}"  # bound and released: the kernel answers "connection refused"
    t0 = time.monotonic()
    with pytest.raises(EngineError, match=r"nothing accepts connections at .*Connection refused"):
        wait_for_endpoint(url, 20.0)
    assert time.monotonic() - t0 < 10  # was: the whole 20 s


def test_curate_run_against_a_refusing_port_fails_before_it_imports_the_run(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.fixtures import free_port, jsonl_lines, write_jsonl

    crawl, port = write_jsonl(tmp_path / "in.jsonl", jsonl_lines()), free_port()
    heavy = ("mlflow", "torch", "pyspark.sql.connect.session", "great_expectations")
    code = (
        "import json, sys\nfrom pipelines.cli import main\n"
        f"rc = main(['run', '--lake', {str(tmp_path / 'lake')!r}, '--input', {str(crawl)!r}, "
        f"'--remote', 'sc://127.0.0.1:{port}'])\n"
        f"print(json.dumps([rc, [m for m in {heavy!r} if m in sys.modules]]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    rc, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 2 and imported == [], (rc, imported, proc.stderr[-2000:])
    assert f"nothing accepts connections at sc://127.0.0.1:{port} (Connection refused" in proc.stderr, proc.stderr
    assert not (tmp_path / "lake").exists()  # refused before the lake was touched


def test_a_second_writer_is_refused_before_the_engine_and_models_are_imported(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from pipelines.core.writer_lock import writer_lock
    from tests.fixtures import jsonl_lines, write_jsonl

    lake, crawl = tmp_path / "lake", write_jsonl(tmp_path / "in.jsonl", jsonl_lines())
    heavy = ("mlflow", "torch", "transformers", "pysail", "pyspark.sql.connect.session", "great_expectations")
    code = (
        "import json, sys\nfrom pipelines.cli import main\n"
        f"rc = main(['run', '--lake', {str(lake)!r}, '--input', {str(crawl)!r}])\n"
        f"print(json.dumps([rc, [m for m in {heavy!r} if m in sys.modules]]))\n"
    )
    with writer_lock(lake, "run", "holder-run"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    rc, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 4 and imported == [], (rc, imported, proc.stderr[-2000:])
    assert "run holder-run" in proc.stderr and "curate: error: lake" in proc.stderr, proc.stderr


def test_a_run_that_fails_before_writing_leaves_no_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    assert main(["run", "--lake", str(lake), "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert "curate: error:" in capsys.readouterr().err
    assert not lake.exists()  # the writer lock it took first is gone with the folder it made


def test_revise_method_auto_rewrites_only_with_an_endpoint_or_a_gpu() -> None:
    from pipelines.core.config import load_config, resolve_revise_method

    default = load_config(None, {})
    assert default.revise.method == "auto"
    assert resolve_revise_method(default, gpu=lambda: False).revise.method == "excise"
    assert resolve_revise_method(default, gpu=lambda: True).revise.method == "llm"
    served = load_config(None, {"revise.llm.backend": "openai", "revise.llm.base_url": "http://127.0.0.1:8000/v1"})
    assert resolve_revise_method(served, gpu=lambda: False).revise.method == "llm"
    chosen = load_config(None, {"revise.method": "llm"})  # the demo's and the LLM tests' choice stays theirs
    assert resolve_revise_method(chosen, gpu=lambda: False).revise.method == "llm"


def test_a_dry_run_shows_the_method_a_cpu_run_would_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from pipelines.core.config import cuda_available
    from tests.fixtures import jsonl_lines, write_jsonl

    crawl = write_jsonl(tmp_path / "in.jsonl", jsonl_lines())
    assert main(["run", "--lake", str(tmp_path / "lake"), "--input", str(crawl), "--dry-run"]) == 0
    plan = yaml.safe_load(capsys.readouterr().out)
    assert plan["config"]["revise"]["method"] == ("llm" if cuda_available() else "excise")
    assert not (tmp_path / "lake" / "_state" / "writer.lock").exists()  # a dry run takes no lock


def test_a_progress_rate_is_the_mean_since_the_step_started() -> None:
    """Three rewrites finishing together after 43 s read 72,857/s with rich's recent-updates estimate (seen in a
    demo run): the rate shown is documents done over time elapsed."""
    from rich.progress import Progress as RichProgress

    from pipelines.core.progress import _Rate

    clock = [0.0]
    bar = RichProgress(_Rate(), get_time=lambda: clock[0], auto_refresh=False, disable=True)
    task = bar.add_task("revise", total=3)
    clock[0] = 42.9
    bar.update(task, advance=1)
    clock[0] = 43.0
    bar.update(task, advance=2)
    assert str(_Rate().render(bar.tasks[0])) == "0.1/s"

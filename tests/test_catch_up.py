"""`curate catch-up`: every crawl directory without a successful run is processed, oldest first, so a missed night
is never skipped (cron and systemd call it; before, they ran only the newest directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from pipelines.cli import main
from tests.fixtures import ARTICLES, jsonl_lines, write_jsonl

SETTINGS = ["--set", "revise.enabled=false", "--set", "tracking.experiment=catch-up-test", "--quiet"]


def _runs(lake: Path) -> list[dict[str, Any]]:
    rows = DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: r["started_at"])


def test_missed_nights_are_processed_oldest_first_and_only_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "crawls"
    for i, night in enumerate(("2026-11-01", "2026-11-02", "2026-11-03")):
        articles = [(f"{u}?night={i}", f"{t} Night {i} edition.") for u, t in ARTICLES]
        (root / night).mkdir(parents=True)
        write_jsonl(root / night / "part-0.jsonl", jsonl_lines(articles))
    (root / ".partial").mkdir()  # a crawler's temporary directory: never a night
    lake = tmp_path / "lake"
    # the scheduler ran only the middle night; the first and last were missed
    assert (
        main(["run", "--lake", str(lake), "--input", str(root / "2026-11-02"), "--crawl-id", "2026-11-02", *SETTINGS])
        == 0
    )
    capsys.readouterr()

    assert main(["catch-up", "--lake", str(lake), "--crawl-root", str(root), *SETTINGS]) == 0
    out = capsys.readouterr().out
    assert "2 night(s) to process, 1 already done: 2026-11-01, 2026-11-03" in out
    assert [(r["crawl_id"], r["status"]) for r in _runs(lake)] == [
        ("2026-11-02", "success"),
        ("2026-11-01", "success"),
        ("2026-11-03", "success"),
    ]
    assert main(["catch-up", "--lake", str(lake), "--crawl-root", str(root), *SETTINGS]) == 0
    assert "0 night(s) to process, 3 already done" in capsys.readouterr().out
    assert len(_runs(lake)) == 3  # nothing ran again
    assert main(["catch-up", "--lake", str(lake), "--crawl-root", str(tmp_path / "nowhere"), *SETTINGS]) == 2


def test_cron_and_systemd_call_catch_up_with_flags_the_cli_accepts() -> None:
    import re
    import shlex

    from pipelines.cli import build_parser

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    for path in (deploy / "cron" / "curate.cron", deploy / "systemd" / "curate-nightly.service"):
        text = path.read_text()
        m = re.search(r"CURATE_BIN\}?\"?\s+(catch-up [^'\n]*)", text)
        assert m, f"{path} does not call curate catch-up"
        # the variables become placeholders; the flags themselves must parse
        argv = [re.sub(r"\"?\$\{?[A-Z_]+\}?\"?", "/x", a) for a in shlex.split(m.group(1))]
        args = build_parser().parse_args(argv)
        assert args.func.__name__ == "cmd_catch_up" and args.crawl_root == "/x" and args.quiet

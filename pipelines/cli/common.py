"""What every command shares: the usage error, config from flags, row output in table/json/csv.

A new command goes in the module of its group (nightly, lake, judgement, evaluate), with its parser in
pipelines/cli/parser.py; a new exit code in pipelines/cli/main.py's map.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.config import RunConfig, load_config

EXIT_FAILED, EXIT_USAGE, EXIT_ENGINE_LOST, EXIT_BUSY, EXIT_INVARIANT = 1, 2, 3, 4, 5


def engine_lost(exc: BaseException) -> bool:
    """The Spark Connect endpoint went away mid-command (its calls fail as UNAVAILABLE after the bounded retries)."""
    text = str(exc)
    return type(exc).__name__ in ("SparkConnectGrpcException", "RetriesExceeded") and (
        "UNAVAILABLE" in text or "failed to connect" in text or "Connection refused" in text
    )


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "asDict"):
        return jsonable(value.asDict(recursive=True))
    return value


def print_rows(columns: list[str], rows: list[dict[str, Any]], fmt: str, title: str | None = None) -> None:
    if fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps(jsonable(row), ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [json.dumps(jsonable(v)) if isinstance(v, (dict, list)) else jsonable(v) for v in row.values()]
            )
        sys.stdout.write(buf.getvalue())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        cells = []
        for v in row.values():
            v = jsonable(v)
            text = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else ("" if v is None else str(v))
            cells.append(text if len(text) <= 200 else text[:197] + "...")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped or captured: do not fold cells to an imaginary 80 columns
        console = Console(width=200)
    console.print(table)
    Console(stderr=True).print(f"[dim]{len(rows)} row(s)[/]")


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set takes key=value (e.g. quality.min_words=20), got {pair!r}")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def config_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> RunConfig:
    overrides = {**parse_sets(args.set or []), **(extra or {})}  # explicit flags win over --set
    path = args.config
    lake = getattr(args, "lake", None)
    if path is None and lake and args.command != "demo":
        from pipelines.core.lake_config import remembered

        rem = remembered(Path(lake) / "_state")
        if rem is not None:  # the config and constitution the lake last ran with (pipelines/core/lake_config.py)
            path = str(rem.config)
            overrides.setdefault("classify.constitution", str(rem.constitution))
            if not getattr(args, "quiet", False):
                print(
                    f"curate: using the config and constitution {lake} last ran with (run {rem.run_id}); "
                    "--config picks another",
                    file=sys.stderr,
                )
    if getattr(args, "engine", None):
        overrides["engine.kind"] = args.engine
    if getattr(args, "remote", None):
        overrides["engine.kind"] = "remote"
        overrides["engine.remote"] = args.remote
    return load_config(path, overrides)


def require_lake(path: str) -> Path:
    root = Path(path)
    if not root.is_dir() or not any((root / t / "_delta_log").is_dir() for t in ("raw_docs", "runs", "corpus")):
        raise CLIError(f"no lake at {root}: create one with `curate run --lake {root} --input CRAWL`")
    return root


def principle_arg(cfg: RunConfig, name: str) -> Any:
    from pipelines.core.constitution import load_constitution

    return load_constitution(cfg.classify.constitution).get(name)

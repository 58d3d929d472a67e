"""`curate`: run the stage, query the lake in SQL, read table history, and run the demo."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from pipelines.config import ConfigError, RunConfig, load_config
from pipelines.constitution import ConstitutionError

EXIT_FAILED, EXIT_USAGE, EXIT_ENGINE_LOST, EXIT_BUSY, EXIT_INVARIANT = 1, 2, 3, 4, 5


def _engine_lost(exc: BaseException) -> bool:
    """The Spark Connect endpoint went away mid-command (its calls fail as UNAVAILABLE after the bounded retries)."""
    text = str(exc)
    return type(exc).__name__ in ("SparkConnectGrpcException", "RetriesExceeded") and (
        "UNAVAILABLE" in text or "failed to connect" in text or "Connection refused" in text
    )


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "asDict"):
        return _jsonable(value.asDict(recursive=True))
    return value


def print_rows(columns: list[str], rows: list[dict[str, Any]], fmt: str, title: str | None = None) -> None:
    if fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps(_jsonable(row), ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [json.dumps(_jsonable(v)) if isinstance(v, (dict, list)) else _jsonable(v) for v in row.values()]
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
            v = _jsonable(v)
            text = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else ("" if v is None else str(v))
            cells.append(text if len(text) <= 200 else text[:197] + "...")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped or captured: do not fold cells to an imaginary 80 columns
        console = Console(width=200)
    console.print(table)
    Console(stderr=True).print(f"[dim]{len(rows)} row(s)[/]")


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set takes key=value (e.g. quality.min_words=20), got {pair!r}")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def _config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> RunConfig:
    overrides = {**_overrides(args.set or []), **(extra or {})}  # explicit flags win over --set
    path = args.config
    lake = getattr(args, "lake", None)
    if path is None and lake and args.command != "demo":
        from pipelines.lake_config import remembered

        rem = remembered(Path(lake) / "_state")
        if rem is not None:  # the config and constitution the lake last ran with (pipelines/lake_config.py)
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


def _require_lake(path: str) -> Path:
    root = Path(path)
    if not root.is_dir() or not any((root / t / "_delta_log").is_dir() for t in ("raw_docs", "runs", "corpus")):
        raise CLIError(f"no lake at {root}: create one with `curate run --lake {root} --input CRAWL`")
    return root


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.progress import Progress
    from pipelines.run import NIGHTLY, context, run_pipeline

    cfg = _config(args)
    if args.dry_run:
        from pipelines.stage import describe

        ctx = context(args.lake, args.input, cfg, args.crawl_id, champions=False)
        plan = {
            "lake": str(Path(args.lake).resolve()),
            "crawl_id": ctx.crawl_id,
            "inputs": [{"path": f.path, "format": f.fmt} for f in ctx.inputs],
            "principles": {p.name: p.mode for p in ctx.constitution.principles},
            "stages": [*describe(NIGHTLY.stages, ctx), {"stage": "publish", "tables": list(publish_order())}],
            "config_hash": ctx.cfg.config_hash(),
            "config": ctx.cfg.to_dict(),
        }
        sys.stdout.write(yaml.safe_dump(plan, sort_keys=False))
        return 0
    summary = run_pipeline(args.lake, args.input, cfg, crawl_id=args.crawl_id, progress=Progress(not args.quiet))
    report_run(summary, args.lake)
    return 0


def pending_crawls(lake: Path, crawl_root: Path) -> tuple[list[Path], list[str]]:
    """The crawl directories under `crawl_root` (sorted by name: name them YYYY-MM-DD) whose name has no successful
    run in the lake yet, oldest first; and the names already done."""
    from pipelines.lake import Lake

    if not crawl_root.is_dir():
        raise CLIError(f"crawl root {crawl_root} is not a directory")
    from pipelines.operate import live_crawls, read_runs

    # a night undone by `curate restore` is pending again
    done = live_crawls(read_runs(Lake(lake)))
    nights = sorted(p for p in crawl_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [p for p in nights if p.name not in done], sorted(p.name for p in nights if p.name in done)


def cmd_catch_up(args: argparse.Namespace) -> int:
    """Every crawl directory without a successful run, oldest first: a missed night is never skipped."""
    from pipelines.progress import Progress
    from pipelines.run import run_pipeline
    from pipelines.writer_lock import writer_lock

    cfg = _config(args)
    lake = Path(args.lake)
    with writer_lock(lake, "catch-up") as note:
        if note:
            print(f"note: {note}", file=sys.stderr)
        todo, done = pending_crawls(lake, Path(args.crawl_root))
        print(f"{len(todo)} night(s) to process, {len(done)} already done: {', '.join(p.name for p in todo) or '-'}")
        for night in todo:
            print(f"== curate run on {night} (crawl id {night.name})", flush=True)
            summary = run_pipeline(lake, night, cfg, crawl_id=night.name, progress=Progress(not args.quiet))
            report_run(summary, str(lake))
    return 0


def report_run(summary: Any, lake: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    c = summary.counts
    console.print(
        f"\n[bold]run {summary.run_id}[/] crawl [bold]{summary.crawl_id}[/]: {summary.status} in {summary.seconds:.0f}s"
    )
    t = Table(title="what happened to the input", show_header=True)
    t.add_column("outcome")
    t.add_column("documents", justify="right")
    t.add_row("records read", str(c.get("records", 0)))
    t.add_row("  quarantined (malformed)", str(c.get("quarantined", 0)))
    t.add_row("  already ingested earlier", str(c.get("already_ingested", 0)))
    t.add_row("  repeated within the batch", str(c.get("repeated_in_batch", 0)))
    t.add_row("decided this run", str(c.get("pending", 0)))
    for action in ("keep", "revise", "tag", "drop"):
        t.add_row(f"  {action}", str(c.get(f"action:{action}", 0)))
    console.print(t)
    reasons = sorted(
        ((k.split(":", 1)[1], v) for k, v in c.items() if k.startswith(("reason:", "quarantine:"))),
        key=lambda kv: -kv[1],
    )
    if reasons:
        r = Table(title="reasons (drops, revisions, tags and quarantine)")
        r.add_column("reason")
        r.add_column("count", justify="right")
        for name, n in reasons:
            r.add_row(name, str(n))
        console.print(r)
    console.print(
        f"corpus now holds [bold]{c.get('corpus_size', 0)}[/] documents; accounting invariant holds "
        f"({c.get('raw_docs_total', 0)} ingested documents, {c.get('unaccounted', 0)} unaccounted).\n"
        "Query it:\n"
        f'  curate sql --lake {lake} "SELECT action, count(*) FROM decisions GROUP BY action"\n'
        f'  curate sql --lake {lake} "SELECT reason, count(*) FROM quarantine GROUP BY reason"\n'
        f'  curate sql --lake {lake} "SELECT principle, avg(score), max(score) FROM scores GROUP BY principle"\n'
        f"  curate history --lake {lake} corpus"
    )


# statement keywords that change a table or the session (REPLACE is left out: it is also a string function, and
# CREATE OR REPLACE is caught by CREATE)
_WRITE_WORDS = frozenset(
    {
        *("INSERT", "DELETE", "UPDATE", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE", "OVERWRITE", "RESTORE"),
        *("VACUUM", "OPTIMIZE", "CACHE", "UNCACHE", "REFRESH", "LOAD", "MSCK", "REPAIR", "GRANT", "REVOKE"),
        *("USE", "SET", "RESET", "CLONE"),
    }
)
_READ_FIRST = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE", "FROM", "("})


def _sql_words(query: str) -> list[str]:
    """The statement's words, upper-cased, with comments, string literals and quoted identifiers removed."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S)
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", " ", text)
    return [w.upper() for w in re.findall(r"\(|[A-Za-z_]+", text)]


def read_only_problem(query: str) -> str | None:
    """Why `query` is not a read-only statement (None when it is): `curate sql` writes only with --write."""
    words = _sql_words(query)
    if not words:
        return "the query is empty"
    if words[0] not in _READ_FIRST:
        return f"{words[0]} statements change the lake"
    writes = sorted(_WRITE_WORDS.intersection(words))
    return f"the statement contains {', '.join(writes)}" if writes else None


_DESCRIBE = re.compile(
    r"^\s*(?:DESCRIBE|DESC)\s+(?:TABLE\s+)?(?:EXTENDED\s+|FORMATTED\s+)?(?P<a>[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$"
    r"|^\s*SHOW\s+COLUMNS\s+(?:FROM|IN)\s+(?P<b>[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$",
    re.I,
)


def describe_rows(lake: Any, query: str) -> tuple[list[str], list[dict[str, Any]]] | None:
    """`DESCRIBE t` / `SHOW COLUMNS FROM t` for a contract table, answered from the Delta table's own schema
    (the engine returns no columns for them); None when the query is not one of those."""
    from schemas import TABLES

    m = _DESCRIBE.match(query)
    if not m:
        return None
    table = (m.group("a") or m.group("b") or "").lower()
    if table not in TABLES:
        raise CLIError(f"unknown table {table!r} (tables in this lake: {', '.join(TABLES)})")
    contract = {f.name for f in TABLES[table].fields}
    # a table no run has written yet is described by its contract; reading it would create it (a write)
    fields = lake.read(table).schema.fields if lake.exists(table) else TABLES[table].fields
    if m.group("b"):
        return ["col_name"], [{"col_name": f.name} for f in fields]
    rows = [
        {
            "col_name": f.name,
            "data_type": f.dataType.simpleString(),
            "comment": "" if f.name in contract else "not in the contract (schemas/tables.py)",
        }
        for f in fields
    ]
    return ["col_name", "data_type", "comment"], rows


def cmd_sql(args: argparse.Namespace) -> int:
    from pipelines.config import EngineConfig
    from pipelines.engine import spark_session
    from pipelines.lake import Lake

    root = _require_lake(args.lake)
    problem = None if args.write else read_only_problem(args.query)
    if problem:
        raise CLIError(
            f"curate sql is read-only and {problem}: run it with --write if you mean it (a write bypasses the "
            "lake's keys and accounting; `curate run`, `iterate` and `restore` keep them)"
        )
    cfg = _config(args) if (args.config or args.set or args.remote) else RunConfig()
    engine = cfg.engine if args.remote or args.config or args.set else EngineConfig()
    with spark_session(engine) as spark:
        lake = Lake(root, spark)
        names = lake.register_all()
        described = describe_rows(lake, args.query)
        if described is not None:
            print_rows(described[0], described[1], args.format)
            return 0
        try:
            df = spark.sql(args.query)
            rows = df.collect()
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            low = message.lower()
            if "not found" in low or "cannot be found" in low or "table_or_view_not_found" in low:
                raise CLIError(f"{message} (tables in this lake: {', '.join(names)})") from exc
            raise CLIError(f"SQL error: {message}") from exc
        columns = df.columns
        print_rows(columns, [dict(zip(columns, r, strict=True)) for r in rows], args.format)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from pipelines.lake import Lake, LakeError
    from pipelines.operate import RESTORE, producers, read_runs
    from schemas import TABLES

    root = _require_lake(args.lake)
    if args.table not in TABLES:
        raise CLIError(f"unknown table {args.table!r} (tables: {', '.join(TABLES)})")
    lake = Lake(root)
    try:
        history = lake.history(args.table, args.limit)
    except LakeError as exc:
        raise CLIError(str(exc)) from exc
    made_by = producers(lake, args.table, read_runs(lake))
    rows = []
    for h in history:
        ts = h.get("timestamp")
        when = (
            datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat(timespec="seconds")
            if isinstance(ts, (int, float))
            else ts
        )
        m = h.get("operationMetrics") or {}
        params = h.get("operationParameters") or {}
        run = made_by.get(int(h["version"]))
        command = None if run is None else run.command
        if run is not None and run.command == "run" and run.crawl_id:
            command = f"run {run.crawl_id}"
        elif run is not None and run.command == RESTORE:
            command = f"restore to corpus version {run.counts.get('restored_corpus_version')}"
        rows.append(
            {
                "version": h.get("version"),
                "timestamp": when,
                "operation": h.get("operation"),
                "mode": params.get("mode"),
                "rows_inserted": m.get("numTargetRowsInserted", m.get("numOutputRows")),
                "rows_updated": m.get("numTargetRowsUpdated"),
                "rows_deleted": m.get("numTargetRowsDeleted"),
                "run_id": None if run is None else run.run_id,
                "command": command,
            }
        )
    columns = [
        *("version", "timestamp", "operation", "mode", "rows_inserted", "rows_updated", "rows_deleted"),
        *("run_id", "command"),
    ]
    print_rows(columns, rows, args.format, title=f"history of {args.table}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.lake import Lake
    from pipelines.operate import DIFF_COLUMNS, OperateError, diff, parse_version

    root = _require_lake(args.lake)
    if args.limit is not None and args.limit < 0:
        raise CLIError(f"--limit must be 0 (all rows) or more, got {args.limit}")
    try:
        v1, v2 = parse_version(args.v1, Lake(root)), parse_version(args.v2, Lake(root))
        cfg = _config(args)
        with spark_session(cfg.engine) as spark:
            d = diff(Lake(root, spark), v1, v2, limit=args.limit or None)
    except OperateError as exc:
        raise CLIError(str(exc)) from exc
    runs = ", ".join(
        f"{r.run_id} ({r.command}{' ' + r.crawl_id if r.command == 'run' and r.crawl_id else ''})"
        for r in d.runs_between
    )
    summary = (
        f"corpus {v1} -> {v2}: {d.counts['added']} added, {d.counts['removed']} removed, {d.counts['changed']} changed"
        f"; runs between: {runs or 'none'}"
    )
    if len(d.rows) < d.total:
        summary += f"; showing {len(d.rows)} of {d.total} (--limit 0 shows all)"
    # json and csv stay machine-readable on stdout; the summary goes beside them
    print(summary, file=sys.stdout if args.format == "table" else sys.stderr, flush=True)
    if d.rows or args.format != "table":
        print_rows(DIFF_COLUMNS, d.rows, args.format, title=f"corpus {v1} -> {v2}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.execute import check_accounting, new_run_id
    from pipelines.lake import Lake
    from pipelines.operate import OperateError, parse_version, restore
    from pipelines.writer_lock import writer_lock

    root = _require_lake(args.lake)
    cfg = _config(args)
    run_id = new_run_id()

    def account() -> dict[str, int]:
        with spark_session(cfg.engine) as spark:
            return check_accounting(Lake(root, spark))

    with writer_lock(root, "restore", run_id) as note:
        if note:
            print(f"note: {note}", file=sys.stderr)
        lake = Lake(root)
        try:
            version = parse_version(args.version, lake)
            result = restore(lake, version, run_id, account=account)
        except OperateError as exc:
            raise CLIError(str(exc)) from exc
    if not result.changed:
        print(f"nothing to restore: the lake is already in the state of corpus version {version}")
        return 0
    for m in result.moves:
        what = {"restored": f"version {m.before} -> state of version {m.target} (new version {m.after})"}
        what["emptied"] = f"version {m.before} -> emptied (it did not exist then; new version {m.after})"
        what["unchanged"] = f"version {m.before}, unchanged"
        print(f"  {m.table}: {what[m.action]}")
    t = result.target
    source = f"{t.command} {t.run_id}" + (f", crawl {t.crawl_id}" if t.command == "run" and t.crawl_id else "")
    corpus_after = next(m.after for m in result.moves if m.table == "corpus")
    if result.error:
        print(f"curate: error: restore {run_id} recorded as failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED
    a = result.accounting
    print(
        f"restored corpus version {version} (left by {source}) as corpus version {corpus_after}; restore "
        f"{run_id} is in `runs`; accounting invariant holds ({a.get('raw_docs', 0)} ingested documents, "
        f"{a.get('unaccounted', 0)} unaccounted). Undo: curate restore --lake {args.lake} --version "
        f"{result.corpus_before}"
    )
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from pipelines.execute import new_run_id
    from pipelines.lake import Lake
    from pipelines.operate import OperateError, maintain, spans
    from pipelines.writer_lock import writer_lock

    root = _require_lake(args.lake)
    run_id = new_run_id()
    lake = Lake(root)
    kwargs = {"retain_versions": args.retain_versions, "retain_hours": args.retain_hours}
    try:
        if args.dry_run:  # reads only: no lock, so it can run beside a writer
            report = maintain(lake, run_id, dry_run=True, **kwargs)
        else:
            with writer_lock(root, "maintain", run_id) as note:
                if note:
                    print(f"note: {note}", file=sys.stderr)
                report = maintain(lake, run_id, **kwargs)
    except OperateError as exc:
        raise CLIError(str(exc)) from exc
    print(f"retention: {report.retention}: corpus version {min(report.retained)} and later stay restorable")
    if report.outside:
        print(
            f"outside retention (no longer restorable{' after a real run' if report.dry_run else ''}): "
            f"corpus versions {spans(report.outside)}"
        )
    rows = [
        {
            "table": u.table,
            "files_before": u.disk_before,
            "files_after": u.disk_after,
            "active_files": f"{u.active_before} -> {u.active_after}",
            "bytes_removed": u.bytes_removed,
            "oldest_restorable_version": u.oldest_restorable,
            "latest_version": u.latest,
        }
        for u in report.tables
    ]
    print_rows(list(rows[0]), rows, "table", title="maintenance (files on disk, data files of the latest version)")
    if report.dry_run:
        print("dry run: nothing changed; compaction would also merge the latest versions' small files")
    else:
        print(f"maintenance {run_id} is in `runs`")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import build_demo_crawls
    from pipelines.progress import Progress
    from pipelines.writer_lock import LOCK_NAME, writer_lock

    cfg = _config(args)
    lake = Path(args.lake)
    data_dir = Path(args.data_dir) if args.data_dir else lake.parent / f"{lake.name}-input"
    progress = Progress(True)
    with progress.stage(f"building the demo crawl in {data_dir}"):
        nights = build_demo_crawls(data_dir)
    with writer_lock(lake, "demo"):  # the nights and the comparison, as one writer
        if args.fresh:  # only once the lock is ours: never delete a lake another process writes
            import shutil

            for child in [*lake.iterdir(), *(lake / "_state").iterdir()]:
                if child.name not in ("_state", LOCK_NAME):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        _demo_nights(args, cfg, lake, nights, progress)
    return 0


def _demo_nights(args: argparse.Namespace, cfg: RunConfig, lake: Path, nights: list[Path], progress: Any) -> None:
    from pipelines.run import run_pipeline

    for path in nights[: args.nights]:
        progress.console.print(f"\n[bold]nightly run on {path.name}[/]")
        summary = run_pipeline(lake, path, cfg, progress=progress)
        report_run(summary, str(lake))
    if args.evaluate:
        from pipelines.engine import spark_session
        from pipelines.lake import Lake

        progress.console.print(
            f"\n[bold]does the curation help? Model A on the raw crawl vs Model B on the curated corpus "
            f"({cfg.evaluate.size})[/]"
        )
        with spark_session(cfg.engine) as spark:
            evaluate_and_report(Lake(lake, spark), cfg, args)


def _principle_arg(cfg: RunConfig, name: str) -> Any:
    from pipelines.constitution import load_constitution

    return load_constitution(cfg.classify.constitution).get(name)


def cmd_labels_import(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.label import LabelImportError, import_human_labels
    from pipelines.lake import Lake

    cfg = _config(args)
    principle = _principle_arg(cfg, args.principle)
    with spark_session(cfg.engine) as spark:
        try:
            n = import_human_labels(Lake(args.lake, spark), principle.name, args.labeler, args.input)
        except LabelImportError as exc:
            raise CLIError(str(exc)) from exc
    print(f"imported {n} label(s) for {principle.name} as {args.labeler} into {Path(args.lake) / 'labels'}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.label import label_sample, open_labeler
    from pipelines.lake import Lake

    cfg = _config(args)
    root = _require_lake(args.lake)
    principle = _principle_arg(cfg, args.principle)
    n = args.sample if args.sample is not None else cfg.label.sample
    with spark_session(cfg.engine) as spark:
        lake = Lake(root, spark)
        try:
            labeler = open_labeler(args.labeler, cfg.label, lake)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        try:
            summary = label_sample(lake, principle, labeler, lake.read("raw_docs"), n, cfg.label)
        finally:
            labeler.close()
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(summary.statuses.items())) or "none"
    print(
        f"{summary.labeler} on {summary.principle} ({summary.prompt_version}): {summary.requested} sampled, "
        f"{summary.already_labeled} already labelled, {summary.cache_hits} from the cache, {summary.sent} sent; "
        f"statuses: {statuses}"
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from pipelines.distill import DistillError, describe, distill
    from pipelines.engine import spark_session
    from pipelines.lake import Lake

    cfg = _config(args)
    if not (Path(args.lake) / "labels" / "_delta_log").is_dir():
        raise CLIError(f"no labels in {args.lake}: run `curate label` or `curate labels import` first")
    principle = _principle_arg(cfg, args.principle)
    with spark_session(cfg.engine) as spark:
        try:
            result = distill(Lake(args.lake, spark), principle, cfg, kind=args.kind)
        except DistillError as exc:
            raise CLIError(str(exc)) from exc
    print(describe(result))
    return 0


def cmd_evaluate_scorer(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.evaluate_scorer import evaluate_scorer
    from pipelines.label import LabelImportError
    from pipelines.lake import Lake

    cfg = _config(args)
    principle = _principle_arg(cfg, args.principle)
    with spark_session(cfg.engine) as spark:
        try:
            report = evaluate_scorer(Lake(args.lake, spark), principle.name, args.labels, cfg)
        except LabelImportError as exc:
            raise CLIError(str(exc)) from exc
    rows = [
        {
            "scorer": s.scorer,
            "model": s.model,
            "n_pos": s.n_pos,
            "n_neg": s.n_neg,
            "roc_auc": None if s.roc_auc is None else round(s.roc_auc, 3),
            "pr_auc": None if s.pr_auc is None else round(s.pr_auc, 3),
            f"f1@{report.revise_threshold}": round(s.f1, 3),
            f"recall@{report.revise_threshold}": round(s.recall, 3),
            f"false_flags@{report.revise_threshold}": round(s.false_flag_rate, 4),
            f"false_flags@{report.filter_threshold}": round(s.false_flag_rate_filter, 4),
        }
        for s in report.scorers
    ]
    title = f"{report.principle} on {report.labels} (cascade sent {100 * report.routed_to_teacher:.1f}% to the teacher)"
    print_rows(list(rows[0]), rows, args.format, title=title)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report.figure.savefig(out / f"evaluate_{report.principle}.png", dpi=110)
    print(f"MLflow run {report.mlflow_run_id}: metrics and evaluate_{report.principle}.png (ROC, PR, calibration)")
    return 0


def publish_order() -> tuple[str, ...]:
    from pipelines.publish import BRONZE, ORDER

    return (*BRONZE, *ORDER)


def score_inputs(path: str, cfg: RunConfig) -> tuple[list[Any], list[str]]:
    """The ids and texts `curate score` scores: every record of `path` (the formats ingest reads, a directory
    too), or a one-line usage error naming the first record that is not a document and how many there are."""
    from pipelines.ingest import IngestError, read_documents

    try:
        docs, problems = read_documents(path, cfg.ingest)
    except IngestError as exc:
        raise CLIError(str(exc)) from exc
    except OSError as exc:  # a file that vanished or is not readable (permissions) while being listed
        raise CLIError(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from exc
    if problems:
        p = problems[0]
        whole = p.position == 0 and p.reason.split(":")[0] in _FILE_REASONS
        where = f"{p.name}: unreadable file ({p.reason})" if whole else f"{p.name} record {p.position}: {p.reason}"
        more = f"; {len(problems) - 1} more record(s) that are not documents" if len(problems) > 1 else ""
        excerpt = " [" + p.raw[:80].replace("\n", "\\n") + "]" if p.raw else ""
        raise CLIError(
            f"{where}{excerpt}{more}: curate score scores only documents (`curate run` would quarantine these)"
        )
    if not docs:
        raise CLIError(f"{path}: no documents to score")
    ids = [d[0] for d in docs]
    if len({type(i) for i in ids}) > 1:  # a Parquet column holds one type: mixed ids are written as strings
        ids = [str(i) for i in ids]
    return ids, [d[1] for d in docs]


_FILE_REASONS = ("binary_file", "not_gzip", "truncated_file", "unreadable_file", "unsupported_file_type")


def cmd_score(args: argparse.Namespace) -> int:
    """Score documents with the nightly run's cascade (champion or exemplar scorer, packaged teacher, judge):
    keeps `id`, adds `score_<principle>` and `decided_by_<principle>` columns."""
    import pandas as pd

    from pipelines.classify import score_texts
    from pipelines.constitution import load_constitution
    from pipelines.engine import spark_session
    from pipelines.lake import Lake

    cfg = _config(args)
    constitution = load_constitution(cfg.classify.constitution)
    ids, texts = score_inputs(args.input, cfg)
    with spark_session(cfg.engine) as spark:
        rows, notes = score_texts(Lake(args.lake, spark), texts, cfg, constitution, "score")
    out = pd.DataFrame({"id": ids})
    for j, name in enumerate(constitution.names):
        out[f"score_{name}"] = [r["principle_scores"][j] for r in rows]
        out[f"decided_by_{name}"] = [r["decided_by"][j] for r in rows]
    out.to_parquet(args.output, index=False)
    models = ", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in notes.items() if k.startswith("model:"))
    print(f"scored {len(out)} document(s) ({models}; cascade: classify.cascade) -> {args.output}")
    return 0


def cmd_iterate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from pipelines.engine import spark_session
    from pipelines.iterate import iterate
    from pipelines.lake import Lake
    from pipelines.progress import Progress

    extra: dict[str, Any] = {}
    if args.labeler:
        extra["iterate.labeler"] = args.labeler
    if args.sample is not None:
        extra["iterate.sample"] = args.sample
    if args.evaluate:
        extra["iterate.evaluate"] = True
    cfg = _config(args, extra)
    root = _require_lake(args.lake)
    if not (root / "decisions" / "_delta_log").is_dir():
        raise CLIError(f"no decisions in {root}: run `curate run` first")
    with spark_session(cfg.engine) as spark:
        try:
            summary = iterate(Lake(root, spark), cfg, rounds=args.rounds, progress=Progress(not args.quiet))
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
    # one column per principle: the flagged share is what people compare across rounds
    principles = list(summary.rounds[0].flagged_fraction) if summary.rounds else []
    audited = sorted({p for r in summary.rounds for p in r.teacher_harmful})
    table = Table(
        title=f"iterate on {root}: % of re-decided documents flagged (positive principles: upweighted); "
        "teacher: % of kept documents the packaged teacher flags"
    )
    columns = ("round", "status", "re-decided", "changed", *principles, *[f"teacher {p}" for p in audited])
    for c in (*columns, "champion moved", "corpus version"):
        table.add_column(c, justify="left" if c in ("status", "champion moved") else "right")
    for r in summary.rounds:
        table.add_row(
            str(r.round),
            r.status,
            str(r.redecided),
            str(r.changed),
            *[f"{100 * r.flagged_fraction.get(p, 0.0):.1f}%" for p in principles],
            *[f"{100 * r.teacher_harmful[p]:.2f}%" if p in r.teacher_harmful else "-" for p in audited],
            ", ".join(r.promoted) or "-",
            "" if r.corpus_version is None else str(r.corpus_version),
        )
    Console().print(table)
    evaluated = [r for r in summary.rounds if r.eval_id]
    if evaluated:
        names = list(evaluated[0].eval_diff)
        et = Table(title="Model B (round's corpus) - Model A (raw crawl), per round: `curate evaluate` differences")
        for c in ("round", "eval_id", *names):
            et.add_column(c, justify="left" if c == "eval_id" else "right")
        for r in evaluated:
            et.add_row(str(r.round), r.eval_id or "", *[f"{r.eval_diff.get(n, float('nan')):+.3f}" for n in names])
        Console().print(et)
    stop = "reached a fixed point" if summary.fixed_point else f"stopped after {len(summary.rounds)} round(s)"
    print(f'{stop}; rounds are in `runs` (curate sql --lake {args.lake} "SELECT * FROM runs") and MLflow')
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.export import ExportError, export_corpus
    from pipelines.lake import Lake
    from pipelines.progress import Progress

    cfg = _config(args)
    root = _require_lake(args.lake)
    with spark_session(cfg.engine) as spark:
        try:
            manifest = export_corpus(
                Lake(root, spark),
                args.out,
                cfg,
                version=args.version,
                fmt=args.format,
                progress=Progress(not args.quiet),
            )
        except ExportError as exc:
            raise CLIError(str(exc)) from exc
    print(
        f"exported corpus version {manifest['source']['version']}: {manifest['documents']} documents as "
        f"{manifest['rows_written']} rows in {len(manifest['shards'])} {manifest['format']} shard(s) -> {args.out} "
        "(manifest.json lists counts, shards and the config hash)"
    )
    return 0


def evaluate_and_report(lake: Any, cfg: RunConfig, args: argparse.Namespace) -> Any:
    """Run `curate evaluate` on an open lake and print its table; shared by evaluate, demo and iterate."""
    from rich.console import Console
    from rich.table import Table

    from pipelines.evaluate import EvaluateError, evaluate_models, read_texts
    from pipelines.progress import Progress

    heldout = read_texts(Path(args.heldout)) if getattr(args, "heldout", None) else None
    try:
        ev = evaluate_models(
            lake,
            cfg,
            version=getattr(args, "version", None),
            baseline=getattr(args, "baseline", None) or "raw",
            heldout=heldout,
            progress=Progress(not getattr(args, "quiet", False)),
        )
    except EvaluateError as exc:
        raise CLIError(str(exc)) from exc
    a, b = ev.models["A"], ev.models["B"]
    table = Table(
        title=f"{ev.eval_id}: Model A on {a.data.name} vs Model B on {b.data.name} ({ev.size}, {a.n_params:,} "
        f"parameters, {ev.budget_tokens:,} tokens each, {ev.device}); {int(100 * cfg.evaluate.confidence)}% "
        "bootstrap intervals"
    )
    for c in ("metric", "A", "B", "B - A", "verdict"):
        table.add_column(c, justify="left" if c in ("metric", "verdict") else "right")
    for row in ev.table_rows():
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # a log file should hold the table unwrapped
    console.print(table)
    for lab, r in ev.models.items():
        console.print(
            f"Model {lab}: {r.result.tokens:,} tokens ({r.packed.loss_tokens:,} with loss) in {r.result.seconds:.0f}s, "
            f"{r.result.tokens_per_second:,.0f} tokens/s, final loss {r.result.final_loss:.3f}, weights "
            f"{r.weights_sha256[:12]}"
        )
    for name, scorer in ev.scorers.items():
        console.print(f"scorer {name}: {scorer}")
    for note in ev.notes:
        console.print(f"note: {note}")
    console.print(
        f"report: {ev.out_dir} (report.json, comparison.png, continuations.jsonl); MLflow run {ev.mlflow_run_id}; "
        f"SQL: curate sql --lake {lake.root} \"SELECT model, metrics FROM evaluations WHERE eval_id = '{ev.eval_id}'\""
    )
    console.print("the same seed and inputs give the same numbers on this machine (weights_sha256 shows it)")
    return ev


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipelines.engine import spark_session
    from pipelines.lake import Lake

    extra: dict[str, Any] = {}
    if args.size:
        extra["evaluate.size"] = args.size
    if args.budget_tokens is not None:
        extra["evaluate.budget_tokens"] = args.budget_tokens
    cfg = _config(args, extra)
    root = _require_lake(args.lake)
    with spark_session(cfg.engine) as spark:
        evaluate_and_report(Lake(root, spark), cfg, args)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """One self-contained HTML page about a run (pipelines/report.py); reads the lake, writes only `--out`."""
    from pipelines.config import EngineConfig
    from pipelines.engine import spark_session
    from pipelines.lake import Lake
    from pipelines.report import check_run_id, collect, render

    root = _require_lake(args.lake)
    if args.run_id is not None:
        check_run_id(args.run_id)  # before the engine starts
    if args.out is not None and not Path(args.out).parent.resolve().is_dir():
        raise CLIError(f"--out {args.out}: directory {Path(args.out).parent} does not exist")
    engine = EngineConfig(kind="remote", remote=args.remote) if args.remote else EngineConfig()
    with spark_session(engine) as spark:
        data = collect(Lake(root, spark), args.run_id)
    out = Path(args.out or f"curate-report-{check_run_id(data.run['run_id'])}.html")
    try:
        out.write_text(render(data), encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from exc
    run = data.run
    print(f"wrote {out} (run {run['run_id']}, crawl {run.get('crawl_id')}, {run.get('status')})")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Find and fix the lake's broken invariants (pipelines/repair.py), one line per change."""
    from pipelines.engine import spark_session
    from pipelines.lake import Lake
    from pipelines.repair import repair
    from pipelines.writer_lock import writer_lock

    cfg = _config(args)
    root = _require_lake(args.lake)
    with writer_lock(root, "repair") as note:  # a fix must not interleave with a run's publish
        if note:
            print(f"note: {note}", file=sys.stderr)
        with spark_session(cfg.engine) as spark:
            result = repair(Lake(root, spark), cfg.tracking, dry_run=args.dry_run)
    for line in result.changes:
        print(line)
    for line in result.unfixed:
        print(f"not repaired: {line}")
    if result.undecided:
        print(f"note: {result.undecided} ingested document(s) have no decision yet: the next `curate run` decides them")
    acct = result.accounting
    verb = "would change" if args.dry_run else "changed"
    state = (
        f"accounting: {acct.get('raw_docs', 0)} ingested documents, {acct.get('unaccounted', 0)} unaccounted, "
        f"{acct.get('double_counted', 0)} in both corpus and drops"
        if acct
        else "no published tables yet"
    )
    print(f"{verb} {len(result.changes)} thing(s){' (dry run: nothing was written)' if args.dry_run else ''}; {state}")
    return EXIT_INVARIANT if result.broken and not args.dry_run else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, lake_required: bool = True) -> None:
        p.add_argument("--lake", required=lake_required, help="lake root directory (Delta tables live under it)")
        p.add_argument("--config", help="YAML run config (validated before anything starts)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, repeatable")
        p.add_argument("--remote", help="run on a Spark Connect endpoint, sc://host:port, instead of embedded Sail")

    run = sub.add_parser("run", help="run every stage on one crawl batch and publish a corpus version")
    common(run)
    run.add_argument(
        "--input", required=True, help="a crawl file or directory (JSONL[.gz], JSON, TXT, CSV, Parquet, WET, WARC)"
    )
    run.add_argument("--crawl-id", help="the nightly batch id (default: the input's file name)")
    run.add_argument("--engine", choices=["sail", "classic", "remote"], help="engine kind (default sail)")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan, touch nothing")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=cmd_run)

    cu = sub.add_parser(
        "catch-up", help="run every crawl directory under --crawl-root that has no successful run yet, oldest first"
    )
    common(cu)
    cu.add_argument("--crawl-root", required=True, help="a directory of nightly crawl directories (YYYY-MM-DD)")
    cu.add_argument("--quiet", action="store_true", help="no progress output")
    cu.set_defaults(func=cmd_catch_up)

    sql = sub.add_parser("sql", help="query the lake's tables by name (VERSION AS OF works)")
    common(sql)
    sql.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sql.add_argument(
        "--write", action="store_true", help="allow statements that change the lake (read-only without it)"
    )
    sql.add_argument("query")
    sql.set_defaults(func=cmd_sql)

    hist = sub.add_parser("history", help="a table's versions with operation and timestamp")
    hist.add_argument("--lake", required=True)
    hist.add_argument("--format", choices=["table", "json", "csv"], default="table")
    hist.add_argument("--limit", type=int)
    hist.add_argument("table")
    hist.set_defaults(func=cmd_history)

    df = sub.add_parser(
        "diff", help="documents added, removed and changed between two corpus versions, with the decisions behind them"
    )
    common(df)
    df.add_argument("v1", help="the earlier corpus version (as `curate history corpus` lists them)")
    df.add_argument("v2", help="the later corpus version")
    df.add_argument("--format", choices=["table", "json", "csv"], default="table")
    df.add_argument("--limit", type=int, default=100, help="rows shown (default 100; 0: all)")
    df.set_defaults(func=cmd_diff)

    rs = sub.add_parser(
        "restore", help="bring the lake back to the state of a corpus version (recorded in runs; undoable)"
    )
    common(rs)
    rs.add_argument("--version", required=True, help="the corpus version to restore (`curate history corpus`)")
    rs.set_defaults(func=cmd_restore)

    mt = sub.add_parser("maintain", help="compact and vacuum every table, keeping the versions users time-travel to")
    mt.add_argument("--lake", required=True)
    keep = mt.add_mutually_exclusive_group()
    keep.add_argument(
        "--retain-versions",
        type=int,
        help="keep what the last N corpus versions need (default 7)",
    )
    keep.add_argument("--retain-hours", type=float, help="keep what corpus versions of the last H hours need")
    mt.add_argument("--dry-run", action="store_true", help="say what would be removed, change nothing")
    mt.set_defaults(func=cmd_maintain)

    demo = sub.add_parser("demo", help="build a demo crawl from packaged real text and run two nights on it")
    common(demo, lake_required=False)
    demo.set_defaults(lake="demo-lake")
    demo.add_argument("--data-dir", help="where the demo crawl files go (default: <lake>-input)")
    demo.add_argument("--nights", type=int, default=2)
    demo.add_argument("--fresh", action="store_true", help="delete the demo lake first")
    demo.add_argument(
        "--no-evaluate",
        dest="evaluate",
        action="store_false",
        help="skip the closing Model A vs Model B comparison (curate evaluate, about 2.5 minutes on 2 cores)",
    )
    demo.set_defaults(func=cmd_demo)

    labels = sub.add_parser("labels", help="manage teacher labels (import human labels)")
    labels_sub = labels.add_subparsers(dest="labels_command", required=True)
    limport = labels_sub.add_parser("import", help="import human labels from JSONL (text + label or score)")
    common(limport)
    limport.add_argument("--principle", required=True)
    limport.add_argument("--labeler", required=True, help="human:<dataset>")
    limport.add_argument("--input", required=True, help="JSONL: text, label (0/1) or score ([0, 1]), optional id")
    limport.set_defaults(func=cmd_labels_import)

    label = sub.add_parser("label", help="label a stratified sample of raw_docs with a teacher")
    common(label)
    label.add_argument("--principle", required=True)
    label.add_argument("--labeler", required=True, help="embedded | openai | transformers | exemplar | jigsaw | stack")
    label.add_argument("--sample", type=int, help="documents to sample (default label.sample)")
    label.set_defaults(func=cmd_label)

    dist = sub.add_parser("distill", help="train a classifier on the labels, log and register it in MLflow")
    common(dist)
    dist.add_argument("--principle", required=True)
    dist.add_argument("--kind", choices=["encoder", "linear", "finetune"], help="default distill.kind (encoder)")
    dist.set_defaults(func=cmd_distill)

    score = sub.add_parser("score", help="score documents as the nightly run does (classifier + cascade)")
    common(score)
    score.add_argument(
        "--input",
        required=True,
        help="a file or directory in any format `run` reads (JSONL[.gz], JSON array, TXT, CSV with a text column, "
        "Parquet, WET, WARC); `id` is kept (a .txt file's path; <file>#<position> without one)",
    )
    score.add_argument("--output", required=True, help="Parquet: id, score_<principle>, decided_by_<principle>")
    score.set_defaults(func=cmd_score)

    ev = sub.add_parser(
        "evaluate-scorer", help="ROC-AUC, PR-AUC, F1 and false flags of each scorer and the cascade on human labels"
    )
    common(ev)
    ev.add_argument("--principle", required=True)
    ev.add_argument("--labels", required=True, help="JSONL: text, label (0/1) or score ([0, 1])")
    ev.add_argument("--format", choices=["table", "json", "csv"], default="table")
    ev.add_argument("--out", help="also write the ROC/PR/calibration plot here")
    ev.set_defaults(func=cmd_evaluate_scorer)

    it = sub.add_parser("iterate", help="relabel, retrain, rescore and re-decide the corpus until a fixed point")
    common(it)
    it.add_argument("--rounds", type=int, help="at most this many rounds (default iterate.rounds)")
    it.add_argument("--labeler", help="exemplar | embedded | openai | transformers | human:<dataset> (imported only)")
    it.add_argument("--sample", type=int, help="documents relabelled per principle and round (default iterate.sample)")
    it.add_argument("--evaluate", action="store_true", help="train and compare Model A vs B after each round")
    it.add_argument("--quiet", action="store_true", help="no progress output")
    it.set_defaults(func=cmd_iterate)

    rep = sub.add_parser("report", help="write one self-contained HTML page about a run (funnel, scores, gates)")
    rep.add_argument("--lake", required=True, help="lake root directory")
    rep.add_argument("--run-id", help="the run to report on (default: the latest successful run)")
    rep.add_argument("--out", help="the HTML file to write (default: curate-report-<run id>.html here)")
    rep.add_argument("--remote", help="read through a Spark Connect endpoint, sc://host:port, instead of embedded Sail")
    rep.set_defaults(func=cmd_report)

    exp = sub.add_parser("export", help="write training-ready shards of a corpus version (weights, tags, spans)")
    common(exp)
    exp.add_argument("--version", type=int, help="corpus Delta version (default: the latest)")
    exp.add_argument("--format", choices=["jsonl", "parquet"], help="default export.format (jsonl)")
    exp.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    exp.add_argument("--quiet", action="store_true", help="no progress bar")
    exp.set_defaults(func=cmd_export)

    rep = sub.add_parser(
        "repair",
        help="find and fix broken lake invariants (a doc in corpus and drops, duplicate rows, a killed run's rows)",
    )
    common(rep)
    rep.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    rep.set_defaults(func=cmd_repair)

    ev = sub.add_parser(
        "evaluate", help="train Model A on the raw crawl and Model B on the curated corpus, compare harm and capability"
    )
    common(ev)
    ev.add_argument("--version", type=int, help="corpus Delta version Model B trains on (default: the latest)")
    ev.add_argument(
        "--baseline", help="what Model A trains on: raw (default: raw_docs as of that version) or a corpus version"
    )
    ev.add_argument("--budget-tokens", type=int, help="training tokens per model (default: the size's)")
    ev.add_argument("--size", choices=["micro", "tiny", "small", "base"], help="model size (default evaluate.size)")
    ev.add_argument("--heldout", help="clean held-out text for perplexity: JSONL with 'text', or blank-line-separated")
    ev.add_argument("--quiet", action="store_true", help="no progress output")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CLIError, ConfigError, ConstitutionError) as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from expectations.runner import GateFailed
        from pipelines.engine import EngineError
        from pipelines.ingest import IngestError
        from pipelines.lake import LakeError

        if isinstance(exc, (IngestError, LakeError, EngineError)):
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, GateFailed):
            print(f"curate: run stopped before publishing: {exc}", file=sys.stderr)
            return EXIT_FAILED
        from pipelines.execute import InvariantViolation
        from pipelines.writer_lock import LakeBusy

        if isinstance(exc, InvariantViolation):
            lake = getattr(args, "lake", None) or "LAKE"
            print(
                f"curate: error: {exc} (two writers at once, or a bug): the run is recorded as failed; "
                f"`curate repair --lake {lake} --dry-run` shows what would fix the lake, without --dry-run it fixes it",
                file=sys.stderr,
            )
            return EXIT_INVARIANT
        if isinstance(exc, LakeBusy):
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_BUSY
        if _engine_lost(exc):
            print(
                "curate: error: lost the connection to the Spark engine mid-command; nothing was published after "
                "that point and the run is recorded as failed: restart the engine and rerun",
                file=sys.stderr,
            )
            return EXIT_ENGINE_LOST
        raise


if __name__ == "__main__":
    sys.exit(main())

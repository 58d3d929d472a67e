"""Operating a lake: sql, history, diff, restore, maintain, export, report, repair.

The reading commands (sql, diff, export, report) read the published state, never half a night
(pipelines/core/published.py); `--latest-commit` reads what a running or killed night wrote.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.cli.common import EXIT_FAILED, EXIT_INVARIANT, CLIError, config_from_args, print_rows, require_lake
from pipelines.cli.sql_guard import SqlSyntaxError, describe_rows, read_only_problem
from pipelines.core.config import RunConfig
from schemas import TABLES

if TYPE_CHECKING:
    from pipelines.core.lake import Lake


def reader(lake: Lake, latest_commit: bool) -> Lake:
    """The handle a reading command reads through: the published state (pipelines/core/published.py) unless
    --latest-commit."""
    return lake if latest_commit else lake.published()


def note_left_out(lake: Lake) -> None:
    """After a reader's answer, on stderr (stdout stays the answer; an error stays one line): the commits of a
    running or killed night that the published state left out, and how to read them."""
    behind = lake.unpublished()
    if behind:
        print(
            f"note: read the published state (the table versions of the last successful run); later commits to "
            f"{', '.join(behind)} by a running or killed night were left out (--latest-commit reads them)",
            file=sys.stderr,
        )


def cmd_sql(args: argparse.Namespace) -> int:
    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake

    root = require_lake(args.lake)
    try:
        problem = None if args.write else read_only_problem(args.query)
    except SqlSyntaxError as exc:
        raise CLIError(str(exc)) from None
    if problem:
        raise CLIError(
            f"curate sql is read-only and {problem}: run it with --write if you mean it (a write bypasses the "
            "lake's keys and accounting; `curate run`, `iterate` and `restore` keep them)"
        )
    check_versions_exist(Lake(root), args.query)
    cfg = config_from_args(args) if (args.config or args.set or args.remote) else RunConfig()
    engine = cfg.engine if args.remote or args.config or args.set else EngineConfig()
    # a write goes to the tables themselves, so it reads what it changes: the latest commits
    reading = Lake(root) if args.write else reader(Lake(root), args.latest_commit)
    with spark_session(engine) as spark:
        lake = reading.on(spark)
        names = lake.register_all()
        described = describe_rows(lake, args.query)
        if described is not None:
            print_rows(described[0], described[1], args.format)
            return 0
        try:
            df = lake.sql(args.query)
            rows = df.collect()
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            low = message.lower()
            if "not found" in low or "cannot be found" in low or "table_or_view_not_found" in low:
                raise CLIError(f"{message} (tables in this lake: {', '.join(names)})") from exc
            raise CLIError(f"SQL error: {message}") from exc
        columns = df.columns
        print_rows(columns, [dict(zip(columns, r, strict=True)) for r in rows], args.format)
    note_left_out(reading)
    return 0


_VERSION_AS_OF = re.compile(r"\b([A-Za-z_]\w*)\s+VERSION\s+AS\s+OF\s+(\d+)", re.IGNORECASE)


def check_versions_exist(lake: Lake, query: str) -> None:
    """A `VERSION AS OF` a table does not have is answered with the versions it has (the engine's own answer is a
    missing commit file), before an engine starts."""
    from pipelines.ops.versions import spans

    for name, number in _VERSION_AS_OF.findall(query):
        table = name.lower()
        if table not in TABLES or not lake.exists(table):
            continue
        versions = [int(h["version"]) for h in lake.history(table)]
        if int(number) not in versions:
            raise CLIError(f"{table} has no version {int(number)} ({table} versions: {spans(versions)})")


def cmd_history(args: argparse.Namespace) -> int:
    from pipelines.core.lake import Lake, LakeError
    from pipelines.ops.versions import RESTORE, producers, read_runs

    root = require_lake(args.lake)
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


#: rows the table view of `curate diff` shows when --limit is not given (a terminal, not a file)
DIFF_TABLE_ROWS = 100


def _diff_limit(limit: int | None, fmt: str) -> int | None:
    """Rows to return: --limit when given (0: all); otherwise all for the machine formats (json, csv: a consumer
    must never get a silently cut list) and DIFF_TABLE_ROWS for the table."""
    if limit is not None:
        return limit or None
    return DIFF_TABLE_ROWS if fmt == "table" else None


def cmd_diff(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.ops.diff import DIFF_COLUMNS, diff
    from pipelines.ops.versions import OperateError, parse_version

    root = require_lake(args.lake)
    if args.limit is not None and args.limit < 0:
        raise CLIError(f"--limit must be 0 (all rows) or more, got {args.limit}")
    try:
        reading = reader(Lake(root), args.latest_commit)
        v1 = parse_version(args.v1, reading)
        v2 = parse_version(args.v2 if args.v2 is not None else _published_corpus(reading), reading)
        cfg = config_from_args(args)
        with spark_session(cfg.engine) as spark:
            d = diff(reading.on(spark), v1, v2, limit=_diff_limit(args.limit, args.format))
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
        left = d.total - len(d.rows)
        summary += f"; showing {len(d.rows)} of {d.total}: {left} row(s) left out (--limit 0 shows all)"
    # json and csv stay machine-readable on stdout; the summary goes beside them
    print(summary, file=sys.stdout if args.format == "table" else sys.stderr, flush=True)
    if d.rows or args.format != "table":
        print_rows(DIFF_COLUMNS, d.rows, args.format, title=f"corpus {v1} -> {v2}")
    note_left_out(reading)
    return 0


def _published_corpus(lake: Lake) -> int:
    version = lake.read_version("corpus")
    if version is None:
        raise CLIError(
            f"no published corpus in {lake.root} yet: no run has finished (--latest-commit reads what a running or "
            "killed one wrote)"
        )
    return version


def cmd_restore(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.execute import check_accounting, new_run_id
    from pipelines.core.lake import Lake
    from pipelines.core.writer_lock import writer_lock
    from pipelines.ops.restore import restore
    from pipelines.ops.versions import OperateError, parse_version

    root = require_lake(args.lake)
    cfg = config_from_args(args)
    run_id = new_run_id()

    def account() -> dict[str, int]:
        with spark_session(cfg.engine) as spark:
            return check_accounting(Lake(root, spark))

    def move_models(versions: dict[str, int]) -> None:
        from pipelines.core import registry

        registry.move_champions(registry.resolve(cfg, Lake(root).state_dir), versions)

    with writer_lock(root, "restore", run_id) as note:
        if note:
            print(f"note: {note}", file=sys.stderr)
        lake = Lake(root)
        try:
            version = parse_version(args.version, lake)
            result = restore(lake, version, run_id, account=account, move_models=move_models)
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
    from pipelines.core.execute import new_run_id
    from pipelines.core.lake import Lake
    from pipelines.core.writer_lock import writer_lock
    from pipelines.ops.maintain import maintain
    from pipelines.ops.versions import OperateError, spans

    root = require_lake(args.lake)
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
        print(f"outside retention (restorable while their files remain): corpus versions {spans(report.outside)}")
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


def cmd_export(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.core.progress import Progress
    from pipelines.ops.export import ExportError, export_corpus

    cfg = config_from_args(args)
    root = require_lake(args.lake)
    reading = reader(Lake(root), args.latest_commit)
    with spark_session(cfg.engine) as spark:
        try:
            manifest = export_corpus(
                reading.on(spark),
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
    note_left_out(reading)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """One self-contained HTML page about a run (pipelines/ops/report.py); reads the lake, writes only `--out`."""
    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.ops.report import render
    from pipelines.ops.report_data import check_run_id, collect

    root = require_lake(args.lake)
    if args.run_id is not None:
        check_run_id(args.run_id)  # before the engine starts
    if args.out is not None and not Path(args.out).parent.resolve().is_dir():
        raise CLIError(f"--out {args.out}: directory {Path(args.out).parent} does not exist")
    engine = EngineConfig(kind="remote", remote=args.remote) if args.remote else EngineConfig()
    reading = reader(Lake(root), args.latest_commit)
    with spark_session(engine) as spark:
        data = collect(reading.on(spark), args.run_id, latest_commit=args.latest_commit)
    out = Path(args.out or f"curate-report-{check_run_id(data.run['run_id'])}.html")
    try:
        out.write_text(render(data), encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from exc
    run = data.run
    print(f"wrote {out} (run {run['run_id']}, crawl {run.get('crawl_id')}, {run.get('status')})")
    note_left_out(reading)
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Find and fix the lake's broken invariants (pipelines/ops/repair.py), one line per change."""
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.core.writer_lock import writer_lock
    from pipelines.ops.repair import repair

    cfg = config_from_args(args)
    root = require_lake(args.lake)
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
    if result.changes and not args.dry_run:
        if result.published:
            print("published: sql, export, diff and report read the repaired lake")
        else:
            why = f"; {result.kept_undecided} corpus row(s) have no decision yet" if result.kept_undecided else ""
            print(f"not published yet: readers see the last good night until the next successful `curate run`{why}")
    acct = result.accounting
    verb = "would change" if args.dry_run else "changed"
    state = (
        f"accounting: {acct.get('raw_docs', 0)} ingested documents, {acct.get('unaccounted', 0)} unaccounted, "
        f"{acct.get('double_counted', 0)} in both corpus and drops"
        + (
            f", {acct['corpus_without_raw']} corpus row(s) without a raw document"
            if acct.get("corpus_without_raw")
            else ""
        )
        + (f", {acct['deferred']} deferred to the next run" if acct.get("deferred") else "")
        if acct
        else "no published tables yet"
    )
    print(f"{verb} {len(result.changes)} thing(s){' (dry run: nothing was written)' if args.dry_run else ''}; {state}")
    return EXIT_INVARIANT if result.broken and not args.dry_run else 0

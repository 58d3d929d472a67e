"""`curate maintain`: compaction and vacuum that keep time travel.

- **maintain** compacts every table and vacuums what no retained version needs: retention is a set of corpus
  versions (the last N, or those committed in the last H hours), and every table keeps every version from the
  oldest one a retained corpus version needs (by `runs` state and by commit time, which `curate export` uses).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.lake import Lake
from schemas import TABLES
from schemas.vocab import RunStatus

if TYPE_CHECKING:
    pass
from pipelines.ops.versions import (
    DEFAULT_RETAIN_VERSIONS,
    MAINTAIN,
    NON_DATA_OPS,
    OperateError,
    commit_properties,
    history,
    read_runs,
    retained_from,
    state_of,
    write_runs_row,
)


@dataclass
class TableUpkeep:
    table: str
    active_before: int
    active_after: int
    disk_before: int
    disk_after: int
    bytes_removed: int
    oldest_restorable: int
    latest: int


@dataclass
class Maintenance:
    run_id: str
    retention: str  # what is kept, in words
    retained: list[int]  # corpus versions kept restorable (data-changing ones)
    outside: list[int]  # corpus versions no longer restorable after this
    tables: list[TableUpkeep]
    dry_run: bool


def _disk(lake: Lake, table: str) -> dict[str, int]:
    """Data files under the table's directory (the log excluded), path -> bytes."""
    root = lake.path(table)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "_delta_log"]
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.stat().st_size
    return out


def _version_at(table_history: Sequence[dict[str, Any]], when_ms: int) -> int | None:
    at = [int(h["version"]) for h in table_history if isinstance(h.get("timestamp"), int) and h["timestamp"] <= when_ms]
    return max(at) if at else None


def retention_plan(
    lake: Lake, retain_versions: int | None = None, retain_hours: float | None = None
) -> tuple[str, list[int], list[int], dict[str, int]]:
    """(retention in words, corpus versions retained, corpus versions outside, oldest version kept per table)."""
    rows = read_runs(lake)
    corpus_history = history(lake, "corpus")
    data = [h for h in corpus_history if h.get("operation") not in NON_DATA_OPS]
    already = retained_from(rows, "corpus")
    if retain_hours is not None:
        cutoff = int((datetime.now(UTC).timestamp() - retain_hours * 3600) * 1000)
        kept = [h for h in data if int(h.get("timestamp") or 0) >= cutoff] or data[-1:]
        words = (
            f"keep everything needed to time-travel to corpus versions committed in the last {retain_hours:g} hour(s)"
        )
    else:
        n = DEFAULT_RETAIN_VERSIONS if retain_versions is None else retain_versions
        kept = data[-n:]
        words = f"keep everything needed to time-travel to the last {n} corpus version(s)"
        if retain_versions is None:
            words += " (the default; --retain-versions N or --retain-hours H changes it)"
    oldest = max(int(kept[0]["version"]), already)
    retained = [v for v in (int(h["version"]) for h in corpus_history) if v >= oldest]
    outside = [v for v in (int(h["version"]) for h in corpus_history) if v < oldest]
    keep: dict[str, int] = {"corpus": oldest}
    times = [int(h["timestamp"]) for h in corpus_history if int(h["version"]) in retained and h.get("timestamp")]
    states = [s for v in retained if (s := state_of(v, rows, corpus_history)) is not None]
    for table in TABLES:
        if table == "corpus" or not lake.exists(table):
            continue
        th = history(lake, table)
        needed = [s.versions[table] for s in states if table in s.versions]
        at = [_version_at(th, t) for t in times]
        if any(v is None for v in at):  # created after a retained corpus version: all of its versions are newer
            keep[table] = max(0, retained_from(rows, table))
            continue
        needed += [v for v in at if v is not None]
        keep[table] = max(min(needed) if needed else int(th[-1]["version"]), retained_from(rows, table))
    return words, retained, outside, keep


def maintain(
    lake: Lake,
    run_id: str,
    *,
    retain_versions: int | None = None,
    retain_hours: float | None = None,
    dry_run: bool = False,
) -> Maintenance:
    """Compact every table and vacuum the files no retained version needs; record it in `runs` (not a dry run)."""
    from deltalake import DeltaTable

    if retain_versions is not None and retain_versions < 1:
        raise OperateError(f"--retain-versions must be at least 1, got {retain_versions}")
    if retain_hours is not None and retain_hours < 0:
        raise OperateError(f"--retain-hours must not be negative, got {retain_hours:g}")
    if not lake.exists("corpus"):
        raise OperateError(f"no corpus in {lake.root}: run `curate run` first")
    words, retained, outside, keep = retention_plan(lake, retain_versions, retain_hours)
    tables = [t for t in TABLES if lake.exists(t)]
    before = {t: (len(DeltaTable(str(lake.path(t))).file_uris()), _disk(lake, t)) for t in tables}
    started = datetime.now(UTC)
    row: dict[str, Any] = {
        "run_id": run_id,
        "status": str(RunStatus.RUNNING),
        "engine": "delta-rs",
        "table_versions": {},
        "counts": {},
        "started_at": started,
        "command": MAINTAIN,
    }
    report = Maintenance(run_id, words, retained, outside, [], dry_run)
    if not dry_run:
        write_runs_row(lake, row)
        before["runs"] = (len(DeltaTable(str(lake.path("runs"))).file_uris()), _disk(lake, "runs"))
    status, error = RunStatus.SUCCESS, None
    try:
        for t in tables:
            dt = DeltaTable(str(lake.path(t)))
            if not dry_run:
                dt.optimize.compact(commit_properties=commit_properties(run_id, MAINTAIN))
                dt = DeltaTable(str(lake.path(t)))
            latest = int(dt.version())
            gone = dt.vacuum(
                retention_hours=0,
                dry_run=dry_run,
                enforce_retention_duration=False,
                keep_versions=list(range(keep[t], latest + 1)),
                commit_properties=commit_properties(run_id, MAINTAIN),
            )
            active, disk = before[t]
            if dry_run:
                sizes = disk
                removed = sum(sizes.get(g, 0) for g in gone)
                after_active, after_disk = active, len(disk) - len(gone)
            else:
                now = _disk(lake, t)
                removed = sum(size for p, size in disk.items() if p not in now)
                after_active, after_disk = len(DeltaTable(str(lake.path(t))).file_uris()), len(now)
            report.tables.append(
                TableUpkeep(t, active, after_active, len(disk), after_disk, removed, keep[t], lake.version(t) or 0)
            )
    except BaseException as exc:
        status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if not dry_run:
            counts: dict[str, int] = {}
            for u in report.tables:
                counts |= {
                    f"files_removed:{u.table}": u.disk_before - u.disk_after,
                    f"bytes_removed:{u.table}": u.bytes_removed,
                    f"oldest_restorable:{u.table}": u.oldest_restorable,
                }
            write_runs_row(
                lake,
                {
                    **row,
                    "status": str(status),
                    "counts": counts,
                    "table_versions": lake.versions(),
                    "error": error,
                    "finished_at": datetime.now(UTC),
                },
            )
    return report

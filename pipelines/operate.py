"""Lake operations: `curate diff`, `curate restore` and `curate maintain`.

A corpus version is a Delta version of `corpus`. The lake *state* a corpus version belongs to is told by the `runs`
table: every run, restore and maintenance records the version of every table it left (`table_versions`), so corpus
version V maps to the recorded state whose corpus version is the first at or after V, provided only commits that
change no data (compaction, vacuum) lie between. A version in the middle of a run (the empty table a first run
creates before it merges, the corpus of a run that died before its decisions) has no such state: it is not
restorable, and the error says which versions are.

- **diff** reads the two corpus versions with the engine (a join, so it scales with the corpus) and explains each
  added, removed or changed document by the latest `decisions` row (and `revisions` row) of the runs between them;
  documents a restore moved are explained by the restore.
- **restore** brings every table a run writes back to the versions of that state with delta-rs's RESTORE (a new
  commit, so the restore itself can be undone by restoring the corpus version before it), and records itself in
  `runs` (`command` = `restore`, `target_run_id`). `labels` (a cache keyed by text hash, valid whatever the corpus),
  `evaluations` and `runs` (logs) do not move. Tables are restored `decisions` and `corpus` first and the bronze
  tables last: a restore killed half-way leaves ingested documents without a decision, which the next run decides
  again (never documents in the corpus that `raw_docs` does not know); rerunning the restore finishes it.
- **maintain** compacts every table and vacuums what no retained version needs: retention is a set of corpus
  versions (the last N, or those committed in the last H hours), and every table keeps every version from the
  oldest one a retained corpus version needs (by `runs` state and by commit time, which `curate export` uses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pipelines.lake import Lake
from schemas import TABLES
from schemas.vocab import RunStatus

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The tables a run writes, in the order a restore moves them (see the module docstring for why this order).
MOVED = ("decisions", "corpus", "revisions", "scores", "minhash_index", "dedup", "quality", "quarantine", "raw_docs")
#: Commits that change no row: a corpus version made by one of these holds the same documents as the one before.
NON_DATA_OPS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})
#: Statuses of rows whose `table_versions` describe a finished, consistent lake.
GOOD = frozenset({RunStatus.SUCCESS, RunStatus.PUBLISHED, RunStatus.FIXED_POINT})
DEFAULT_RETAIN_VERSIONS = 7
RESTORE, MAINTAIN = "restore", "maintain"


class OperateError(RuntimeError):
    """The operation cannot be done as asked (unknown or unrestorable version, ...): one line saying what exists."""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    status: str
    command: str
    crawl_id: str | None
    table_versions: dict[str, int]
    counts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None
    target_run_id: str | None = None

    @property
    def order(self) -> datetime:
        return self.finished_at or self.started_at or datetime.min.replace(tzinfo=UTC)


def _as_dict(value: Any) -> dict[str, int]:
    if not value:
        return {}
    items = value.items() if isinstance(value, dict) else value
    return {str(k): int(v) for k, v in items if v is not None}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_runs(lake: Lake) -> list[RunRow]:
    """Every `runs` row through delta-rs (no engine), oldest first; rows of an older contract read as `run`."""
    if not lake.exists("runs"):
        return []
    from deltalake import DeltaTable

    rows = []
    for r in DeltaTable(str(lake.path("runs"))).to_pyarrow_table().to_pylist():
        command = r.get("command") or ("iterate" if r.get("crawl_id") == "iterate" else "run")
        rows.append(
            RunRow(
                run_id=r["run_id"],
                status=r["status"],
                command=command,
                crawl_id=r.get("crawl_id"),
                table_versions=_as_dict(r.get("table_versions")),
                counts=_as_dict(r.get("counts")),
                started_at=_utc(r.get("started_at")),
                finished_at=_utc(r.get("finished_at")),
                target_run_id=r.get("target_run_id"),
            )
        )
    return sorted(rows, key=lambda r: r.order)


def live_crawls(rows: Sequence[RunRow]) -> set[str]:
    """The crawls whose successful run is still in the lake: a restore brings back the crawls of the state it
    restored, so `curate catch-up` processes again a night that a restore undid."""
    states: dict[str, frozenset[str]] = {}
    live: frozenset[str] = frozenset()
    for r in sorted(rows, key=lambda r: r.order):
        if r.status not in GOOD:
            continue
        if r.command == RESTORE:
            live = states.get(r.target_run_id or "", live)
        elif r.command == "run" and r.crawl_id:
            live = live | {r.crawl_id}
        states[r.run_id] = live
    return set(live)


def history(lake: Lake, table: str) -> list[dict[str, Any]]:
    """The table's commits, oldest first."""
    return sorted(lake.history(table), key=lambda h: int(h["version"]))


def spans(versions: Iterable[int]) -> str:
    """`0-3, 5, 7-8`: a list of versions an operator can read in one line."""
    out: list[str] = []
    vs = sorted(set(versions))
    i = 0
    while i < len(vs):
        j = i
        while j + 1 < len(vs) and vs[j + 1] == vs[j] + 1:
            j += 1
        out.append(str(vs[i]) if i == j else f"{vs[i]}-{vs[j]}")
        i = j + 1
    return ", ".join(out) or "none"


def parse_version(text: str | int, lake: Lake) -> int:
    """A corpus version as `curate history corpus` lists it; anything else is one line naming the versions."""
    if not lake.exists("corpus"):
        raise OperateError(f"no corpus in {lake.root}: run `curate run` first")
    versions = [int(h["version"]) for h in history(lake, "corpus")]
    try:
        version = int(str(text).strip())
    except ValueError:
        raise OperateError(f"not a corpus version: {text!r} (corpus versions: {spans(versions)})") from None
    if version not in versions:
        raise OperateError(f"corpus has no version {version} (corpus versions: {spans(versions)})")
    return version


@dataclass(frozen=True)
class State:
    """A recorded lake state: the row that left it and the version of each table in it."""

    row: RunRow
    corpus_version: int  # the corpus version asked for (the row's may be later, by commits that change no data)

    @property
    def versions(self) -> dict[str, int]:
        return self.row.table_versions


def state_of(version: int, rows: Sequence[RunRow], corpus_history: Sequence[dict[str, Any]]) -> State | None:
    """The recorded lake state corpus version `version` belongs to (None: it is the middle of a run)."""
    later = [r for r in rows if r.status in GOOD and r.table_versions.get("corpus", -1) >= version]
    if not later:
        return None
    end = min(r.table_versions["corpus"] for r in later)
    between = [h for h in corpus_history if version < int(h["version"]) <= end]
    if any(h.get("operation") not in NON_DATA_OPS for h in between):
        return None
    return State(max((r for r in later if r.table_versions["corpus"] == end), key=lambda r: r.order), version)


def retained_from(rows: Sequence[RunRow], table: str) -> int:
    """The oldest version of `table` that no `curate maintain` has vacuumed (0 when none ran)."""
    key = f"oldest_restorable:{table}"
    return max(
        (r.counts[key] for r in rows if r.command == MAINTAIN and r.status in GOOD and key in r.counts), default=0
    )


def restorable(rows: Sequence[RunRow], corpus_history: Sequence[dict[str, Any]]) -> list[int]:
    floor = retained_from(rows, "corpus")
    return [
        v
        for v in (int(h["version"]) for h in corpus_history)
        if v >= floor and state_of(v, rows, corpus_history) is not None
    ]


def _local(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


def missing_files(lake: Lake, table: str, version: int) -> int | None:
    """How many data files version `version` of `table` needs that are gone (None: its log is gone too)."""
    from deltalake import DeltaTable

    try:
        uris = DeltaTable(str(lake.path(table)), version=version).file_uris()
    except Exception:
        return None
    return sum(not _local(u).exists() for u in uris)


def _outside(version: int, lake: Lake, rows: Sequence[RunRow], corpus_history: Sequence[dict[str, Any]]) -> str:
    return (
        f"corpus version {version} is outside retention: `curate maintain` removed files it needs "
        f"(restorable corpus versions: {spans(restorable(rows, corpus_history))})"
    )


def check_readable(lake: Lake, version: int, rows: Sequence[RunRow] | None = None) -> None:
    """Raise OperateError when corpus version `version` cannot be read any more (vacuumed)."""
    if missing_files(lake, "corpus", version) != 0:
        rows = read_runs(lake) if rows is None else rows
        raise OperateError(_outside(version, lake, rows, history(lake, "corpus")))


# ---------------------------------------------------------------------------------------------------------- diff


@dataclass
class Diff:
    v1: int
    v2: int
    counts: dict[str, int]
    rows: list[dict[str, Any]]
    runs_between: list[RunRow]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


DIFF_COLUMNS = [
    *("change", "doc_id", "url", "fields", "action_before", "action_after"),
    *("run_id", "command", "decision", "reasons", "stage", "revision"),
]


def diff(lake: Lake, v1: int, v2: int, limit: int | None = None) -> Diff:
    """Documents added, removed and changed (text, weight or tags) from corpus version `v1` to `v2`, each with
    the latest decision (and revision) of the runs between the two versions that explains it."""
    from pyspark.sql import functions as F

    rows = read_runs(lake)
    for v in (v1, v2):
        check_readable(lake, v, rows)
    lo, hi = sorted((v1, v2))
    between = [r for r in rows if lo < r.table_versions.get("corpus", -1) <= hi]

    def side(version: int, n: int) -> DataFrame:
        return lake.read("corpus", version=version).select(
            "doc_id",
            F.lit(True).alias(f"in_{n}"),
            F.col("url").alias(f"url_{n}"),
            F.col("text").alias(f"text_{n}"),
            F.col("weight").alias(f"weight_{n}"),
            F.array_sort("tags").alias(f"tags_{n}"),
            F.col("action").alias(f"action_{n}"),
        )

    joined = side(v1, 1).join(side(v2, 2), "doc_id", "full_outer")
    differs = {
        "text": ~F.col("text_1").eqNullSafe(F.col("text_2")),
        "weight": ~F.col("weight_1").eqNullSafe(F.col("weight_2")),
        "tags": ~F.col("tags_1").eqNullSafe(F.col("tags_2")),
    }
    change = (
        F.when(F.col("in_1").isNull(), F.lit("added"))
        .when(F.col("in_2").isNull(), F.lit("removed"))
        .when(differs["text"] | differs["weight"] | differs["tags"], F.lit("changed"))
    )
    changes = joined.withColumn("change", change).where(F.col("change").isNotNull())
    counts = {"added": 0, "removed": 0, "changed": 0}
    counts.update({r["change"]: int(r["n"]) for r in changes.groupBy("change").agg(F.count("*").alias("n")).collect()})

    shown = changes.orderBy("change", "doc_id")
    if limit is not None:
        shown = shown.limit(limit)
    ids = [r.run_id for r in between]
    if ids and lake.exists("decisions"):
        decided = (
            lake.read("decisions")
            .where(F.col("run_id").isin(ids))
            .groupBy("doc_id")
            .agg(F.max(F.struct("decided_at", "run_id", "action", "reasons", "stage")).alias("d"))
        )
        shown = shown.join(decided, "doc_id", "left")
    else:
        shown = shown.withColumn("d", F.lit(None))
    if ids and lake.exists("revisions"):
        revised = (
            lake.read("revisions")
            .where(F.col("run_id").isin(ids))
            .groupBy("doc_id")
            .agg(F.max(F.struct("revised_at", "status", "method", "model")).alias("r"))
        )
        shown = shown.join(revised, "doc_id", "left")
    else:
        shown = shown.withColumn("r", F.lit(None))
    by_id = {r.run_id: r for r in rows}
    restores = [r for r in between if r.command == RESTORE]
    out = [_diff_row(r.asDict(recursive=True), by_id, restores) for r in shown.collect()]
    out.sort(key=lambda r: (r["change"], r["doc_id"]))
    return Diff(v1, v2, counts, out, between)


def _diff_row(r: dict[str, Any], by_id: dict[str, RunRow], restores: list[RunRow]) -> dict[str, Any]:
    fields = []
    if r["change"] == "changed":
        if r["text_1"] != r["text_2"]:
            fields.append("text")
        if r["weight_1"] != r["weight_2"]:
            fields.append(f"weight {r['weight_1']:g}->{r['weight_2']:g}")
        if r["tags_1"] != r["tags_2"]:
            fields.append(f"tags {r['tags_1']}->{r['tags_2']}")
    d, rev = r.get("d") or {}, r.get("r") or {}
    run_id, decision, reasons, stage = d.get("run_id"), d.get("action"), d.get("reasons"), d.get("stage")
    if run_id is None and restores:  # no run decided it: a restore moved it
        last = restores[-1]
        run_id, reasons = last.run_id, [f"restored to corpus version {last.counts.get('restored_corpus_version')}"]
    run = by_id.get(run_id or "")
    return {
        "change": r["change"],
        "doc_id": r["doc_id"],
        "url": r["url_2"] if r["url_2"] is not None else r["url_1"],
        "fields": ", ".join(fields),
        "action_before": r["action_1"],
        "action_after": r["action_2"],
        "run_id": run_id,
        "command": None if run is None else (f"{run.command} {run.crawl_id}" if run.command == "run" else run.command),
        "decision": decision,
        "reasons": reasons,
        "stage": stage,
        "revision": f"{rev.get('method')} {rev.get('status')} ({rev.get('model')})" if rev else None,
    }


# ------------------------------------------------------------------------------------------------------- restore


@dataclass
class TableMove:
    table: str
    before: int | None
    target: int | None  # None: the table did not exist in the restored state (it is emptied)
    after: int | None = None

    @property
    def action(self) -> str:
        if self.before == self.target:
            return "unchanged"
        return "emptied" if self.target is None else "restored"


@dataclass
class Restore:
    run_id: str
    version: int  # the corpus version asked for
    corpus_before: int
    target: RunRow
    moves: list[TableMove]
    accounting: dict[str, int] = field(default_factory=dict)
    status: str = RunStatus.SUCCESS
    error: str | None = None

    @property
    def changed(self) -> bool:
        return any(m.action != "unchanged" for m in self.moves)


def _runs_row(lake: Lake, values: dict[str, Any]) -> None:
    """Upsert one `runs` row through delta-rs: restore and maintain need no engine."""
    lake.ensure("runs")  # adds this contract's newer columns to an older lake's table (delta-rs; no engine)
    names = TABLES["runs"].fieldNames()
    lake.merge_rows_without_engine([tuple(values.get(n) for n in names)], "runs", ("run_id",))


def _commit(run_id: str, command: str) -> Any:
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={"curate.run_id": run_id, "curate.command": command})


def plan_restore(lake: Lake, version: int, run_id: str) -> Restore:
    """What `restore(version)` would move; OperateError when `version` is not a restorable state."""
    rows = read_runs(lake)
    corpus_history = history(lake, "corpus")
    state = state_of(version, rows, corpus_history)
    if state is None:
        raise OperateError(
            f"corpus version {version} is not the end of a successful run, restore or maintenance (it is the middle "
            f"of one, or its run failed): restorable corpus versions: {spans(restorable(rows, corpus_history))}"
        )
    if version < retained_from(rows, "corpus"):
        raise OperateError(_outside(version, lake, rows, corpus_history))
    moves = []
    for table in MOVED:
        before, target = lake.version(table), state.versions.get(table)
        if before is None and target is not None:
            raise OperateError(
                f"table {table} is missing from {lake.root} but the state to restore has version {target}"
            )
        if before is None:
            continue
        if target is not None and target != before and missing_files(lake, table, target) != 0:
            raise OperateError(_outside(version, lake, rows, corpus_history))
        moves.append(TableMove(table, before, target))
    return Restore(run_id, version, lake.version("corpus") or 0, state.row, moves)


def restore(lake: Lake, version: int, run_id: str, account: Callable[[], dict[str, int]] | None = None) -> Restore:
    """Bring every table a run writes back to the state of corpus version `version`, and record it in `runs`.
    `account` (the executor's accounting check, run by the caller's engine) is checked on the result."""
    from deltalake import DeltaTable

    plan = plan_restore(lake, version, run_id)
    if not plan.changed:
        return plan
    started = datetime.now(UTC)
    row: dict[str, Any] = {
        "run_id": run_id,
        "status": str(RunStatus.RUNNING),
        "engine": "delta-rs",
        "counts": {"restored_corpus_version": version, "corpus_version_before": plan.corpus_before},
        "table_versions": {},
        "started_at": started,
        "command": RESTORE,
        "target_run_id": plan.target.run_id,
    }
    _runs_row(lake, row)
    try:
        for m in plan.moves:
            if m.action == "unchanged":
                continue
            dt = DeltaTable(str(lake.path(m.table)))
            if m.target is None:
                dt.delete(commit_properties=_commit(run_id, RESTORE))
            else:
                dt.restore(m.target, commit_properties=_commit(run_id, RESTORE))
        for m in plan.moves:
            m.after = lake.version(m.table)
        if account is not None:
            plan.accounting = account()
            if plan.accounting.get("unaccounted") or plan.accounting.get("double_counted"):
                plan.status = RunStatus.FAILED
                plan.error = (
                    f"the restored state breaks the accounting invariant: {plan.accounting.get('unaccounted')} "
                    f"document(s) unaccounted for, {plan.accounting.get('double_counted')} in both corpus and drops"
                )
    except BaseException as exc:
        plan.status, plan.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        counts = {
            **row["counts"],
            **{f"target_version:{m.table}": m.target for m in plan.moves if m.target is not None},
        }
        _runs_row(
            lake,
            {
                **row,
                "status": str(plan.status),
                "counts": {**counts, **plan.accounting},
                "table_versions": lake.versions(),
                "error": plan.error,
                "finished_at": datetime.now(UTC),
            },
        )
    return plan


# ------------------------------------------------------------------------------------------------------ maintain


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
        _runs_row(lake, row)
        before["runs"] = (len(DeltaTable(str(lake.path("runs"))).file_uris()), _disk(lake, "runs"))
    status, error = RunStatus.SUCCESS, None
    try:
        for t in tables:
            dt = DeltaTable(str(lake.path(t)))
            if not dry_run:
                dt.optimize.compact(commit_properties=_commit(run_id, MAINTAIN))
                dt = DeltaTable(str(lake.path(t)))
            latest = int(dt.version())
            gone = dt.vacuum(
                retention_hours=0,
                dry_run=dry_run,
                enforce_retention_duration=False,
                keep_versions=list(range(keep[t], latest + 1)),
                commit_properties=_commit(run_id, MAINTAIN),
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
            _runs_row(
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


def producers(lake: Lake, table: str, rows: Sequence[RunRow]) -> dict[int, RunRow]:
    """Which recorded command made each version of `table`: the latest one started at or before the commit and not
    finished before it (one writer at a time); delta-rs commits of restore and maintain name their run id."""
    by_id = {r.run_id: r for r in rows}
    out: dict[int, RunRow] = {}
    for h in lake.history(table):
        v, ts = int(h["version"]), h.get("timestamp")
        named = by_id.get(str(h.get("curate.run_id")))
        if named is not None:
            out[v] = named
            continue
        if not isinstance(ts, int):
            continue
        when = datetime.fromtimestamp(ts / 1000, tz=UTC)
        live = [
            r
            for r in rows
            if r.started_at is not None
            and r.started_at.replace(microsecond=r.started_at.microsecond // 1000 * 1000) <= when
            and (r.finished_at is None or when <= r.finished_at)
        ]
        if live:
            out[v] = max(live, key=lambda r: r.started_at or when)
    return out

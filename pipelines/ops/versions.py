"""Corpus versions and the lake states they belong to: what `curate diff`, `restore` and `maintain` share.

A corpus version is a Delta version of `corpus`. The lake *state* a corpus version belongs to is told by the `runs`
table: every run, restore and maintenance records the version of every table it left (`table_versions`), so corpus
version V maps to the recorded state whose corpus version is the first at or after V, provided only commits that
change no data (compaction, vacuum) lie between. A version in the middle of a run (the empty table a first run
creates before it merges, the corpus of a run that died before its decisions) has no such state: it is not
restorable, and the error says which versions are.

A new operation is one module in pipelines/ops/ beside diff, restore and maintain, built on these functions,
with its command in pipelines/cli/lake.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pipelines.core.lake import Lake
from pipelines.core.published import GOOD, ended
from schemas import TABLES

if TYPE_CHECKING:
    pass


#: The tables a run writes, in the order a restore moves them (see the module docstring for why this order).
MOVED = ("decisions", "corpus", "revisions", "scores", "minhash_index", "dedup", "quality", "quarantine", "raw_docs")


#: Commits that change no row: a corpus version made by one of these holds the same documents as the one before.
NON_DATA_OPS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})


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
    def order(self) -> tuple[bool, float]:
        return ended(self.finished_at, self.started_at)


def as_counts(value: Any) -> dict[str, int]:
    if not value:
        return {}
    items = value.items() if isinstance(value, dict) else value
    return {str(k): int(v) for k, v in items if v is not None}


def as_utc(value: datetime | None) -> datetime | None:
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
                table_versions=as_counts(r.get("table_versions")),
                counts=as_counts(r.get("counts")),
                started_at=as_utc(r.get("started_at")),
                finished_at=as_utc(r.get("finished_at")),
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


def restorable(rows: Sequence[RunRow], corpus_history: Sequence[dict[str, Any]], lake: Lake | None = None) -> list[int]:
    """The corpus versions that end a run: those in retention, and (given `lake`) older ones whose corpus files are
    all still there (a vacuum removes only what no retained version reads)."""
    floor = retained_from(rows, "corpus")
    return [
        v
        for v in (int(h["version"]) for h in corpus_history)
        if state_of(v, rows, corpus_history) is not None
        and (v >= floor or (lake is not None and missing_files(lake, "corpus", v) == 0))
    ]


def local_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


def missing_files(lake: Lake, table: str, version: int) -> int | None:
    """How many data files version `version` of `table` needs that are gone (None: its log is gone too)."""
    from deltalake import DeltaTable

    try:
        uris = DeltaTable(str(lake.path(table)), version=version).file_uris()
    except Exception:
        return None
    return sum(not local_path(u).exists() for u in uris)


def outside_message(version: int, lake: Lake, rows: Sequence[RunRow], corpus_history: Sequence[dict[str, Any]]) -> str:
    return (
        f"corpus version {version} is outside retention: `curate maintain` removed files it needs "
        f"(restorable corpus versions: {spans(restorable(rows, corpus_history, lake))})"
    )


def check_readable(lake: Lake, version: int, rows: Sequence[RunRow] | None = None) -> None:
    """Raise OperateError when corpus version `version` cannot be read any more (vacuumed)."""
    if missing_files(lake, "corpus", version) != 0:
        rows = read_runs(lake) if rows is None else rows
        raise OperateError(outside_message(version, lake, rows, history(lake, "corpus")))


def write_runs_row(lake: Lake, values: dict[str, Any]) -> None:
    """Upsert one `runs` row through delta-rs: restore and maintain need no engine."""
    lake.ensure("runs")  # adds this contract's newer columns to an older lake's table (delta-rs; no engine)
    names = TABLES["runs"].fieldNames()
    lake.merge_rows_without_engine([tuple(values.get(n) for n in names)], "runs", ("run_id",))


def commit_properties(run_id: str, command: str) -> Any:
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={"curate.run_id": run_id, "curate.command": command})


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

"""The published state: the table versions a reader sees by default, so that no reader ever sees half a night.

A night publishes in several Delta commits (bronze, the derived tables, `corpus`, then `decisions`, then its final
`runs` row: pipelines/core/publish.py). Delta makes each commit atomic, not the night: a reader of the latest
commits sees the new documents of a run killed between its `corpus` and `decisions` commits, without their
decisions. Delta has no multi-table transaction, but every successful run, restore and maintenance records the
version of every table it left (`runs.table_versions`), and those versions never change. Reading each table a
run writes as of the versions the last such row names is therefore a whole night, whatever is being written
beside it; `curate sql`, `export`, `diff`, `report` and the notebooks read that way, and `--latest-commit` shows
what a running or killed night wrote.

Writers (`run`, `iterate`, `repair`, `restore`, `maintain`) read the latest commits instead: they continue from,
or repair, what a killed night left. `runs` itself is never pinned (a running or killed night's row is how a
reader learns of it), nor are `labels` and `evaluations`, which commands outside a night write in one commit.

This module is pure (no engine, no delta-rs) so that `pipelines/core/lake.py` can use it without an import circle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schemas.vocab import RunStatus

#: Statuses of `runs` rows whose `table_versions` describe a finished, consistent lake.
GOOD = frozenset({RunStatus.SUCCESS, RunStatus.PUBLISHED, RunStatus.FIXED_POINT})

#: The tables a night writes (pipelines/core/publish.py KEYS): read as of the published state.
PINNED = (
    *("raw_docs", "quarantine", "quality", "dedup", "minhash_index", "benchmark_ngrams", "contamination", "pii"),
    *("scores", "revisions", "corpus", "decisions"),
)


def ended(finished_at: Any, started_at: Any) -> tuple[bool, float]:
    """Sort key of a `runs` row by when it ended (its start where it never recorded an end), rows with neither
    first; naive and aware times are compared by their POSIX seconds, so rows two releases wrote still order. The
    one ordering of `runs` rows: the published state (here) and the operations (pipelines/ops/versions.py) agree
    on which row is the last."""
    when = finished_at or started_at
    if when is None:
        return (False, 0.0)
    return (True, when.timestamp() if isinstance(when, datetime) else float(when))


def published_versions(rows: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """Each table in PINNED -> its published version (None: not in the published state, so it reads as empty),
    from the `runs` rows (dicts with `status`, `table_versions`, `finished_at`, `started_at`).

    The published state is the one the last good row left. A lake whose runs never succeeded has published
    nothing, so every pinned table reads as empty; a lake with no `runs` rows at all (tables written by hand, or by
    an older release) has nothing to pin by, and `{}` means: read the latest commits.
    """
    rows = list(rows)
    if not rows:
        return {}
    good = [r for r in rows if r.get("status") in GOOD and r.get("table_versions")]
    versions: Mapping[Any, Any] = {}
    if good:
        tv = max(good, key=lambda r: ended(r.get("finished_at"), r.get("started_at")))["table_versions"]
        versions = dict(tv)  # a dict, or the (key, value) pairs delta-rs gives for a map
    return {t: None if versions.get(t) is None else int(versions[t]) for t in PINNED}


# String literals and comments, whose text must not be rewritten, and backquoted identifiers, which may hold quotes.
_SKIP = re.compile(r"`[^`]*`|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|--[^\n]*|/\*.*?\*/", re.S)
_TEMPORAL = r"(?:FOR\s+)?(?:SYSTEM_VERSION|VERSION|SYSTEM_TIME|TIMESTAMP)\s+AS\s+OF\b"
_TIME_TRAVEL = re.compile(rf"(?<![\w.`])(?:`(?P<q>\w+)`|(?P<n>\w+))(?=\s+{_TEMPORAL})", re.I)


def _masked(query: str) -> str:
    """`query` with string literals and comments blanked out (same length), backquoted identifiers kept."""
    return _SKIP.sub(lambda m: m.group() if m.group().startswith("`") else "\0" * len(m.group()), query)


def time_travel_to_paths(query: str, paths: Mapping[str, str]) -> str:
    """`corpus VERSION AS OF 3` -> ``delta.`<path>` VERSION AS OF 3`` for the tables in `paths` (lower-case names).

    A pinned table is a temporary view of one version, and Spark refuses time travel on a view; an explicit
    `VERSION AS OF` (or `TIMESTAMP AS OF`) must still reach every version, so it is pointed at the Delta table
    itself. Names inside string literals and comments, and qualified names (`db.corpus`), are left alone.
    """
    out, last = [], 0
    for m in _TIME_TRAVEL.finditer(_masked(query)):
        name = (m.group("q") or m.group("n")).lower()
        if name in paths:
            out += [query[last : m.start()], f"delta.`{paths[name]}`"]
            last = m.end()
    return "".join(out) + query[last:]

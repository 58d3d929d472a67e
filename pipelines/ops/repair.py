"""`curate repair`: bring back a lake whose invariants broke, one printed line per change.

How a lake gets there: two writers at once (two `curate run`s started without the writer lock, on a filesystem
where `flock` is not honoured, or a `curate sql --write`). Each saw the same documents undecided and published:
one kept a document and the other dropped it (it is then in both `corpus` and the drops, and the accounting
check of every later run fails), both inserted the same `corpus` doc_id (two rows), or one batch of decisions
was appended twice. A killed run can also leave `revisions` rows of a decision that was never published, which
count twice in a join with the rerun's rows, and a `running` row (pipelines/core/execute.py `recover_abandoned`).

Every fix keeps each document accounted for exactly once, preferring the decision of the latest successful run
that decided it. The detection runs on the engine (it scans whole tables); the fixes are delta-rs overwrites of
exactly the affected doc_ids (`predicate`), one atomic commit per table, so a repair killed half-way leaves
each table either as it was or repaired, and running it again finishes the job.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from pipelines.core.decisions import run_positions
from pipelines.core.execute import accounting, check_accounting, corpus_without_raw, recover_abandoned
from pipelines.core.lake import Lake, LakeError
from pipelines.ops.versions import write_runs_row
from schemas.vocab import KEPT_ACTIONS, OUT_ACTIONS, Action, RunStatus

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.core.config import TrackingConfig

#: actions of documents outside the corpus (dropped, or deferred to the next run)
OUT = frozenset(str(a) for a in OUT_ACTIONS)
#: corpus rows without a raw document that repair lists one by one (then it says there are more)
ORPHANS_LISTED = 20
#: run statuses whose published rows stand (an iteration round publishes as `published`)
SUCCEEDED = frozenset({str(RunStatus.SUCCESS), str(RunStatus.PUBLISHED), str(RunStatus.FIXED_POINT)})
# doc_ids reach delta-rs predicates as SQL text: only the hex ids `udfs.parse.doc_id_for` makes (and plain names)
_DOC_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@dataclass
class Repair:
    """What `curate repair` found and (unless a dry run) changed: `changes` are the printed lines."""

    changes: list[str] = field(default_factory=list)
    unfixed: list[str] = field(default_factory=list)  # found, but no fix keeps every document: said, not touched
    accounting: dict[str, int] = field(default_factory=dict)  # after the repair (before it, for a dry run)
    undecided: int = 0  # ingested documents without any decision (a killed run's): the next `curate run` decides them
    kept_undecided: int = 0  # corpus rows without any decision (a night killed between its corpus and decisions)
    published: bool = False  # the repaired lake is what readers see now (its `runs` row names its table versions)

    @property
    def broken(self) -> bool:
        """The accounting invariant does not hold, beyond what the next run settles by itself."""
        a = self.accounting
        return bool(a.get("double_counted") or a.get("corpus_without_raw") or a.get("unaccounted", 0) > self.undecided)


def _rows(lake: Lake, table: str, doc_ids: set[str]) -> pa.Table:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    dataset = DeltaTable(str(lake.path(table))).to_pyarrow_dataset()
    return dataset.to_table(filter=pc.field("doc_id").isin(sorted(doc_ids)))


def _replace(lake: Lake, table: str, doc_ids: set[str], keep: list[dict[str, Any]], schema: pa.Schema) -> None:
    """Replace every row of `doc_ids` in `table` by `keep`, in one commit."""
    import pyarrow as pa
    from deltalake import write_deltalake

    for d in doc_ids:
        if not _DOC_ID.match(d):
            raise LakeError(f"cannot repair {table}: {d!r} is not a doc_id this lake writes; fix it by hand")
    predicate = "doc_id IN (" + ", ".join(f"'{d}'" for d in sorted(doc_ids)) + ")"
    write_deltalake(
        str(lake.path(table)), pa.Table.from_pylist(keep, schema=schema), mode="overwrite", predicate=predicate
    )


def _order(row: dict[str, Any], succeeded: set[str], positions: dict[str, tuple[int, Any]]) -> tuple[Any, ...]:
    """Decision preference: a successful run's over any other, then the one of the run later in the lake's
    sequence (pipelines/core/decisions.py), the run id breaking ties."""
    seq, started = positions.get(row["run_id"], (0, None))
    return (row["run_id"] in succeeded, seq, started.timestamp() if started else float("-inf"), row["run_id"])


def repair(lake: Lake, tracking: TrackingConfig, *, dry_run: bool) -> Repair:
    """Find and (unless `dry_run`) fix the broken invariants of `lake`. The caller holds the writer lock."""
    out = Repair()
    started = datetime.now(UTC)
    repair_id = "repair-" + started.strftime("%Y%m%dT%H%M%SZ")

    # 1. runs left `running` by a killed writer: the executor's own recovery, so both say the same thing
    runs = lake.read("runs").select("run_id", "status").collect() if lake.exists("runs") else []
    stale = sorted(r["run_id"] for r in runs if r["status"] == str(RunStatus.RUNNING))
    if dry_run:
        out.changes += [f"runs: mark run {r} failed (left `running` by a process that is gone)" for r in stale]
    elif stale:
        out.changes += [f"runs: {what}" for what in recover_abandoned(lake, tracking, repair_id)]
    status = {r["run_id"]: (str(RunStatus.FAILED) if r["run_id"] in stale else r["status"]) for r in runs}
    succeeded = {r for r, s in status.items() if s in SUCCEEDED}
    positions = run_positions(lake)

    if not all(lake.exists(t) for t in ("raw_docs", "corpus", "decisions")):
        out.accounting = {}
        return out

    # 2. what is broken, found on the engine: only the affected doc_ids come back to the driver
    both = {r["doc_id"] for r in accounting(lake).where(F.col("places") > 1).select("doc_id").distinct().collect()}
    # a document in neither place and without any decision is a killed run's, which the next run decides: counted
    # here, not listed (there may be a whole batch of them)
    nowhere = accounting(lake).where(F.col("places") == 0).select("doc_id")
    ever_decided = lake.read("decisions").select("doc_id").distinct()
    unaccounted = {r["doc_id"] for r in nowhere.join(ever_decided, "doc_id", "left_semi").distinct().collect()}
    out.undecided = nowhere.join(ever_decided, "doc_id", "left_anti").distinct().count()
    corpus_dups = {
        r["doc_id"]
        for r in lake.read("corpus").groupBy("doc_id").count().where(F.col("count") > 1).select("doc_id").collect()
    }
    decision_dups = {
        r["doc_id"]
        for r in lake.read("decisions")
        .groupBy("doc_id", "run_id")
        .count()
        .where(F.col("count") > 1)
        .select("doc_id")
        .distinct()
        .collect()
    }
    # revisions of a run that did not succeed and whose decision of the document was never published (killed
    # before `decisions`): the rerun wrote its own, and a join on doc_id would count the document twice. A run that
    # failed after publishing (its accounting check) keeps them: its decisions stand.
    stray_revisions: set[str] = set()
    if lake.exists("revisions"):
        ok = list(succeeded) or [""]
        published = lake.read("decisions").select("doc_id", "run_id").distinct()
        stray_revisions = {
            r["doc_id"]
            for r in lake.read("revisions")
            .where(~F.col("run_id").isin(ok))
            .join(published, ["doc_id", "run_id"], "left_anti")
            .select("doc_id")
            .distinct()
            .collect()
        }

    # 3. the fixes, computed on the affected rows only
    decided = both | corpus_dups | decision_dups | unaccounted
    decisions_tbl = _rows(lake, "decisions", decided) if decided else None
    decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in decisions_tbl.to_pylist() if decisions_tbl is not None else []:
        decisions[row["doc_id"]].append(row)

    new_decisions: dict[str, list[dict[str, Any]]] = {}
    for doc in sorted(decision_dups):
        seen: dict[str, dict[str, Any]] = {}
        for row in sorted(decisions[doc], key=lambda r: _order(r, succeeded, positions), reverse=True):
            if row["run_id"] in seen:
                out.changes.append(f"decisions: remove a duplicate row of doc {doc} by run {row['run_id']}")
            else:
                seen[row["run_id"]] = row
        new_decisions[doc] = list(seen.values())

    drop_from_corpus: set[str] = set()
    for doc in sorted(both):
        rows = new_decisions.get(doc, decisions[doc])
        chosen = max(rows, key=lambda r: _order(r, succeeded, positions))
        if chosen["action"] in OUT:
            drop_from_corpus.add(doc)
            how = "dropped" if chosen["action"] == str(Action.DROP) else "deferred"
            out.changes.append(
                f"corpus: remove doc {doc}: run {chosen['run_id']} ({status.get(chosen['run_id'], 'not in runs')}) "
                f"{how} it, the latest successful decision; it stays accounted for as {chosen['action']}"
            )
        else:
            # the drop that wins by time is not a successful run's: the document stays where that run left it
            stray = [r for r in rows if r["action"] in OUT and r["run_id"] not in succeeded]
            for r in stray:
                out.changes.append(
                    f"decisions: remove the {r['action']} of doc {doc} by run {r['run_id']} "
                    f"({status.get(r['run_id'], 'not in runs')}): run {chosen['run_id']} kept it ({chosen['action']})"
                )
            if stray:
                new_decisions[doc] = [r for r in rows if r not in stray]
            else:
                out.unfixed.append(f"doc {doc} is in both corpus and the drops, and successful runs decided both")

    corpus_tbl = _rows(lake, "corpus", corpus_dups | drop_from_corpus) if corpus_dups | drop_from_corpus else None
    new_corpus: dict[str, list[dict[str, Any]]] = {d: [] for d in drop_from_corpus}
    corpus_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in corpus_tbl.to_pylist() if corpus_tbl is not None else []:
        corpus_rows[row["doc_id"]].append(row)
    for doc in sorted(corpus_dups - drop_from_corpus):
        rows = new_decisions.get(doc, decisions[doc])
        kept = [r for r in rows if r["action"] in {str(a) for a in KEPT_ACTIONS}]
        chosen_run = max(kept, key=lambda r: _order(r, succeeded, positions))["run_id"] if kept else None
        candidates = corpus_rows[doc]
        best = max(
            candidates,
            key=lambda r: (r["run_id"] == chosen_run, r["updated_at"] or datetime.min.replace(tzinfo=UTC)),
        )
        new_corpus[doc] = [best]
        out.changes.append(
            f"corpus: remove {len(candidates) - 1} duplicate row(s) of doc {doc}, keep the row of run {best['run_id']}"
        )

    # A corpus row with no ingested document: nothing says where its text came from or what decided it, so no fix
    # keeps the lake honest by itself (deleting it may lose a document a person put there on purpose): said, with
    # the query that shows them, and left for a person.
    orphans = sorted(r["doc_id"] for r in corpus_without_raw(lake).limit(ORPHANS_LISTED + 1).collect())
    for doc in orphans[:ORPHANS_LISTED]:
        out.unfixed.append(
            f"corpus row of doc {doc} has no raw_docs row (never ingested): "
            "SELECT * FROM corpus WHERE doc_id NOT IN (SELECT doc_id FROM raw_docs)"
        )
    if len(orphans) > ORPHANS_LISTED:
        out.unfixed.append(f"... and more corpus rows without a raw_docs row (the first {ORPHANS_LISTED} are listed)")

    for doc in sorted(unaccounted):
        run = max(decisions[doc], key=lambda r: _order(r, succeeded, positions))
        out.unfixed.append(
            f"doc {doc} is in neither corpus nor the drops although run {run['run_id']} decided it ({run['action']})"
        )

    new_revisions: dict[str, list[dict[str, Any]]] = {}
    revisions_tbl = _rows(lake, "revisions", stray_revisions) if stray_revisions else None
    if revisions_tbl is not None:
        by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in revisions_tbl.to_pylist():
            by_doc[row["doc_id"]].append(row)
        published_runs = {
            (r["doc_id"], r["run_id"])
            for r in _rows(lake, "decisions", stray_revisions).select(["doc_id", "run_id"]).to_pylist()
        }

        def stands(r: dict[str, Any]) -> bool:
            return r["run_id"] in succeeded or (r["doc_id"], r["run_id"]) in published_runs

        for doc in sorted(by_doc):
            keep = [r for r in by_doc[doc] if stands(r)]
            for r in sorted(by_doc[doc], key=lambda r: r["run_id"]):
                if not stands(r):
                    out.changes.append(
                        f"revisions: remove the row of doc {doc} by run {r['run_id']} "
                        f"({status.get(r['run_id'], 'not in runs')}: its decision was never published)"
                    )
            new_revisions[doc] = keep

    if not dry_run:
        # decisions first: a corpus row is removed only once no decision that kept it outranks the drop
        if new_decisions and decisions_tbl is not None:
            _replace(
                lake,
                "decisions",
                set(new_decisions),
                [r for v in new_decisions.values() for r in v],
                decisions_tbl.schema,
            )
        if new_corpus and corpus_tbl is not None:
            _replace(lake, "corpus", set(new_corpus), [r for v in new_corpus.values() for r in v], corpus_tbl.schema)
        if new_revisions and revisions_tbl is not None:
            keep = [r for v in new_revisions.values() for r in v]
            _replace(lake, "revisions", set(new_revisions), keep, revisions_tbl.schema)
    out.accounting = check_accounting(lake)
    if not dry_run and out.changes:
        _record(lake, repair_id, started, out)
    return out


def _record(lake: Lake, repair_id: str, started: datetime, out: Repair) -> None:
    """The repair as a `runs` row (command `repair`), so that `curate history` shows it and readers see what it fixed.

    Readers see the table versions of the last good `runs` row (pipelines/core/published.py). The repair names
    the versions it left only when they are a whole lake: nothing broken or left unfixed, and no document of a
    killed night without its decision (undecided, or kept in `corpus` before its `decisions` commit). Otherwise the
    row names none, readers keep the last published state, and the next successful `curate run` publishes the
    repair with the documents it decides."""
    decided = lake.read("decisions").select("doc_id")
    out.kept_undecided = lake.read("corpus").select("doc_id").join(decided, "doc_id", "left_anti").count()
    out.published = not (out.broken or out.unfixed or out.undecided or out.kept_undecided)
    counts = {**out.accounting, "changes": len(out.changes), "unfixed": len(out.unfixed)}
    counts.update(undecided=out.undecided, kept_undecided=out.kept_undecided)
    write_runs_row(
        lake,
        {
            "run_id": repair_id,
            "status": str(RunStatus.SUCCESS),
            "engine": "delta-rs",
            "counts": counts,
            "table_versions": lake.versions() if out.published else {},
            "started_at": started,
            "finished_at": datetime.now(UTC),
            "command": "repair",
        },
    )

"""`curate restore`: every table back to the state of a corpus version.

- **restore** brings every table a run writes back to the versions of that state with delta-rs's RESTORE (a new
  commit, so the restore itself can be undone by restoring the corpus version before it), and records itself in
  `runs` (`command` = `restore`, `target_run_id`); the `champion` aliases move back to the model versions that
  state's run recorded (`champion:<principle>` in its counts), so the next run scores as that night did. `labels`
  (a cache keyed by text hash, valid whatever the corpus), `evaluations` and `runs` (logs) do not move. Tables are
  restored `decisions` and `corpus` first and the bronze tables last: a restore killed half-way leaves ingested
  documents without a decision, which the next run decides again (never documents in the corpus that `raw_docs`
  does not know); rerunning the restore finishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.core.lake import Lake
from schemas.vocab import RunStatus

if TYPE_CHECKING:
    pass
from pipelines.ops.versions import (
    MOVED,
    RESTORE,
    OperateError,
    RunRow,
    commit_properties,
    history,
    missing_files,
    outside_message,
    read_runs,
    restorable,
    spans,
    state_of,
    write_runs_row,
)


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


def plan_restore(lake: Lake, version: int, run_id: str) -> Restore:
    """What `restore(version)` would move; OperateError when `version` is not a restorable state."""
    rows = read_runs(lake)
    corpus_history = history(lake, "corpus")
    state = state_of(version, rows, corpus_history)
    if state is None:
        raise OperateError(
            f"corpus version {version} is not the end of a successful run, restore or maintenance (it is the middle "
            f"of one, or its run failed): restorable corpus versions: {spans(restorable(rows, corpus_history, lake))}"
        )
    # a version `curate maintain` left outside its retention is refused only when a file it needs is really gone:
    # vacuum removes what no retained version reads, so an older version often still has all of its files
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
            raise OperateError(outside_message(version, lake, rows, corpus_history))
        moves.append(TableMove(table, before, target))
    return Restore(run_id, version, lake.version("corpus") or 0, state.row, moves)


def recorded_champions(counts: dict[str, int]) -> dict[str, int]:
    """principle -> the model version a run recorded as champion when it ended (0: none); empty for runs of an
    older release, which recorded none."""
    return {k.split(":", 1)[1]: int(v) for k, v in counts.items() if k.startswith("champion:")}


def restore(
    lake: Lake,
    version: int,
    run_id: str,
    account: Callable[[], dict[str, int]] | None = None,
    move_models: Callable[[dict[str, int]], None] | None = None,
) -> Restore:
    """Bring every table a run writes back to the state of corpus version `version`, and record it in `runs`.
    `account` (the executor's accounting check, run by the caller's engine) is checked on the result.
    `move_models` gets the champion versions the restored state's run recorded (pipelines/core/registry.py
    `move_champions`): the models move back with the data, and an undo (a restore forward) moves them forward."""
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
    write_runs_row(lake, row)
    try:
        for m in plan.moves:
            if m.action == "unchanged":
                continue
            dt = DeltaTable(str(lake.path(m.table)))
            if m.target is None:
                dt.delete(commit_properties=commit_properties(run_id, RESTORE))
            else:
                dt.restore(m.target, commit_properties=commit_properties(run_id, RESTORE))
        for m in plan.moves:
            m.after = lake.version(m.table)
        models = recorded_champions(plan.target.counts)
        if move_models is not None and models:
            move_models(models)
            row["counts"].update({f"champion:{p}": v for p, v in models.items()})
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
        write_runs_row(
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

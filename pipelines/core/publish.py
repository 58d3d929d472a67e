"""Publishing: every write into the contract tables, in the one order that makes a crash at any point safe.

Bronze (`raw_docs`, `quarantine`) is written as soon as the ingest gate passes: it is the input, and a rerun
must find it. `quarantine` is written just before that gate (`Ingest.before_gates`): a batch the gate rejects
leaves the records it rejected to inspect. Everything else is written only after every gate of the chain has
passed, each table by an idempotent MERGE on its key, in `ORDER`: the derived tables first, then `corpus`, then
`decisions` last. A run killed anywhere before `decisions` leaves its documents without a decision, so the rerun
decides exactly those again and converges to the same state; a kill after it changes nothing visible. Readers
never see the half-made state in between: they read the versions the last successful run recorded
(pipelines/core/published.py). The accounting invariant is checked after publishing (pipelines/core/execute.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipelines.core.faults import kill_point
from pipelines.core.lake import Lake, LakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: A boolean column of `corpus` rows: true = delete the document from the corpus (iteration drops it).
DELETE = "_delete"
#: Not a table: the `raw_docs` rows whose text the pii stage redacted, written over the originals when
#: `pii.redact_bronze` is on (before `corpus` and `decisions`, so a rerun after a crash finds them redacted).
REDACT_BRONZE = "raw_docs:redacted"

#: table -> (key, update existing rows?). Insert-only tables keep the first row written for a key.
KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    "raw_docs": (("doc_id",), False),
    "quarantine": (("record_id",), False),
    "quality": (("doc_id",), True),
    "dedup": (("doc_id",), True),
    "minhash_index": (("doc_id", "band"), False),
    "benchmark_ngrams": (("ngram", "set", "item", "set_version", "scheme"), False),
    "contamination": (("doc_id", "set", "item"), True),
    "pii": (("doc_id", "kind"), True),
    # bronze redaction (pii.redact_bronze): raw_docs rows with the redacted text, updating the originals
    REDACT_BRONZE: (("doc_id",), True),
    "scores": (("doc_id", "principle"), True),
    "revisions": (("doc_id", "run_id"), True),
    "corpus": (("doc_id",), True),
    "decisions": (("doc_id", "run_id"), False),
}
BRONZE = ("raw_docs", "quarantine")
ORDER = (
    "quality",
    "dedup",
    "minhash_index",
    "benchmark_ngrams",
    "contamination",
    "pii",
    REDACT_BRONZE,
    "scores",
    "revisions",
    "corpus",
    "decisions",
)


def _write(lake: Lake, table: str, df: DataFrame) -> None:
    keys, update = KEYS[table]
    if table == REDACT_BRONZE:
        lake.merge(df, "raw_docs", keys)
        return
    if DELETE in df.columns:
        lake.merge_with_deletes(df, table, keys, DELETE)
    elif update:
        lake.merge(df, table, keys)
    else:
        lake.insert_new(df, table, keys)


def publish_bronze(lake: Lake, tables: Mapping[str, DataFrame]) -> None:
    _check(tables, BRONZE)
    for name in BRONZE:
        if name in tables:
            _write(lake, name, tables[name])
            kill_point(f"bronze:{name}")


def publish(lake: Lake, tables: Mapping[str, DataFrame]) -> None:
    """Write `tables` in the crash-safe `ORDER`."""
    _check(tables, ORDER)
    for name in ORDER:
        if name in tables:
            _write(lake, name, tables[name])
            kill_point(f"publish:{name}")


def _check(tables: Mapping[str, DataFrame], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(tables) - set(allowed))
    if unknown:
        raise LakeError(f"cannot publish {unknown} here (allowed: {', '.join(allowed)})")

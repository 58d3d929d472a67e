"""Ingest: crawl files -> `raw_docs` (bronze) and `quarantine`, idempotently by `doc_id`.

Parsing runs in `mapInPandas`, one input file per task, so it spreads across workers on a cluster. Every
record comes out as a document or a quarantine entry with a reason; the run goes on past bad records.
Re-ingesting a batch adds nothing: documents are merged on `doc_id`, quarantine entries on `record_id`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType

from expectations import suites
from pipelines.core.config import IngestConfig
from pipelines.core.decisions import deferred, latest_decisions
from pipelines.core.lake import Lake
from pipelines.core.publish import publish_bronze
from pipelines.core.stage import BaseStage, Gate, Halt, StageContext
from schemas import TABLES
from schemas.vocab import Action, Count, RunStatus
from udfs.records import UNSUPPORTED, InputFile, ParseOptions, detect_format

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql import DataFrame, SparkSession


class IngestError(ValueError):
    """The input cannot be ingested at all (missing path, no recognisable files)."""


PARSED = StructType(
    [
        StructField("source_file", StringType(), False),
        StructField("position", LongType(), False),
        StructField("status", StringType(), False),  # "doc" or the quarantine reason
        StructField("doc_id", StringType()),
        StructField("record_id", StringType(), False),
        StructField("text", StringType()),
        StructField("url", StringType()),
        StructField("source", StringType()),
        StructField("meta", MapType(StringType(), StringType())),
        StructField("raw", StringType()),
    ]
)

DOC = "doc"


FORMAT_HELP = (
    ".jsonl[.gz], .json[.gz] (JSON Lines, an array or one object), .txt, .csv, .parquet, .warc[.gz] or .warc.wet[.gz]"
)


def list_inputs(path: str | Path) -> list[InputFile]:
    """The input files under `path` (a file or a directory, searched recursively) with their formats."""
    p = Path(path)
    if not p.exists():
        raise IngestError(f"input not found: {p}")
    candidates = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())

    def name(c: Path) -> str:
        return c.name if c == p else c.relative_to(p).as_posix()

    found = [InputFile(str(c.resolve()), fmt, name(c)) for c in candidates if (fmt := detect_format(c)) is not None]
    if not found:
        raise IngestError(f"no input files in {p}: expected {FORMAT_HELP}")
    # Other files beside them are not skipped silently: each becomes one quarantine record (unsupported_file_type).
    # Hidden and `_`-prefixed names are a writer's bookkeeping (.crc, _SUCCESS), never crawl data.
    unsupported = [
        InputFile(str(c.resolve()), UNSUPPORTED, name(c))
        for c in candidates
        if detect_format(c) is None and not any(part.startswith((".", "_")) for part in c.relative_to(p).parts)
    ] if p.is_dir() else []  # fmt: skip
    return sorted(found + unsupported)


@dataclass(frozen=True)
class Unscoreable:
    """A record of an input file that is not a document (what ingest would quarantine)."""

    name: str
    position: int
    reason: str
    raw: str | None


def read_documents(path: str | Path, options: ParseOptions) -> tuple[list[tuple[Any, str]], list[Unscoreable]]:
    """The documents of `path` (any input format ingest reads), parsed in this process for `curate score`: each
    as (id, text), the id being the record's `id` field (a `.txt` file's relative path), or `<file>#<position>`
    for a record without one; and the records that are not documents."""
    from udfs.parse import parse_file

    docs: list[tuple[Any, str]] = []
    problems: list[Unscoreable] = []
    for f in list_inputs(path):
        for rec in parse_file(f.path, f.fmt, options, f.name):
            if rec.reason is None and rec.text:
                key = rec.ext_key if rec.ext_key is not None else f"{f.name}#{rec.position}"
                docs.append((key, rec.text))
            else:
                problems.append(Unscoreable(f.name, rec.position, rec.reason or "empty_text", rec.raw))
    return docs, problems


def _parse_batches(options: ParseOptions):
    def parse(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pipelines.core.faults import kill_point
        from udfs.parse import parse_file
        from udfs.records import doc_id_for, record_id_for

        columns = PARSED.fieldNames()
        for files in batches:
            for path, fmt, name in zip(files["path"], files["fmt"], files["name"], strict=True):
                rows: list[tuple[object, ...]] = []
                for rec in parse_file(path, fmt, options, name):
                    is_doc = rec.reason is None
                    rows.append(
                        (
                            path,
                            rec.position,
                            DOC if is_doc else rec.reason,
                            doc_id_for(rec.text, rec.url, rec.ext_id) if is_doc and rec.text else None,
                            record_id_for(path, rec.position),
                            rec.text if is_doc else None,
                            rec.url if is_doc else None,
                            rec.source,
                            rec.meta or None,
                            rec.raw,
                        )
                    )
                    if len(rows) >= 2000:
                        yield pd.DataFrame.from_records(rows, columns=columns)
                        kill_point("ingest:batch")
                        rows = []
                if rows:
                    yield pd.DataFrame.from_records(rows, columns=columns)
                    kill_point("ingest:batch")

    return parse


def parse_inputs(spark: SparkSession, files: Sequence[InputFile], cfg: IngestConfig) -> DataFrame:
    listing = spark.createDataFrame([tuple(f) for f in files], "path string, fmt string, name string").repartition(
        max(1, len(files))
    )
    return listing.mapInPandas(_parse_batches(cfg), schema=PARSED)


@dataclass(frozen=True)
class IngestResult:
    records: int
    documents: int  # records that parsed into a document
    new_documents: int  # of those, doc_ids not in raw_docs before this run
    already_ingested: int  # doc_ids already in raw_docs (an idempotent re-ingest adds nothing)
    repeated_in_batch: int  # the same doc_id twice in this batch (same url and text)
    quarantined: int
    quarantine_reasons: dict[str, int]


def to_raw_docs(parsed: DataFrame, crawl_id: str, run_id: str) -> DataFrame:
    """The documents of a parsed batch, one row per `doc_id` (the first occurrence wins)."""
    docs = parsed.where(F.col("status") == DOC)
    first = docs.groupBy("doc_id").agg(F.min(F.struct("source_file", "position")).alias("first"))
    docs = docs.join(
        first.select("doc_id", F.col("first.source_file").alias("_f"), F.col("first.position").alias("_p")),
        "doc_id",
    ).where((F.col("source_file") == F.col("_f")) & (F.col("position") == F.col("_p")))
    return docs.select(
        "doc_id",
        F.coalesce(F.col("source"), F.regexp_extract("source_file", r"([^/]+)$", 1)).alias("source"),
        "url",
        F.lit(crawl_id).alias("crawl_id"),
        "text",
        "meta",
        "source_file",
        "position",
        F.current_timestamp().alias("ingested_at"),
        F.lit(run_id).alias("run_id"),
    )


def to_quarantine(parsed: DataFrame, crawl_id: str, run_id: str) -> DataFrame:
    return parsed.where(F.col("status") != DOC).select(
        "record_id",
        F.lit(run_id).alias("run_id"),
        F.lit(crawl_id).alias("crawl_id"),
        "source_file",
        "position",
        "raw",
        F.col("status").alias("reason"),
        F.current_timestamp().alias("quarantined_at"),
    )


def summarise(parsed: DataFrame, raw_docs_before: DataFrame) -> IngestResult:
    by_status = {r["status"]: int(r["n"]) for r in parsed.groupBy("status").agg(F.count("*").alias("n")).collect()}
    documents = by_status.pop(DOC, 0)
    docs = parsed.where(F.col("status") == DOC).select("doc_id")
    distinct = docs.distinct()
    n_distinct = distinct.count()
    new = distinct.join(raw_docs_before.select("doc_id"), "doc_id", "left_anti").count()
    return IngestResult(
        records=documents + sum(by_status.values()),
        documents=documents,
        new_documents=new,
        already_ingested=n_distinct - new,
        repeated_in_batch=documents - n_distinct,
        quarantined=sum(by_status.values()),
        quarantine_reasons=dict(sorted(by_status.items())),
    )


def bronze_tables(parsed: DataFrame, crawl_id: str, run_id: str) -> dict[str, DataFrame]:
    return {"raw_docs": to_raw_docs(parsed, crawl_id, run_id), "quarantine": to_quarantine(parsed, crawl_id, run_id)}


def write(lake: Lake, parsed: DataFrame, crawl_id: str, run_id: str) -> None:
    """Bronze writes, both idempotent: existing doc_ids and record_ids are left as they are."""
    publish_bronze(lake, bronze_tables(parsed, crawl_id, run_id))


class Ingest(BaseStage):
    """Parse the run's input files (a source: it reads no DataFrame). Its output is one row per input record
    (`status` = `doc` or the quarantine reason); its tables are bronze, written as soon as its gate passes."""

    name: ClassVar[str] = "ingest_v2"
    adds: ClassVar[tuple[str, ...]] = tuple(PARSED.fieldNames())
    bronze: ClassVar[bool] = True
    # the quarantine is written even when the gate then fails: a batch rejected for being malformed (binary files,
    # another format under a .jsonl name) must leave its records, reasons and excerpts to look at
    before_gates: ClassVar[tuple[str, ...]] = ("quarantine",)

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        return parse_inputs(ctx.the_lake.spark, list(ctx.inputs), ctx.cfg.ingest)

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        limit = ctx.cfg.ingest.max_quarantine_fraction
        return (Gate("ingest", lambda _ctx, _counts: suites.ingest(limit), hint=_quarantine_hint),)

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        return bronze_tables(out, ctx.crawl_id, ctx.run_id)

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        result = summarise(out, ctx.the_lake.read("raw_docs"))  # before this run's bronze writes
        counts = {k: v for k, v in asdict(result).items() if isinstance(v, int)}
        counts.update({f"quarantine:{k}": v for k, v in result.quarantine_reasons.items()})
        return counts


def _quarantine_hint(ctx: StageContext, counts: Mapping[str, int]) -> str:
    reasons = sorted(
        ((k.split(":", 1)[1], v) for k, v in counts.items() if k.startswith("quarantine:")), key=lambda kv: -kv[1]
    )
    shown = ", ".join(f"{r} {n}" for r, n in reasons[:5]) + (", ..." if len(reasons) > 5 else "")
    query = f"SELECT source_file, position, reason, raw FROM quarantine WHERE run_id = '{ctx.run_id}'"
    return (
        f"{counts.get('quarantined', 0)} of {counts.get('records', 0)} record(s) were quarantined ({shown or 'none'}) "
        f"and nothing was added to raw_docs; the quarantined records are in the lake (a failed run's commits are not "
        f'published, so read the latest ones): curate sql --lake {ctx.the_lake.root} --latest-commit "{query}"'
    )


class Undecided(BaseStage):
    """The documents this run decides: every ingested document without a decision yet - this batch's new ones,
    and those of an earlier run that died before its decisions were published - and every document whose latest
    decision is `defer` (an earlier run had no budget for it; the revision stage takes these first). None left
    halts the run."""

    name: ClassVar[str] = "undecided_v2"
    adds: ClassVar[tuple[str, ...]] = tuple(TABLES["raw_docs"].fieldNames())

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        lake = ctx.the_lake
        latest = latest_decisions(lake, ("action",))
        settled = latest.where(F.col("action") != str(Action.DEFER)).select("doc_id")
        return lake.read("raw_docs").join(settled, "doc_id", "left_anti")

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        return (Gate("pending", lambda _ctx, _counts: suites.pending_docs()),)

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        # the earlier nights' backlog among them (the revision stage takes these first)
        backlog = out.join(deferred(ctx.the_lake), "doc_id", "left_semi").count()
        return {Count.PENDING: out.count(), Count.PENDING_DEFERRED: backlog}

    def halt(self, counts: Mapping[str, int], ctx: StageContext) -> Halt | None:
        return Halt(RunStatus.SUCCESS) if counts[Count.PENDING] == 0 else None

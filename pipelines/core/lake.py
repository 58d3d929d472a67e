"""The lake: Delta tables under one root, read and written through the Spark session (or delta-rs).

Every contract table lives at `<root>/<name>`; run state (MLflow store, staging, model caches) lives
under `<root>/_state`. Writes are idempotent (MERGE on the table's key) so a rerun after a crash is safe.
A handle reads the latest commits, as writers must; `Lake.published()` is the readers' handle, which reads the
tables a night writes as of the last successful run (pipelines/core/published.py says why).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql.types import StructField, StructType

from schemas import TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def nullable(schema: StructType) -> StructType:
    """The schema with every top-level field nullable.

    Sail 0.7 reports spurious NOT NULL violations on appends of joined batches (seen: an append of 1,500 rows
    with no null `doc_id` rejected for a null `doc_id`), so Delta tables are created without NOT NULL
    constraints; the Great Expectations gates check the contract's required columns before every publish.
    """
    return StructType([StructField(f.name, f.dataType, True, f.metadata) for f in schema.fields])


def write_delta(df: DataFrame, path: str | Path, mode: str) -> None:
    """Write `df` as a Delta table at `path` (`mode`: append or overwrite) behind a shuffle.

    The round-robin repartition puts a stage boundary between computing the rows and Sail's Delta writer. In
    Sail 0.7.2's cluster modes a Delta write whose writer stage calls a DataFusion built-in by name (`upper`,
    `coalesce`, `array_has`, `array_length` - what `element_at` and `size` become) fails with "ExtendedScalarUdf:
    no UDF found for <name>"; the same projection written one shuffle later, written as Parquet or collected
    runs (tests/test_cluster.py, bench/sail_cluster_delta_write.py). In local mode the shuffle is an in-memory
    repartition; the write is spread over `spark.sql.shuffle.partitions` files.
    """
    partitions = int(df.sparkSession.conf.get("spark.sql.shuffle.partitions") or 4)
    df.repartition(partitions).write.format("delta").mode(mode).save(str(path))


class LakeError(RuntimeError):
    """The lake or a table in it is missing or unusable; the message says what to do."""


def check_ident(name: str) -> str:
    """Identifiers reach SQL text; only plain names are allowed."""
    if not IDENT_RE.match(name):
        raise LakeError(f"not a valid identifier: {name!r}")
    return name


def quote_path(path: Path) -> str:
    """A path for SQL text (`delta.`<path>``, `LOCATION '<path>'`): quotes and backticks are refused."""
    text = str(path.resolve())
    if "`" in text or "'" in text:
        raise LakeError(f"lake path must not contain quotes or backticks: {text}")
    return text


class Lake:
    def __init__(
        self, root: str | Path, spark: SparkSession | None = None, pins: Mapping[str, int | None] | None = None
    ) -> None:
        """`pins`: table -> the version `read` gives without an explicit one (None: the table reads as empty);
        a handle given pins (even none) only reads. Readers get theirs from `published()`."""
        self.root = Path(root).resolve()
        self._session = spark
        self._evolved: set[str] = set()
        self.pins: dict[str, int | None] = dict(pins or {})
        self._read_only = pins is not None

    def published(self) -> Lake:
        """A read-only handle on the published state: each table a night writes as of the versions the last
        successful run, restore or maintenance recorded, so a reader never sees half a night."""
        from pipelines.core.published import published_versions

        rows: list[dict[str, object]] = []
        if self.exists("runs"):
            from deltalake import DeltaTable

            wanted = ("status", "table_versions", "started_at", "finished_at")
            table = DeltaTable(str(self.path("runs"))).to_pyarrow_table()
            rows = table.select([c for c in wanted if c in table.column_names]).to_pylist()
        return Lake(self.root, self._session, pins=published_versions(rows))

    def on(self, spark: SparkSession) -> Lake:
        """This handle, reading the same versions, through `spark` (a reader picks its versions before the engine
        starts)."""
        return Lake(self.root, spark, pins=self.pins if self._read_only else None)

    def read_version(self, table: str) -> int | None:
        """The version `read(table)` gives: the pinned one, or the latest; None when that reads no data."""
        if table in self.pins:
            return self.pins[table] if self.exists(table) else None
        return self.version(table)

    def unpublished(self) -> list[str]:
        """The pinned tables whose latest commit is not in the published state (a night is running, or died)."""
        return [t for t, v in self.pins.items() if (latest := self.version(t)) is not None and latest != v]

    @property
    def state_dir(self) -> Path:
        return self.root / "_state"

    def path(self, table: str) -> Path:
        if table not in TABLES:
            raise LakeError(f"unknown table {table!r} (tables: {', '.join(TABLES)})")
        return self.root / table

    def exists(self, table: str) -> bool:
        """A table with at least one commit. A run killed while creating a table leaves a `_delta_log` folder with
        no commit in it: that table was never created, and the next run creates it."""
        log = self.path(table) / "_delta_log"
        return log.is_dir() and any(p.suffix in (".json", ".parquet") and p.name[:1].isdigit() for p in log.iterdir())

    def version(self, table: str) -> int | None:
        if not self.exists(table):
            return None
        from deltalake import DeltaTable

        return int(DeltaTable(str(self.path(table))).version())

    def versions(self) -> dict[str, int]:
        return {t: v for t in TABLES if (v := self.version(t)) is not None}

    @property
    def spark(self) -> SparkSession:
        """The session this handle reads and writes through; a handle made without one only answers
        `exists`, `version(s)` and `history` (delta-rs)."""
        if self._session is None:
            raise LakeError("this lake handle has no Spark session")
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def _check_writable(self) -> None:
        if self._read_only:
            raise LakeError("a handle on the published state only reads: writers use Lake(root, spark)")

    def ensure(self, table: str) -> None:
        """Create the table empty with its contract schema, so readers never hit a missing table; add the
        contract's newer columns to a table an older release wrote."""
        self._check_writable()
        if self.exists(table):
            if table not in self._evolved:
                self._add_missing_columns(table)
                self._evolved.add(table)
            return
        spark = self.spark
        self.root.mkdir(parents=True, exist_ok=True)
        spark.createDataFrame([], nullable(TABLES[table])).write.format("delta").mode("append").save(
            str(self.path(table))
        )

    def _add_missing_columns(self, table: str) -> None:
        """Schema evolution by addition only (a rename needs a migration): new contract columns are added as
        nullable through delta-rs, so old rows read them as null. Sail's SQL has no ALTER TABLE ADD COLUMNS."""
        from deltalake import DeltaTable, Schema
        from pyspark.sql.pandas.types import to_arrow_schema

        dt = DeltaTable(str(self.path(table)))
        have = {f.name for f in dt.schema().fields}
        contract = Schema.from_arrow(to_arrow_schema(nullable(TABLES[table])))
        missing = [f for f in contract.fields if f.name not in have]
        if missing:
            dt.alter.add_columns(missing)

    def ensure_tables(self) -> None:
        """Add the contract's newer columns to every table an older release wrote: called once at the start of a
        writing command (pipelines/core/execute.py), so no reader has to. A missing table is created by its first
        write (`ensure`), never by a read, so a run that publishes nothing leaves no empty tables behind."""
        for table in TABLES:
            if self.exists(table):
                self.ensure(table)

    def read(self, table: str, version: int | None = None) -> DataFrame:
        """The table as a DataFrame, never writing: a table not created yet (or, on a pinned handle, not in the
        published state) reads as empty with its contract schema, and contract columns an older release's table
        lacks read as null. `version` (time travel) reads any version, pinned or not."""
        spark = self.spark
        if version is None and table in self.pins:
            version = self.pins[table]
            if version is None:
                return spark.createDataFrame([], nullable(TABLES[table]))
        if not self.exists(table):
            if version is not None:
                raise LakeError(f"table {table!r} has no version {version} in {self.root}: it has no data yet")
            return spark.createDataFrame([], nullable(TABLES[table]))
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        df = reader.load(str(self.path(table)))
        missing = [f for f in TABLES[table].fields if f.name not in df.columns]
        if missing:
            from pyspark.sql import functions as F

            df = df.select("*", *[F.lit(None).cast(f.dataType).alias(f.name) for f in missing])
        return df

    def append(self, df: DataFrame, table: str) -> None:
        self.ensure(table)
        write_delta(df.select(*TABLES[table].fieldNames()), self.path(table), "append")

    def merge(self, df: DataFrame, table: str, keys: tuple[str, ...]) -> None:
        """Upsert on `keys` in one Delta commit: a rerun of the same rows changes nothing visible."""
        self.ensure(table)
        spark = self.spark
        cols = TABLES[table].fieldNames()
        for k in keys:
            check_ident(k)
        view = check_ident(f"_src_{table}")
        df.select(*cols).createOrReplaceTempView(view)
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        target = f"delta.`{quote_path(self.path(table))}`"
        spark.sql(
            f"MERGE INTO {target} AS t USING {view} AS s ON {on} "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        )
        spark.catalog.dropTempView(view)

    def insert_new(self, df: DataFrame, table: str, keys: tuple[str, ...]) -> None:
        """Append the rows whose key the table does not hold yet, in one commit (rows whose key exists are left
        alone): an anti-join plus append rather than MERGE, because Sail 0.7's MERGE with only a NOT MATCHED
        clause trips the NOT NULL check of the key column, and the append is cheaper anyway."""
        self.ensure(table)
        cols = TABLES[table].fieldNames()
        for k in keys:
            check_ident(k)
        existing = self.read(table, version=self.version(table)).select(*keys)
        new = df.select(*cols).join(existing, list(keys), "left_anti").select(*cols)
        write_delta(new, self.path(table), "append")

    def merge_with_deletes(self, df: DataFrame, table: str, keys: tuple[str, ...], delete: str) -> None:
        """Upsert on `keys`, deleting the matched rows whose boolean column `delete` is true, in one commit
        (one new table version): how a round of iteration moves documents out of `corpus` and back."""
        self.ensure(table)
        cols = [check_ident(c) for c in TABLES[table].fieldNames()]
        view = check_ident(f"_src_{table}_upsert_delete")
        flag = check_ident(delete)
        df.select(*cols, flag).createOrReplaceTempView(view)
        on = " AND ".join(f"t.{check_ident(k)} = s.{k}" for k in keys)
        target = f"delta.`{quote_path(self.path(table))}`"
        sets = ", ".join(f"t.{c} = s.{c}" for c in cols)
        values = ", ".join(f"s.{c}" for c in cols)
        self.spark.sql(
            f"MERGE INTO {target} AS t USING {view} AS s ON {on} "
            f"WHEN MATCHED AND s.{flag} THEN DELETE "
            f"WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED AND NOT s.{flag} THEN INSERT ({', '.join(cols)}) VALUES ({values})"
        )
        self.spark.catalog.dropTempView(view)

    def register_all(self) -> list[str]:
        """Make every existing contract table queryable by its name in `sql`, `VERSION AS OF` included.

        A pinned table is a temporary view of its published version (a view shadows a catalog table of the same
        name in the session); `sql` sends explicit time travel on it to the Delta table itself."""
        spark = self.spark
        names = []
        for table in TABLES:
            if not self.exists(table):
                continue
            name = check_ident(table)
            if table in self.pins:
                self.read(table).createOrReplaceTempView(name)
            else:
                # the latest commits: no view a pinned handle made earlier in this session may shadow them (Sail
                # raises where there is none; Spark returns False)
                with contextlib.suppress(Exception):
                    spark.catalog.dropTempView(name)
                # IF NOT EXISTS, never DROP: dropping a catalog entry must not be able to touch the data.
                location = quote_path(self.path(table))
                spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION '{location}'")
            names.append(table)
        return names

    def sql(self, query: str) -> DataFrame:
        """Spark SQL over the tables `register_all` named, each read as this handle reads it; `VERSION AS OF`
        (or `TIMESTAMP AS OF`) on a table name still reaches that version of the table."""
        from pipelines.core.published import time_travel_to_paths

        paths = {t: quote_path(self.path(t)) for t in self.pins if self.exists(t)}
        return self.spark.sql(time_travel_to_paths(query, paths) if paths else query)

    def merge_rows_without_engine(self, rows: list[tuple[object, ...]], table: str, keys: tuple[str, ...]) -> None:
        """Upsert `rows` (tuples in contract order) through delta-rs, for when the Spark engine is gone: a run that
        lost its Spark Connect endpoint still records itself as failed instead of staying `running`."""
        self._check_writable()
        import pyarrow as pa
        from deltalake import DeltaTable
        from pyspark.sql.pandas.types import to_arrow_schema

        schema = to_arrow_schema(nullable(TABLES[table]))
        names = TABLES[table].fieldNames()
        data = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=schema)
        on = " AND ".join(f"t.{check_ident(k)} = s.{check_ident(k)}" for k in keys)
        dt = DeltaTable(str(self.path(table)))
        merge = dt.merge(data, on, source_alias="s", target_alias="t")
        merge.when_matched_update_all().when_not_matched_insert_all().execute()

    def history(self, table: str, limit: int | None = None) -> list[dict[str, object]]:
        if not self.exists(table):
            raise LakeError(f"table {table!r} has no data yet in {self.root}")
        from deltalake import DeltaTable

        return list(DeltaTable(str(self.path(table))).history(limit))

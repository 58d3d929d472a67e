"""What a stage is: a versioned name, the columns it reads and adds, the gates that follow it, a transform and
its counts. One executor (pipelines/core/execute.py) runs a tuple of stages; `curate run` and `curate iterate` are two
such tuples (pipelines/chains/run.py, pipelines/chains/iterate.py).

A stage sees one DataFrame, one row per document the run decides, and returns it with its columns added. It
never writes a contract table itself: what it contributes to one it returns from `tables` (derived from its
materialised output, so a model UDF runs once per document), and the executor publishes those after every
gate of the chain has passed (pipelines/core/publish.py), except for the bronze tables of a stage marked `bronze`,
which are written as soon as its own gates pass. A table a later stage returns replaces the one of the same name
an earlier stage returned (the pii stage republishes `quality` with the redacted text): the last word is published.
A table named in the stage's `amends` is merged instead: its rows replace those of the same key (publish.KEYS) and
add to the rest (the members stage adds the scores of the duplicates it judged to classify's).

Adding a stage: a class with these attributes in one module, an entry in a chain tuple, a test. The executor
checks `reads` against the incoming columns and `adds` against the outgoing ones, and raises
`StageContractError` naming the stage and the missing columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from schemas import MissingColumnsError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from pipelines.core.config import RunConfig
    from pipelines.core.constitution import Constitution
    from pipelines.core.lake import Lake
    from pipelines.core.progress import Progress
    from pipelines.core.registry import Champion
    from udfs.records import InputFile

#: Materialise a DataFrame once under the run's staging directory and read it back (Sail has no `persist`).
Materialise = Callable[["DataFrame", str], "DataFrame"]


class StageContractError(MissingColumnsError):
    """A stage was handed, or returned, a DataFrame without the columns its declaration names."""


@dataclass(frozen=True)
class Gate:
    """A Great Expectations suite run on a stage's output (`on=None`) or on one of the tables it returns."""

    name: str
    suite: Callable[[StageContext, Mapping[str, int]], list[Any]]  # (ctx, the run's counts so far) -> expectations
    on: str | None = None
    where: str | None = None  # a SQL predicate: gate only these rows
    # what the user should know when it fails (where the evidence is), appended to the failure's message
    hint: Callable[[StageContext, Mapping[str, int]], str] | None = None
    # the table is one the stage returns only when it has rows for it (`on` only): no table, nothing to gate
    optional: bool = False


@dataclass(frozen=True)
class Halt:
    """A stage's answer to "go on?": stop the chain here, end with `status`, and publish only `publish`."""

    status: str
    publish: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use, resolved once before any stage runs: the config with the registry URI filled
    in, the constitution, the champions, the run's identity. `lake`, `materialise` and `progress` are bound by
    the executor when the engine is up. A stage that moves the champions (retraining) makes the executor
    build the next context with `with_champions`; a context itself never changes."""

    cfg: RunConfig
    constitution: Constitution
    run_id: str
    crawl_id: str
    champions: Mapping[str, Champion] = field(default_factory=dict)
    inputs: tuple[InputFile, ...] = ()  # (path, format, name) of the files a source stage reads
    label: str = ""  # what the run worked on, for `runs.input_path`: the input path, or iterate:<id>:round-<k>
    lake: Lake | None = None
    materialise: Materialise | None = None
    progress: Progress | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # chain identity for MLflow (iteration, round)
    # Why-notes of the run (`skipped:<principle>` -> the reason): written by stages like log lines, kept in the
    # run summary and MLflow. The only mutable part, and append-only.
    notes: dict[str, str] = field(default_factory=dict)
    # Models a stage chose as new champions (principle -> models:/<name>/<version>): the run's later stages score
    # with them, and the executor moves the `champion` alias to them only once the run's gates passed and its
    # publish committed (a failed or killed run leaves the old champions). Mutable like `notes`, append-only.
    promotions: dict[str, str] = field(default_factory=dict)
    # The tables the run's earlier stages returned, not yet published (bound by the executor): a stage may read
    # what an earlier one found (the members stage reads the representatives' `scores` spans), never write here.
    tables: Mapping[str, DataFrame] = field(default_factory=dict)

    @property
    def the_lake(self) -> Lake:
        if self.lake is None:
            raise RuntimeError("this stage context is not bound to a lake yet")
        return self.lake

    def stage(self, df: DataFrame, name: str) -> DataFrame:
        """Materialise `df` (see `Materialise`); unbound contexts (pure tests) return it as it is."""
        return df if self.materialise is None else self.materialise(df, name)

    def with_champions(self, champions: Mapping[str, Champion]) -> StageContext:
        return replace(self, champions=dict(champions))


class Stage(Protocol):
    """One step of a chain. Implementations are small classes (frozen dataclasses where they take options)."""

    name: ClassVar[str]  # versioned: `quality_v3`; bump it when what the stage computes changes
    reads: ClassVar[tuple[str, ...]]
    adds: ClassVar[tuple[str, ...]]
    bronze: ClassVar[bool]  # its tables are published right after its gates (raw input), not at the end
    before_gates: ClassVar[tuple[str, ...]]  # of its bronze tables, those published before its gates run
    updates_champions: ClassVar[bool]  # the executor re-resolves the champions after it
    materialise: ClassVar[bool]  # the executor stages its output (False: cheap to recompute)
    amends: ClassVar[tuple[str, ...]]  # its tables that amend an earlier stage's by key rather than replace them

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]: ...

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame: ...

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]: ...

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]: ...

    def halt(self, counts: Mapping[str, int], ctx: StageContext) -> Halt | None: ...

    def figures(self, tables: Mapping[str, DataFrame], ctx: StageContext) -> Mapping[str, Any]: ...


class BaseStage:
    """Defaults for the optional parts of `Stage`: no gates, no tables, no counts, never halts."""

    name: ClassVar[str] = "stage_v1"
    reads: ClassVar[tuple[str, ...]] = ()
    adds: ClassVar[tuple[str, ...]] = ()
    bronze: ClassVar[bool] = False
    # Bronze tables written before the stage's gates run: the record of what was rejected (`quarantine`), so
    # that a gate failing on it leaves the evidence in the lake to inspect.
    before_gates: ClassVar[tuple[str, ...]] = ()
    updates_champions: ClassVar[bool] = False
    # The executor writes the output under the run's staging dir and reads it back, so that what follows reads
    # it once computed (a model UDF must run once per document). False: the output is cheap to recompute.
    materialise: ClassVar[bool] = True
    amends: ClassVar[tuple[str, ...]] = ()

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        return ()

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        return {}

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        return {}

    def halt(self, counts: Mapping[str, int], ctx: StageContext) -> Halt | None:
        return None

    def figures(self, tables: Mapping[str, DataFrame], ctx: StageContext) -> Mapping[str, Any]:
        return {}


def decided(counts: Mapping[str, int]) -> int:
    """The documents the chain decides: `pending` in a nightly run, `redecided` in an iteration round (the
    denominator of a gate that bounds a batch's share of flagged documents)."""
    from schemas.vocab import Count

    return counts.get(Count.PENDING, counts.get(Count.REDECIDED, 0))


def check_columns(stage: Stage, columns: list[str], which: str) -> None:
    """`which` is `reads` (the input) or `adds` (the output)."""
    declared = stage.reads if which == "reads" else stage.adds
    missing = [c for c in declared if c not in columns]
    if missing:
        where = "its input lacks" if which == "reads" else "its output lacks"
        raise StageContractError(f"stage {stage.name}: {where} column(s) {', '.join(missing)}")


def describe(chain: tuple[Stage, ...], ctx: StageContext) -> list[dict[str, Any]]:
    """The chain as `--dry-run` prints it: each stage's name, what it reads and adds, and the gates after it."""
    return [
        {
            "stage": s.name,
            "reads": list(s.reads),
            "adds": list(s.adds),
            "gates": [g.name + (f" (on {g.on})" if g.on else "") for g in s.gates(ctx)],
            **({"writes_at_once": "bronze tables, after its gates"} if s.bronze else {}),
            **({"writes_before_gates": list(s.before_gates)} if s.before_gates else {}),
        }
        for s in chain
    ]

"""`curate iterate`: curate the published corpus again with a classifier retrained on it, until a fixed point.

One round:
1. **the re-decided documents** R: every document whose latest decision is not a drop (the documents of the
   latest corpus version), plus every document whose latest decision is a drop by a principle (stage
   `classify`: over a filter threshold; stage `revise`: flagged and its revision failed or was not made).
   Drops for quality or duplication are final: no classifier can change them; a duplicate deferred because its
   representative was not published waits for the nightly run, which deduplicates it against the published index.
   A document a round drops loses its `minhash_index` keys, one it newly publishes gets them (`DedupIndex`).
   The set is read from the latest decisions, not from `corpus`, so that a round killed between its corpus and
   decisions commits is repaired by the next one (see "publish" below);
2. **relabel** a sample of R per principle with the configured labeler (`iterate.labeler`; labels are cached by
   text, so a document labelled before costs nothing; `human:<dataset>` means: imported labels only) - the
   sample is stratified by the current scores (pipelines/judgement/sampling.py);
3. **retrain** every principle (pipelines/judgement/distill.py, `distill.kind`) on the labels of the labelers named
   for it - its teacher, human imports, `iterate.labeler` (what step 2 just labelled), the cascade's judge - unless
   `distill.labelers` says otherwise (`distill.label_sources`); a new model is chosen only when it beats the
   champion, and the `champion` alias moves to it only once the round has published (gates passed, publish
   committed, accounting checked); a principle without enough labels keeps its current scorer;
4. **rescore** R's text (the quality stage's cleaned text, the text the nightly run scored) with the champions
   and write the scores (with spans) to `scores`;
5. **re-decide** R (pipelines/stages/decide.py) with the same policies as the nightly run; the revision outcome is the
   latest one in `revisions` (an accepted rewrite or excision stays accepted). **The original text of an accepted
   revision is never republished on a weaker scorer's word**, for every principle: it comes back only when the
   scorer that now clears it is stronger than the classifier stage and at least as strong as the one that flagged
   it (`revisions.flagged_by`; strength is the cascade's order, classifier < packaged teacher < judge); otherwise
   the principle stays flagged and the revised text is published again (`decide.hold_revisions`, counted as
   `revisions_held`). So a retrained champion - the very thing a round changes, possibly from a few labels -
   never clears a revision; the teacher clears what a classifier or the teacher flagged, the judge anything; a
   principle with neither keeps its revisions (the cost: the passage removed, which the revision's own re-score
   judged safe to lose). A document newly in a revise band
   that no reviser has tried is excised when the config revises by excision (`revise.method` or the default
   `revise.fallback: excise`; up to `revise.max_excise_docs` a round, `revisions` rows written at once so a
   rejected excision is not retried); iteration never calls the LLM. Otherwise, or when excision fails, it takes
   the decision step's fallback - drop, or tag with `revise.fallback: tag`;
6. a document **changed decision** when its action, its tags or its weight differ from before the round (the
   state its latest decision published: a corpus row written by a round whose decisions never landed does not
   count); a round in which none changed is the **fixed point**: nothing is published and iteration stops;
7. **publish** otherwise (the nightly run's rules, pipelines/core/publish.py): gates first, then `scores`, then
   `corpus` in one MERGE commit (upserts of kept documents, deletes of newly dropped ones: one new corpus
   version), then one `decisions` row per re-decided document with the round's run id; the accounting invariant
   is checked.

Every round is a row in `runs` (counts: `round`, `redecided`, `changed`, `flagged:<principle>` - for a positive
principle `upsampled:<principle>` - and `action:<action>`) and an MLflow run with the same numbers plus
`flagged_fraction__<principle>` (flagged documents / re-decided documents).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from pyspark.sql import functions as F

from pipelines.core import registry
from pipelines.core.config import RunConfig, resolve_revise_method
from pipelines.core.constitution import Constitution, load_constitution
from pipelines.core.decisions import latest_decisions
from pipelines.core.execute import Chain, execute, new_run_id
from pipelines.core.progress import Progress
from pipelines.core.stage import BaseStage, Halt, StageContext
from pipelines.stages import quality
from pipelines.stages.audit import KEPT, TeacherAudit, flagged_key
from pipelines.stages.classify import Classify
from pipelines.stages.decide import Decide
from pipelines.stages.decontaminate import Decontaminate
from pipelines.stages.dedup import DedupIndex
from pipelines.stages.pii import Pii
from pipelines.stages.revise import Revise
from schemas.vocab import PRINCIPLE_DROP_STAGES, Action, Count, DecidedBy, Reason, RunStatus, Tag

V = TypeVar("V")

#: Reason and tag prefixes that say a principle flagged the document (`revised:toxicity`, `retained:violence`, ...).
FLAG_PREFIXES = (
    Reason.PRINCIPLE_DROP,
    Reason.REVISED,
    Reason.FLAGGED,
    Reason.TAGGED,
    Tag.RETAINED,
    Tag.UNREVISED,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from pipelines.core.lake import Lake


@dataclass
class RoundResult:
    round: int
    run_id: str
    status: str  # published | fixed_point | failed
    redecided: int = 0
    changed: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    flagged_fraction: dict[str, float] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    champions: dict[str, str] = field(default_factory=dict)  # principle -> model URI that scored this round
    promoted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # principle -> why it was not retrained
    # principle -> share of the documents kept this round that the packaged teacher scores >= revise threshold
    teacher_harmful: dict[str, float] = field(default_factory=dict)
    corpus_version: int | None = None
    mlflow_run_id: str | None = None
    error: str | None = None
    # `iterate.evaluate`: the `evaluations` id of this round's Model A vs B comparison, and its B - A differences
    eval_id: str | None = None
    eval_diff: dict[str, float] = field(default_factory=dict)


@dataclass
class IterateSummary:
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def fixed_point(self) -> bool:
        return bool(self.rounds) and self.rounds[-1].status == RunStatus.FIXED_POINT


def redecide_set(lake: Lake) -> DataFrame:
    """doc_id, prev_action, prev_reasons, prev_run_id: the documents a round re-decides (module docstring, step 1)."""
    latest = latest_decisions(lake, ("action", "stage", "reasons", "run_id"))
    chosen = (F.col("action") != str(Action.DROP)) | F.col("stage").isin(*[str(s) for s in PRINCIPLE_DROP_STAGES])
    # a duplicate deferred because its representative was not published waits for the nightly run's dedup
    chosen = chosen & ~((F.col("action") == str(Action.DEFER)) & (F.col("stage") == str(DecidedBy.DEDUP)))
    return latest.where(chosen).select(
        "doc_id",
        F.col("action").alias("prev_action"),
        F.col("reasons").alias("prev_reasons"),
        F.col("run_id").alias("prev_run_id"),
    )


def latest_revisions(lake: Lake) -> DataFrame:
    last = F.max(F.struct("revised_at", "run_id", "status", "revised_text", "principles", "flagged_by")).alias("last")
    return (
        lake.read("revisions")
        .groupBy("doc_id")
        .agg(last)
        .select(
            "doc_id",
            F.col("last.status").alias("revision_status"),
            F.col("last.revised_text").alias("revised_text"),
            F.col("last.principles").alias("revision_principles"),
            F.col("last.flagged_by").alias("revision_flagged_by"),
        )
    )


class Redecidable(BaseStage):
    """The round's documents R with what scoring and the corpus need: the cleaned text (what the nightly run
    scored), source, url, crawl, the previous state (`prev_*`) and the latest revision outcome. Quality and
    duplicate drops are not in R, so their columns are constant. None left halts at the fixed point."""

    name: ClassVar[str] = "redecidable_v1"
    adds: ClassVar[tuple[str, ...]] = (
        "doc_id",
        "crawl_id",
        "source",
        "url",
        "clean_text",
        "prev_action",
        "prev_tags",
        "prev_weight",
        "quality_reasons",
        "is_duplicate",
        "revision_status",
        "revised_text",
        "revision_principles",
        "revision_flagged_by",
        "prev_flagged",
    )

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        lake = ctx.the_lake
        raw = lake.read("raw_docs").select("doc_id", "crawl_id", "source", "url", "text")
        q = lake.read("quality").select("doc_id", "clean_text")
        text = quality.text_for_later_stages(ctx.cfg.quality)
        # The state before the round is the one its latest decision published: a corpus row another run wrote (a
        # round killed between its corpus and decisions commits) is not, so it counts as absent and the document
        # as changed - else a round whose changes were only tags or weights would find them already in `corpus`,
        # stop at a "fixed point" and never publish the decisions that go with them.
        corpus = lake.read("corpus").select(
            "doc_id", F.col("run_id").alias("_corpus_run"), F.col("tags").alias("_tags"), F.col("weight").alias("_w")
        )
        same_run = F.col("_corpus_run") == F.col("prev_run_id")
        flagged_before = F.array_distinct(
            F.transform(
                F.filter("prev_reasons", lambda r: F.split(r, ":").getItem(0).isin(*FLAG_PREFIXES)),
                lambda r: F.element_at(F.split(r, ":"), -1),
            )
        )
        return (
            redecide_set(lake)
            .withColumn("prev_flagged", flagged_before)
            .drop("prev_reasons")
            .join(raw, "doc_id")
            .join(q, "doc_id", "left")
            .select(
                "doc_id",
                "crawl_id",
                "source",
                "url",
                text.alias("clean_text"),
                "prev_action",
                "prev_flagged",
                "prev_run_id",
            )
            .join(corpus, "doc_id", "left")
            .withColumn("prev_tags", F.when(same_run, F.col("_tags")))
            .withColumn("prev_weight", F.when(same_run, F.col("_w")))
            .drop("_corpus_run", "_tags", "_w", "prev_run_id")
            .withColumn("quality_reasons", F.array().cast("array<string>"))
            .withColumn("is_duplicate", F.lit(False))
            .join(latest_revisions(lake), "doc_id", "left")
        )

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        return {Count.ROUND: int(ctx.extra.get("round", "0")), Count.REDECIDED: out.count()}

    def halt(self, counts: Mapping[str, int], ctx: StageContext) -> Halt | None:
        return Halt(RunStatus.FIXED_POINT) if counts[Count.REDECIDED] == 0 else None


def _principles(ctx: StageContext) -> list:
    names = list(ctx.cfg.iterate.principles) or ctx.constitution.names
    return [ctx.constitution.get(n) for n in names]


class Relabel(BaseStage):
    """Label a sample of R per principle with `iterate.labeler`, stratified by the current scores (labels are
    cached by text: a document labelled before costs nothing). `human:<dataset>` means imported labels only."""

    name: ClassVar[str] = "relabel_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "clean_text", "source")

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        from pipelines.judgement.label import label_sample, open_labeler

        assert df is not None
        cfg, lake, progress = ctx.cfg, ctx.the_lake, ctx.progress or Progress(enabled=False)
        if cfg.iterate.labeler.startswith("human:") or cfg.iterate.sample <= 0:
            return df
        labeler = open_labeler(cfg.iterate.labeler, cfg.label, lake)
        try:
            for p in _principles(ctx):
                with progress.stage(f"labelling {p.name} ({labeler.name})"):
                    texts = df.select("doc_id", F.col("clean_text").alias("text"), "source")
                    label_sample(lake, p, labeler, texts, cfg.iterate.sample, cfg.label)
        finally:
            labeler.close()
        return df


class Retrain(BaseStage):
    """Distil every principle again (`distill.kind`); a new model is chosen only when it beats the champion on the
    test split and is at least as good as the scorer it replaces on held-out human (else teacher) labels
    (pipelines/judgement/distill.py: `reference_check`). The round scores with it at once; the `champion` alias
    moves to it only after the round's gates pass and its publish commits (pipelines/core/execute.py), so a failed
    or killed round leaves the old champion for the next night. A principle without enough labels keeps its scorer
    (noted as `skipped:<principle>` with the reason)."""

    name: ClassVar[str] = "retrain_v1"
    updates_champions: ClassVar[bool] = True

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        from pipelines.judgement.distill import DistillError, describe, distill

        assert df is not None
        progress = ctx.progress or Progress(enabled=False)
        for p in _principles(ctx):
            with progress.stage(f"distilling {p.name} ({ctx.cfg.distill.kind})"):
                try:
                    out = distill(ctx.the_lake, p, ctx.cfg, move_alias=False)
                except DistillError as exc:
                    ctx.notes[f"skipped:{p.name}"] = str(exc)
                    continue
            if out.champion and out.model_uri:
                ctx.notes[f"promoted:{p.name}"] = out.model_uri
                # scored with from here on; the alias moves when the round's publish commits (the executor)
                ctx.promotions[p.name] = out.model_uri
            else:  # why the scorer stays, e.g. worse than the teacher on held-out labels
                ctx.notes[f"not_promoted:{p.name}"] = describe(out)
        return df

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        return {Count.PROMOTED: sum(k.startswith("promoted:") for k in ctx.notes)}


def _by_prefix(items: Mapping[str, V], prefix: str) -> dict[str, V]:
    """`{"<prefix>:<name>": v}` entries of counts or notes as `{name: v}`."""
    return {k.split(":", 1)[1]: v for k, v in items.items() if k.startswith(f"{prefix}:")}


#: One round: the same classify, revise and decide stages as the nightly chain, after relabelling and retraining.
ROUND = Chain(
    name="iterate",
    stages=(
        Redecidable(),
        # the text re-read from `quality` is the cleaned text before excision (and, in a lake written before the
        # pii stage republished `quality` redacted, before redaction): redo both, or a round would publish
        # benchmark passages or personal data the nightly run had removed (redacting placeholders finds nothing)
        Pii(),
        Decontaminate(),
        Relabel(),
        Retrain(),
        Classify(),
        Revise(llm=False),
        Decide(redecide=True),
        DedupIndex(redecide=True),  # a round's new drops leave the index, its new keeps enter it
        TeacherAudit(),
    ),
    documents=Count.REDECIDED,
    published=RunStatus.PUBLISHED,
)


def iterate(lake: Lake, cfg: RunConfig, rounds: int | None = None, progress: Progress | None = None) -> IterateSummary:
    """Run up to `rounds` (default `iterate.rounds`) rounds; stop early at a fixed point."""
    progress = progress or Progress(enabled=False)
    rounds = cfg.iterate.rounds if rounds is None else rounds
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    cfg = resolve_revise_method(registry.resolve(cfg, lake.state_dir))
    constitution = load_constitution(cfg.classify.constitution)
    unknown = sorted(set(cfg.iterate.principles) - set(constitution.names))
    if unknown:
        raise ValueError(f"iterate.principles names unknown principle(s) {unknown} (have: {constitution.names})")
    if not lake.exists("decisions"):
        raise ValueError(f"no decisions in {lake.root}: run `curate run` first")
    iteration = new_run_id()
    summary = IterateSummary()
    from pipelines.core.writer_lock import writer_lock

    with writer_lock(lake.root, "iterate", iteration) as note:
        if note and progress.enabled:
            progress.console.print(f"note: {note}")
        _rounds(lake, cfg, constitution, rounds, iteration, summary, progress)
    return summary


def _rounds(
    lake: Lake,
    cfg: RunConfig,
    constitution: Constitution,
    rounds: int,
    iteration: str,
    summary: IterateSummary,
    progress: Progress,
) -> None:
    for k in range(1, rounds + 1):
        ctx = StageContext(
            cfg=cfg,
            constitution=constitution,
            run_id=new_run_id(),
            crawl_id="iterate",
            champions=registry.champions_for(constitution, cfg),
            label=f"iterate:{iteration}:round-{k}",
            extra={"iteration": iteration, "round": str(k)},
        )
        run = execute(ROUND, ctx, lake, progress)
        c = run.counts
        result = RoundResult(
            round=k,
            run_id=run.run_id,
            status=run.status,
            redecided=c.get(Count.REDECIDED, 0),
            changed=c.get(Count.CHANGED, 0),
            flagged={
                p.name: c[key] for p in constitution.principles if (key := Count.flagged(p.name, p.positive_kind)) in c
            },
            flagged_fraction={
                p.name: run.flagged_fraction(p.name, Count.REDECIDED)
                for p in constitution.principles
                if Count.flagged(p.name, p.positive_kind) in c
            },
            actions=_by_prefix(c, "action"),
            champions=_by_prefix(run.notes, "model"),
            promoted=list(_by_prefix(run.notes, "promoted")),
            skipped=_by_prefix(run.notes, "skipped"),
            corpus_version=lake.version("corpus") if run.status == RunStatus.PUBLISHED else None,
            teacher_harmful={
                p.name: c[flagged_key(p.name)] / c[KEPT]
                for p in constitution.principles
                if flagged_key(p.name) in c and c.get(KEPT)
            },
            mlflow_run_id=run.mlflow_run_id,
        )
        if cfg.iterate.evaluate and result.corpus_version is not None:
            from pipelines.evaluate.metrics import DIFF
            from pipelines.evaluate.models import evaluate_models

            ev = evaluate_models(lake, cfg, version=result.corpus_version, progress=progress)
            result.eval_id = ev.eval_id
            result.eval_diff = {name: by[DIFF].value for name, by in ev.metrics.items() if DIFF in by}
        summary.rounds.append(result)
        if result.status == RunStatus.FIXED_POINT:
            break

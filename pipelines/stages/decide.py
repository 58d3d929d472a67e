"""Score first, decide once: turn quality reasons, dedup flags, principle scores and revision outcomes
into one `action` per document, with reasons and the stage that decided.

Precedence: quality -> duplicate -> contaminated drop -> principle drop -> revision -> excision -> tag -> keep. A
cluster whose representative (decided in the same run) is not kept is settled by its members' own judgements
(`settle_clusters`): the smallest member that passes is published in the representative's place.
Decontamination (pipelines/stages/decontaminate.py, optional columns `decont_action` / `contaminated_sets`): a
`drop` is a drop with the reasons `contaminated:<set>`; an `excise` (the text already excised) makes a document
that would be kept a `revise` (its published text differs from the cleaned text); a `tag` tags it
`contaminated:<set>`; a kept contaminated document carries the `contaminated:<set>` reasons too. Everything is a native
expression over columns, so the same decisions come out on every engine, and a threshold can be re-tuned
by re-running this step alone.

Policies of a negative principle with score s (thresholds R = revise, F = filter):
- mode `drop`:   s >= F -> drop;            R <= s < F -> tag `<name>`
- mode `revise`: s >= F -> drop;            R <= s < F -> revise (a failed revision takes the fallback; one the
  run had no budget for - `over_cap`, `over_budget` - takes `revise.over_budget`: by default `defer`, which is
  neither the corpus nor a drop: the next run decides the document again, first)
- mode `tag`:    s >= R -> tag `<name>`
- `retain_fraction` f: of the would-be drops (s >= F, modes drop and revise) the share f chosen by
  `pmod(xxhash64(doc_id, name), 10000) < round(f * 10000)` is kept with tag `retained:<name>` instead.
A positive principle (kind positive) never changes the action: a kept document scoring >= its
upsample_threshold gets weight `upsample` and the reason `upsampled:<name>`. With several positive principles
the weight is the LARGEST matching `upsample` (not the product: splitting one theme into two overlapping
principles must not square its weight); 1.0 when none matches; 0.0 for a dropped document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from expectations import suites
from pipelines.core.config import ReviseConfig
from pipelines.core.constitution import Constitution
from pipelines.core.publish import DELETE
from pipelines.core.stage import BaseStage, Gate, Halt, StageContext
from schemas import TABLES, require_columns
from schemas.vocab import (
    BUDGET_STATUSES,
    KEPT_ACTIONS,
    SCORER_RANK,
    Action,
    Count,
    DecidedBy,
    DupKind,
    Method,
    Reason,
    RevisionStatus,
    RunStatus,
    Scorer,
    Tag,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql import DataFrame

RETAIN_BUCKETS = 10_000
#: `member_judged` (pipelines/stages/members.py): a near duplicate judged on its own.
MEMBER = "member_judged"
# pipelines/stages/members.py's guard: the principles whose flagged passage of its representative a judged member
# holds (and is dropped for), and those whose passage was cut from it
HELD = "held_passage"
PASSAGE_CUT = "passage_cut"
_SEP = "\x00"  # sorts before every character of a crawl_id: (crawl_id, doc_id) order as one string
#: `runs.counts` of an iteration round: documents whose accepted revision stood because the scorer that cleared the
#: original was not strong enough (`hold_revisions`).
REVISIONS_HELD = "revisions_held"


def _compact(items: list[Column]) -> Column:
    if not items:
        return F.array().cast("array<string>")
    return F.filter(F.array(*items), lambda x: x.isNotNull())


def retained(doc_id: Column, principle: str, fraction: float) -> Column:
    """Deterministic sample by hash of (doc_id, principle): every rerun and engine keeps the same docs."""
    if fraction <= 0:
        return F.lit(False)
    bucket = F.pmod(F.xxhash64(doc_id, F.lit(principle)), F.lit(RETAIN_BUCKETS))
    return bucket < F.lit(round(fraction * RETAIN_BUCKETS))


def principle_flags(df: DataFrame, constitution: Constitution) -> DataFrame:
    """Adds `drop_principles`, `revise_principles`, `tag_principles` and `upsample_principles` (arrays of
    names) from `principle_scores` (one score per principle, constitution order).

    Unscored rows (null `principle_scores`) get empty arrays.
    """
    require_columns(df.columns, ["doc_id", "principle_scores"], "decide")
    drops, revises, tags, upsamples = [], [], [], []
    for i, p in enumerate(constitution.principles):
        s = F.element_at(F.col("principle_scores"), i + 1)
        if p.positive_kind:
            upsamples.append(F.when(s >= F.lit(p.upsample_threshold), F.lit(p.name)))
            continue
        above_filter = s >= F.lit(p.filter_threshold)
        band = (s >= F.lit(p.revise_threshold)) & (s < F.lit(p.filter_threshold))
        keep_anyway = retained(F.col("doc_id"), p.name, p.retain_fraction)
        name = F.lit(p.name)
        if p.mode == "tag":
            tags.append(F.when(s >= F.lit(p.revise_threshold), name))
            continue
        drops.append(F.when(above_filter & ~keep_anyway, name))
        tags.append(F.when(above_filter & keep_anyway, F.lit(f"{Tag.RETAINED}:{p.name}")))
        if p.mode == "revise":
            revises.append(F.when(band, name))
        else:
            tags.append(F.when(band, name))
    scored = F.col("principle_scores").isNotNull()
    empty = F.array().cast("array<string>")
    return (
        df.withColumn("drop_principles", F.when(scored, _compact(drops)).otherwise(empty))
        .withColumn("revise_principles", F.when(scored, _compact(revises)).otherwise(empty))
        .withColumn("tag_principles", F.when(scored, _compact(tags)).otherwise(empty))
        .withColumn("upsample_principles", F.when(scored, _compact(upsamples)).otherwise(empty))
    )


def weight_of(upsample_principles: Column, constitution: Constitution) -> Column:
    """The largest `upsample` of the matched positive principles, 1.0 when none matched (module docstring)."""
    factors = {p.name: p.upsample for p in constitution.positive}
    if not factors:
        return F.lit(1.0)
    lookup = F.create_map(*[x for name, u in factors.items() for x in (F.lit(name), F.lit(float(u)))])
    return F.coalesce(F.array_max(F.transform(upsample_principles, lambda n: F.element_at(lookup, n))), F.lit(1.0))


def is_kept(action: Column) -> Column:
    """The action keeps the document in the corpus (keep, revise, tag; not drop, not defer)."""
    return action.isin(*[str(a) for a in KEPT_ACTIONS])


def transform(
    df: DataFrame, constitution: Constitution, fallback: str = Action.DROP, over_budget: str = Action.DEFER
) -> DataFrame:
    """Adds `action`, `reasons`, `stage`, `tags`, `weight` and the final `out_text`.

    `fallback` is the action of a flagged document whose revision failed; `over_budget` that of one the run had
    no budget to revise (status `over_cap` / `over_budget`).

    Needs the flag columns from `principle_flags`, `quality_reasons`, `is_duplicate` (null = not
    evaluated), and the revision outcome `revision_status` / `revised_text` (null = not attempted).
    """
    require_columns(
        df.columns,
        [
            "doc_id",
            "text",
            "quality_reasons",
            "is_duplicate",
            "drop_principles",
            "revise_principles",
            "tag_principles",
            "revision_status",
            "revised_text",
        ],
        "decide",
    )
    q_fail = F.size("quality_reasons") > 0
    # a near duplicate the members stage judged is decided on its own here; `settle_clusters` makes it a
    # duplicate again unless its cluster's representative is not published
    judged = F.coalesce(F.col(MEMBER), F.lit(False)) if MEMBER in df.columns else F.lit(False)
    dup = F.coalesce(F.col("is_duplicate"), F.lit(False)) & ~judged
    kind = F.col("dup_kind") if "dup_kind" in df.columns else F.lit(str(DupKind.EXACT))
    p_drop = F.size("drop_principles") > 0
    needs_revision = F.size("revise_principles") > 0
    ok = str(RevisionStatus.OK)
    revised_ok = needs_revision & (F.col("revision_status") == ok)
    rev_failed = needs_revision & ~F.coalesce(F.col("revision_status") == ok, F.lit(False))
    status = F.coalesce(F.col("revision_status"), F.lit("not_attempted"))
    no_budget = rev_failed & F.col("revision_status").isin(*[str(s) for s in BUDGET_STATUSES])
    failed_action = F.when(no_budget, F.lit(str(over_budget))).otherwise(F.lit(str(fallback)))
    tagged = F.size("tag_principles") > 0
    empty = F.array().cast("array<string>")
    upsampled = F.col("upsample_principles") if "upsample_principles" in df.columns else empty
    decont = F.col("decont_action") if "decont_action" in df.columns else F.lit(None).cast("string")
    c_drop, c_excise, c_tag = (F.coalesce(decont == a, F.lit(False)) for a in ("drop", "excise", "tag"))
    sets = F.col("contaminated_sets") if "contaminated_sets" in df.columns else empty
    held = F.coalesce(F.col(HELD), empty) if HELD in df.columns else empty
    cut_for = F.coalesce(F.col(PASSAGE_CUT), empty) if PASSAGE_CUT in df.columns else empty
    cut = F.size(cut_for) > 0
    contaminated = F.transform(F.coalesce(sets, empty), lambda x: F.concat(F.lit(f"{Reason.CONTAMINATED}:"), x))

    action = (
        F.when(q_fail | dup | c_drop | p_drop, str(Action.DROP))
        .when(revised_ok, str(Action.REVISE))
        .when(rev_failed, failed_action)
        .when(c_excise | cut, str(Action.REVISE))
        .when(tagged | c_tag, str(Action.TAG))
        .otherwise(str(Action.KEEP))
    )
    prefix = lambda pre, col: F.transform(F.col(col), lambda x: F.concat(F.lit(pre), x))  # noqa: E731
    reasons = (
        F.when(q_fail, F.col("quality_reasons"))
        .when(dup, F.array(kind))
        .when(c_drop, contaminated)
        .when(
            p_drop,
            F.concat(
                prefix(f"{Reason.PRINCIPLE_DROP}:", "drop_principles"),
                F.transform(held, lambda x: F.concat(F.lit(f"{Reason.HOLDS_PASSAGE}:"), x)),
            ),
        )
        .when(revised_ok, prefix(f"{Reason.REVISED}:", "revise_principles"))
        .when(
            rev_failed,
            F.concat(
                F.array(F.concat(F.lit(Reason.REVISION_FAILED), status)),
                prefix(f"{Reason.FLAGGED}:", "revise_principles"),
            ),
        )
        .when(tagged, prefix(f"{Reason.TAGGED}:", "tag_principles"))
        .otherwise(F.array().cast("array<string>"))
    )
    kept = is_kept(action)
    upsampled_reasons = F.transform(upsampled, lambda n: F.concat(F.lit(f"{Reason.UPSAMPLED}:"), n))
    cut_reasons = F.transform(cut_for, lambda n: F.concat(F.lit(f"{Reason.PASSAGE_CUT}:"), n))
    reasons = F.when(kept, F.concat(reasons, cut_reasons, contaminated, upsampled_reasons)).otherwise(reasons)
    stage = (
        F.when(q_fail, str(DecidedBy.QUALITY))
        .when(dup, str(DecidedBy.DEDUP))
        .when(c_drop, str(DecidedBy.DECONTAMINATE))
        .when(p_drop, str(DecidedBy.CLASSIFY))
        .when(needs_revision, str(DecidedBy.REVISE))
        .when(c_excise, str(DecidedBy.DECONTAMINATE))
        .when(cut, str(DecidedBy.CLASSIFY))  # the passage classify flagged in the representative
        .when(tagged, str(DecidedBy.CLASSIFY))
        .when(c_tag, str(DecidedBy.DECONTAMINATE))
        .otherwise(str(DecidedBy.PUBLISH))
    )
    unrevised_tags = F.when(
        rev_failed & (failed_action == str(Action.TAG)), prefix(f"{Tag.UNREVISED}:", "revise_principles")
    )
    tags = F.array_distinct(
        F.concat(
            F.col("tag_principles"),
            F.coalesce(unrevised_tags, F.array().cast("array<string>")),
            F.when(c_tag, contaminated).otherwise(empty),
        )
    )
    out = (
        df.withColumn("action", action)
        .withColumn("reasons", reasons)
        .withColumn("stage", stage)
        .withColumn("tags", tags)
        .withColumn("weight", F.when(kept, weight_of(upsampled, constitution)).otherwise(F.lit(0.0)))
        .withColumn("out_text", F.when(revised_ok, F.col("revised_text")).otherwise(F.col("text")))
    )
    return settle_clusters(out) if "dup_of" in df.columns else out


def settle_clusters(decided: DataFrame) -> DataFrame:
    """Who publishes a cluster whose representative (decided in the same frame) is not kept: dropped by a principle
    or decontamination, or deferred. Adds `regrouped`: the row's dedup facts changed (`Decide` amends `dedup`).

    - Its near duplicates judged on their own (`member_judged`, pipelines/stages/members.py): the smallest one,
      by (crawl_id, doc_id), whose own decision keeps it is published in the representative's place (`dup_of`
      null, `cluster_id` itself); every other member becomes its duplicate (`dup_of` = it).
    - When none is kept: a judged member keeps its own decision (a drop for its own reasons, or `defer` when its
      revision had no budget); an exact duplicate whose exact survivor (the batch document with its words) was dropped
      is dropped with it (reasons: its dup kind, `copy_of_dropped`; `dup_of` = that survivor); any other member
      is deferred (`unpublished_representative`, its dup kind): the next run decides it again, first.
    - A judged member of a representative that is kept is its duplicate, as if never judged.

    A representative from an earlier run is published (dedup matches nothing else), so it never orphans."""
    cols = decided.columns
    judged = F.coalesce(F.col(MEMBER), F.lit(False)) if MEMBER in cols else F.lit(False)
    in_dup = F.coalesce(F.col("is_duplicate"), F.lit(False))
    kind = F.col("dup_kind") if "dup_kind" in cols else F.lit(str(DupKind.EXACT))
    reps = decided.select(
        F.col("doc_id").alias("_rep_id"), is_kept(F.col("action")).alias("_rep_kept"), F.col("action").alias("_rep_do")
    )
    j = decided.join(reps, F.col("dup_of") == F.col("_rep_id"), "left")
    orphan = in_dup & ~F.coalesce(F.col("_rep_kept"), F.lit(True))
    crawl = F.coalesce(F.col("crawl_id"), F.lit("")) if "crawl_id" in cols else F.lit("")
    best = (
        j.where(orphan & judged & is_kept(F.col("action")))
        .groupBy(F.col("dup_of").alias("_cluster"))
        .agg(F.min(F.concat(crawl, F.lit(_SEP), F.col("doc_id"))).alias("_best"))
    )
    j = j.join(best, F.col("dup_of") == F.col("_cluster"), "left")
    promoted = F.substring_index(F.col("_best"), _SEP, -1)
    has_p = orphan & F.col("_best").isNotNull()
    is_p = has_p & F.coalesce(F.col("doc_id") == promoted, F.lit(False))
    if "exact_hash" in cols:  # an exact duplicate's survivor: the batch document with its words that dedup kept
        survivors = (
            decided.where((~in_dup & ~is_kept(F.col("action"))) | judged)
            .groupBy(F.col("exact_hash").alias("_hash"))
            .agg(F.min(F.concat(F.col("doc_id"), F.lit(_SEP), F.col("action"))).alias("_surv"))
        )
        j = j.join(survivors, F.col("exact_hash") == F.col("_hash"), "left")
        surv_id, surv_do = F.substring_index(F.col("_surv"), _SEP, 1), F.substring_index(F.col("_surv"), _SEP, -1)
    else:
        surv_id, surv_do = F.col("dup_of"), F.col("_rep_do")  # no exact hashes: every exact duplicate copies the rep
    own = orphan & ~has_p & judged
    copy_of_dropped = (
        orphan & ~has_p & ~judged & (kind == str(DupKind.EXACT)) & F.coalesce(surv_do == str(Action.DROP), F.lit(False))
    )
    deferred = orphan & ~has_p & ~judged & ~copy_of_dropped
    as_dup = in_dup & ~is_p & ~own & ~copy_of_dropped & ~deferred
    by_dedup = as_dup | copy_of_dropped | deferred
    empty = F.array().cast("array<string>")
    # the conditions read columns the updates below rewrite: evaluated once, first
    j = j.select(
        "*",
        is_p.alias("_is_p"),
        has_p.alias("_has_p"),
        as_dup.alias("_as_dup"),
        copy_of_dropped.alias("_copy"),
        deferred.alias("_deferred"),
        by_dedup.alias("_by_dedup"),
        promoted.alias("_promoted"),
        surv_id.alias("_surv_id"),
    )
    is_p, has_p, as_dup, copy_of_dropped, deferred, by_dedup, promoted, surv_id = (
        F.col(c) for c in ("_is_p", "_has_p", "_as_dup", "_copy", "_deferred", "_by_dedup", "_promoted", "_surv_id")
    )
    out = (
        j.withColumn(
            "action",
            F.when(as_dup | copy_of_dropped, str(Action.DROP))
            .when(deferred, str(Action.DEFER))
            .otherwise(F.col("action")),
        )
        .withColumn(
            "reasons",
            F.when(as_dup, F.array(kind))
            .when(copy_of_dropped, F.array(kind, F.lit(Reason.COPY_OF_DROPPED)))
            .when(deferred, F.array(F.lit(Reason.UNPUBLISHED_REPRESENTATIVE), kind))
            .otherwise(F.col("reasons")),
        )
        .withColumn("stage", F.when(by_dedup, str(DecidedBy.DEDUP)).otherwise(F.col("stage")))
        .withColumn("tags", F.when(by_dedup, empty).otherwise(F.col("tags")))
        .withColumn("weight", F.when(by_dedup, F.lit(0.0)).otherwise(F.col("weight")))
        .withColumn(
            "dup_of",
            F.when(is_p, F.lit(None).cast("string"))
            .when(has_p, promoted)
            .when(copy_of_dropped, surv_id)
            .otherwise(F.col("dup_of")),
        )
        .withColumn("is_duplicate", F.when(is_p, F.lit(False)).otherwise(F.col("is_duplicate")))
        .withColumn("regrouped", has_p | copy_of_dropped)
    )
    if "dup_kind" in cols:
        out = out.withColumn("dup_kind", F.when(is_p, F.lit(None).cast("string")).otherwise(F.col("dup_kind")))
    if "cluster_id" in cols:
        out = out.withColumn("cluster_id", F.when(has_p, promoted).otherwise(F.col("cluster_id")))
    return out.drop(
        "_rep_id", "_rep_kept", "_rep_do", "_cluster", "_best", "_hash", "_surv", "_is_p", "_has_p", "_as_dup"
    ).drop("_copy", "_deferred", "_by_dedup", "_promoted", "_surv_id")


def regrouped_rows(decided: DataFrame, run_id: str) -> DataFrame:
    """`dedup` rows of the documents whose cluster `settle_clusters` regrouped; a promoted member's `dedup_text` is
    the text it is published from (cleaned, redacted; excised if decontamination excised it)."""
    rows = decided.where(F.col("regrouped")).withColumn("run_id", F.lit(run_id))
    rows = rows.withColumn("dedup_text", F.when(~F.col("is_duplicate"), F.col("clean_text")))
    return rows.select(*TABLES["dedup"].fieldNames())


def decision_rows(decided: DataFrame, run_id: str) -> DataFrame:
    """The `decisions` rows of decided documents (every one of them, drops included)."""
    return decided.select(
        "doc_id",
        F.lit(run_id).alias("run_id"),
        "crawl_id",
        "action",
        "reasons",
        "stage",
        F.current_timestamp().alias("decided_at"),
    )


def corpus_rows(decided: DataFrame, constitution: Constitution, run_id: str) -> DataFrame:
    """The `corpus` rows of decided documents, drops included (callers filter or delete them): final text,
    tags, weight and the scores as a map (null for an unscored document)."""
    names = F.array(*[F.lit(n) for n in constitution.names])
    scores = F.when(F.col("principle_scores").isNotNull(), F.map_from_arrays(names, F.col("principle_scores")))
    return decided.select(
        "doc_id",
        F.col("out_text").alias("text"),
        "source",
        "url",
        "crawl_id",
        "action",
        "tags",
        scores.alias("scores"),
        "weight",
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("updated_at"),
    )


def hold_revisions(df: DataFrame, constitution: Constitution) -> DataFrame:
    """Iteration: a principle an accepted revision was made for stays flagged (added to `revise_principles`, so the
    revised text is published again) unless the scorer that now clears the original text is strong enough: stronger
    than the classifier stage and at least as strong as the one that flagged it (`revision_flagged_by`; unknown in
    rows written before it was recorded: then only the judge). `held_principles` lists what was held.

    Why the classifier never clears a revision: it is the stage iteration retrains, so its word on a document moves
    with every retrain (a head distilled from a handful of labels, from labels of an unintended labeler); two
    classifier verdicts that disagree on a text are the uncertainty the cascade sends to a stronger scorer; and
    keeping the revision costs only the passage it removed, which the strongest scorer available judged
    acceptable to lose, while the original brings back a passage something flagged and nothing stronger cleared.
    Strength is the cascade's order (schemas/vocab.py `Scorer`): classifier < packaged teacher < judge.
    """
    if "revision_principles" not in df.columns:
        return df
    rank = F.create_map(*[x for s, r in SCORER_RANK.items() for x in (F.lit(str(s)), F.lit(r))])
    strongest = F.lit(max(SCORER_RANK.values()))
    flagger = F.coalesce(F.element_at(rank, F.col("revision_flagged_by")), strongest)
    need = F.greatest(F.lit(SCORER_RANK[Scorer.TEACHER]), flagger)
    n = len(constitution.principles)
    deciders = F.col("decided_by") if "decided_by" in df.columns else F.array(*[F.lit(str(Scorer.CLASSIFIER))] * n)
    accepted = F.coalesce(F.col("revision_status") == str(RevisionStatus.OK), F.lit(False))
    revised_for = F.coalesce(F.col("revision_principles"), F.array().cast("array<string>"))
    held = []
    for i, p in enumerate(constitution.principles):
        if p.positive_kind:
            continue
        decider = F.coalesce(F.element_at(deciders, i + 1), F.lit(str(Scorer.CLASSIFIER)))
        clearer = F.coalesce(F.element_at(rank, decider), F.lit(SCORER_RANK[Scorer.CLASSIFIER]))
        flagged_now = F.array_contains("revise_principles", p.name) | F.array_contains("drop_principles", p.name)
        hold = accepted & F.array_contains(revised_for, p.name) & ~flagged_now & (clearer < need)
        held.append(F.when(hold, F.lit(p.name)))
    return df.withColumn("held_principles", _compact(held)).withColumn(
        "revise_principles", F.concat("revise_principles", "held_principles")
    )


def fallback_action(cfg: ReviseConfig) -> str:
    """The action for a flagged document left unrevised: the revision stage already tried excision when the
    fallback is `excise`, so what remains is a drop."""
    return Action.DROP if cfg.fallback == Method.EXCISE else cfg.fallback


def changed_decision() -> Column:
    """Action, tags or weight differ from the document's state before the round (`prev_*` columns)."""
    empty = F.array().cast("array<string>")
    tags_now = F.array_sort(F.col("tags"))
    tags_before = F.array_sort(F.coalesce(F.col("prev_tags"), empty))
    kept = is_kept(F.col("action"))
    return (F.col("action") != F.col("prev_action")) | (
        kept
        & (
            (tags_now != tags_before)
            | (F.col("weight") != F.coalesce(F.col("prev_weight"), F.lit(1.0)))
            | F.col("prev_tags").isNull()
        )
    )


@dataclass(frozen=True)
class Decide(BaseStage):
    """One action per document from everything the earlier stages added; returns the `decisions` and `corpus`
    rows. With `redecide` (iteration) the input carries the previous state (`prev_action`, `prev_tags`,
    `prev_weight`): an accepted revision stands unless a strong enough scorer clears the original (`hold_revisions`),
    the stage adds `changed`, its corpus rows delete the documents it drops, and a round in which nothing changed
    halts at the fixed point (its scores and revisions are still published)."""

    name: ClassVar[str] = "decide_v2"
    amends: ClassVar[tuple[str, ...]] = ("dedup",)  # the members a cluster's new representative regrouped
    reads: ClassVar[tuple[str, ...]] = (
        "doc_id",
        "crawl_id",
        "clean_text",
        "source",
        "url",
        "quality_reasons",
        "is_duplicate",
        "principle_scores",
        "drop_principles",
        "revise_principles",
        "tag_principles",
        "revision_status",
        "revised_text",
    )
    adds: ClassVar[tuple[str, ...]] = ("action", "reasons", "stage", "tags", "weight", "out_text")
    redecide: bool = False

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        # the pure transform publishes its `text` column when a document is not revised: here, the cleaned text
        r = ctx.cfg.revise
        if self.redecide:
            df = hold_revisions(df, ctx.constitution)
        out = transform(df.withColumnRenamed("clean_text", "text"), ctx.constitution, fallback_action(r), r.over_budget)
        out = out.withColumnRenamed("text", "clean_text")
        return out.withColumn("changed", changed_decision()) if self.redecide else out

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        if self.redecide:
            # a deferred document leaves the corpus as a dropped one does: only its latest decision accounts for it
            corpus = corpus_rows(out, ctx.constitution, ctx.run_id).withColumn(DELETE, ~is_kept(F.col("action")))
        else:
            corpus = corpus_rows(out.where(is_kept(F.col("action"))), ctx.constitution, ctx.run_id)
        tables = {"decisions": decision_rows(out, ctx.run_id), "corpus": corpus}
        if "regrouped" in out.columns and "exact_hash" in out.columns:
            tables["dedup"] = regrouped_rows(out, ctx.run_id)
        return tables

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        documents = Count.REDECIDED if self.redecide else Count.PENDING
        return (
            Gate("decisions", lambda _ctx, counts: suites.decisions(counts[documents]), on="decisions"),
            Gate(
                "corpus",
                lambda _ctx, _counts: suites.corpus(),
                on="corpus",
                where=f"NOT {DELETE}" if self.redecide else None,
            ),
        )

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        counts = {Count.action(r["action"]): int(r["count"]) for r in out.groupBy("action").count().collect()}
        reasons = out.select(F.explode("reasons").alias("reason")).groupBy("reason").count().collect()
        counts.update({Count.reason(r["reason"]): int(r["count"]) for r in reasons})
        if MEMBER in out.columns:
            counts[Count.MEMBERS_PROMOTED] = out.where(F.col(MEMBER) & ~F.col("is_duplicate")).count()
        if self.redecide:
            counts[Count.CHANGED] = out.where(F.col("changed")).count()
            if "held_principles" in out.columns:  # revisions a weaker scorer than their flagger would have undone
                counts[REVISIONS_HELD] = out.where(F.size("held_principles") > 0).count()
        return counts

    def halt(self, counts: Mapping[str, int], ctx: StageContext) -> Halt | None:
        if self.redecide and counts.get(Count.CHANGED, 0) == 0:
            # the scores are the current champions' view of the corpus; a rejected excision is not retried
            return Halt(RunStatus.FIXED_POINT, publish=("scores", "revisions"))
        return None

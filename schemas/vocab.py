"""The lake's vocabulary: the values of its enum-like columns and the prefixes of its reason strings.

Stages write them, gates check them and users' SQL filters on them, so each is spelled once, here. They are
`StrEnum`s: a member *is* its string, so it goes into a Spark literal, a JSON count key or a comparison
unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """`decisions.action` / `corpus.action`: what happened to a document."""

    KEEP = "keep"
    REVISE = "revise"
    TAG = "tag"
    DROP = "drop"
    # No budget tonight (revise cap or time budget): not in the corpus and not a drop; the next run decides it first.
    DEFER = "defer"


#: Actions of documents that stay in the corpus.
KEPT_ACTIONS = (Action.KEEP, Action.REVISE, Action.TAG)
#: Actions of documents that are not in the corpus, each accounted for by its latest decision.
OUT_ACTIONS = (Action.DROP, Action.DEFER)


class DupKind(StrEnum):
    """`dedup.dup_kind`: also the decision reason of a duplicate."""

    EXACT = "exact_duplicate"
    NEAR = "near_duplicate"


class RevisionStatus(StrEnum):
    """`revisions.status`. OK covers an accepted excision too (method `excise`)."""

    OK = "ok"
    REJECTED = "rejected"
    ERROR = "error"
    TIMEOUT = "timeout"
    OVER_BUDGET = "over_budget"  # not sent: the run's LLM time budget was spent
    # never attempted (no `revisions` row is written for these)
    OVER_CAP = "over_cap"  # beyond revise.max_docs / max_excise_docs
    TOO_LONG = "too_long"  # beyond revise.max_doc_chars, with no excision to fall back on
    PENDING = "pending"  # in flight inside the revision stage only


#: Statuses of documents no reviser has tried: a later round may still revise them.
UNTRIED = (RevisionStatus.OVER_CAP, RevisionStatus.TOO_LONG)
#: Statuses that say the run had no budget for the document (not that its content failed): `revise.over_budget`.
BUDGET_STATUSES = (RevisionStatus.OVER_CAP, RevisionStatus.OVER_BUDGET)
#: LLM outcomes that take the configured fallback.
FALLBACK_STATUSES = (
    RevisionStatus.REJECTED,
    RevisionStatus.ERROR,
    RevisionStatus.TIMEOUT,
    RevisionStatus.OVER_BUDGET,
)


class Method(StrEnum):
    """`revisions.method`: what produced `revised_text`."""

    LLM = "llm"
    EXCISE = "excise"


class DecidedBy(StrEnum):
    """`decisions.stage`: the stage whose finding decided the action."""

    QUALITY = "quality"
    DEDUP = "dedup"
    CLASSIFY = "classify"
    REVISE = "revise"
    DECONTAMINATE = "decontaminate"
    PUBLISH = "publish"  # nothing stopped it


class Scorer(StrEnum):
    """`scores.decided_by`, `revisions.flagged_by`: the stage of the scoring cascade (pipelines/stages/cascade.py)
    whose score decided. Listed weakest first: a distilled classifier learnt from the teacher's or people's labels,
    the packaged teacher was fitted on human labels, the judge reads the text itself."""

    CLASSIFIER = "classifier"
    TEACHER = "teacher"
    JUDGE = "judge"


#: A scorer's strength: its place in the cascade.
SCORER_RANK = {s: i for i, s in enumerate(Scorer)}


#: Drops that a better classifier may undo (iteration re-decides them); quality and duplicate drops are final.
PRINCIPLE_DROP_STAGES = (DecidedBy.CLASSIFY, DecidedBy.REVISE)


class RunStatus(StrEnum):
    """`runs.status`."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    FAILED_GATE = "failed_gate"
    INTERRUPTED = "interrupted"  # SIGINT or SIGTERM ended it (pipelines/core/interrupt.py); nothing was published after
    PUBLISHED = "published"  # an iteration round that published a corpus version
    FIXED_POINT = "fixed_point"  # an iteration round in which no decision changed


class Reason:
    """Prefixes of `decisions.reasons` entries (`<prefix>:<principle>`) and the fixed reasons."""

    PRINCIPLE_DROP = "principle"  # over a filter threshold
    REVISED = "revised"
    FLAGGED = "flagged"  # in a revise band, revision failed
    TAGGED = "tagged"
    UPSAMPLED = "upsampled"
    REVISION_FAILED = "revision_"  # + the revision status: revision_rejected, revision_over_cap, ...
    SECRET = "secret"  # + the kind of credential found
    CONTAMINATED = "contaminated"  # + the benchmark set whose items a document holds
    # a duplicate whose representative the same run did not publish (dropped or deferred by a later stage): deferred,
    # so that the next run decides it on its own, against an index that holds published documents only
    UNPUBLISHED_REPRESENTATIVE = "unpublished_representative"
    # an exact duplicate (the same normalised words) of a document the same run dropped on its own judgement, its
    # cluster holding no member the run keeps: dropped with it (`dedup.dup_of` names the document it copies)
    COPY_OF_DROPPED = "copy_of_dropped"
    # a near copy of a flagged page (pipelines/stages/members.py) that holds the passage the page was dropped for:
    # dropped for it too, whatever its own score (`holds_passage:<principle>` beside `principle:<principle>`)
    HOLDS_PASSAGE = "holds_passage"
    # ... that held the passage of a principle the page was to be revised for: the passage cut, the rest judged
    PASSAGE_CUT = "passage_cut"

    @staticmethod
    def of(prefix: str, name: str) -> str:
        return f"{prefix}:{name}"


class Tag:
    """Prefixes of `corpus.tags` entries besides a bare principle name."""

    RETAINED = "retained"  # over the filter threshold, kept by `retain_fraction`
    UNREVISED = "unrevised"  # in a revise band, revision failed, `revise.fallback: tag`


class Count:
    """Keys of `runs.counts` (and MLflow metrics) shared by several modules; per-stage keys live with the stage."""

    PENDING = "pending"
    PENDING_DEFERRED = "pending_deferred"  # of the pending documents, those an earlier run deferred
    REDECIDED = "redecided"
    CHANGED = "changed"
    ROUND = "round"
    SECONDS = "seconds"
    GATES_PASSED = "gates_passed"
    CORPUS_SIZE = "corpus_size"
    RAW_DOCS_TOTAL = "raw_docs_total"
    QUARANTINE_TOTAL = "quarantine_total"
    UNACCOUNTED = "unaccounted"
    CORPUS_WITHOUT_RAW = "corpus_without_raw"  # corpus rows whose doc_id is in no raw_docs row (always 0)
    DEFERRED_TOTAL = "deferred_total"  # the backlog: documents whose latest decision is `defer`
    DEFERRED_OLDEST_H = "deferred_oldest_age_h"  # hours since the oldest deferred document was ingested
    PROMOTED = "promoted"
    # near duplicates judged on their own because their representative was flagged (pipelines/stages/members.py)
    MEMBERS_JUDGED = "members_judged"
    # of those, the ones that took their cluster's place in the corpus because the representative was not kept
    MEMBERS_PROMOTED = "members_promoted"
    MEMBERS_HOLDING_PASSAGE = "members_holding_passage"  # dropped: they hold the passage their page was dropped for
    MEMBERS_PASSAGE_CUT = "members_passage_cut"  # the passage their page was to be revised for, cut from them

    @staticmethod
    def flagged(principle: str, positive: bool = False) -> str:
        """A negative principle's documents at or above its revise threshold; a positive one's it upweights."""
        return f"{'upsampled' if positive else 'flagged'}:{principle}"

    @staticmethod
    def action(action: str) -> str:
        return f"action:{action}"

    @staticmethod
    def champion(principle: str) -> str:
        """The registered version the principle's `champion` alias named when the run ended (0: none)."""
        return f"champion:{principle}"

    @staticmethod
    def reason(reason: str) -> str:
        return f"reason:{reason}"

    @staticmethod
    def gate(name: str) -> str:
        """The expectations a gate's Great Expectations suite evaluated; all passed (a failure stops the run)."""
        return f"gate:{name}"

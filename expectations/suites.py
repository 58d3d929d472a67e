"""One suite per gate. Each returns the expectations for a gate given the run's parameters.

Gates sit between stages; a failing one stops the run before anything is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from schemas import ACTIONS
from schemas.vocab import KEPT_ACTIONS, DupKind

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

HEX64 = r"^[0-9a-f]{64}$"


def _gx() -> Any:
    """Great Expectations, imported when a suite is built: the import takes 2-4 s, which every process that only
    imports a stage (a benchmark, a worker) would otherwise pay."""
    import great_expectations.expectations as gxe

    return gxe


def ingest(max_quarantine_fraction: float) -> list[Expectation]:
    """On the parsed batch: enough of it parsed into documents, and every record is identified."""
    gxe = _gx()
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["doc"], mostly=1.0 - max_quarantine_fraction),
        gxe.ExpectColumnValuesToNotBeNull(column="record_id"),
        gxe.ExpectColumnValuesToBeUnique(column="record_id"),
    ]


def pending_docs() -> list[Expectation]:
    """On the documents this run decides: ids unique, text present."""
    gxe = _gx()
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="doc_id"),
        gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
        gxe.ExpectColumnValueLengthsToEqual(column="doc_id", value=32),
        gxe.ExpectColumnValuesToNotBeNull(column="crawl_id"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
    ]


def quality(*, check_lang_score: bool = True) -> list[Expectation]:
    """On the quality table: every document scored, counts and ratios in range, cleaned text present.
    `check_lang_score`: language id ran (`quality.lang.model` is not `none`), so its score is in [0, 1]."""
    gxe = _gx()
    ratios = [
        "alpha_word_ratio",
        "bullet_line_ratio",
        "ellipsis_line_ratio",
        "dup_para_frac",
        "dup_line_frac",
        "dup_line_char_frac",
        "fw_line_punct_ratio",
        "fw_short_line_ratio",
    ]
    if check_lang_score:
        ratios.append("lang_score")
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="quality_reasons"),
        gxe.ExpectColumnValuesToNotBeNull(column="clean_text"),
        gxe.ExpectColumnValuesToBeBetween(column="n_words", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="c4_sentences", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="mean_word_length", min_value=0.0),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, max_value=1.0) for c in ratios],
    ]


def dedup() -> list[Expectation]:
    """On the deduplicated batch: one row per document, every one in a cluster, duplicates with a known kind."""
    gxe = _gx()
    return [
        gxe.ExpectColumnValuesToMatchRegex(column="exact_hash", regex=HEX64),
        gxe.ExpectColumnValuesToNotBeNull(column="is_duplicate"),
        gxe.ExpectColumnValuesToNotBeNull(column="cluster_id"),
        gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
        gxe.ExpectColumnValuesToBeInSet(column="dup_kind", value_set=[str(k) for k in DupKind]),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="cluster_id", column_B="dup_of", ignore_row_if="either_value_is_missing"
        ),
    ]


def scores(principles: Sequence[str]) -> list[Expectation]:
    gxe = _gx()
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="principle", value_set=list(principles)),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["doc_id", "principle"]),
    ]


def decisions(expected_rows: int) -> list[Expectation]:
    """Before publishing: exactly one decision per pending document, each with a known action."""
    gxe = _gx()
    return [
        gxe.ExpectTableRowCountToEqual(value=expected_rows),
        gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
        gxe.ExpectColumnValuesToBeInSet(column="action", value_set=list(ACTIONS)),
        gxe.ExpectColumnValuesToNotBeNull(column="reasons"),
    ]


def corpus() -> list[Expectation]:
    gxe = _gx()
    return [
        gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="weight", min_value=0.0, strict_min=True),
        gxe.ExpectColumnValuesToNotBeNull(column="tags"),  # export reads tags (and their tokens) from every row
        gxe.ExpectColumnValuesToBeInSet(column="action", value_set=[str(a) for a in KEPT_ACTIONS]),
    ]

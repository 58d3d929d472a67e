"""Excision: remove the flagged sentences of a document and keep the rest. Pure functions, no model, no Spark.

The reviser that needs no LLM, and the fallback for rejected LLM rewrites. Sentences are cut with the same
splitter the scoring stage uses for the `spans` of the `scores` table (udfs/sentences.py), so "the flagged
spans" and "the sentences excision removes" are the same character ranges when scored by the same model. The
caller scores sentences and re-validates the result (re-score below the revise threshold, enough text left).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Re-exported: callers that cut sentences for excision import the splitter from here or from udfs.sentences.
from udfs.sentences import split_sentences as split_sentences


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def excise(text: str, ranges: Sequence[tuple[int, int]]) -> str:
    """`text` without the character `ranges`, the whitespace around each cut merged.

    A cut absorbs the whitespace on both sides (and whitespace-only gaps between neighbouring cuts). Where that
    whitespace held a line or paragraph break, the strongest single break survives (at most one blank line), so
    removing a sentence that ended a line does not glue two lines together; elsewhere one space remains; at the
    start or end of the text nothing remains.
    """
    cuts: list[tuple[int, int, int]] = []  # (start, end, most newlines in one absorbed whitespace run)
    for s, e in _merge(ranges):
        a, b = s, e
        while a > 0 and text[a - 1].isspace():
            a -= 1
        while b < len(text) and text[b].isspace():
            b += 1
        breaks = max(text[a:s].count("\n"), text[e:b].count("\n"))
        if cuts and a <= cuts[-1][1]:
            pa, pb, pn = cuts[-1]
            cuts[-1] = (pa, max(pb, b), max(pn, breaks))
        else:
            cuts.append((a, b, breaks))
    out: list[str] = []
    pos = 0
    for a, b, breaks in cuts:
        out.append(text[pos:a])
        if a > 0 and b < len(text):
            out.append("\n" * min(2, breaks) if breaks else " ")
        pos = b
    out.append(text[pos:])
    return "".join(out)


def excise_keeping(text: str, ranges: Sequence[tuple[int, int]], min_ratio: float) -> str | None:
    """`excise(text, ranges)`, or None when less than `min_ratio` of the text, or only whitespace, would be left: a
    cut that leaves too little does not stand for the document (decontamination and the members stage drop it)."""
    out = excise(text, ranges)
    return out if out.strip() and len(out) >= min_ratio * len(text) else None


def sentence_order(sentence_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Sentence indices, most offending first: by the largest score/threshold ratio over the given principles.

    `sentence_scores` is (n_sentences, n_principles) restricted to the principles the document is flagged
    for, `thresholds` their span thresholds.
    """
    if sentence_scores.size == 0:
        return np.zeros(0, dtype=int)
    ratio = (sentence_scores / np.maximum(thresholds, 1e-9)).max(axis=1)
    return np.argsort(-ratio, kind="stable")


def flagged_sentences(sentence_scores: np.ndarray, thresholds: np.ndarray) -> list[int]:
    """Indices of sentences at or above the threshold of any of the given principles (the flagged spans)."""
    if sentence_scores.size == 0:
        return []
    return [int(i) for i in np.flatnonzero((sentence_scores >= thresholds).any(axis=1))]


def removal_plan(sentence_scores: np.ndarray, thresholds: np.ndarray, extra: int) -> list[int]:
    """Sentences to remove in round `extra` (0 = the flagged sentences only).

    Each further round also removes the next most offending remaining sentence: a document can score above
    its threshold as a whole while no single sentence does (the score of the whole is not the max of its parts).
    """
    chosen = flagged_sentences(sentence_scores, thresholds)
    if extra <= 0:
        return chosen
    taken = set(chosen)
    for i in sentence_order(sentence_scores, thresholds):
        if extra == 0:
            break
        if int(i) not in taken:
            taken.add(int(i))
            extra -= 1
    return sorted(taken)

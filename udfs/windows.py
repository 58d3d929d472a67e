"""Scoring windows: a document cut into sentence-aligned passages of about the encoder's length. Pure functions.

A web page's harm is usually one passage; a whole-page score dilutes it and a truncated head never sees it. So
every scorer reads windows: consecutive whole sentences packed up to `max_words` words, each window starting with
the last sentence of the one before (a sentence on a boundary is whole in one window). A sentence longer than
`max_words` is cut at word boundaries into pieces of its own, so no window is truncated by the encoder.

`select` picks the windows an expensive scorer reads when it cannot afford all of them: the first window (the
head, where a page says what it is) and the `k - 1` that a cheap scorer ranks highest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from udfs.sentences import split_sentences

#: MiniLM word pieces per English word, roughly: 96 words fill the 128-token encoder window (measured on the dev
#: crawl's prose: 1.25-1.35 tokens a word).
TOKENS_PER_WORD = 1.33
_WORD = re.compile(r"\S+")


def words_for_tokens(max_tokens: int) -> int:
    """The window length in words that fits `max_tokens` encoder tokens (special tokens included)."""
    return max(8, int((max_tokens - 2) / TOKENS_PER_WORD))


def _pieces(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int, int]]:
    """(start, end, words) of a sentence, cut at word boundaries into pieces of at most `max_words` words."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    if len(words) <= max_words:
        return [(start, end, len(words))]
    out = []
    for i in range(0, len(words), max_words):
        chunk = words[i : i + max_words]
        out.append((chunk[0][0], chunk[-1][1], len(chunk)))
    return out


def sentence_windows(text: str, max_words: int) -> list[tuple[int, int]]:
    """Character (start, end) of each window, in order; one window for a text of at most `max_words` words."""
    units: list[tuple[int, int, int]] = []
    for s, e in split_sentences(text):
        units += _pieces(text, s, e, max_words)
    if not units:
        return []
    if sum(u[2] for u in units) <= max_words:
        return [(units[0][0], units[-1][1])]
    windows: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (j == i or words + units[j][2] <= max_words):
            words += units[j][2]
            j += 1
        windows.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        # the next window starts with this one's last unit, unless that unit filled the window alone
        i = j - 1 if j - 1 > i else j
    return windows


def sentence_groups(text: str, max_words: int) -> list[tuple[int, int]]:
    """Character (start, end) of runs of consecutive whole sentences of at most `max_words` words together (a
    longer sentence is a group of its own, never cut), in order and without overlap. What a passage scorer reads
    inside a window: a short harmful passage is most of its group, not a sixth of a window's mean embedding."""
    out: list[tuple[int, int]] = []
    start = end = -1
    words = 0
    for s, e in split_sentences(text):
        n = len(_WORD.findall(text, s, e))
        if start >= 0 and words + n > max_words:
            out.append((start, end))
            start = -1
        if start < 0:
            start, words = s, 0
        end = e
        words += n
    if start >= 0:
        out.append((start, end))
    return out


def select(ranks: Sequence[float], k: int) -> list[int]:
    """Indices of the windows to read, in document order: the first, and the `k - 1` others ranked highest
    (ties: the earlier window). All of them when there are at most `k`."""
    n = len(ranks)
    if n <= k:
        return list(range(n))
    rest = sorted(range(1, n), key=lambda i: (-ranks[i], i))[: max(0, k - 1)]
    return sorted([0, *rest])


def with_context(text: str, start: int, end: int, sentences: int = 1) -> tuple[int, int]:
    """(start, end) widened by up to `sentences` whole sentences on each side: what a teacher or a judge reads of
    a deciding window, so a passage that answers or quotes its neighbour is read with it."""
    if sentences <= 0:
        return start, end
    spans = split_sentences(text)
    before = [s for s, e in spans if e <= start][-sentences:]
    after = [e for s, e in spans if s >= end][:sentences]
    return (before[0] if before else start), (after[-1] if after else end)

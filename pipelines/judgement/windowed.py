"""Whole-document judgement by windows, without Spark: the classifier (pipelines/judgement/scorers.py) and the
packaged teachers (pipelines/judgement/teachers.py) score a document as the maximum over its windows
(udfs/windows.py), and say which window decided.

A scorer that is cheap per window (the Jigsaw BiLSTM, a linear champion) reads every window. An encoder-based
scorer (exemplar similarity, an encoder champion, the stack teachers) reads the first window and the `top_k - 1`
that the cheap tier ranks highest (`classify.windows: top_k`), or every window (`all`, the default on a GPU).
The cheap tier is the Jigsaw BiLSTM's largest output (toxic, severe toxic, obscene, threat, insult, identity
hate) on each window: harm that is one passage of a page is nearly always abuse, a threat or graphic hate, and
the first window carries what a whole page is about (a scam, an essay on AI). A document of at most `top_k`
windows is read whole by every scorer. Ranks are computed one document at a time and rounded, so which windows
are read never depends on the batch a document was scored in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from udfs.windows import select, sentence_windows

#: Decimals kept of a cheap rank: the BiLSTM's last bits must not decide which window is read.
RANK_DECIMALS = 5


@dataclass(frozen=True)
class WindowPlan:
    """Per document: every window (character ranges, in order) and the indices the expensive tier reads."""

    windows: list[list[tuple[int, int]]]
    read: list[list[int]]

    def passages(self, texts: Sequence[str], which: str = "read") -> list[tuple[int, int, str]]:
        """(document, window index, window text) for the windows read (`which="read"`) or all of them."""
        out = []
        for i, (text, ws) in enumerate(zip(texts, self.windows, strict=True)):
            for j in self.read[i] if which == "read" else range(len(ws)):
                s, e = ws[j]
                out.append((i, j, text[s:e]))
        return out


def deciding_range(text: str, start: int | None, end: int | None) -> tuple[int, int]:
    """The recorded deciding window's range, the whole text where none was recorded (or it is empty)."""
    if start is None or end is None or end <= start:
        return 0, len(text)
    return int(start), int(end)


def resolve_top_k(mode: str, top_k: int, device: str) -> int:
    """`classify.windows` as the number of windows an encoder reads per document (0 = all), on this worker."""
    if mode == "auto":
        from udfs.encoder import pick_device

        mode = "all" if pick_device(device) == "cuda" else "top_k"
    return 0 if mode == "all" else top_k


def cheap_ranks(passages: Sequence[str]) -> list[float]:
    """The cheap tier's rank of each passage: the Jigsaw BiLSTM's largest output, rounded."""
    from udfs.jigsaw import JigsawClassifier

    if not passages:
        return []
    values = JigsawClassifier.load().predict(list(passages)).max(axis=1)
    return [round(float(v), RANK_DECIMALS) for v in values]


def plan(texts: Sequence[str], max_words: int, top_k: int) -> WindowPlan:
    """Cut each text into windows and choose those the expensive tier reads: all of them when `top_k` <= 0."""
    windows = [sentence_windows(t, max_words) or [(0, len(t))] for t in texts]
    read = []
    for text, ws in zip(texts, windows, strict=True):
        if top_k <= 0 or len(ws) <= top_k:
            read.append(list(range(len(ws))))
        else:  # one document's windows in one call: its ranks never depend on its neighbours
            read.append(select(cheap_ranks([text[s:e] for s, e in ws]), top_k))
    return WindowPlan(windows, read)


@dataclass(frozen=True)
class Windowed:
    """(n_docs, n_principles) document scores and, per entry, the character range of the window that decided."""

    scores: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def empty(cls, n: int, m: int) -> Windowed:
        return cls(np.full((n, m), np.nan), np.zeros((n, m), np.int64), np.zeros((n, m), np.int64))


def window_max(
    texts: Sequence[str],
    window_plan: WindowPlan,
    score_passages: Callable[[list[str]], np.ndarray],
    n_principles: int,
    which: str = "read",
    rows: Sequence[int] | None = None,
) -> Windowed:
    """Per document (only `rows`, default all) and principle: the maximum of `score_passages` over the windows
    read, and that window's range (the first of equal maxima). NaN entries of `score_passages` are skipped."""
    rows = list(range(len(texts))) if rows is None else list(rows)
    out = Windowed.empty(len(texts), n_principles)
    wanted = set(rows)
    pieces = [p for p in window_plan.passages(texts, which) if p[0] in wanted]
    if not pieces:
        return out
    values = np.asarray(score_passages([t for _, _, t in pieces]), dtype=float).reshape(len(pieces), n_principles)
    for (i, j, _), row in zip(pieces, values, strict=True):
        s, e = window_plan.windows[i][j]
        for k, v in enumerate(row):
            if np.isnan(v):
                continue
            if np.isnan(out.scores[i, k]) or v > out.scores[i, k]:
                out.scores[i, k], out.starts[i, k], out.ends[i, k] = v, s, e
    return out

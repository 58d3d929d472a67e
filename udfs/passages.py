"""Does a near copy of a flagged page still hold the passage the page was flagged for? Pure functions, no Spark.

A cluster of near duplicates is judged member by member when its representative is not published
(pipelines/stages/members.py). Scorers are noisy on near copies (the violence teacher put one page at 0.92 and a
lightly reworded copy of it at 0.70), so publishing the first copy that passes would pick the most lenient score
rather than the copy without the harm. The guard compares the representative's flagged passages (its `scores`
spans, one sentence each) with the member's sentences by the words they share: a copy holds a passage when a
window of one or two of its consecutive sentences contains most of the passage's content words. Words, not
character shingles: the edits that make near copies (reordered, inserted or dropped words, changed punctuation)
keep a sentence's words; a changed letter costs one word of a dozen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from udfs.sentences import split_sentences

#: Share of a passage's content words a window of the copy must contain to hold it.
MIN_CONTAINMENT = 0.6
#: A passage with fewer content words than this is held only when a window contains all of them and is short:
#: three common words say little about where they came from.
MIN_WORDS = 4
_SHORT_WINDOW = 40

_WORD = re.compile(r"[^\W_]+")
# the function words that carry no trace of where a sentence came from
_STOP = frozenset(
    re.findall(
        r"\w+",
        "the a an and or but of to in on at by for with from as is are was were be been being it its this that these "
        "those he she they them his her their we us our you your i me my not no so if then than there here what which "
        "who whom do does did has have had will would can could should may might must just also very all any some",
    ),
)


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


def held_sentences(
    text: str, passages: Sequence[str], min_containment: float = MIN_CONTAINMENT
) -> list[tuple[int, int]]:
    """The character ranges of `text`'s sentences (udfs/sentences.py) that hold any of `passages`, in order.

    For each passage, the sentence whose content words contain the most of the passage's; a pair of consecutive
    sentences instead when the second adds a fifth of the passage's words or more (a copy may have split the
    passage's sentence in two; a neighbour that only shares a word or two is left alone). Held when the window
    contains at least `min_containment` of them."""
    sentences = split_sentences(text)
    tokens = [_WORD.findall(text[s:e].lower()) for s, e in sentences]
    words = [frozenset(w for w in t if w not in _STOP) for t in tokens]
    held: set[int] = set()
    for passage in passages:
        want = content_words(passage)
        if not want:
            continue
        short = len(want) < MIN_WORDS
        if short:  # every word of it then, function words too, in a short window: "kill them all", not "kill"
            want = frozenset(_WORD.findall(passage.lower()))
            windows = [((i,), frozenset(t)) for i, t in enumerate(tokens) if len(t) <= _SHORT_WINDOW]
            windows += [
                ((i, i + 1), frozenset(tokens[i] + tokens[i + 1]))
                for i in range(len(tokens) - 1)
                if len(tokens[i]) + len(tokens[i + 1]) <= _SHORT_WINDOW
            ]
        else:
            windows = [((i,), words[i]) for i in range(len(sentences))]
            windows += [((i, i + 1), words[i] | words[i + 1]) for i in range(len(sentences) - 1)]
        margin = max(2, -(-len(want) // 5))
        best: tuple[int, tuple[int, ...]] = (0, ())
        for ix, w in windows:
            got = len(want & w)
            if got > best[0] + (margin - 1 if best[1] and len(ix) > len(best[1]) else 0):
                best = (got, ix)
        if best[0] >= (len(want) if short else min_containment * len(want)):
            held.update(best[1])
    return [sentences[i] for i in sorted(held)]
